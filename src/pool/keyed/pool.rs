use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::Hash;
use std::pin::{pin, Pin};
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use super::checkout::{Checkout, CheckoutFuture};
use super::poolable::{ConnectionWatch, Event, Poolable};
use super::state::{ConnId, DialId, Effects, Grant, State};
use crate::clock;
use crate::deadline::RequestDeadline;
use crate::error::BoxError;
use crate::stats::Stats;

/// How a waiter is told: its key (to give a grant back if it is gone) and its channel.
pub(crate) type Notifier<K, T> = (K, oneshot::Sender<Result<Grant<T>, BoxError>>);
pub(crate) type Fx<K, T> = Effects<K, T, Notifier<K, T>>;
type BoxFuture<O> = Pin<Box<dyn Future<Output = O> + Send>>;
type MakeFn<K, T> = Arc<dyn Fn(K) -> BoxFuture<Result<T, BoxError>> + Send + Sync>;

/// A keyed pool of connections made by a connector you give it: every bound exact and
/// enforced under its one lock, atomically with checkouts. See the [module docs](super).
///
/// Cloning is cheap and every clone shares the same connections. When the last clone is
/// dropped, idle connections are closed, waiting checkouts fail, dials are given up and the
/// reaper task ends; connections still checked out are closed when they come back.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use tower_hardened::{PoolBuilder, Poolable};
///
/// /// A "connection" that is just a number, for the example.
/// struct Conn(u32);
/// impl Poolable for Conn {
///     fn is_open(&self) -> bool {
///         true
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let connector = tower::service_fn(|key: &'static str| async move {
///     Ok::<_, Infallible>(Conn(key.len() as u32))
/// });
/// let pool = PoolBuilder::new().max_idle(10).build(connector);
///
/// let conn = pool.checkout("db-1").await?; // dialed
/// assert_eq!(conn.0, 4);
/// drop(conn); // back to the pool, idle
/// assert_eq!(pool.idle(), 1);
///
/// let again = pool.checkout("db-1").await?;
/// assert!(again.is_reused());
/// # Ok(()) }
/// ```
pub struct Pool<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    handle: Arc<Handle<K, T>>,
}

impl<K, T> Clone for Pool<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn clone(&self) -> Self {
        Pool {
            handle: self.handle.clone(),
        }
    }
}

impl<K, T> fmt::Debug for Pool<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle())
            .finish_non_exhaustive()
    }
}

/// Shared by the clones of one [`Pool`]: dropping the last one shuts the pool down.
struct Handle<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    inner: Arc<Inner<K, T>>,
}

impl<K, T> Drop for Handle<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn drop(&mut self) {
        self.inner.run(|l, _, fx| {
            l.state.shutdown(fx);
            if let Some(reaper) = l.reaper.take() {
                reaper.abort();
            }
        });
    }
}

impl<K, T> Pool<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pub(crate) fn new(
        config: super::state::Config,
        stats: Option<Stats>,
        make: MakeFn<K, T>,
    ) -> Self {
        let acquire = config.acquire_timeout;
        Pool {
            handle: Arc::new(Handle {
                inner: Arc::new(Inner {
                    acquire,
                    locked: Mutex::new(Locked {
                        state: State::new(config),
                        dials: Vec::new(),
                        reaper: None,
                        reaper_at: None,
                    }),
                    make,
                    stats,
                    wake_reaper: Arc::new(Notify::new()),
                    next_conn: AtomicU64::new(1),
                    lost: Mutex::new(Vec::new()),
                    has_lost: AtomicBool::new(false),
                }),
            }),
        }
    }

    /// A connection for `key`: an idle one (the most recently used), room on a shared one, or a
    /// new one from the connector; waits for one to come back when `key` is at its
    /// [`max_conns_per_host`](super::PoolBuilder::max_conns_per_host), up to the
    /// [`acquire_timeout`](super::PoolBuilder::acquire_timeout)
    /// ([`Phase::Acquire`](crate::Phase::Acquire)).
    ///
    /// It fails with [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded) at once when
    /// [`max_waiters_per_host`](super::PoolBuilder::max_waiters_per_host) checkouts already
    /// wait, and with the connector's error when the dial counted for it fails.
    pub fn checkout(&self, key: K) -> CheckoutFuture<K, T> {
        self.handle.inner.checkout(key, None)
    }

    /// [`checkout`](Self::checkout), bounded by `deadline` as well (the error then names
    /// [`Phase::Total`](crate::Phase::Total)).
    #[cfg_attr(not(any(test, feature = "transport")), allow(dead_code))]
    pub(crate) fn checkout_until(
        &self,
        key: K,
        deadline: Option<RequestDeadline>,
    ) -> CheckoutFuture<K, T> {
        self.handle.inner.checkout(key, deadline)
    }

    /// [`checkout_until`](Self::checkout_until), but only a connection dialed for this checkout
    /// will do (never an idle or shared one): see `State::enqueue_fresh`.
    #[cfg_attr(not(any(test, feature = "transport")), allow(dead_code))]
    pub(crate) fn checkout_fresh_until(
        &self,
        key: K,
        deadline: Option<RequestDeadline>,
    ) -> CheckoutFuture<K, T> {
        self.handle.inner.checkout_as(key, deadline, true)
    }

    /// Idle connections in total.
    pub fn idle(&self) -> usize {
        self.handle.inner.lock().state.idle_total()
    }

    /// Idle connections of `key`.
    pub fn idle_of(&self, key: &K) -> usize {
        self.handle.inner.lock().state.idle_of(key)
    }

    /// Connections of `key` dialing, in use and idle: what
    /// [`max_conns_per_host`](super::PoolBuilder::max_conns_per_host) bounds.
    pub fn open_of(&self, key: &K) -> usize {
        self.handle.inner.lock().state.open_of(key)
    }

    /// Dials of `key` in flight.
    pub fn dialing_of(&self, key: &K) -> usize {
        self.handle.inner.lock().state.dialing_of(key)
    }

    /// Checkouts of `key` waiting for a connection.
    pub fn waiting_of(&self, key: &K) -> usize {
        self.handle.inner.lock().state.waiting_of(key)
    }

    #[cfg(test)]
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&State<K, T, Notifier<K, T>>) -> R) -> R {
        f(&self.handle.inner.lock().state)
    }
}

pub(crate) struct Inner<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    locked: Mutex<Locked<K, T>>,
    make: MakeFn<K, T>,
    stats: Option<Stats>,
    wake_reaper: Arc<Notify>,
    next_conn: AtomicU64,
    /// The acquire timeout (also in the state's config), read without the lock.
    acquire: Duration,
    /// Dials whose task ended without a result (see [`DialGuard`]), for the next holder of the
    /// lock; `has_lost` says there are some without taking this lock.
    lost: Mutex<Vec<(K, DialId)>>,
    has_lost: AtomicBool,
}

pub(crate) struct Locked<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pub(crate) state: State<K, T, Notifier<K, T>>,
    /// Dial tasks in flight, to abort the ones given up.
    dials: Vec<(DialId, AbortHandle)>,
    reaper: Option<JoinHandle<()>>,
    /// When the reaper will look next.
    reaper_at: Option<Instant>,
}

impl<K, T> Drop for Inner<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn drop(&mut self) {
        let locked = self
            .locked
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reaper) = locked.reaper.take() {
            reaper.abort();
        }
        for (_, dial) in locked.dials.drain(..) {
            dial.abort();
        }
    }
}

impl<K, T> Inner<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked<K, T>> {
        // Every critical section leaves the state consistent before anything can panic (the
        // state machine's asserts are debug-only invariants), so a poisoned lock is usable.
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> Option<&Stats> {
        self.stats.as_ref()
    }

    /// Runs `f` on the state under the lock, then carries out what it decided: hands grants
    /// and errors to waiters, starts and aborts dials, wakes the reaper (all under the lock),
    /// and, once the lock is released, closes connections and counts.
    pub(crate) fn run<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Locked<K, T>, Instant, &mut Fx<K, T>) -> R,
    ) -> R {
        self.run_locked(self.lock(), f)
    }

    fn run_locked<R>(
        self: &Arc<Self>,
        mut locked: MutexGuard<'_, Locked<K, T>>,
        f: impl FnOnce(&mut Locked<K, T>, Instant, &mut Fx<K, T>) -> R,
    ) -> R {
        let now = Instant::now();
        let mut fx = Effects::default();
        let r = f(&mut locked, now, &mut fx);
        if self.has_lost.load(Acquire) {
            self.take_lost(&mut locked, now, &mut fx);
        }
        if fx.is_empty() && fx.due.is_none() && fx.idle_delta == 0 && fx.reused == 0 {
            return r;
        }
        self.settle(&mut locked, now, &mut fx);
        drop(locked);
        self.after(fx);
        r
    }

    /// A dial task ended without a result: its slot comes back and the checkouts it was
    /// counted to serve get an error. Handled now if the lock is free, else by its holder (which
    /// may be this thread: a task dropped inline by a spawn on a runtime that is shutting down).
    fn report_lost(self: &Arc<Self>, key: K, id: DialId) {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, id));
        self.has_lost.store(true, Release);
        let locked = match self.locked.try_lock() {
            Ok(locked) => locked,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        self.run_locked(locked, |_, _, _| ());
    }

    fn take_lost(&self, locked: &mut Locked<K, T>, now: Instant, fx: &mut Fx<K, T>) {
        self.has_lost.store(false, Release);
        let lost = std::mem::take(&mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner));
        for (key, id) in lost {
            if let Some(pos) = locked.dials.iter().position(|(d, _)| *d == id) {
                locked.dials.swap_remove(pos);
            }
            let err: BoxError = "tower-hardened: the dial ended without a result (its connector \
                                 panicked, or the runtime it ran on shut down)"
                .into();
            locked.state.dial_done(&key, id, Err(err), now, fx);
        }
    }

    /// The part of the effects done under the lock; may make more (a grant whose waiter is
    /// gone is given back, a dial that cannot start fails), so it loops until none are left.
    fn settle(self: &Arc<Self>, locked: &mut Locked<K, T>, now: Instant, fx: &mut Fx<K, T>) {
        loop {
            if self.has_lost.load(Acquire) {
                self.take_lost(locked, now, fx);
            }
            let notify = std::mem::take(&mut fx.notify);
            let dial = std::mem::take(&mut fx.dial);
            let abort = std::mem::take(&mut fx.abort);
            if notify.is_empty() && dial.is_empty() && abort.is_empty() {
                break;
            }
            for id in abort {
                if let Some(pos) = locked.dials.iter().position(|(d, _)| *d == id) {
                    let (_, handle) = locked.dials.swap_remove(pos);
                    handle.abort();
                    tracing::trace!(dial = id, "dial given up: nobody waits for it any more");
                }
            }
            for (key, id) in dial {
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        let fut = (self.make)(key.clone());
                        let guard = DialGuard {
                            pool: Arc::downgrade(self),
                            key: Some(key),
                            id,
                        };
                        let task = rt.spawn(dial_task(guard, fut));
                        locked.dials.push((id, task.abort_handle()));
                    }
                    Err(_) => {
                        let err: BoxError =
                            "tower-hardened: a pool can only dial inside a tokio runtime".into();
                        locked.state.dial_done(&key, id, Err(err), now, fx);
                    }
                }
            }
            for ((key, tx), res) in notify {
                if let Err(Ok(grant)) = tx.send(res) {
                    // The waiter went away after it was chosen (its future forgotten rather
                    // than dropped): the connection comes back as if it had been used.
                    let ret = super::state::Returned {
                        conn: grant.conn,
                        meta: grant.meta,
                        shared: grant.shared,
                        discard: None,
                        held: grant.held,
                    };
                    locked.state.give_back(&key, ret, now, fx);
                }
            }
        }
        if let Some(due) = fx.due.take() {
            self.reaper_due(locked, due);
        }
    }

    /// The reaper must look at `due`: start it, or wake it if it sleeps past that.
    fn reaper_due(self: &Arc<Self>, locked: &mut Locked<K, T>, due: Instant) {
        let running = locked.reaper.as_ref().is_some_and(|r| !r.is_finished());
        if !running {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                locked.reaper =
                    Some(rt.spawn(reaper(Arc::downgrade(self), self.wake_reaper.clone())));
                locked.reaper_at = Some(due);
            }
        } else if locked.reaper_at.is_none_or(|at| due < at) {
            locked.reaper_at = Some(due);
            self.wake_reaper.notify_one();
        }
    }

    /// The part of the effects done outside the lock: dropping connections (their `Drop` may
    /// do anything) and counting.
    fn after(&self, fx: Fx<K, T>) {
        if let Some(stats) = &self.stats {
            for _ in 0..fx.opened {
                stats.connection_opened();
            }
            for _ in 0..fx.reused {
                stats.connection_reused();
            }
            for _ in 0..fx.acquire_timeouts {
                stats.timeout(crate::Phase::Acquire);
            }
            stats.idle_add(fx.idle_delta);
            for (_, reason) in &fx.close {
                stats.connection_closed(*reason);
            }
            for _ in &fx.held_reports {
                stats.leak();
            }
        }
        for (key, age) in &fx.held_reports {
            tracing::warn!(
                ?key,
                ?age,
                "pooled connection checked out for {age:?} and not given back (its checkout \
                 is held: a response body kept unread?)"
            );
        }
        for (conn, reason) in fx.close {
            tracing::debug!(?reason, "pooled connection closed");
            drop(conn);
        }
        drop(fx.drop);
    }

    fn checkout(
        self: &Arc<Self>,
        key: K,
        deadline: Option<RequestDeadline>,
    ) -> CheckoutFuture<K, T> {
        self.checkout_as(key, deadline, false)
    }

    fn checkout_as(
        self: &Arc<Self>,
        key: K,
        deadline: Option<RequestDeadline>,
        fresh: bool,
    ) -> CheckoutFuture<K, T> {
        enum First<T> {
            Got(Grant<T>),
            Wait(
                super::state::WaiterId,
                oneshot::Receiver<Result<Grant<T>, BoxError>>,
            ),
            Refused(BoxError),
        }
        let first = self.run(|l, now, fx| {
            if !fresh {
                if let Some(grant) = l.state.try_checkout(&key, now, fx) {
                    return First::Got(grant);
                }
            }
            let (tx, rx) = oneshot::channel();
            let queued = if fresh {
                l.state.enqueue_fresh(&key, (key.clone(), tx), now, fx)
            } else {
                l.state.enqueue(&key, (key.clone(), tx), now, fx)
            };
            match queued {
                Ok(id) => First::Wait(id, rx),
                Err(e) => First::Refused(e),
            }
        });
        match first {
            First::Got(grant) => CheckoutFuture::ready(Checkout::new(self.clone(), key, grant)),
            First::Wait(id, rx) => {
                let since = Instant::now();
                CheckoutFuture::waiting(self.clone(), key, id, rx, since, self.acquire, deadline)
            }
            First::Refused(e) => {
                if let Some(stats) = &self.stats {
                    if crate::Error::find(&*e).is_some_and(crate::Error::is_overloaded) {
                        stats.overload();
                    }
                }
                tracing::debug!(?key, "{e}");
                CheckoutFuture::failed(e)
            }
        }
    }

    /// The watch given to a new connection.
    fn watch_for(self: &Arc<Self>, key: &K, id: ConnId) -> ConnectionWatch {
        let pool = Arc::downgrade(self);
        let key = key.clone();
        ConnectionWatch {
            notify: Arc::new(move |event: Event| {
                if let Some(inner) = pool.upgrade() {
                    inner.run(|l, now, fx| l.state.event(&key, id, event, now, fx));
                }
            }),
        }
    }
}

/// One dial's claim on its pool: dropped without [`DialGuard::done`] (its connector's future
/// panicked, or its task was dropped with the runtime it ran on, even before its first poll),
/// it reports the dial as failed, so that its slot under `max_conns_per_host` comes back and the
/// checkouts it was counted to serve fail instead of waiting for it forever. A dial the pool
/// aborted reports too; the pool has forgotten it and ignores that.
struct DialGuard<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pool: Weak<Inner<K, T>>,
    key: Option<K>,
    id: DialId,
}

impl<K, T> DialGuard<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    /// The dial has a result to report itself.
    fn done(&mut self) -> K {
        self.key.take().expect("done once")
    }
}

impl<K, T> Drop for DialGuard<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn drop(&mut self) {
        if let (Some(key), Some(inner)) = (self.key.take(), self.pool.upgrade()) {
            inner.report_lost(key, self.id);
        }
    }
}

/// One dial, on a task of its own, so that it serves whichever checkout is first in line when it
/// is done and can be given up once nobody waits for it. Holds only a `Weak` to the pool.
async fn dial_task<K, T>(mut guard: DialGuard<K, T>, fut: BoxFuture<Result<T, BoxError>>)
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    let res = fut.await;
    let id = guard.id;
    let Some(inner) = guard.pool.upgrade() else {
        guard.done();
        return;
    };
    let key = guard.done();
    let res = res.map(|mut conn| {
        let cid = inner.next_conn.fetch_add(1, Relaxed);
        conn.watch(inner.watch_for(&key, cid));
        (cid, conn)
    });
    if let Err(e) = &res {
        tracing::debug!(?key, error = %e, "dial failed");
    }
    inner.run(|l, now, fx| {
        if let Some(pos) = l.dials.iter().position(|(d, _)| *d == id) {
            l.dials.swap_remove(pos);
        }
        l.state.dial_done(&key, id, res, now, fx);
    });
}

/// The one background task of a pool: closes idle connections when their idle timeout or
/// lifetime is due and reports checkouts held past the threshold. Sleeps until the next one is
/// due (or it is woken for an earlier one); holds only a `Weak` and ends with the pool.
async fn reaper<K, T>(pool: Weak<Inner<K, T>>, wake: Arc<Notify>)
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    loop {
        let next = {
            let Some(inner) = pool.upgrade() else {
                return;
            };
            let next = inner.run(|l, now, fx| {
                if l.state.is_closed() {
                    return None;
                }
                let due = l.state.reap(now, fx);
                // Anything that goes idle or is checked out after now is due no earlier than
                // now plus the idle timeout (or the threshold); only a lifetime can be earlier,
                // and that wakes the reaper.
                let config = l.state.config();
                let horizon = [config.idle_timeout, config.held_threshold]
                    .into_iter()
                    .flatten()
                    .map(|d| clock::add(now, d))
                    .min();
                let next = match (due, horizon) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or_else(|| clock::add(now, Duration::MAX)),
                };
                l.reaper_at = Some(next);
                Some(next)
            });
            match next {
                Some(next) => next,
                None => return,
            }
        };
        let sleep = pin!(tokio::time::sleep_until(next));
        let notified = pin!(wake.notified());
        let mut both = (sleep, notified);
        poll_fn(|cx| {
            if both.0.as_mut().poll(cx).is_ready() || both.1.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
