//! The admission machinery shared by both limiters: a FIFO semaphore, a bounded waiting count,
//! and the two tokens that keep the counts honest — [`Ticket`] (a place in the queue) and
//! [`Permit`] (a place in flight). Both undo their count on drop, whatever drops them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::per_host::{Host, Hosts};
use crate::error::{Error, Phase};
use crate::stats::Stats;

/// The wait for one permit. Boxed because tokio's `acquire_owned` future cannot be named; it is
/// only made when a request has to wait (the fast path takes a permit with `try_acquire`).
pub(crate) type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// The settings both limiters share.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) limit: usize,
    pub(crate) max_waiting: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) stats: Option<Stats>,
    /// Whether this limiter counts `in_flight` in `stats` (the preset stacks two limiters on one
    /// handle and lets only the global one count it, so no request counts twice).
    pub(crate) count_in_flight: bool,
}

/// Refuses a concurrency limit no semaphore can hold: zero, or above tokio's `MAX_PERMITS`.
#[track_caller]
pub(crate) fn check_limit(what: &str, limit: usize) {
    assert!(
        limit > 0,
        "tower-hardened: {what} must be greater than zero (a limit of zero would make every request wait forever)"
    );
    assert!(
        limit <= Semaphore::MAX_PERMITS,
        "tower-hardened: {what} must be at most {}",
        Semaphore::MAX_PERMITS
    );
}

/// Envoy's default pending-request queue per cluster (`max_pending_requests`).
pub(crate) const DEFAULT_MAX_WAITING: usize = 1024;

impl Config {
    #[track_caller]
    pub(crate) fn new(what: &str, limit: usize) -> Config {
        check_limit(what, limit);
        Config {
            limit,
            max_waiting: DEFAULT_MAX_WAITING,
            acquire_timeout: None,
            stats: None,
            count_in_flight: true,
        }
    }

    /// The stats handle, if in-flight requests are to be counted in it.
    pub(crate) fn in_flight_stats(&self) -> Option<&Stats> {
        self.stats.as_ref().filter(|_| self.count_in_flight)
    }

    pub(crate) fn refuse(&self, waiting: usize, scope: &dyn fmt::Display) -> Error {
        if let Some(stats) = &self.stats {
            stats.overload();
        }
        let err = Error::overloaded(Phase::Acquire, waiting);
        tracing::debug!(scope = %scope, limit = self.limit, "{err}");
        err
    }
}

/// What a request gets when it arrives.
pub(crate) enum Admission {
    /// A permit was free: go.
    Now(Permit),
    /// In the queue (already registered with the semaphore, so in arrival order).
    Wait(Ticket, AcquireFuture),
    /// The queue was full.
    Refused(Error),
}

impl Admission {
    /// Registers a waiter with the semaphore at once (a first poll with a no-op waker), so the
    /// order of service is the order of `call`, not the order of first poll. If a permit became
    /// free in between, the request goes at once.
    pub(crate) fn enqueue(ticket: Ticket, mut acquire: AcquireFuture) -> Admission {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match acquire.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Admission::Now(ticket.admit(permit)),
            // The semaphores of this crate are never closed.
            Poll::Ready(Err(_)) => unreachable!("limiter semaphore closed"),
            Poll::Pending => Admission::Wait(ticket, acquire),
        }
    }
}

/// The state of one global limit, shared by every service a layer makes.
pub(crate) struct Global {
    pub(crate) config: Config,
    sem: Arc<Semaphore>,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
}

impl fmt::Debug for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global")
            .field("limit", &self.config.limit)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .field("max_waiting", &self.config.max_waiting)
            .finish()
    }
}

impl Global {
    pub(crate) fn new(config: Config) -> Global {
        Global {
            sem: Arc::new(Semaphore::new(config.limit)),
            config,
            waiting: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Acquire)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Acquire)
    }

    pub(crate) fn available(&self) -> usize {
        self.sem.available_permits()
    }

    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        // tokio hands released permits straight to queued waiters, so `try_acquire` succeeds only
        // when nobody is queued: the fast path never jumps the queue.
        if let Ok(permit) = self.sem.clone().try_acquire_owned() {
            self.in_flight.fetch_add(1, AcqRel);
            if let Some(stats) = self.config.in_flight_stats() {
                stats.in_flight_add(1);
            }
            return Admission::Now(Permit::new(Scope::Global(self.clone()), permit));
        }
        let max = self.config.max_waiting;
        if let Err(waiting) = self
            .waiting
            .fetch_update(AcqRel, Acquire, |w| (w < max).then_some(w + 1))
        {
            return Admission::Refused(self.config.refuse(waiting, &"global"));
        }
        if let Some(stats) = &self.config.stats {
            stats.waiting_add(1);
        }
        let ticket = Ticket {
            scope: Some(Scope::Global(self.clone())),
        };
        Admission::enqueue(ticket, Box::pin(self.sem.clone().acquire_owned()))
    }
}

/// Which limiter a ticket or permit belongs to.
pub(crate) enum Scope {
    Global(Arc<Global>),
    Host(Arc<Hosts>, Arc<Host>),
}

impl Scope {
    pub(crate) fn config(&self) -> &Config {
        match self {
            Scope::Global(g) => &g.config,
            Scope::Host(h, _) => &h.config,
        }
    }

    /// A waiter got its permit.
    fn waited_in(&self) {
        match self {
            Scope::Global(g) => {
                g.waiting.fetch_sub(1, AcqRel);
                g.in_flight.fetch_add(1, AcqRel);
            }
            Scope::Host(h, host) => h.waited_in(host),
        }
        if let Some(stats) = &self.config().stats {
            stats.waiting_add(-1);
        }
        if let Some(stats) = self.config().in_flight_stats() {
            stats.in_flight_add(1);
        }
    }

    /// A waiter left without a permit (cancelled, timed out).
    fn gave_up(&self) {
        match self {
            Scope::Global(g) => {
                g.waiting.fetch_sub(1, AcqRel);
            }
            Scope::Host(h, host) => h.gave_up(host),
        }
        if let Some(stats) = &self.config().stats {
            stats.waiting_add(-1);
        }
    }

    /// A permit is being released: its counts go first.
    fn left(&self) {
        match self {
            Scope::Global(g) => {
                g.in_flight.fetch_sub(1, AcqRel);
            }
            Scope::Host(h, host) => h.left(host),
        }
        if let Some(stats) = self.config().in_flight_stats() {
            stats.in_flight_add(-1);
        }
    }

    /// A permit's semaphore permit is back: it no longer uses its host's entry.
    fn gone(&self) {
        if let Scope::Host(h, host) = self {
            h.release(host);
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global(_) => f.write_str("global"),
            Scope::Host(_, host) => fmt::Display::fmt(host.key(), f),
        }
    }
}

/// A place in a waiting queue. Dropped without [`Ticket::admit`], it gives the place back.
pub(crate) struct Ticket {
    pub(crate) scope: Option<Scope>,
}

impl Ticket {
    /// Turns the place in the queue into a place in flight.
    pub(crate) fn admit(mut self, permit: OwnedSemaphorePermit) -> Permit {
        let scope = self.scope.take().expect("a ticket is admitted once");
        scope.waited_in();
        Permit::new(scope, permit)
    }

    pub(crate) fn scope(&self) -> &Scope {
        self.scope.as_ref().expect("ticket in use")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            scope.gave_up();
        }
    }
}

/// A place in flight: a semaphore permit plus the counts it keeps. Released on drop.
pub(crate) struct Permit {
    scope: Scope,
    permit: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// A permit whose counts are already raised.
    pub(crate) fn new(scope: Scope, permit: OwnedSemaphorePermit) -> Permit {
        Permit {
            scope,
            permit: Some(permit),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // In this order: the counts first, so a waiter woken by the release is never counted
        // while this one still is (the in-flight count never exceeds the limit); then the
        // semaphore permit; then the use of the host's entry, so an entry seen idle has all its
        // permits back (a request finding it idle is never refused for a permit on its way).
        self.scope.left();
        drop(self.permit.take());
        self.scope.gone();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permit({})", self.scope)
    }
}
