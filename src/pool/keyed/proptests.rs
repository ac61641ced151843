//! A property test of the pool's state machine: random checkouts, returns, peer closes, dial
//! outcomes, timer firings, cancellations, capacity changes and time steps over several keys,
//! with every invariant checked after each step.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::poolable::{Event, Poolable};
use super::state::{Config, DialId, Effects, Grant, Returned, State, TimedOut, WaiterId};
use crate::error::Phase;
use crate::stats::CloseReason;

#[derive(Clone)]
struct Conn {
    id: u64,
    open: Arc<AtomicBool>,
    cap: Arc<AtomicUsize>,
    /// Its own idle limit in ms (a keep-alive hint), 0 for none.
    idle_ms: Arc<AtomicU64>,
}

impl Poolable for Conn {
    fn is_open(&self) -> bool {
        self.open.load(SeqCst)
    }
    fn capacity(&self) -> usize {
        self.cap.load(SeqCst)
    }
    fn share(&self) -> Option<Self> {
        Some(self.clone())
    }
    fn idle_timeout(&self) -> Option<Duration> {
        match self.idle_ms.load(SeqCst) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Checkout(u8),
    /// A checkout that must get a newly dialed connection (a replay).
    Fresh(u8),
    /// The server's keep-alive hint on a connection (0: none).
    Hint {
        pick: usize,
        ms: u64,
    },
    Return {
        pick: usize,
        discard: bool,
    },
    PeerClose {
        pick: usize,
        tell: bool,
    },
    Capacity {
        pick: usize,
        cap: usize,
    },
    DialDone {
        pick: usize,
        ok: bool,
        cap: usize,
    },
    Timeout {
        pick: usize,
        total: bool,
    },
    Cancel {
        pick: usize,
    },
    Advance {
        ms: u64,
        reap: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Checkout),
        1 => (0u8..4).prop_map(Op::Fresh),
        1 => (any::<usize>(), prop_oneof![Just(0u64), 1u64..15_000]).prop_map(|(pick, ms)| Op::Hint { pick, ms }),
        3 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(pick, discard)| Op::Return { pick, discard }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, tell)| Op::PeerClose { pick, tell }),
        1 => (any::<usize>(), 0usize..4).prop_map(|(pick, cap)| Op::Capacity { pick, cap }),
        3 => (any::<usize>(), prop::bool::weighted(0.8), 1usize..4).prop_map(|(pick, ok, cap)| Op::DialDone { pick, ok, cap }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, total)| Op::Timeout { pick, total }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => (0u64..20_000, prop::bool::weighted(0.7)).prop_map(|(ms, reap)| Op::Advance { ms, reap }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        0usize..6,
        0usize..4,
        1usize..5,
        1usize..6,
        1usize..4,
        any::<bool>(),
    )
        .prop_map(
            |(max_idle, max_idle_per_host, max_conns, max_waiters, expect, held)| Config {
                max_idle,
                max_idle_per_host,
                idle_timeout: Some(Duration::from_secs(10)),
                max_lifetime: Some(Duration::from_secs(30)),
                jitter: 0.0,
                max_conns_per_host: max_conns,
                acquire_timeout: Duration::from_secs(5),
                max_waiters_per_host: max_waiters,
                held_threshold: held.then_some(Duration::from_secs(15)),
                expected_capacity: expect,
            },
        )
}

/// A connection idle as long as its own limit (a keep-alive hint) allows is never handed out.
fn assert_within_own_idle_limit(grant: &Grant<Conn>) {
    if let (Some(idle), Some(limit)) = (grant.idle_for, grant.conn.idle_timeout()) {
        assert!(
            idle < limit,
            "handed out after {idle:?} idle, past its own {limit:?}"
        );
    }
}

/// What the test knows from outside the state machine.
struct Model {
    state: State<u8, Conn, WaiterId>,
    now: Instant,
    /// Checkouts out: key and grant.
    held: Vec<(u8, Grant<Conn>)>,
    /// Waiters queued: key and token (the token is also what the state notifies).
    waiting: Vec<(u8, WaiterId)>,
    /// The tokens of those that must get a new connection.
    fresh: Vec<WaiterId>,
    dials: Vec<(u8, DialId)>,
    /// Every connection made, to close or resize.
    made: Vec<Conn>,
    next_conn: u64,
    opened: u64,
    closed: u64,
    cap_closes: u64,
}

impl Model {
    fn new(config: Config) -> Self {
        Model {
            state: State::new(config),
            now: Instant::now(),
            held: Vec::new(),
            waiting: Vec::new(),
            fresh: Vec::new(),
            dials: Vec::new(),
            made: Vec::new(),
            next_conn: 1,
            opened: 0,
            closed: 0,
            cap_closes: 0,
        }
    }

    fn apply(&mut self, fx: Effects<u8, Conn, WaiterId>) {
        for (token, res) in fx.notify {
            let pos = self
                .waiting
                .iter()
                .position(|(_, t)| *t == token)
                .expect("only queued waiters are notified");
            let (key, _) = self.waiting.remove(pos);
            let fresh = match self.fresh.iter().position(|t| *t == token) {
                Some(i) => {
                    self.fresh.swap_remove(i);
                    true
                }
                None => false,
            };
            if let Ok(grant) = res {
                assert!(grant.conn.is_open(), "a closed connection was handed out");
                assert!(
                    grant.meta.retire_at.is_none_or(|t| self.now < t),
                    "an expired connection was handed out"
                );
                assert_within_own_idle_limit(&grant);
                if fresh {
                    assert!(
                        grant.idle_for.is_none() && grant.meta.uses == 1,
                        "a fresh checkout got a connection that served before"
                    );
                }
                self.held.push((key, grant));
            }
        }
        for id in fx.abort {
            let pos = self
                .dials
                .iter()
                .position(|(_, d)| *d == id)
                .expect("known dial");
            self.dials.remove(pos);
        }
        self.dials.extend(fx.dial);
        self.opened += fx.opened;
        self.closed += fx.close.len() as u64;
        self.cap_closes += fx
            .close
            .iter()
            .filter(|(_, r)| *r == CloseReason::Cap)
            .count() as u64;
    }

    fn step(&mut self, op: Op) {
        let mut fx = Effects::default();
        let now = self.now;
        match op {
            Op::Checkout(key) => {
                if let Some(grant) = self.state.try_checkout(&key, now, &mut fx) {
                    assert!(grant.conn.is_open(), "a closed connection was handed out");
                    assert!(
                        grant.meta.retire_at.is_none_or(|t| now < t),
                        "an expired connection was handed out"
                    );
                    assert_within_own_idle_limit(&grant);
                    self.held.push((key, grant));
                } else {
                    // The token is the waiter id the state will hand out next: we learn it
                    // from the return value, and register it before applying effects.
                    let token = self.peek_token();
                    match self.state.enqueue(&key, token, now, &mut fx) {
                        Ok(id) => {
                            assert_eq!(id, token);
                            self.waiting.push((key, id));
                        }
                        Err(e) => {
                            assert!(
                                crate::Error::find(&*e).is_some_and(crate::Error::is_overloaded)
                            );
                            assert_eq!(
                                self.waiting.iter().filter(|(k, _)| *k == key).count(),
                                self.state.config().max_waiters_per_host
                            );
                        }
                    }
                }
            }
            Op::Fresh(key) => {
                let token = self.peek_token();
                match self.state.enqueue_fresh(&key, token, now, &mut fx) {
                    Ok(id) => {
                        assert_eq!(id, token);
                        self.waiting.push((key, id));
                        self.fresh.push(id);
                    }
                    Err(e) => {
                        assert!(crate::Error::find(&*e).is_some_and(crate::Error::is_overloaded));
                    }
                }
            }
            Op::Hint { pick, ms } => {
                if self.made.is_empty() {
                    return;
                }
                self.made[pick % self.made.len()].idle_ms.store(ms, SeqCst);
            }
            Op::Return { pick, discard } => {
                if self.held.is_empty() {
                    return;
                }
                let (key, g) = self.held.swap_remove(pick % self.held.len());
                let ret = Returned {
                    conn: g.conn,
                    meta: g.meta,
                    shared: g.shared,
                    discard: discard.then_some(CloseReason::Error),
                    held: g.held,
                };
                self.state.give_back(&key, ret, now, &mut fx);
            }
            Op::PeerClose { pick, tell } => {
                if self.made.is_empty() {
                    return;
                }
                let conn = self.made[pick % self.made.len()].clone();
                conn.open.store(false, SeqCst);
                if tell {
                    for key in 0..4 {
                        self.state.event(&key, conn.id, Event::Closed, now, &mut fx);
                    }
                }
            }
            Op::Capacity { pick, cap } => {
                if self.made.is_empty() {
                    return;
                }
                let conn = self.made[pick % self.made.len()].clone();
                conn.cap.store(cap, SeqCst);
                for key in 0..4 {
                    self.state
                        .event(&key, conn.id, Event::CapacityChanged, now, &mut fx);
                }
            }
            Op::DialDone { pick, ok, cap } => {
                if self.dials.is_empty() {
                    return;
                }
                let (key, id) = self.dials.remove(pick % self.dials.len());
                let res = if ok {
                    let conn = Conn {
                        id: self.next_conn,
                        open: Arc::new(AtomicBool::new(true)),
                        cap: Arc::new(AtomicUsize::new(cap)),
                        idle_ms: Arc::new(AtomicU64::new(0)),
                    };
                    self.next_conn += 1;
                    self.made.push(conn.clone());
                    Ok((conn.id, conn))
                } else {
                    Err("refused".into())
                };
                self.state.dial_done(&key, id, res, now, &mut fx);
            }
            Op::Timeout { pick, total } => {
                if self.waiting.is_empty() {
                    return;
                }
                let (key, id) = self.waiting[pick % self.waiting.len()];
                let phase = if total { Phase::Total } else { Phase::Acquire };
                match self.state.timed_out(&key, id, phase, now, &mut fx) {
                    TimedOut::Failed => {
                        let pos = self.waiting.iter().position(|(_, t)| *t == id).unwrap();
                        self.waiting.remove(pos);
                        self.fresh.retain(|t| *t != id);
                    }
                    TimedOut::Covered => assert_eq!(phase, Phase::Acquire),
                    TimedOut::Served => panic!("a waiter still queued was reported served"),
                }
            }
            Op::Cancel { pick } => {
                if self.waiting.is_empty() {
                    return;
                }
                let (key, id) = self.waiting.remove(pick % self.waiting.len());
                self.fresh.retain(|t| *t != id);
                self.state.cancel(&key, id, now, &mut fx);
            }
            Op::Advance { ms, reap } => {
                // The reaper may lag behind (it is a task): checkouts in between must still
                // refuse what is due.
                self.now += Duration::from_millis(ms);
                let now = self.now;
                if reap {
                    let next = self.state.reap(now, &mut fx);
                    assert!(
                        next.is_none_or(|n| n > now),
                        "the reaper's next wake is in the future"
                    );
                }
            }
        }
        self.apply(fx);
        self.check();
    }

    /// The id `enqueue` hands out next (ids are sequential).
    fn peek_token(&self) -> WaiterId {
        self.state.next_waiter_id()
    }

    fn check(&self) {
        self.state.check(self.now);
        let s = &self.state;
        assert_eq!(s.waiting_total(), self.waiting.len(), "waiters match");
        assert_eq!(s.dialing_total(), self.dials.len(), "dials match");
        let exclusive = self.held.iter().filter(|(_, g)| !g.shared).count();
        assert_eq!(s.exclusive_total(), exclusive, "exclusive checkouts match");
        assert_eq!(
            s.shares_total(),
            self.held.len() - exclusive,
            "shares match"
        );
        assert_eq!(
            self.opened - self.closed,
            s.live_total() as u64,
            "opened minus closed is what is open"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_state_machine_keeps_every_bound(config in config(), ops in prop::collection::vec(op(), 1..120)) {
        let mut model = Model::new(config);
        for op in ops {
            model.step(op);
        }
        // Everything given back and every dial settled: nothing is lost, nothing waits.
        // (Waiters may be served by what comes back: loop until nothing is out.)
        while let Some((key, g)) = model.held.pop() {
            let mut fx = Effects::default();
            let ret = Returned { conn: g.conn, meta: g.meta, shared: g.shared, discard: None, held: g.held };
            model.state.give_back(&key, ret, model.now, &mut fx);
            model.apply(fx);
            model.check();
        }
        let mut fx = Effects::default();
        model.state.shutdown(&mut fx);
        model.apply(fx);
        model.check();
        prop_assert_eq!(model.opened, model.closed);
        prop_assert!(model.waiting.is_empty());
    }
}
