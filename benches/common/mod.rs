//! Shared by the benches: a tally of what criterion measured in this run, so each bench can print
//! its cost as a ratio against a baseline measured in the same run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

static TALLY: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Adds one of criterion's samples (`iters` iterations that took `elapsed`) to `name`'s tally.
pub fn record(name: &str, iters: u64, elapsed: Duration) -> Duration {
    let mut t = TALLY.lock().unwrap();
    let e = t.entry(name.to_owned()).or_default();
    e.0 += elapsed;
    e.1 += iters;
    elapsed
}

/// Mean time per iteration of `name` over every sample of this run.
pub fn mean(name: &str) -> Option<Duration> {
    let t = TALLY.lock().unwrap();
    let (total, iters) = t.get(name)?;
    (*iters > 0).then(|| *total / (*iters as u32).max(1))
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

/// Per-sample ratios (subject time / baseline time) of paired benches, by subject name.
static RATIOS: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

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
                .push(t_subject.as_secs_f64() / t_base.as_secs_f64());
            record(name, iters, t_subject)
        })
    });
}

/// Median of the per-sample ratios of `name` (see [`paired`]), and how many pairs it is over.
pub fn median_ratio(name: &str) -> Option<(f64, usize)> {
    let mut v = RATIOS.lock().unwrap().get(name)?.clone();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 2], v.len()))
}

/// Prints, for each `(baseline, subject)` pair benched with [`paired`]: the mean time per
/// iteration of both, the median over pairs of subject/baseline time, and its inverse (the
/// subject's throughput as a fraction of the baseline's).
pub fn print_paired(title: &str, rows: &[(&str, &str)]) {
    let rows: Vec<_> = rows
        .iter()
        .filter_map(|(b, s)| Some((b, s, mean(b)?, mean(s)?, median_ratio(s)?)))
        .collect();
    if rows.is_empty() {
        return; // filtered out on the command line
    }
    println!("\n{title} (paired in this run: median over pairs)");
    println!(
        "{:<34} {:>12} {:>12} {:>10} {:>11} {:>6}",
        "subject vs baseline", "baseline", "subject", "time", "throughput", "pairs"
    );
    for (b, s, mb, ms, (r, n)) in rows {
        println!(
            "{:<34} {:>12} {:>12} {:>9.3}x {:>10.3}x {:>6}",
            format!("{s} vs {b}"),
            format!("{mb:.2?}"),
            format!("{ms:.2?}"),
            r,
            1.0 / r,
            n
        );
    }
}
