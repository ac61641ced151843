//! Random admissions, ends (well, failed, dropped, never sent, overload status), waiters
//! cancelled and time passing, through one adaptive limiter of either algorithm with random
//! settings and frequent probes. Checked after every step: the limit stays within
//! `[min, max]`; a request is admitted only while fewer than the limit are in flight; the
//! semaphore counts exactly the permits held, so none held by a body is ever taken back when
//! the limit falls; the counts match; the queue stays bounded. At the end, with everything
//! released, the semaphore is whole again.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;

use super::control::Settings;
use super::gate::{AcquireFuture, Admission, Config, Limiter, Permit, Ticket};
use super::{AdaptiveAlgorithm, Aimd, Gradient};

#[derive(Debug, Clone)]
struct Setup {
    gradient: bool,
    min: usize,
    max: usize,
    initial: usize,
    max_waiting: usize,
    update_ms: u64,
    probe_ms: u64,
    jitter: f64,
    factor: f64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        1usize..6,
        0usize..40,
        0usize..40,
        0usize..5,
        1u64..50,
        20u64..500,
        0.0f64..=1.0,
        0.05f64..0.95,
    )
        .prop_map(
            |(gradient, min, span, init, max_waiting, update_ms, probe_ms, jitter, factor)| {
                let max = min + span;
                Setup {
                    gradient,
                    min,
                    max,
                    initial: min + init % (span + 1),
                    max_waiting,
                    update_ms,
                    probe_ms,
                    jitter,
                    factor,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Admit(usize),
    /// Ends the `i`-th request in flight: 0 well, 1 failed, 2 body dropped, 3 never sent,
    /// 4 overload status.
    End(usize, u8),
    Cancel(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..8).prop_map(Op::Admit),
        4 => (any::<usize>(), 0u8..5).prop_map(|(i, how)| Op::End(i, how)),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0u64..80).prop_map(Op::Advance),
    ]
}

struct World {
    l: Arc<Limiter>,
    s: Setup,
    live: Vec<Permit>,
    waiters: Vec<(Ticket, AcquireFuture)>,
}

impl World {
    /// Picks up every waiter the semaphore has handed a permit to.
    fn poll_waiters(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut still = Vec::new();
        for (ticket, mut acquire) in self.waiters.drain(..) {
            match acquire.as_mut().poll(&mut cx) {
                Poll::Ready(permit) => self.live.push(ticket.admit(permit.unwrap())),
                Poll::Pending => still.push((ticket, acquire)),
            }
        }
        self.waiters = still;
    }

    fn check(&self, before: usize) {
        let limit = self.l.limit();
        assert!(
            (self.s.min..=self.s.max).contains(&limit),
            "limit {limit} outside {}..={}",
            self.s.min,
            self.s.max
        );
        let (held, debt, free) = self.l.semaphore_counts();
        assert_eq!(
            held,
            self.live.len(),
            "the semaphore counts exactly the permits held"
        );
        assert_eq!(self.l.in_flight(), self.live.len());
        assert_eq!(self.l.waiting(), self.waiters.len());
        assert!(self.waiters.len() <= self.s.max_waiting);
        if free > 0 {
            assert_eq!(debt, 0, "a free permit while in debt");
            assert!(
                held < limit,
                "a free permit with {held} in flight, limit {limit}"
            );
        }
        if self.live.len() > before {
            assert!(
                self.live.len() <= limit,
                "admitted up to {} in flight with a limit of {limit}",
                self.live.len()
            );
        }
    }
}

async fn run(s: Setup, ops: Vec<Op>) {
    let algorithm: AdaptiveAlgorithm = if s.gradient {
        Gradient::new().buffer(s.factor).into()
    } else {
        Aimd::new().backoff(s.factor).into()
    };
    let config = Config {
        settings: Settings {
            algorithm,
            min: s.min,
            max: s.max,
            initial: s.initial,
            update_interval: Duration::from_millis(s.update_ms),
            probe_interval: Duration::from_millis(s.probe_ms),
            probe_jitter: s.jitter,
        },
        max_waiting: s.max_waiting,
        acquire_timeout: None,
        stats: None,
        per_host: false,
        count_in_flight: true,
    };
    let l = Arc::new(Limiter::new(Arc::new(config), None));
    let mut w = World {
        l,
        s,
        live: Vec::new(),
        waiters: Vec::new(),
    };
    for op in ops {
        let before = w.live.len();
        match op {
            Op::Admit(n) => {
                for _ in 0..n {
                    let held = w.live.len();
                    match w.l.admit() {
                        Admission::Now(p) => {
                            assert!(
                                held < w.l.limit(),
                                "admitted at once with {held} in flight, limit {}",
                                w.l.limit()
                            );
                            w.live.push(p);
                        }
                        Admission::Wait(t, a) => w.waiters.push((t, a)),
                        Admission::Refused(_) => {
                            assert_eq!(w.waiters.len(), w.s.max_waiting, "refused with room")
                        }
                    }
                }
            }
            Op::End(i, how) if !w.live.is_empty() => {
                let mut p = w.live.swap_remove(i % w.live.len());
                match how {
                    0 => {
                        p.sent();
                        p.answered(false);
                        p.finish(true);
                    }
                    1 => {
                        p.sent();
                        p.finish(false);
                    }
                    2 => {
                        p.sent();
                        p.answered(false);
                        drop(p);
                    }
                    3 => drop(p),
                    _ => {
                        p.sent();
                        p.answered(true);
                        p.finish(true);
                    }
                }
            }
            Op::End(..) => {}
            Op::Cancel(i) if !w.waiters.is_empty() => {
                let i = i % w.waiters.len();
                drop(w.waiters.swap_remove(i));
            }
            Op::Cancel(_) => {}
            Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
        }
        w.poll_waiters();
        w.check(before);
    }
    // Release everything: the semaphore is whole, nothing is owed, nobody counted.
    w.waiters.clear();
    while let Some(p) = w.live.pop() {
        p.finish(true);
        w.poll_waiters();
    }
    let (held, debt, free) = w.l.semaphore_counts();
    assert_eq!((held, debt, free), (0, 0, w.l.limit()));
    assert_eq!((w.l.in_flight(), w.l.waiting()), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_limit_stays_in_bounds_and_admits_only_below_it(
        s in setup(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(s, ops));
    }
}
