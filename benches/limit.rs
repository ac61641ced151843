//! The body-held limiter against tower's `ConcurrencyLimit` under contention: 64 tasks, each
//! sending requests through one limit of 8 to an in-memory service that yields once per request
//! (so requests overlap and waiters queue). Same runtime, same load, same run; compare the times.
//!
//! ```text
//! cargo bench --bench limit -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The per-host limiter is measured with every request to one host, so it limits the same 8.
//!
//! tower's permit ends at the response headers; ours at the end of the body — here the body is
//! dropped as soon as the response arrives, so both limit the same work and the difference is the
//! cost of the machinery (clone of the inner service per call, permit moved into the body).

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_hardened::{ConcurrencyLimitLayer, PerHostLimitLayer};

const TASKS: usize = 64;
const PER_TASK: usize = 50;
const LIMIT: usize = 8;

fn inner() -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_req: Request<()>| async {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

async fn flood<S, RB>(svc: S, hosts: usize)
where
    S: Service<Request<()>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    RB: Send + 'static,
{
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let uri = format!("http://h{}.example/{i}", t % hosts);
                    let req = Request::get(uri).body(()).unwrap();
                    let resp = svc.clone().oneshot(req).await.unwrap();
                    drop(resp); // the body is done: our permit goes here, tower's went earlier
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group(format!(
        "{TASKS} tasks x {PER_TASK} requests, limit {LIMIT}"
    ));
    g.bench_function("no limit (baseline)", |b| {
        b.iter(|| rt.block_on(flood(inner(), 1)))
    });
    g.bench_function("tower ConcurrencyLimit", |b| {
        b.iter(|| {
            let svc = tower::limit::ConcurrencyLimitLayer::new(LIMIT).layer(inner());
            rt.block_on(flood(svc, 1))
        })
    });
    g.bench_function("tower GlobalConcurrencyLimit", |b| {
        b.iter(|| {
            let svc = tower::limit::GlobalConcurrencyLimitLayer::new(LIMIT).layer(inner());
            rt.block_on(flood(svc, 1))
        })
    });
    g.bench_function("hardened ConcurrencyLimit", |b| {
        b.iter(|| {
            let svc = ConcurrencyLimitLayer::new(LIMIT)
                .max_waiting(usize::MAX)
                .layer(inner());
            rt.block_on(flood(svc, 1))
        })
    });
    g.bench_function("hardened PerHostLimit (one host)", |b| {
        b.iter(|| {
            let svc = PerHostLimitLayer::new(LIMIT)
                .max_waiting(usize::MAX)
                .layer(inner());
            rt.block_on(flood(svc, 1))
        })
    });
    g.finish();
}

/// Median over alternating pairs of `f(a) / f(b)` wall times: on a shared machine, load changes
/// between criterion's groups; two runs back to back see nearly the same load.
fn paired_ratio(pairs: usize, a: impl Fn(), b: impl Fn()) -> f64 {
    let time = |f: &dyn Fn()| {
        let start = std::time::Instant::now();
        f();
        start.elapsed().as_secs_f64()
    };
    let mut ratios: Vec<f64> = (0..pairs)
        .map(|i| {
            if i % 2 == 0 {
                let ta = time(&a);
                ta / time(&b)
            } else {
                let tb = time(&b);
                time(&a) / tb
            }
        })
        .collect();
    ratios.sort_by(|x, y| x.total_cmp(y));
    ratios[pairs / 2]
}

fn paired(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let tower = || {
        let svc = tower::limit::ConcurrencyLimitLayer::new(LIMIT).layer(inner());
        rt.block_on(flood(svc, 1))
    };
    let ours = || {
        let svc = ConcurrencyLimitLayer::new(LIMIT)
            .max_waiting(usize::MAX)
            .layer(inner());
        rt.block_on(flood(svc, 1))
    };
    let per_host = || {
        let svc = PerHostLimitLayer::new(LIMIT)
            .max_waiting(usize::MAX)
            .layer(inner());
        rt.block_on(flood(svc, 1))
    };
    let baseline = || rt.block_on(flood(inner(), 1));
    for _ in 0..5 {
        baseline();
        tower();
        ours();
    }
    const PAIRS: usize = 101;
    println!(
        "paired medians over {PAIRS} alternating runs: hardened/tower = {:.2}, \
         tower/no-limit = {:.2}, hardened/no-limit = {:.2}, per-host/tower = {:.2}",
        paired_ratio(PAIRS, ours, tower),
        paired_ratio(PAIRS, tower, baseline),
        paired_ratio(PAIRS, ours, baseline),
        paired_ratio(PAIRS, per_host, tower),
    );
}

criterion_group!(benches, paired, bench);
criterion_main!(benches);
