//! Random interleavings of call, poll, cancel, read-to-end, error, drop and time passing,
//! through both limiters stacked (in both orders), over eight hosts spelled two ways (case,
//! explicit default port), with an inner service whose readiness can close (instances then
//! answer `Pending` and are woken when it opens) or fail once. Checked after every step: what
//! the inner service sees in flight never exceeds the global limit nor any host's limit, and the
//! queues never exceed their bound. Checked at the end: every waiter is woken and served (no
//! lost wake-up, no leaked permit), every count — handles, `Stats`, tracked hosts — is back to
//! zero, and no more idle per-host entries are kept than the bound (the sweep runs: the bound is
//! set to 4 here).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use proptest::prelude::*;
use tokio_test::task;
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::error::BoxError;
use crate::test_util::poll_once;
use crate::Stats;

/// What the inner service sees: requests started and not yet done, in total and per host.
#[derive(Default)]
struct Seen {
    total: usize,
    per_host: HashMap<String, usize>,
    peak_total: usize,
    peak_host: usize,
}

/// One request's use of the inner service, from `call` until its body ends, fails or is dropped.
struct Lease {
    seen: Arc<Mutex<Seen>>,
    host: String,
}

impl Lease {
    fn new(seen: &Arc<Mutex<Seen>>, host: String) -> Lease {
        let mut s = seen.lock().unwrap();
        s.total += 1;
        let n = s.per_host.entry(host.clone()).or_default();
        *n += 1;
        let n = *n;
        s.peak_total = s.peak_total.max(s.total);
        s.peak_host = s.peak_host.max(n);
        drop(s);
        Lease {
            seen: seen.clone(),
            host,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.seen.lock().unwrap();
        s.total -= 1;
        *s.per_host.get_mut(&self.host).unwrap() -= 1;
    }
}

/// A body with no data: its first poll ends it (or fails it), releasing its lease.
struct TrackedBody {
    lease: Option<Lease>,
    fail: bool,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.lease.take().is_none() {
            return Poll::Ready(None);
        }
        if self.fail {
            Poll::Ready(Some(Err("body failed".into())))
        } else {
            Poll::Ready(None)
        }
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none()
    }
}

/// The inner future: pending on its first poll (so a request can be dropped while "calling"),
/// ready on the next.
struct Answer {
    lease: Option<Lease>,
    polled: bool,
    fail: bool,
}

impl Future for Answer {
    type Output = Result<Response<TrackedBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let lease = self.lease.take();
        Poll::Ready(Ok(Response::new(TrackedBody {
            lease,
            fail: self.fail,
        })))
    }
}

/// The inner service's readiness, shared by every instance: closed, instances answer `Pending`
/// (and are woken when it opens); `fail_next` makes the next `poll_ready` of any instance fail,
/// after which that instance must never be polled again.
#[derive(Default)]
struct Readiness {
    closed: bool,
    fail_next: bool,
    wakers: Vec<std::task::Waker>,
}

#[derive(Clone)]
struct Inner {
    seen: Arc<Mutex<Seen>>,
    ready: Arc<Mutex<Readiness>>,
    failed: bool,
}

impl Service<Request<()>> for Inner {
    type Response = Response<TrackedBody>;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        assert!(
            !self.failed,
            "an instance polled again after its poll_ready failed"
        );
        let mut r = self.ready.lock().unwrap();
        if std::mem::take(&mut r.fail_next) {
            self.failed = true;
            return Poll::Ready(Err("inner not ready: failed".into()));
        }
        if r.closed {
            r.wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Answer {
        assert!(!self.failed, "called after its poll_ready failed");
        let host = req.uri().host().unwrap().to_ascii_lowercase();
        Answer {
            lease: Some(Lease::new(&self.seen, host)),
            polled: false,
            fail: req.uri().path() == "/fail",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Call {
        host: u8,
        fail: bool,
    },
    Poll(usize),
    Cancel(usize),
    Read(usize),
    DropBody(usize),
    Advance(u8),
    /// Close (`false`) or open (`true`, waking every instance that answered `Pending`) the inner
    /// service's readiness.
    Readiness(bool),
    /// The next `poll_ready` of the inner service fails.
    FailReady,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..16, any::<bool>()).prop_map(|(host, fail)| Op::Call { host, fail }),
        4 => any::<usize>().prop_map(Op::Poll),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => any::<usize>().prop_map(Op::Read),
        1 => any::<usize>().prop_map(Op::DropBody),
        1 => (1u8..40).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Readiness),
        1 => Just(Op::FailReady),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    global: usize,
    per_host: usize,
    max_waiting: usize,
    timeout: Option<u64>,
    per_host_outside: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1usize..5,
        1usize..4,
        0usize..4,
        prop::option::of(10u64..60),
        any::<bool>(),
    )
        .prop_map(
            |(global, per_host, max_waiting, timeout, per_host_outside)| Setup {
                global,
                per_host,
                max_waiting,
                timeout,
                per_host_outside,
            },
        )
}

enum Slot<F, B> {
    Waiting(task::Spawn<F>),
    Body(B),
}

struct Check {
    global: LimitHandle,
    hosts: PerHostHandle,
    stats: Stats,
    seen: Arc<Mutex<Seen>>,
    ready: Arc<Mutex<Readiness>>,
    setup: Setup,
}

impl Check {
    fn set_ready(&self, open: bool) {
        let mut r = self.ready.lock().unwrap();
        r.closed = !open;
        let wakers = if open {
            std::mem::take(&mut r.wakers)
        } else {
            Vec::new()
        };
        drop(r);
        wakers.into_iter().for_each(std::task::Waker::wake);
    }
}

impl Check {
    fn step(&self) {
        let s = self.seen.lock().unwrap();
        assert!(s.total <= self.setup.global, "global limit exceeded");
        for (host, n) in &s.per_host {
            assert!(*n <= self.setup.per_host, "limit of {host} exceeded");
        }
        drop(s);
        assert!(self.global.in_flight() <= self.setup.global);
        assert!(self.global.waiting() <= self.setup.max_waiting);
        assert!(self.hosts.waiting() <= self.setup.max_waiting * 8);
        // The limiter's own count covers at least what the inner service sees.
        assert!(self.global.in_flight() >= self.seen.lock().unwrap().total);
    }

    fn at_rest(&self) {
        let s = self.seen.lock().unwrap();
        assert_eq!(s.total, 0, "inner service still sees requests");
        drop(s);
        assert_eq!(
            (self.global.in_flight(), self.global.waiting()),
            (0, 0),
            "global counts"
        );
        assert_eq!(self.global.available(), self.setup.global, "permits lost");
        assert_eq!(
            (
                self.hosts.in_flight(),
                self.hosts.waiting(),
                self.hosts.hosts()
            ),
            (0, 0, 0),
            "per-host counts"
        );
        let snap = self.stats.snapshot();
        assert_eq!((snap.in_flight, snap.waiting), (0, 0), "stats");
        let entries = self.hosts.gate.entries();
        assert!(
            entries <= self.hosts.gate.config.max_idle_hosts,
            "{entries} idle per-host entries kept"
        );
    }
}

async fn run<S, RB>(mut svc: S, ops: Vec<Op>, check: Check)
where
    S: Service<Request<()>, Response = Response<RB>, Error = BoxError>,
    RB: Body + Unpin,
{
    let mut slots: Vec<Slot<S::Future, RB>> = Vec::new();
    let mut served = 0usize;
    let pick = |len: usize, i: usize| (len > 0).then(|| i % len);

    fn settle<F, RB>(slot: &mut Slot<F, RB>, served: &mut usize) -> bool
    where
        F: Future<Output = Result<Response<RB>, BoxError>>,
    {
        // Returns whether the slot is finished (an error) and should be removed.
        if let Slot::Waiting(f) = slot {
            match f.poll() {
                Poll::Pending => false,
                Poll::Ready(Ok(resp)) => {
                    *served += 1;
                    *slot = Slot::Body(resp.into_body());
                    false
                }
                Poll::Ready(Err(_)) => true,
            }
        } else {
            false
        }
    }

    for op in ops {
        match op {
            Op::Call { host, fail } => {
                let path = if fail { "fail" } else { "ok" };
                // Eight hosts, each spelled two ways that must share one limit.
                let uri = if host % 2 == 0 {
                    format!("http://h{}.example/{path}", host / 2)
                } else {
                    format!("http://H{}.EXAMPLE:80/{path}", host / 2)
                };
                std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
                let f = task::spawn(svc.call(Request::get(uri).body(()).unwrap()));
                let mut slot = Slot::Waiting(f);
                if !settle(&mut slot, &mut served) {
                    slots.push(slot);
                }
            }
            Op::Poll(i) => {
                if let Some(i) = pick(slots.len(), i) {
                    if settle(&mut slots[i], &mut served) {
                        slots.remove(i);
                    }
                }
            }
            Op::Cancel(i) => {
                if let Some(i) = pick(slots.len(), i) {
                    if matches!(slots[i], Slot::Waiting(_)) {
                        slots.remove(i);
                    }
                }
            }
            Op::Read(i) => {
                if let Some(i) = pick(slots.len(), i) {
                    if let Slot::Body(b) = &mut slots[i] {
                        // Ends or fails on the first poll; either way it releases.
                        assert!(poll_once(b).is_ready());
                    }
                }
            }
            Op::DropBody(i) => {
                if let Some(i) = pick(slots.len(), i) {
                    if matches!(slots[i], Slot::Body(_)) {
                        slots.remove(i);
                    }
                }
            }
            Op::Readiness(open) => check.set_ready(open),
            Op::FailReady => check.ready.lock().unwrap().fail_next = true,
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms.into())).await;
                // Timers fire only when their futures are polled: poll the woken ones.
                let mut k = 0;
                while k < slots.len() {
                    let woken = matches!(&slots[k], Slot::Waiting(f) if f.is_woken());
                    if woken && settle(&mut slots[k], &mut served) {
                        slots.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
        }
        check.step();
    }

    // Drain: read every body; poll only futures that were woken. Every waiter must be served
    // or time out; none may be left pending without a wake-up. The inner service is ready
    // from here on (a failure still pending may hit one more request).
    check.set_ready(true);
    for _round in 0..10_000 {
        slots.retain_mut(|slot| match slot {
            Slot::Body(b) => {
                let _ = poll_once(b);
                false
            }
            Slot::Waiting(_) => true,
        });
        check.step();
        if slots.is_empty() {
            break;
        }
        let mut progressed = false;
        let mut k = 0;
        while k < slots.len() {
            let Slot::Waiting(f) = &slots[k] else {
                k += 1;
                continue;
            };
            if f.is_woken() {
                progressed = true;
                if settle(&mut slots[k], &mut served) {
                    slots.remove(k);
                    continue;
                }
            }
            k += 1;
        }
        if !progressed {
            // Only a timer can still move things: let time pass.
            assert!(
                check.setup.timeout.is_some() || slots.iter().all(|s| matches!(s, Slot::Body(_))),
                "{} request(s) left waiting with no wake-up: a lost wake-up or a leaked permit",
                slots.len()
            );
            tokio::time::advance(Duration::from_millis(10)).await;
        }
    }
    assert!(slots.is_empty(), "drain did not finish");
    drop(svc);
    check.at_rest();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn limits_hold_under_any_interleaving(setup in setup(), ops in prop::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let stats = Stats::new();
            let mut g = ConcurrencyLimitLayer::new(setup.global).max_waiting(setup.max_waiting);
            let mut h = PerHostLimitLayer::new(setup.per_host)
                .max_waiting(setup.max_waiting)
                .max_idle_hosts(4);
            if let Some(ms) = setup.timeout {
                g = g.acquire_timeout(Duration::from_millis(ms));
                h = h.acquire_timeout(Duration::from_millis(ms));
            }
            // Stats on one layer only (see `ConcurrencyLimitLayer::stats`).
            let g = g.stats(stats.clone());
            let seen = Arc::new(Mutex::new(Seen::default()));
            let ready = Arc::new(Mutex::new(Readiness::default()));
            let inner = Inner { seen: seen.clone(), ready: ready.clone(), failed: false };
            let check = Check {
                global: g.handle(),
                hosts: h.handle(),
                stats,
                seen,
                ready,
                setup: setup.clone(),
            };
            if setup.per_host_outside {
                run(h.layer(g.layer(inner)), ops, check).await;
            } else {
                run(g.layer(h.layer(inner)), ops, check).await;
            }
        });
    }
}
