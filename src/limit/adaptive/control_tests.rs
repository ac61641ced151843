//! Each algorithm's reaction to latency rising, to timeouts at a constant RTT, to app-limited
//! traffic and to the minimum-RTT re-probe, driven through a real limiter in paused time.
//!
//! A *round* admits as many requests as the limit lets through (up to a demand), lets the
//! simulated server take `rtt(n)` for `n` requests at once, and ends them all. The server of
//! [`queueing`] answers in `base` up to `capacity` requests at once and in `base × n/capacity`
//! beyond (processor sharing), so the best limit is `capacity`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{advance, Instant};

use super::control::Settings;
use super::gate::{Admission, Config, Limiter, Permit};
use super::{AdaptiveAlgorithm, Aimd, Gradient};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(
    algorithm: impl Into<AdaptiveAlgorithm>,
    min: usize,
    max: usize,
    initial: usize,
) -> Config {
    Config {
        settings: Settings {
            algorithm: algorithm.into(),
            min,
            max,
            initial,
            update_interval: ms(100),
            probe_interval: Duration::from_secs(3600),
            probe_jitter: 0.0,
        },
        max_waiting: 0,
        acquire_timeout: None,
        stats: None,
        per_host: false,
        count_in_flight: true,
    }
}

fn queueing(base: Duration, capacity: usize) -> impl Fn(usize) -> Duration {
    move |n| base.mul_f64((n as f64 / capacity as f64).max(1.0))
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Ok,
    Fail,
    /// The body is dropped before its end.
    Drop,
}

struct Sim {
    l: Arc<Limiter>,
}

#[derive(Debug, Default)]
struct Admitted {
    waited: usize,
    refused: usize,
}

impl Sim {
    fn new(c: Config) -> Sim {
        Sim {
            l: Arc::new(Limiter::with_seed(Arc::new(c), None, 7)),
        }
    }

    fn limit(&self) -> usize {
        self.l.limit()
    }

    fn probing(&self) -> bool {
        self.l.with_controller(|c| c.is_probing())
    }

    fn min_rtt(&self) -> Option<Duration> {
        self.l.min_rtt()
    }

    /// Admits up to `demand` requests; those that would wait or are refused are counted and
    /// dropped (a waiter dropped gives its place back).
    fn admit(&self, demand: usize) -> (Vec<Permit>, Admitted) {
        let mut permits = Vec::new();
        let mut other = Admitted::default();
        for _ in 0..demand {
            match self.l.admit() {
                Admission::Now(p) => permits.push(p),
                Admission::Wait(..) => other.waited += 1,
                Admission::Refused(_) => other.refused += 1,
            }
        }
        (permits, other)
    }

    /// One round; returns how many were admitted and what happened to the others.
    async fn round(&self, demand: usize, rtt: &dyn Fn(usize) -> Duration, end: End) -> Admitted {
        let (permits, other) = self.admit(demand);
        assert!(!permits.is_empty(), "a round with nothing admitted");
        advance(rtt(permits.len())).await;
        for mut p in permits {
            p.sent();
            p.answered(false);
            match end {
                End::Ok => p.finish(true),
                End::Fail => p.finish(false),
                End::Drop => drop(p),
            }
        }
        other
    }

    /// `k` rounds; the limit after each.
    async fn rounds(
        &self,
        k: usize,
        demand: usize,
        rtt: &dyn Fn(usize) -> Duration,
        end: End,
    ) -> Vec<usize> {
        let mut limits = Vec::new();
        for _ in 0..k {
            self.round(demand, rtt, end).await;
            limits.push(self.limit());
        }
        limits
    }
}

fn non_increasing(v: &[usize]) -> bool {
    v.windows(2).all(|w| w[1] <= w[0])
}

// ---- Gradient ----

#[tokio::test(start_paused = true)]
async fn gradient_measures_the_min_rtt_first_then_settles_near_capacity_and_follows_it_down() {
    let sim = Sim::new(config(Gradient::new(), 1, 200, 20));
    // The first probe: half the limit, until 2 × 10 requests have ended.
    assert_eq!((sim.limit(), sim.probing()), (10, true));
    let fast = queueing(ms(10), 20);
    sim.rounds(2, 400, &fast, End::Ok).await;
    assert_eq!((sim.limit(), sim.probing()), (20, false));
    assert_eq!(sim.min_rtt(), Some(ms(10)));

    // Below capacity the latency is the minimum: × 1.1 per window; above, the gradient brings
    // it back to 1.1 × capacity, where it stays.
    let limits = sim.rounds(60, 400, &fast, End::Ok).await;
    assert!(limits.contains(&22), "{limits:?}");
    assert_eq!(&limits[40..], &[22; 20][..], "{limits:?}");

    // The server's capacity halves: at 22 in flight its latency doubles, and the limit falls
    // to 1.1 × the new capacity within one window (10 rounds of 22 ms).
    let slow = queueing(ms(10), 10);
    let limits = sim.rounds(30, 400, &slow, End::Ok).await;
    assert_eq!(limits[..10].iter().min(), Some(&11), "{limits:?}");
    assert_eq!(&limits[20..], &[11; 10][..], "{limits:?}");
    assert!(
        non_increasing(&limits),
        "it never overshoots down: {limits:?}"
    );
    assert_eq!(sim.min_rtt(), Some(ms(10)));
}

#[tokio::test(start_paused = true)]
async fn gradient_falls_on_timeouts_at_a_constant_rtt() {
    let sim = Sim::new(config(Gradient::new(), 2, 200, 20));
    let fast = queueing(ms(10), 1000);
    sim.rounds(40, 400, &fast, End::Ok).await;
    let before = sim.limit();
    assert!(before > 20, "grew while healthy: {before}");

    // Every request now times out after exactly one second: a constant RTT, which a gradient
    // of latencies alone would read as "no queueing" (Netflix concurrency-limits #137).
    let timeout = |_| Duration::from_secs(1);
    let limits = sim.rounds(8, 400, &timeout, End::Fail).await;
    assert!(non_increasing(&limits), "{limits:?}");
    assert_eq!(limits.last(), Some(&2), "down to the minimum: {limits:?}");
    // The first failures land in a window of successes; from then on, halved once per round
    // trip, not once per failure.
    assert!(limits[0] <= before);
    assert_eq!(
        &limits[1..4],
        &[before / 2, before / 4, before / 8],
        "{limits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn gradient_falls_when_everything_times_out_from_the_start() {
    let sim = Sim::new(config(Gradient::new(), 1, 200, 40));
    let timeout = |_| Duration::from_secs(5);
    let limits = sim.rounds(10, 400, &timeout, End::Fail).await;
    // No latency ever counts, so there is no minimum RTT, and the probe repeats — each one at
    // half of a limit that halves.
    assert_eq!(sim.min_rtt(), None);
    assert!(non_increasing(&limits), "{limits:?}");
    assert!(*limits.last().unwrap() <= 2, "{limits:?}");
}

#[tokio::test(start_paused = true)]
async fn gradient_does_not_grow_while_app_limited() {
    let sim = Sim::new(config(Gradient::new(), 1, 200, 20));
    let fast = queueing(ms(10), 1000);
    // 5 in flight against a limit of 20: never half of it used.
    let limits = sim.rounds(100, 5, &fast, End::Ok).await;
    assert_eq!(&limits[10..], &[20; 90][..], "{limits:?}");
    // Latency rising still lowers it: app-limited windows only never grow it.
    let slow = |_| ms(30);
    let limits = sim.rounds(12, 5, &slow, End::Ok).await;
    assert!(*limits.last().unwrap() < 20, "{limits:?}");
    let low = sim.limit();
    // The same server with demand: grows.
    let limits = sim.rounds(40, 400, &fast, End::Ok).await;
    assert!(*limits.last().unwrap() > low, "{limits:?}");
}

#[tokio::test(start_paused = true)]
async fn gradient_reprobes_the_min_rtt_on_a_jittered_interval_without_refusing() {
    let mut c = config(Gradient::new(), 1, 64, 20);
    c.settings.probe_interval = Duration::from_secs(3);
    c.settings.probe_jitter = 0.2;
    c.max_waiting = 10_000;
    let sim = Sim::new(c);
    let fast = |_| ms(10);
    sim.rounds(2, 1000, &fast, End::Ok).await;
    assert!(!sim.probing());
    let probe_end = Instant::now();
    let due = sim.l.with_controller(|c| c.next_probe()).unwrap();
    assert!(
        due >= probe_end + Duration::from_secs(3),
        "{:?}",
        due - probe_end
    );
    assert!(due <= probe_end + ms(3600), "{:?}", due - probe_end);

    // Healthy until 1.5 s; then the server's base latency grows for good (12 ms, no
    // queueing): the gradient reads it as queueing and the limit falls, window by window.
    sim.rounds(150, 1000, &fast, End::Ok).await;
    assert_eq!(sim.limit(), 64);
    let slower = |_| ms(12);
    let mut at_probe = None;
    while at_probe.is_none() {
        let limit = sim.limit();
        let other = sim.round(1000, &slower, End::Ok).await;
        if sim.probing() {
            // The probe started at the first admission after it was due: the round's start.
            let started = Instant::now() - ms(12);
            assert!(
                started >= due && started < due + ms(12),
                "{:?}",
                started - due
            );
            at_probe = Some(limit);
        } else {
            assert!(Instant::now() < due + ms(24), "no probe when due");
        }
        // Beyond the limit requests queue, during the probe as at any time: never refused.
        assert_eq!(other.refused, 0);
        assert!(other.waited > 0);
    }
    let at_probe = at_probe.unwrap();
    assert!(at_probe < 64, "it had fallen by then: {at_probe}");
    assert_eq!(
        sim.limit(),
        at_probe.div_ceil(2),
        "the probe runs at half the limit"
    );
    sim.rounds(3, 1000, &slower, End::Ok).await;
    assert!(!sim.probing());
    assert_eq!(sim.min_rtt(), Some(ms(12)), "re-measured");
    // With the right minimum the limit grows back.
    let limits = sim.rounds(250, 1000, &slower, End::Ok).await;
    assert_eq!(limits.last(), Some(&64), "{limits:?}");
}

#[tokio::test(start_paused = true)]
async fn a_limit_pinned_at_its_minimum_reprobes() {
    let sim = Sim::new(config(Gradient::new(), 2, 64, 16));
    sim.rounds(3, 1000, &|_| ms(10), End::Ok).await;
    assert_eq!(sim.min_rtt(), Some(ms(10)));
    // Latency triples for good: the limit falls to its minimum, where a stale minimum RTT
    // would keep it forever; after 5 windows there, it is measured again.
    let limits = sim.rounds(120, 1000, &|_| ms(30), End::Ok).await;
    assert!(limits.contains(&2), "{limits:?}");
    assert_eq!(sim.min_rtt(), Some(ms(30)));
    assert!(*limits.last().unwrap() >= 16, "grew back: {limits:?}");
}

#[tokio::test(start_paused = true)]
async fn bodies_dropped_late_count_and_dropped_early_do_not_make_it_grow() {
    let sim = Sim::new(config(Gradient::new(), 1, 200, 20));
    sim.rounds(2, 400, &|_| ms(10), End::Ok).await;
    assert_eq!((sim.limit(), sim.min_rtt()), (20, Some(ms(10))));
    // Dropped after 1 ms, below the minimum RTT: no news. They neither grow it (fast drops
    // are not good samples, Netflix #176) nor lower it.
    let limits = sim.rounds(40, 400, &|_| ms(1), End::Drop).await;
    assert_eq!(limits, vec![20; 40]);
    // Dropped after 40 ms: at least 40 ms, four times the minimum. That lowers it.
    let limits = sim.rounds(10, 400, &|_| ms(40), End::Drop).await;
    assert_eq!(limits[1], 10, "halved at the first window: {limits:?}");
    assert!(*limits.last().unwrap() < 10, "{limits:?}");
}

#[tokio::test(start_paused = true)]
async fn requests_sent_at_an_older_limit_do_not_lower_it_twice() {
    let sim = Sim::new(config(Gradient::new(), 1, 200, 20));
    sim.rounds(2, 400, &|_| ms(10), End::Ok).await;
    let (permits, _) = sim.admit(400);
    assert_eq!(permits.len(), 20);
    advance(Duration::from_secs(1)).await;
    let mut permits = permits.into_iter();
    for p in permits.by_ref().take(10) {
        p.finish(false);
    }
    assert_eq!(sim.limit(), 10, "all ten failed: halved");
    for p in permits {
        p.finish(false);
    }
    assert_eq!(
        sim.limit(),
        10,
        "the same overload, seen again: not halved again"
    );
}

// ---- AIMD ----

#[tokio::test(start_paused = true)]
async fn aimd_settles_below_its_latency_tolerance_and_follows_capacity_down() {
    let sim = Sim::new(config(Aimd::new(), 1, 200, 20));
    let fast = queueing(ms(10), 20);
    sim.rounds(2, 400, &fast, End::Ok).await;
    assert_eq!((sim.limit(), sim.min_rtt()), (20, Some(ms(10))));
    // +1 a window until the median passes 1.5 × 10 ms (31 in flight), × 0.9 back.
    let limits = sim.rounds(300, 400, &fast, End::Ok).await;
    let late = &limits[200..];
    assert!(late.iter().all(|l| (27..=31).contains(l)), "{late:?}");
    assert!(
        late.contains(&31) && late.contains(&28),
        "a sawtooth: {late:?}"
    );

    // Capacity halves: × 0.9 every window until it is back under 1.5 × capacity.
    let slow = queueing(ms(10), 10);
    let limits = sim.rounds(250, 400, &slow, End::Ok).await;
    let late = &limits[150..];
    assert!(late.iter().all(|l| (14..=16).contains(l)), "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn aimd_falls_on_timeouts_at_a_constant_rtt() {
    let sim = Sim::new(config(Aimd::new(), 2, 200, 20));
    sim.rounds(40, 400, &|_| ms(10), End::Ok).await;
    let before = sim.limit();
    assert!(before > 20, "grew while healthy: {before}");
    let limits = sim
        .rounds(8, 400, &|_| Duration::from_secs(1), End::Fail)
        .await;
    assert!(non_increasing(&limits), "{limits:?}");
    // × 0.9 once a round trip: 0.9^8 = 0.43.
    assert!(
        *limits.last().unwrap() <= before / 2,
        "{before} then {limits:?}"
    );
    assert!(limits[0] < before);
}

#[tokio::test(start_paused = true)]
async fn aimd_with_a_fixed_threshold_never_probes_and_counts_slow_windows() {
    let aimd = Aimd::new().latency_threshold(ms(50));
    let sim = Sim::new(config(aimd, 1, 200, 20));
    assert!(!sim.probing());
    // +1 a window (10 rounds of 10 ms).
    let limits = sim.rounds(30, 400, &|_| ms(10), End::Ok).await;
    assert_eq!(limits.last(), Some(&23), "{limits:?}");
    // A window of 60 ms (two rounds, to pass 100 ms) is slow: × 0.9 each.
    let limits = sim.rounds(4, 400, &|_| ms(60), End::Ok).await;
    assert_eq!(limits, vec![23, 20, 20, 18]);
    assert_eq!(sim.min_rtt(), None);
}

#[tokio::test(start_paused = true)]
async fn aimd_does_not_grow_while_app_limited() {
    let sim = Sim::new(config(Aimd::new(), 1, 200, 20));
    let fast = |_| ms(10);
    let limits = sim.rounds(100, 9, &fast, End::Ok).await;
    assert_eq!(&limits[5..], &[20; 95][..], "{limits:?}");
    let limits = sim.rounds(30, 400, &fast, End::Ok).await;
    assert!(*limits.last().unwrap() > 20, "{limits:?}");
}

#[tokio::test(start_paused = true)]
async fn aimd_reprobes_the_min_rtt_on_a_jittered_interval() {
    let mut c = config(Aimd::new(), 1, 64, 20);
    c.settings.probe_interval = Duration::from_secs(3);
    c.settings.probe_jitter = 0.2;
    c.max_waiting = 10_000;
    let sim = Sim::new(c);
    sim.rounds(2, 1000, &|_| ms(10), End::Ok).await;
    let due = sim.l.with_controller(|c| c.next_probe()).unwrap();
    sim.rounds(150, 1000, &|_| ms(10), End::Ok).await;
    let before = sim.limit();
    assert_eq!(before, 35, "+1 a window");
    // From 1.5 s the base latency is 16 ms: above 1.5 × 10 ms, every window is "slow".
    let slower = |_| ms(16);
    let mut at_probe = None;
    while at_probe.is_none() {
        let limit = sim.limit();
        sim.round(1000, &slower, End::Ok).await;
        if sim.probing() {
            at_probe = Some(limit);
        }
    }
    assert!(Instant::now() >= due && Instant::now() < due + ms(32));
    let at_probe = at_probe.unwrap();
    assert!(at_probe < before, "fell all along: {at_probe}");
    sim.rounds(5, 1000, &slower, End::Ok).await;
    assert_eq!(sim.min_rtt(), Some(ms(16)));
    let limits = sim.rounds(100, 1000, &slower, End::Ok).await;
    assert!(
        *limits.last().unwrap() >= at_probe + 10,
        "+1 a window again: {limits:?}"
    );
}

// ---- The probe's schedule ----

#[tokio::test(start_paused = true)]
async fn probes_are_jittered_per_limiter_within_the_bound() {
    let mut c = config(Gradient::new(), 1, 64, 2);
    c.settings.probe_interval = Duration::from_secs(10);
    c.settings.probe_jitter = 0.5;
    let c = Arc::new(c);
    let mut dues = Vec::new();
    for seed in 1..=8u64 {
        let l = Arc::new(Limiter::with_seed(c.clone(), None, seed * 0x9E37_79B9));
        let start = Instant::now();
        let sim = Sim { l };
        sim.rounds(5, 1, &|_| ms(10), End::Ok).await;
        let end = start + ms(50);
        let due = sim.l.with_controller(|c| c.next_probe()).unwrap();
        assert!(due >= end + Duration::from_secs(10) && due <= end + Duration::from_secs(15));
        dues.push(due - end);
    }
    dues.sort();
    dues.dedup();
    assert!(
        dues.len() >= 6,
        "different limiters probe at different times: {dues:?}"
    );

    // No jitter: exactly the interval.
    let mut c = config(Gradient::new(), 1, 64, 2);
    c.settings.probe_interval = Duration::from_secs(10);
    let sim = Sim::new(c);
    sim.rounds(5, 1, &|_| ms(10), End::Ok).await;
    let due = sim.l.with_controller(|c| c.next_probe()).unwrap();
    assert_eq!(due, Instant::now() + Duration::from_secs(10));
}
