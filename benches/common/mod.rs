//! Shared by the benches: a tally of what criterion measured in this run, so each bench can print
//! its cost as a ratio against a baseline measured in the same run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};

/// How many samples criterion takes per benchmark (its default `sample_size`). Criterion also
/// calls the routine during warm-up (with 1, 2, 4, … iterations, on cold pools); only the last
/// `SAMPLES` calls of each benchmark are its measured samples, and only they are used here.
pub const SAMPLES: usize = 100;

static TALLY: Mutex<BTreeMap<String, Vec<(Duration, u64)>>> = Mutex::new(BTreeMap::new());

/// Records one call of criterion's routine (`iters` iterations that took `elapsed`) for `name`.
pub fn record(name: &str, iters: u64, elapsed: Duration) -> Duration {
    let mut t = TALLY.lock().unwrap();
    t.entry(name.to_owned()).or_default().push((elapsed, iters));
    elapsed
}

/// The last `n` of `v`: criterion's measured samples, warm-up calls dropped.
fn measured<T>(v: &[T], n: usize) -> &[T] {
    &v[v.len().saturating_sub(n)..]
}

/// Mean time per iteration of `name` over its measured samples in this run.
pub fn mean(name: &str) -> Option<Duration> {
    let t = TALLY.lock().unwrap();
    let (total, iters) = measured(t.get(name)?, SAMPLES)
        .iter()
        .fold((Duration::ZERO, 0u64), |(d, n), (e, i)| (d + *e, n + i));
    (iters > 0).then(|| total / (iters as u32).max(1))
}

/// Prints `name: X ns/iter, ratio R against baseline` for each of `names`.
pub fn print_ratios(title: &str, baseline: &str, names: &[&str]) {
    let Some(base) = mean(baseline) else {
        return;
    };
    println!("\n{title} (ratios against `{baseline}`, measured in this run)");
    println!("{:<28} {:>12} {:>8}", "bench", "per iter", "ratio");
    for name in std::iter::once(&baseline).chain(names) {
        if let Some(m) = mean(name) {
            println!(
                "{:<28} {:>12} {:>7.2}x",
                name,
                format!("{m:.2?}"),
                m.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}

/// Per-sample ratios (subject time / baseline time) and per-iteration differences (subject
/// minus baseline, in seconds) of paired benches, by subject name.
static RATIOS: Mutex<BTreeMap<String, Vec<(f64, f64)>>> = Mutex::new(BTreeMap::new());

/// Benches `name` **paired** with `base_name`: every criterion sample runs `iters` iterations of
/// the baseline and `iters` of the subject back to back, in alternating order from sample to
/// sample, so the load of a shared machine hits both alike. Both go into the tally; the ratio of
/// each pair is kept for [`print_paired`]. Criterion's own report for `name` is the subject alone.
pub fn paired<FB, FS, OB, OS>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    (base_name, base): (&str, FB),
    (name, subject): (&str, FS),
) where
    FB: Fn(u64) -> OB,
    OB: std::future::Future<Output = ()>,
    FS: Fn(u64) -> OS,
    OS: std::future::Future<Output = ()>,
{
    let flip = std::cell::Cell::new(false);
    let time = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed()
    };
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            flip.set(!flip.get());
            let run_base = || rt.block_on(base(iters));
            let run_subject = || rt.block_on(subject(iters));
            let (t_base, t_subject) = if flip.get() {
                let tb = time(&run_base);
                (tb, time(&run_subject))
            } else {
                let ts = time(&run_subject);
                (time(&run_base), ts)
            };
            record(base_name, iters, t_base);
            RATIOS
                .lock()
                .unwrap()
                .entry(name.to_owned())
                .or_default()
                .push((
                    t_subject.as_secs_f64() / t_base.as_secs_f64(),
                    (t_subject.as_secs_f64() - t_base.as_secs_f64()) / iters as f64,
                ));
            record(name, iters, t_subject)
        })
    });
}

/// Median of the per-sample ratios of `name` (see [`paired`]) over its measured samples, and
/// how many pairs that is.
pub fn median_ratio(name: &str) -> Option<(f64, usize)> {
    median_of(name, |(r, _)| r)
}

/// Median over the measured pairs of `name` of the time the subject added per iteration, in
/// seconds (negative when the subject was faster).
pub fn median_added(name: &str) -> Option<f64> {
    median_of(name, |(_, d)| d).map(|(d, _)| d)
}

fn median_of(name: &str, f: impl Fn((f64, f64)) -> f64) -> Option<(f64, usize)> {
    let all = RATIOS.lock().unwrap();
    let mut v: Vec<f64> = measured(all.get(name)?, SAMPLES)
        .iter()
        .map(|p| f(*p))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 2], v.len()))
}

/// Prints, for each `(baseline, subject)` pair benched with [`paired`]: the mean time per
/// iteration of both, the median over pairs of subject/baseline time, its inverse (the
/// subject's throughput as a fraction of the baseline's), and the median over pairs of the time
/// the subject added per iteration. Warm-up calls are left out (see [`SAMPLES`]).
pub fn print_paired(title: &str, rows: &[(&str, &str)]) {
    let rows: Vec<_> = rows
        .iter()
        .filter_map(|(b, s)| Some((b, s, mean(b)?, mean(s)?, median_ratio(s)?, median_added(s)?)))
        .collect();
    if rows.is_empty() {
        return; // filtered out on the command line
    }
    println!("\n{title} (paired in this run: median over pairs)");
    println!(
        "{:<34} {:>12} {:>12} {:>10} {:>11} {:>12} {:>6}",
        "subject vs baseline", "baseline", "subject", "time", "throughput", "added/iter", "pairs"
    );
    for (b, s, mb, ms, (r, n), added) in rows {
        println!(
            "{:<34} {:>12} {:>12} {:>9.3}x {:>10.3}x {:>12} {:>6}",
            format!("{s} vs {b}"),
            format!("{mb:.2?}"),
            format!("{ms:.2?}"),
            r,
            1.0 / r,
            format!("{:+.2}µs", added * 1e6),
            n
        );
    }
}

/// `rounds` requests from each of `callers` concurrent callers; each body read to its end of
/// `expect` bytes, or dropped unread when `expect` is `None`.
pub async fn load<S, B>(svc: S, uri: Uri, callers: usize, rounds: u64, expect: Option<usize>)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let caller = move |mut svc: S, uri: Uri| async move {
        for _ in 0..rounds {
            let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
            let resp = svc.ready().await.unwrap().call(req).await.unwrap();
            assert!(resp.status().is_success());
            match expect {
                Some(n) => {
                    let body = resp.into_body().collect().await.unwrap();
                    assert_eq!(body.to_bytes().len(), n);
                }
                None => drop(resp),
            }
        }
    };
    if callers == 1 {
        return caller(svc, uri).await;
    }
    let tasks: Vec<_> = (0..callers)
        .map(|_| tokio::spawn(caller(svc.clone(), uri.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

pub fn client_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
