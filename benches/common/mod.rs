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
