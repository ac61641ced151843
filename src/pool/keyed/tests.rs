//! Paused-time unit tests of the keyed pool with a fake connector: every bound, exactly.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::{ConnectionWatch, Pool, PoolBuilder, Poolable};
use crate::error::{BoxError, Error, ErrorKind, Phase};
use crate::stats::{CloseReason, Stats};
use crate::test_util::{assert_send_sync, phase_of};

/// A fake connection: its id, whether it is open, its capacity (1: exclusive).
#[derive(Clone)]
struct Fake {
    open: Arc<AtomicBool>,
    cap: Arc<AtomicUsize>,
    watch: Arc<Mutex<Option<ConnectionWatch>>>,
}

impl Fake {
    fn close(&self) {
        self.open.store(false, SeqCst);
    }

    fn close_and_tell(&self) {
        self.close();
        let w = self.watch.lock().unwrap().clone();
        w.expect("the pool gave a watch").closed();
    }
}

impl Poolable for Fake {
    fn is_open(&self) -> bool {
        self.open.load(SeqCst)
    }
    fn capacity(&self) -> usize {
        self.cap.load(SeqCst)
    }
    fn share(&self) -> Option<Self> {
        Some(self.clone())
    }
    fn watch(&mut self, watch: ConnectionWatch) {
        *self.watch.lock().unwrap() = Some(watch);
    }
}

/// How the fake connector behaves, and what it made.
#[derive(Default)]
struct Ctl {
    dials: AtomicUsize,
    delay_ms: AtomicUsize,
    hang: AtomicBool,
    fail: AtomicBool,
    cap: AtomicUsize,
    made: Mutex<Vec<Fake>>,
}

#[derive(Clone)]
struct Connector(Arc<Ctl>);

impl tower_service::Service<&'static str> for Connector {
    type Response = Fake;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Fake, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _key: &'static str) -> Self::Future {
        let ctl = self.0.clone();
        Box::pin(async move {
            let n = ctl.dials.fetch_add(1, SeqCst);
            if ctl.hang.load(SeqCst) {
                std::future::pending::<()>().await;
            }
            let delay = ctl.delay_ms.load(SeqCst) as u64;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if ctl.fail.load(SeqCst) {
                return Err("connection refused (fake)".into());
            }
            let _ = n;
            let fake = Fake {
                open: Arc::new(AtomicBool::new(true)),
                cap: Arc::new(AtomicUsize::new(ctl.cap.load(SeqCst).max(1))),
                watch: Arc::default(),
            };
            ctl.made.lock().unwrap().push(fake.clone());
            Ok(fake)
        })
    }
}

fn connector() -> (Connector, Arc<Ctl>) {
    let ctl = Arc::new(Ctl::default());
    (Connector(ctl.clone()), ctl)
}

type TestPool = Pool<&'static str, Fake>;

/// Lets spawned tasks (dials, the reaper) run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn live_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn check(pool: &TestPool) {
    pool.with_state(|s| s.check(Instant::now()));
}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<TestPool>();
    assert_send_sync::<super::Checkout<&'static str, Fake>>();
    assert_send_sync::<super::CheckoutFuture<&'static str, Fake>>();
    assert_send_sync::<ConnectionWatch>();
    crate::test_util::assert_clone::<TestPool>();
}

#[tokio::test(start_paused = true)]
async fn a_returned_connection_is_reused_and_counted() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new().stats(stats.clone()).build(c);
    let first = pool.checkout("a").await.unwrap();
    assert!(!first.is_reused());
    assert_eq!(first.idle_for(), None);
    let id = first.id();
    drop(first);
    assert_eq!(pool.idle(), 1);
    assert_eq!(stats.snapshot().connections_idle, 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = pool.checkout("a").await.unwrap();
    assert!(again.is_reused());
    assert_eq!(again.id(), id);
    assert_eq!(again.idle_for(), Some(Duration::from_secs(3)));
    assert_eq!(ctl.dials.load(SeqCst), 1);
    let snap = stats.snapshot();
    assert_eq!(
        (
            snap.connections_opened,
            snap.connections_reused,
            snap.connections_open,
            snap.connections_idle
        ),
        (1, 1, 1, 0)
    );
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn max_idle_per_host_closes_the_hosts_least_recently_used() {
    let (c, _) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_idle_per_host(2)
        .stats(stats.clone())
        .build(c);
    let a = pool.checkout("a").await.unwrap();
    let b = pool.checkout("a").await.unwrap();
    let c3 = pool.checkout("a").await.unwrap();
    let (ia, ib, ic) = (a.id(), b.id(), c3.id());
    drop(a); // least recently used once the other two come back
    drop(b);
    drop(c3);
    assert_eq!(pool.idle_of(&"a"), 2);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 1);
    // The survivors are the two most recent: checkouts take the newest first.
    let x = pool.checkout("a").await.unwrap();
    let y = pool.checkout("a").await.unwrap();
    assert_eq!((x.id(), y.id()), (ic, ib));
    assert_ne!(x.id(), ia);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn max_idle_in_total_closes_the_pools_least_recently_used() {
    let (c, _) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new().max_idle(2).stats(stats.clone()).build(c);
    let a = pool.checkout("a").await.unwrap();
    let b = pool.checkout("b").await.unwrap();
    let c3 = pool.checkout("c").await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(b);
    drop(c3);
    assert_eq!(pool.idle(), 2);
    assert_eq!(
        (pool.idle_of(&"a"), pool.idle_of(&"b"), pool.idle_of(&"c")),
        (0, 1, 1),
        "the least recently used (a's) was closed"
    );
    let snap = stats.snapshot();
    assert_eq!(snap.connections_closed(CloseReason::Cap), 1);
    assert_eq!((snap.connections_open, snap.connections_idle), (2, 2));
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn zero_idle_caps_keep_nothing() {
    for builder in [
        PoolBuilder::new().max_idle(0),
        PoolBuilder::new().max_idle_per_host(0),
    ] {
        let (c, _) = connector();
        let stats = Stats::new();
        let pool = builder.stats(stats.clone()).build(c);
        drop(pool.checkout("a").await.unwrap());
        assert_eq!(pool.idle(), 0);
        assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn the_reaper_closes_idle_connections_at_the_idle_timeout_with_one_task() {
    let (c, _) = connector();
    let stats = Stats::new();
    let base = live_tasks();
    let pool = PoolBuilder::new()
        .idle_timeout(Duration::from_secs(10))
        .stats(stats.clone())
        .build(c);
    // 10 connections of 5 keys going idle half a second apart.
    let keys = ["a", "b", "c", "d", "e"];
    let mut held = Vec::new();
    for i in 0..10 {
        held.push(pool.checkout(keys[i % 5]).await.unwrap());
    }
    let start = Instant::now();
    for conn in held.drain(..) {
        drop(conn);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settle().await;
    assert_eq!(
        live_tasks(),
        base + 1,
        "one reaper for every idle connection, no timer each"
    );
    // The first went idle at `start`: still there just before 10 s, gone at 10 s.
    tokio::time::sleep_until(start + Duration::from_millis(9999)).await;
    settle().await;
    assert_eq!(pool.idle(), 10);
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(pool.idle(), 9);
    tokio::time::sleep_until(start + Duration::from_millis(12_200)).await;
    settle().await;
    assert_eq!(pool.idle(), 5);
    tokio::time::sleep_until(start + Duration::from_millis(14_500)).await;
    settle().await;
    assert_eq!(pool.idle(), 0);
    let snap = stats.snapshot();
    assert_eq!(snap.connections_closed(CloseReason::Idle), 10);
    assert_eq!((snap.connections_open, snap.connections_idle), (0, 0));
    check(&pool);
    drop(pool);
    settle().await;
    assert_eq!(live_tasks(), base, "the reaper ends with the pool");
}

#[tokio::test(start_paused = true)]
async fn lifetime_retires_idle_connections_and_never_cuts_one_in_use() {
    let (c, _) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_lifetime(Duration::from_secs(100))
        .idle_timeout(Duration::from_secs(1000))
        .jitter(0.0)
        .stats(stats.clone())
        .build(c);
    let opened = Instant::now();
    let in_use = pool.checkout("a").await.unwrap();
    let idle = pool.checkout("a").await.unwrap();
    assert_eq!(in_use.retire_at(), Some(opened + Duration::from_secs(100)));
    drop(idle);
    tokio::time::sleep_until(opened + Duration::from_millis(99_999)).await;
    settle().await;
    assert_eq!(pool.idle(), 1);
    tokio::time::sleep_until(opened + Duration::from_secs(100)).await;
    settle().await;
    assert_eq!(pool.idle(), 0, "the idle one is retired at its lifetime");
    assert_eq!(
        stats.snapshot().connections_closed(CloseReason::Lifetime),
        1
    );
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert!(in_use.is_open(), "the one in use is not cut");
    assert_eq!(pool.open_of(&"a"), 1);
    drop(in_use);
    assert_eq!(
        pool.idle(),
        0,
        "past its lifetime: closed when it comes back"
    );
    assert_eq!(
        stats.snapshot().connections_closed(CloseReason::Lifetime),
        2
    );
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn lifetimes_get_hikaris_jitter() {
    let (c, _) = connector();
    let pool = PoolBuilder::new()
        .max_lifetime(Duration::from_secs(1000))
        .build(c);
    let now = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    let mut held = Vec::new();
    for _ in 0..50 {
        let conn = pool.checkout("a").await.unwrap();
        let life = conn.retire_at().unwrap() - now;
        assert!(life <= Duration::from_secs(1000));
        assert!(life >= Duration::from_secs(975), "{life:?}");
        seen.insert(life);
        held.push(conn);
    }
    assert!(
        seen.len() > 40,
        "lifetimes are spread: {} distinct",
        seen.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_checkout_over_the_cap_waits_exactly_the_acquire_timeout() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_secs(2))
        .stats(stats.clone())
        .build(c);
    let held = pool.checkout("a").await.unwrap();
    let start = Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(60), pool.checkout("a"));
    let err = waited
        .await
        .expect("bounded by the acquire timeout")
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let e = Error::find(&*err).unwrap();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Some(Phase::Acquire))
    );
    assert_eq!(err.to_string(), "no permit or connection within 2s");
    assert_eq!(stats.snapshot().timeouts(Phase::Acquire), 1);
    assert_eq!(ctl.dials.load(SeqCst), 1, "no dial over the cap");
    assert_eq!(pool.open_of(&"a"), 1);
    drop(held);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_earlier_than_the_acquire_timeout_is_reported_as_total() {
    let (c, _) = connector();
    let pool = PoolBuilder::new().max_conns_per_host(1).build(c);
    let _held = pool.checkout("a").await.unwrap();
    let deadline = crate::RequestDeadline::after(Duration::from_millis(300));
    let start = Instant::now();
    let err = pool.checkout_until("a", Some(deadline)).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(phase_of(&err), Some(Phase::Total));
}

#[tokio::test(start_paused = true)]
async fn returned_connections_go_to_the_oldest_waiter_first() {
    let (c, ctl) = connector();
    let pool = PoolBuilder::new().max_conns_per_host(1).build(c);
    let held = pool.checkout("a").await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let conn = pool.checkout("a").await.unwrap();
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(conn);
        }));
        settle().await; // queued in this order
    }
    assert_eq!(pool.waiting_of(&"a"), 4);
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(ctl.dials.load(SeqCst), 1);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_returned_connection_goes_to_a_waiter_even_when_none_may_idle() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_idle(0)
        .max_conns_per_host(1)
        .stats(stats.clone())
        .build(c);
    let held = pool.checkout("a").await.unwrap();
    let id = held.id();
    let mut waiter = pool.checkout("a");
    settle().await;
    assert!(futures_poll(&mut waiter).is_pending());
    drop(held);
    let got = waiter.await.unwrap();
    assert_eq!(got.id(), id, "handed over, not closed for the idle cap");
    assert!(got.is_reused());
    assert_eq!(ctl.dials.load(SeqCst), 1);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 0);
    drop(got);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 1);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_bounded_and_the_next_is_refused_at_once() {
    let (c, _) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_conns_per_host(1)
        .max_waiters_per_host(2)
        .stats(stats.clone())
        .build(c);
    let _held = pool.checkout("a").await.unwrap();
    let w1 = pool.checkout("a");
    let w2 = pool.checkout("a");
    assert!(w1.is_waiting() && w2.is_waiting());
    let start = Instant::now();
    let err = pool.checkout("a").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let e = Error::find(&*err).unwrap();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(stats.snapshot().overloads, 1);
    // Other keys have queues of their own.
    let _b = pool.checkout("b").await.unwrap();
    drop((w1, w2));
    assert_eq!(pool.waiting_of(&"a"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dial_nobody_waits_for_is_aborted() {
    let (c, ctl) = connector();
    ctl.hang.store(true, SeqCst);
    let base = live_tasks();
    let pool = PoolBuilder::new().build(c);
    let mut waiting: Vec<_> = (0..5).map(|_| pool.checkout("a")).collect();
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 5);
    assert_eq!(live_tasks(), base + 5);
    waiting.truncate(2);
    settle().await;
    // No connection of the key is open: nothing suggests these will finish, so the three
    // nobody waits for are given up at once.
    assert_eq!(pool.dialing_of(&"a"), 2);
    assert_eq!(live_tasks(), base + 2, "the given-up dials' tasks are gone");
    drop(waiting);
    settle().await;
    assert_eq!(pool.open_of(&"a"), 0);
    assert_eq!(live_tasks(), base);
    check(&pool);
}

/// A dial nobody waits for any more that finishes within its grace becomes an idle connection
/// and serves the next checkout: no socket thrown away (what made the preset dial 261 times per
/// 1,000 requests when callers dropped bodies that were then drained).
#[tokio::test(start_paused = true)]
async fn a_dial_orphaned_by_a_returned_connection_is_kept_idle_and_serves_the_next() {
    let (c, ctl) = connector();
    ctl.delay_ms.store(10, SeqCst);
    let stats = Stats::new();
    let pool = PoolBuilder::new().stats(stats.clone()).build(c);
    let first = pool.checkout("a").await.unwrap();
    // A second checkout starts a dial; the first connection comes back before it is done and
    // serves it: the dial is an orphan now.
    let second = pool.checkout("a");
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 1);
    drop(first);
    let second = second.await.unwrap();
    assert_eq!(pool.dialing_of(&"a"), 1, "the orphan keeps going");
    tokio::time::advance(Duration::from_millis(5)).await;
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 1, "still within its grace");
    tokio::time::advance(Duration::from_millis(5)).await;
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 0);
    assert_eq!(pool.idle_of(&"a"), 1, "finished and idle");
    assert_eq!(stats.snapshot().connections_opened, 2);
    // A third checkout takes it instead of dialing.
    let third = pool.checkout("a").await.unwrap();
    assert!(
        third.is_reused(),
        "it sat idle in the pool: a peer may have closed it"
    );
    assert_eq!(pool.dialing_of(&"a"), 0);
    drop((second, third));
    check(&pool);
}

/// An orphaned dial that does not finish within its grace is given up, task and all.
#[tokio::test(start_paused = true)]
async fn an_orphaned_dial_that_hangs_is_given_up_after_its_grace() {
    let (c, ctl) = connector();
    let base = live_tasks();
    let pool = PoolBuilder::new().build(c);
    let first = pool.checkout("a").await.unwrap();
    ctl.hang.store(true, SeqCst);
    let second = pool.checkout("a");
    settle().await;
    drop(first);
    let second = second.await.unwrap();
    assert_eq!(pool.dialing_of(&"a"), 1, "orphaned, in its grace");
    tokio::time::advance(super::state::ORPHAN_GRACE - Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 0, "given up");
    drop(second);
    drop(pool);
    settle().await;
    assert_eq!(live_tasks(), base, "no dial task left");
}

#[tokio::test(start_paused = true)]
async fn a_burst_over_the_cap_leaves_no_dial_behind() {
    let (c, ctl) = connector();
    ctl.delay_ms.store(50, SeqCst);
    let stats = Stats::new();
    let base = live_tasks();
    let pool = PoolBuilder::new()
        .max_conns_per_host(3)
        .stats(stats.clone())
        .build(c);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let conn = pool.checkout("a").await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(conn);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    settle().await;
    assert_eq!(ctl.dials.load(SeqCst), 3, "never more dials than the cap");
    assert_eq!(pool.dialing_of(&"a"), 0);
    assert_eq!(live_tasks(), base + 1, "only the reaper is left");
    assert_eq!(stats.snapshot().connections_opened, 3);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_with_its_dial_in_flight_waits_for_the_dial_not_the_acquire_timeout() {
    let (c, ctl) = connector();
    ctl.delay_ms.store(5_000, SeqCst);
    let pool = PoolBuilder::new()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_secs(1))
        .build(c);
    let start = Instant::now();
    let (dialed, over) = tokio::join!(pool.checkout("a"), async {
        settle().await;
        pool.checkout("a").await
    });
    // The second had no dial (the cap): it fails at its acquire timeout.
    let over = over.unwrap_err();
    assert_eq!(phase_of(&over), Some(Phase::Acquire));
    // The first waited for its dial, past its acquire timeout.
    let dialed = dialed.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    drop(dialed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_dial_fails_its_waiter_with_the_connectors_error() {
    let (c, ctl) = connector();
    ctl.fail.store(true, SeqCst);
    let pool = PoolBuilder::new().build(c);
    let err = pool.checkout("a").await.unwrap_err();
    assert_eq!(err.to_string(), "connection refused (fake)");
    assert_eq!(pool.open_of(&"a"), 0);
    ctl.fail.store(false, SeqCst);
    assert!(pool.checkout("a").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_connection_closed_while_idle_is_never_handed_out() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new().stats(stats.clone()).build(c);
    // Told by its watch: dropped from the idle list at once.
    drop(pool.checkout("a").await.unwrap());
    ctl.made.lock().unwrap()[0].close_and_tell();
    assert_eq!(pool.idle(), 0);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Error), 1);
    // Not told: found closed at checkout, skipped, and a new one dialed.
    drop(pool.checkout("a").await.unwrap());
    ctl.made.lock().unwrap()[1].close();
    let conn = pool.checkout("a").await.unwrap();
    assert_eq!(conn.id(), 3);
    assert!(!conn.is_reused());
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Error), 2);
}

#[tokio::test(start_paused = true)]
async fn shared_connections_carry_up_to_their_capacity() {
    let (c, ctl) = connector();
    ctl.cap.store(3, SeqCst);
    let pool = PoolBuilder::new().max_conns_per_host(1).build(c);
    let a = pool.checkout("a").await.unwrap();
    let b = pool.checkout("a").await.unwrap();
    let c3 = pool.checkout("a").await.unwrap();
    assert!(a.is_shared() && b.is_reused() && c3.is_reused());
    assert_eq!((a.id(), b.id(), c3.id()), (1, 1, 1));
    assert_eq!(pool.open_of(&"a"), 1);
    // Full: the fourth waits; a stream that ends makes room for it.
    let mut fourth = pool.checkout("a");
    assert!(fourth.is_waiting());
    settle().await;
    assert!(futures_poll(&mut fourth).is_pending());
    drop(b);
    let d = fourth.await.unwrap();
    assert_eq!(d.id(), 1);
    // Room the peer grants later goes to waiters as well.
    let mut fifth = pool.checkout("a");
    settle().await;
    assert!(futures_poll(&mut fifth).is_pending());
    ctl.made.lock().unwrap()[0].cap.store(4, SeqCst);
    let w = ctl.made.lock().unwrap()[0]
        .watch
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    w.capacity_changed();
    let e = fifth.await.unwrap();
    assert_eq!(e.id(), 1);
    drop((a, c3, d, e));
    assert_eq!(pool.idle(), 1, "idle once its last stream ended");
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn one_dial_serves_many_waiters_when_connections_are_expected_shared() {
    let (c, ctl) = connector();
    ctl.cap.store(100, SeqCst);
    ctl.delay_ms.store(10, SeqCst);
    let pool = PoolBuilder::new().expected_capacity(100).build(c);
    let all = futures_join_all((0..8).map(|_| pool.checkout("a"))).await;
    assert_eq!(ctl.dials.load(SeqCst), 1);
    assert!(all.iter().all(|r| r.as_ref().unwrap().id() == 1));
}

#[tokio::test(start_paused = true)]
async fn a_checkout_held_past_the_threshold_is_reported_once() {
    let (c, _) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .held_threshold(Duration::from_secs(10))
        .stats(stats.clone())
        .build(c);
    let start = Instant::now();
    let held = pool.checkout("a").await.unwrap();
    let quick = pool.checkout("a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(quick);
    tokio::time::sleep_until(start + Duration::from_millis(9_999)).await;
    settle().await;
    assert_eq!(stats.snapshot().leaks, 0);
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(stats.snapshot().leaks, 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(stats.snapshot().leaks, 1, "once");
    drop(held);
    pool.with_state(|s| assert_eq!(s.held_count(), 0));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_closes_idle_connections_fails_waiters_and_ends_its_tasks() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let base = live_tasks();
    let pool = PoolBuilder::new()
        .max_conns_per_host(2)
        .stats(stats.clone())
        .build(c);
    let (first, second) = (
        pool.checkout("a").await.unwrap(),
        pool.checkout("a").await.unwrap(),
    );
    drop(first);
    let in_use = second;
    ctl.hang.store(true, SeqCst);
    // The future holds the pool's state, not a handle: it does not keep the pool open.
    let checkout_b = pool.checkout("b");
    let dialing = tokio::spawn(async move { checkout_b.await.map(drop) });
    let held_idle = pool.checkout("a").await.unwrap();
    let mut waiter = pool.checkout("a"); // at the cap: waits, no dial
    drop(held_idle); // goes to the waiter
    let got = (&mut waiter).await.unwrap();
    drop(got); // idle again
    let mut waiter = pool.checkout("z");
    settle().await;
    assert!(futures_poll(&mut waiter).is_pending());
    assert_eq!(
        live_tasks(),
        base + 4,
        "reaper, b's and z's dials, the task waiting for b"
    );
    drop(pool);
    let err = waiter.await.unwrap_err();
    assert!(err.to_string().contains("pool was dropped"), "{err}");
    assert!(dialing.await.unwrap().is_err());
    settle().await;
    assert_eq!(live_tasks(), base, "reaper and dial ended");
    let snap = stats.snapshot();
    assert_eq!(
        snap.connections_closed(CloseReason::Other),
        1,
        "the idle one"
    );
    assert_eq!(snap.connections_idle, 0);
    drop(in_use);
    let snap = stats.snapshot();
    assert_eq!(
        snap.connections_closed(CloseReason::Other),
        2,
        "closed when it came back"
    );
    assert_eq!(snap.connections_open, 0);
}

#[test]
fn a_checkout_outside_a_runtime_fails_instead_of_panicking() {
    let (c, _) = connector();
    let pool: TestPool = PoolBuilder::new().build(c);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let fut = pool.checkout("a");
    let err = rt.block_on(fut).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
#[should_panic(expected = "tower-hardened: max_conns_per_host must be at least 1")]
fn zero_conns_per_host_is_refused_at_construction() {
    let _ = PoolBuilder::new().max_conns_per_host(0);
}

#[test]
#[should_panic(expected = "tower-hardened: max_waiters_per_host must be at least 1")]
fn zero_waiters_is_refused_at_construction() {
    let _ = PoolBuilder::new().max_waiters_per_host(0);
}

#[test]
#[should_panic(expected = "tower-hardened: idle_timeout must be greater than zero")]
fn zero_idle_timeout_is_refused_at_construction() {
    let _ = PoolBuilder::new().idle_timeout(Duration::ZERO);
}

#[test]
#[should_panic(expected = "tower-hardened: jitter must be a fraction >= 0")]
fn nan_jitter_is_refused_at_construction() {
    let _ = PoolBuilder::new().jitter(f64::NAN);
}

/// Polls a future once with a no-op waker.
fn futures_poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

async fn futures_join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out = Vec::new();
    // Polled together: each one registers before any is awaited to completion.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, res) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *res = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}

#[tokio::test(start_paused = true)]
async fn a_fresh_checkout_dials_anew_and_at_the_cap_closes_the_lru_idle_one() {
    let (c, ctl) = connector();
    let stats = Stats::new();
    let pool = PoolBuilder::new()
        .max_conns_per_host(2)
        .stats(stats.clone())
        .build(c);
    let (a, b) = (
        pool.checkout("a").await.unwrap(),
        pool.checkout("a").await.unwrap(),
    );
    let (a_id, b_id) = (a.id(), b.id());
    drop(a);
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(b);
    assert_eq!(pool.idle_of(&"a"), 2);
    // Two idle, at the cap: a fresh checkout closes the least recently used one (`a`) and
    // dials; the other stays idle for ordinary checkouts.
    let fresh = pool.checkout_fresh_until("a", None).await.unwrap();
    assert!(
        !fresh.is_reused() && fresh.idle_for().is_none(),
        "{fresh:?}"
    );
    assert!(fresh.id() != a_id && fresh.id() != b_id);
    assert_eq!(ctl.dials.load(SeqCst), 3);
    assert_eq!(pool.open_of(&"a"), 2, "still within the cap");
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 1);
    let plain = pool.checkout("a").await.unwrap();
    assert_eq!(plain.id(), b_id, "an ordinary checkout takes the idle one");
    check(&pool);
    // At the cap with nothing idle: it waits for room, bounded by the acquire timeout...
    let waiting = pool.checkout_fresh_until("a", None);
    assert!(waiting.is_waiting());
    settle().await;
    assert_eq!(pool.dialing_of(&"a"), 0, "no room to dial");
    // ...and room comes when a connection comes back with nobody else waiting for it.
    drop(plain);
    let got = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("served once there is room")
        .unwrap();
    assert!(!got.is_reused());
    assert_eq!(ctl.dials.load(SeqCst), 4);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Cap), 2);
    drop((fresh, got));
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_connections_own_idle_limit_closes_it_as_idle_before_the_pools() {
    /// A fake whose idle limit is 3 s (a server's keep-alive hint, less the margin).
    #[derive(Clone)]
    struct Hinted(Fake);
    impl Poolable for Hinted {
        fn is_open(&self) -> bool {
            self.0.is_open()
        }
        fn idle_timeout(&self) -> Option<Duration> {
            Some(Duration::from_secs(3))
        }
    }
    let (c, ctl) = connector();
    let stats = Stats::new();
    let make = tower::ServiceExt::map_response(c, Hinted);
    let pool = PoolBuilder::new()
        .idle_timeout(Duration::from_secs(60))
        .stats(stats.clone())
        .build(make);
    drop(pool.checkout("a").await.unwrap());
    tokio::time::advance(Duration::from_millis(2999)).await;
    settle().await;
    // Reused within its limit.
    let again = pool.checkout("a").await.unwrap();
    assert!(again.is_reused());
    drop(again);
    tokio::time::advance(Duration::from_secs(3)).await;
    settle().await;
    // Closed by the reaper at its own limit, long before the pool's 60 s, as idle.
    assert_eq!(pool.idle_of(&"a"), 0);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Idle), 1);
    let next = pool.checkout("a").await.unwrap();
    assert!(!next.is_reused());
    assert_eq!(ctl.dials.load(SeqCst), 2);
    drop(next);
    pool.with_state(|s| s.check(Instant::now()));
}
