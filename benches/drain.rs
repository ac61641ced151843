//! Drop-unread workload: 64 KiB bodies, 8 concurrent callers, each dropping every response body
//! unread; bare hyper-util client vs the same client behind `DrainOnDropLayer` (defaults).
//!
//! ```text
//! cargo bench --bench drain -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! One iteration is one round of 8 concurrent requests. After both variants ran, prints the
//! ratio of their mean times per round (measured in this same run) and the connections each
//! opened per 1,000 requests.
//!
//! A second group, `read_to_end_64KiB_x8`, reads every body to its end: the layer has nothing to
//! drain there, so it shows the layer's own cost (one boxed body per response; with leak
//! detection on, one registry insert and remove) against the bare client.
#![allow(unreachable_pub)]

use tower_hardened_test_server as support;

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_hardened::DrainOnDropLayer;

use support::TestServer;

const CONCURRENCY: usize = 8;
const PATH: &str = "/bytes/65536";

#[derive(Default)]
struct Tally {
    time: Cell<Duration>,
    rounds: Cell<u64>,
}

impl Tally {
    fn add(&self, time: Duration, rounds: u64) {
        self.time.set(self.time.get() + time);
        self.rounds.set(self.rounds.get() + rounds);
    }
    fn per_round(&self) -> Duration {
        self.time.get() / self.rounds.get().max(1) as u32
    }
}

/// `rounds` rounds of `CONCURRENCY` concurrent requests whose bodies are dropped unread (or
/// read to their end when `read` is set).
async fn workload<S, B>(svc: S, server: &TestServer, rounds: u64, read: bool) -> Duration
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let mut svc = svc.clone();
        let uri = server.uri(PATH);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
                let resp = svc.ready().await.unwrap().call(req).await.unwrap();
                assert!(resp.status().is_success());
                if read {
                    let body = resp.into_body().collect().await.unwrap();
                    assert_eq!(body.to_bytes().len(), 65536);
                } else {
                    drop(resp);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn drop_unread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (bare_server, drained_server) =
        rt.block_on(async { (TestServer::start().await, TestServer::start().await) });
    let bare_client = rt.block_on(async { support::bare_client::<Empty<Bytes>>() });
    let drained = rt.block_on(async {
        ServiceBuilder::new()
            .layer(DrainOnDropLayer::new())
            .service(support::bare_client::<Empty<Bytes>>())
    });
    let bare = Tally::default();
    let hardened = Tally::default();

    let mut group = c.benchmark_group("drop_unread_64KiB_x8");
    group.bench_function("bare", |b| {
        b.iter_custom(|rounds| {
            let t = rt.block_on(workload(bare_client.clone(), &bare_server, rounds, false));
            bare.add(t, rounds);
            t
        })
    });
    group.bench_function("drain_on_drop", |b| {
        b.iter_custom(|rounds| {
            let t = rt.block_on(workload(drained.clone(), &drained_server, rounds, false));
            hardened.add(t, rounds);
            t
        })
    });
    group.finish();

    if bare.rounds.get() == 0 || hardened.rounds.get() == 0 {
        return; // filtered out on the command line
    }
    let per_k = |s: &TestServer| 1000.0 * s.accepted() as f64 / s.requests().max(1) as f64;
    let (b, h) = (bare.per_round(), hardened.per_round());
    println!(
        "drop_unread_64KiB_x8: bare {:?}/round, drain_on_drop {:?}/round: {:.2}x faster; \
         connections per 1,000 requests: bare {:.0}, drain_on_drop {:.1} \
         (bare {} req/s, drain_on_drop {} req/s)",
        b,
        h,
        b.as_secs_f64() / h.as_secs_f64(),
        per_k(&bare_server),
        per_k(&drained_server),
        (CONCURRENCY as f64 / b.as_secs_f64()) as u64,
        (CONCURRENCY as f64 / h.as_secs_f64()) as u64,
    );
}

fn read_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start());
    let bare_client = rt.block_on(async { support::bare_client::<Empty<Bytes>>() });
    let drained = rt.block_on(async {
        ServiceBuilder::new()
            .layer(DrainOnDropLayer::new())
            .service(support::bare_client::<Empty<Bytes>>())
    });
    let watched = rt.block_on(async {
        ServiceBuilder::new()
            .layer(DrainOnDropLayer::new().leak_threshold(Duration::from_secs(60)))
            .service(support::bare_client::<Empty<Bytes>>())
    });
    let tallies = [Tally::default(), Tally::default(), Tally::default()];
    // Warm every client (and the shared server) before measuring, so the first variant does
    // not pay for the others' warm-up.
    rt.block_on(async {
        workload(bare_client.clone(), &server, 50, true).await;
        workload(drained.clone(), &server, 50, true).await;
        workload(watched.clone(), &server, 50, true).await;
    });

    let mut group = c.benchmark_group("read_to_end_64KiB_x8");
    group.bench_function("bare", |b| {
        b.iter_custom(|rounds| {
            let t = rt.block_on(workload(bare_client.clone(), &server, rounds, true));
            tallies[0].add(t, rounds);
            t
        })
    });
    group.bench_function("drain_on_drop", |b| {
        b.iter_custom(|rounds| {
            let t = rt.block_on(workload(drained.clone(), &server, rounds, true));
            tallies[1].add(t, rounds);
            t
        })
    });
    group.bench_function("drain_on_drop_leak_detection", |b| {
        b.iter_custom(|rounds| {
            let t = rt.block_on(workload(watched.clone(), &server, rounds, true));
            tallies[2].add(t, rounds);
            t
        })
    });
    group.finish();
    if tallies.iter().any(|t| t.rounds.get() == 0) {
        return; // filtered out on the command line
    }
    let base = tallies[0].per_round().as_secs_f64();
    println!(
        "read_to_end_64KiB_x8: bare {:?}/round; drain_on_drop {:.3}x of bare; \
         with leak detection {:.3}x of bare",
        tallies[0].per_round(),
        tallies[1].per_round().as_secs_f64() / base,
        tallies[2].per_round().as_secs_f64() / base,
    );
}

criterion_group!(benches, drop_unread, read_to_end);
criterion_main!(benches);
