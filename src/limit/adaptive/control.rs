//! The controller: turns latency samples and overload signals into a limit. No I/O and no clock
//! of its own (every call is given `now`), so it is tested exactly.
//!
//! Samples are grouped in windows of at least `update_interval` and a few samples. Only samples
//! of requests admitted in the current *era* count: an era ends when the limit falls and when a
//! probe starts or ends, so the requests sent at an older limit (still finishing, slow or timing
//! out) cannot make it fall a second time for the same overload — the limit falls at most once
//! per round trip, as TCP's window does.

use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::AdaptiveAlgorithm;
use crate::clock;

/// How one admitted request ended, for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The response body ended (or there was none).
    Success,
    /// A timeout, an error, a refusal from below, an overload status, or a request dropped
    /// before its response headers.
    Overload,
    /// The response body was dropped before its end: its latency is a lower bound.
    Dropped,
    /// The request never reached the server: no sample.
    Ignored,
}

/// The settings the controller runs on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) algorithm: AdaptiveAlgorithm,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) initial: usize,
    pub(crate) update_interval: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_jitter: f64,
}

/// Windows never keep more latencies than this (a uniform sample of them beyond it).
const WINDOW_CAP: usize = 1024;
/// At most this many samples make a window (fewer when the limit is lower).
const WINDOW_SAMPLES: usize = 10;
/// Windows in a row at the minimum limit that trigger a probe (Envoy's rule).
const AT_MIN_WINDOWS: u32 = 5;
/// Gradients are clamped to this range (Envoy's).
const GRADIENT_MIN: f64 = 0.5;
const GRADIENT_MAX: f64 = 2.0;

#[derive(Debug)]
enum Mode {
    Normal,
    /// Measuring the minimum RTT with `limit` (half the limit it resumes at).
    Probe {
        resume: f64,
        limit: usize,
        needed: usize,
    },
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    rtts: Vec<Duration>,
    /// Latencies offered to `rtts` (it keeps a uniform sample of at most [`WINDOW_CAP`]).
    seen: usize,
    overloads: usize,
    max_in_flight: usize,
}

impl Window {
    fn count(&self) -> usize {
        self.seen + self.overloads
    }

    fn reset(&mut self, now: Instant, in_flight: usize) {
        self.start = Some(now);
        self.rtts.clear();
        self.seen = 0;
        self.overloads = 0;
        self.max_in_flight = in_flight;
    }
}

/// One limit's controller.
#[derive(Debug)]
pub(crate) struct Controller {
    s: Settings,
    estimate: f64,
    min_rtt: Option<Duration>,
    era: u64,
    mode: Mode,
    window: Window,
    next_probe: Option<Instant>,
    at_min: u32,
    rng: u64,
}

impl Controller {
    pub(crate) fn new(s: Settings, seed: u64) -> Controller {
        let mut c = Controller {
            estimate: s.initial as f64,
            s,
            min_rtt: None,
            era: 0,
            mode: Mode::Normal,
            window: Window::default(),
            next_probe: None,
            at_min: 0,
            rng: seed | 1,
        };
        // The minimum RTT is measured first: the gradient means nothing without it.
        c.start_probe();
        c
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        match self.mode {
            Mode::Probe { limit, .. } => limit,
            Mode::Normal => self.floor(self.estimate),
        }
    }

    fn floor(&self, estimate: f64) -> usize {
        (estimate.floor() as usize).clamp(self.s.min, self.s.max)
    }

    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    #[cfg(test)]
    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.mode, Mode::Probe { .. })
    }

    #[cfg(test)]
    pub(crate) fn next_probe(&self) -> Option<Instant> {
        self.next_probe
    }

    /// Time passed: starts a probe when one is due. Called before each admission.
    pub(crate) fn tick(&mut self, now: Instant) {
        if matches!(self.mode, Mode::Normal) && self.next_probe.is_some_and(|at| now >= at) {
            self.start_probe();
            self.window.reset(now, 0);
        }
    }

    /// A request was admitted; `in_flight` counts it. Returns its era.
    pub(crate) fn admitted(&mut self, now: Instant, in_flight: usize) -> u64 {
        self.window.start.get_or_insert(now);
        self.window.max_in_flight = self.window.max_in_flight.max(in_flight);
        self.era
    }

    /// A request admitted in `era` ended after `rtt`; `in_flight` no longer counts it.
    pub(crate) fn sample(
        &mut self,
        now: Instant,
        era: u64,
        rtt: Duration,
        outcome: Outcome,
        in_flight: usize,
    ) {
        if era != self.era || outcome == Outcome::Ignored {
            return;
        }
        self.window.start.get_or_insert(now);
        match outcome {
            Outcome::Overload => self.window.overloads += 1,
            // A body dropped early says only "at least this long": news only when that is long.
            Outcome::Dropped if self.min_rtt.is_some_and(|m| rtt < m) => return,
            _ => self.offer(rtt),
        }
        match self.mode {
            Mode::Probe { needed, .. } => {
                if self.window.count() >= needed {
                    self.end_probe(now, in_flight);
                }
            }
            Mode::Normal => {
                let start = self.window.start.unwrap_or(now);
                let enough = WINDOW_SAMPLES.min(self.limit()).max(1);
                if now.saturating_duration_since(start) >= self.s.update_interval
                    && self.window.count() >= enough
                {
                    self.close_window(now, in_flight);
                }
            }
        }
    }

    fn offer(&mut self, rtt: Duration) {
        let w = &mut self.window;
        w.seen += 1;
        if w.rtts.len() < WINDOW_CAP {
            w.rtts.push(rtt);
        } else {
            let j = (next(&mut self.rng) % w.seen as u64) as usize;
            if let Some(slot) = self.window.rtts.get_mut(j) {
                *slot = rtt;
            }
        }
    }

    fn close_window(&mut self, now: Instant, in_flight: usize) {
        let before = self.limit();
        let rtt = median(&mut self.window.rtts);
        let failed = self.window.overloads as f64 / self.window.count() as f64;
        // "Well below the limit": never half of it in flight. Such a window shows nothing about
        // what more concurrency would do, so it never grows the limit.
        let app_limited = self.window.max_in_flight * 2 < before;
        if let (Some(rtt), 0) = (rtt, self.window.overloads) {
            if self.s.algorithm.needs_min_rtt() && self.min_rtt.is_none_or(|m| rtt < m) {
                self.min_rtt = Some(rtt);
            }
        }
        let estimate = match &self.s.algorithm {
            AdaptiveAlgorithm::Gradient(g) => {
                let mut gradient = match (rtt, self.min_rtt) {
                    (Some(rtt), Some(min)) => {
                        let (rtt, min) = (secs(rtt), secs(min));
                        (min * (1.0 + g.buffer) / rtt).clamp(GRADIENT_MIN, GRADIENT_MAX)
                    }
                    _ => 1.0,
                };
                if failed > 0.0 {
                    gradient = gradient.min(1.0 - failed / 2.0);
                }
                if app_limited {
                    gradient = gradient.min(1.0);
                }
                let next = self.estimate * gradient.max(GRADIENT_MIN);
                // At small limits × 1.1 is less than one request: grow by one at least. (A
                // gradient within rounding of 1 is 1: the limit is where it should be.)
                if gradient > 1.0 + 1e-9 {
                    next.max(self.estimate + 1.0)
                } else {
                    next
                }
            }
            AdaptiveAlgorithm::Aimd(a) => {
                let threshold = a
                    .latency_threshold
                    .or_else(|| self.min_rtt.map(|m| m.mul_f64(a.tolerance)));
                let slow = matches!((rtt, threshold), (Some(r), Some(t)) if r > t);
                if failed > 0.0 || slow {
                    self.estimate * a.backoff
                } else if !app_limited {
                    self.estimate + a.increase as f64
                } else {
                    self.estimate
                }
            }
        };
        self.set_estimate(estimate);
        let after = self.limit();
        if after != before {
            tracing::trace!(before, after, ?rtt, min_rtt = ?self.min_rtt, failed, "adaptive limit");
        }
        self.window.reset(now, in_flight);
        if self.s.algorithm.needs_min_rtt() && after == self.s.min {
            self.at_min += 1;
            // Pinned at the minimum: the minimum RTT may be stale (the server got slower for
            // good), which only a new measurement can tell.
            if self.at_min >= AT_MIN_WINDOWS {
                self.at_min = 0;
                self.start_probe();
            }
        } else {
            self.at_min = 0;
        }
    }

    /// Sets the estimate (within the bounds); a lower limit starts a new era.
    fn set_estimate(&mut self, estimate: f64) {
        let before = self.floor(self.estimate);
        self.estimate = estimate.clamp(self.s.min as f64, self.s.max as f64);
        if self.floor(self.estimate) < before {
            self.era += 1;
        }
    }

    fn start_probe(&mut self) {
        if !self.s.algorithm.needs_min_rtt() {
            return;
        }
        let limit = ((self.estimate / 2.0).ceil() as usize).clamp(self.s.min, self.s.max);
        self.mode = Mode::Probe {
            resume: self.estimate,
            limit,
            needed: (2 * limit).clamp(5, 25),
        };
        self.era += 1;
        self.window.rtts.clear();
        self.window.seen = 0;
        self.window.overloads = 0;
    }

    fn end_probe(&mut self, now: Instant, in_flight: usize) {
        let Mode::Probe { resume, .. } = self.mode else {
            return;
        };
        let failed = self.window.overloads as f64 / self.window.count() as f64;
        if let Some(rtt) = median(&mut self.window.rtts) {
            self.min_rtt = Some(rtt);
        }
        let resume = if failed > 0.0 {
            match &self.s.algorithm {
                AdaptiveAlgorithm::Gradient(_) => resume * (1.0 - failed / 2.0).max(GRADIENT_MIN),
                AdaptiveAlgorithm::Aimd(a) => resume * a.backoff,
            }
        } else {
            resume
        };
        self.mode = Mode::Normal;
        self.estimate = resume.clamp(self.s.min as f64, self.s.max as f64);
        self.era += 1;
        self.window.reset(now, in_flight);
        let jitter = 1.0 + self.s.probe_jitter * unit(&mut self.rng);
        self.next_probe = Some(clock::add(now, self.s.probe_interval.mul_f64(jitter)));
        tracing::trace!(min_rtt = ?self.min_rtt, limit = self.limit(), "adaptive limit: probe done");
        if self.min_rtt.is_none() {
            // Nothing but failures: measure again.
            self.start_probe();
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// The lower median, or `None` for no latencies.
fn median(rtts: &mut [Duration]) -> Option<Duration> {
    if rtts.is_empty() {
        return None;
    }
    let mid = (rtts.len() - 1) / 2;
    Some(*rtts.select_nth_unstable(mid).1)
}

/// xorshift64*: jitter and reservoir sampling need no more.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Uniform in `[0, 1)`.
fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}
