//! One shared, cloneable handle of counters for every layer: [`Stats`] and its [`StatsSnapshot`].
//!
//! Give clones of one [`Stats`] to the layers' `stats` setters (the preset gives its own to every
//! layer it builds) and read a [`StatsSnapshot`] at any time. The counters are atomics: counting
//! takes no lock and never waits. Nothing here panics.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{DeadlineLayer, Phase, Stats};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let stats = Stats::new();
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(1)).stats(stats.clone()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         tokio::time::sleep(Duration::from_secs(5)).await; // a server slow to answer
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     }));
//! assert!(svc.oneshot(Request::new(())).await.is_err());
//! assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::error::Phase;

/// Why a background drain of a dropped body was given up (see the `drain` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DrainAbandon {
    /// The body was longer than the byte cap (by its size hint or by what was read).
    Bytes,
    /// The body did not end within the time cap.
    Time,
    /// Too many drains were already running.
    Concurrency,
    /// The body failed while being drained.
    Error,
    /// No tokio runtime to drain on.
    NoRuntime,
}

impl DrainAbandon {
    /// Every reason (a slice: a new reason is not a breaking change).
    pub const ALL: &'static [DrainAbandon] = &[
        DrainAbandon::Bytes,
        DrainAbandon::Time,
        DrainAbandon::Concurrency,
        DrainAbandon::Error,
        DrainAbandon::NoRuntime,
    ];
}

/// Why a connection was closed or retired by this crate's pool machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Idle longer than the idle timeout.
    Idle,
    /// Older than its maximum lifetime.
    Lifetime,
    /// Over an idle cap (per host or in total).
    Cap,
    /// The peer closed it or it failed.
    Error,
    /// Any other end (the client was dropped, the connection was not reusable, …).
    Other,
}

impl CloseReason {
    /// Every reason (a slice: a new reason is not a breaking change).
    pub const ALL: &'static [CloseReason] = &[
        CloseReason::Idle,
        CloseReason::Lifetime,
        CloseReason::Cap,
        CloseReason::Error,
        CloseReason::Other,
    ];
}

#[derive(Default)]
struct Inner {
    in_flight: AtomicI64,
    waiting: AtomicI64,
    timeouts: [AtomicU64; Phase::ALL.len()],
    overloads: AtomicU64,
    drains_started: AtomicU64,
    drains_finished: AtomicU64,
    drains_abandoned: [AtomicU64; DrainAbandon::ALL.len()],
    leaks: AtomicU64,
    connections_opened: AtomicU64,
    connections_reused: AtomicU64,
    connections_closed: [AtomicU64; CloseReason::ALL.len()],
    connections_open: AtomicI64,
    adaptive_limit: AtomicI64,
    replays: AtomicU64,
    connections_idle: AtomicI64,
}

/// A cloneable handle of counters shared by every layer it is given to.
///
/// Each layer has a `stats(Stats)` setter; give them all clones of one handle and read one
/// [`StatsSnapshot`] for the whole stack. Counting is a relaxed atomic add: cheap enough to leave
/// on in production. With the `metrics` feature, timeouts, overloads, drain outcomes, leaks and
/// closed connections are also counted as the `tower_hardened.*` metrics (see
/// [`telemetry`](crate::telemetry)).
///
/// # Example
///
/// ```
/// use tower_hardened::{Phase, Stats};
///
/// let stats = Stats::new();
/// let snap = stats.snapshot();
/// assert_eq!(snap.in_flight, 0);
/// assert_eq!(snap.timeouts(Phase::Total), 0);
/// ```
#[derive(Clone, Default)]
pub struct Stats {
    inner: Arc<Inner>,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Stats").field(&self.snapshot()).finish()
    }
}

fn gauge(v: &AtomicI64) -> u64 {
    v.load(Relaxed).max(0) as u64
}

impl Stats {
    /// A new handle with every counter at zero.
    pub fn new() -> Self {
        Stats::default()
    }

    /// Reads every counter at once (each is read on its own, so under load the numbers may be
    /// a few operations apart).
    pub fn snapshot(&self) -> StatsSnapshot {
        let i = &*self.inner;
        StatsSnapshot {
            in_flight: gauge(&i.in_flight),
            waiting: gauge(&i.waiting),
            timeouts: std::array::from_fn(|k| i.timeouts[k].load(Relaxed)),
            overloads: i.overloads.load(Relaxed),
            drains_started: i.drains_started.load(Relaxed),
            drains_finished: i.drains_finished.load(Relaxed),
            drains_abandoned: std::array::from_fn(|k| i.drains_abandoned[k].load(Relaxed)),
            leaks: i.leaks.load(Relaxed),
            connections_opened: i.connections_opened.load(Relaxed),
            connections_reused: i.connections_reused.load(Relaxed),
            connections_closed: std::array::from_fn(|k| i.connections_closed[k].load(Relaxed)),
            connections_open: gauge(&i.connections_open),
            adaptive_limit: gauge(&i.adaptive_limit),
            replays: i.replays.load(Relaxed),
            connections_idle: gauge(&i.connections_idle),
        }
    }

    /// Whether two handles share the same counters.
    pub fn same(&self, other: &Stats) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn timeout(&self, phase: Phase) {
        self.inner.timeouts[phase.index()].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::timeout(phase);
    }
    #[cfg(any(feature = "limit", feature = "pool", feature = "transport", test))]
    pub(crate) fn overload(&self) {
        self.inner.overloads.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::overload();
    }
    #[cfg(any(feature = "limit", test))]
    pub(crate) fn in_flight_add(&self, delta: i64) {
        self.inner.in_flight.fetch_add(delta, Relaxed);
    }
    #[cfg(any(feature = "limit", test))]
    pub(crate) fn waiting_add(&self, delta: i64) {
        self.inner.waiting.fetch_add(delta, Relaxed);
    }
    #[cfg(any(feature = "drain", test))]
    pub(crate) fn drain_started(&self) {
        self.inner.drains_started.fetch_add(1, Relaxed);
    }
    #[cfg(any(feature = "drain", test))]
    pub(crate) fn drain_finished(&self) {
        self.inner.drains_finished.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::drain(None);
    }
    #[cfg(any(feature = "drain", test))]
    pub(crate) fn drain_abandoned(&self, why: DrainAbandon) {
        self.inner.drains_abandoned[why as usize].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::drain(Some(why));
    }
    #[cfg(any(feature = "drain", feature = "pool", feature = "transport", test))]
    pub(crate) fn leak(&self) {
        self.inner.leaks.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::leak();
    }
    #[cfg(any(feature = "pool", feature = "transport", test))]
    pub(crate) fn connection_opened(&self) {
        self.inner.connections_opened.fetch_add(1, Relaxed);
        self.inner.connections_open.fetch_add(1, Relaxed);
    }
    #[cfg(any(feature = "pool", feature = "transport", test))]
    pub(crate) fn connection_reused(&self) {
        self.inner.connections_reused.fetch_add(1, Relaxed);
    }
    #[cfg(feature = "limit")]
    pub(crate) fn adaptive_limit_add(&self, delta: i64) {
        self.inner.adaptive_limit.fetch_add(delta, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::adaptive_limit(delta);
    }
    pub(crate) fn replay(&self) {
        self.inner.replays.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::replay();
    }
    /// Idle connections of the keyed pool, up or down by `delta`.
    #[cfg(any(feature = "pool", feature = "transport", test))]
    pub(crate) fn idle_add(&self, delta: i64) {
        if delta != 0 {
            self.inner.connections_idle.fetch_add(delta, Relaxed);
        }
    }
    #[cfg(any(feature = "pool", feature = "transport", test))]
    pub(crate) fn connection_closed(&self, why: CloseReason) {
        self.inner.connections_closed[why as usize].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        crate::telemetry::record::connection_closed(why);
        self.inner.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Counters read at one moment from a [`Stats`] handle.
///
/// # Example
///
/// ```
/// use tower_hardened::{CloseReason, DrainAbandon, Stats};
///
/// let snap = Stats::new().snapshot();
/// assert_eq!(snap.drains_abandoned(DrainAbandon::Time), 0);
/// assert_eq!(snap.connections_closed(CloseReason::Idle), 0);
/// assert_eq!(snap.timeouts_total(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Requests holding a concurrency permit (their response bodies included).
    pub in_flight: u64,
    /// Requests waiting for a permit.
    pub waiting: u64,
    timeouts: [u64; Phase::ALL.len()],
    /// Requests refused at once because a waiting queue was full.
    pub overloads: u64,
    /// Background drains of dropped bodies started.
    pub drains_started: u64,
    /// Background drains that read the body to its end (the connection went back to the pool).
    pub drains_finished: u64,
    drains_abandoned: [u64; DrainAbandon::ALL.len()],
    /// Bodies reported as held too long (and keyed-pool checkouts held past the pool's
    /// threshold).
    pub leaks: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Requests that reused a pooled connection.
    pub connections_reused: u64,
    connections_closed: [u64; CloseReason::ALL.len()],
    /// Connections open now.
    pub connections_open: u64,
    /// The current limit of the adaptive limiters counted here (`AdaptiveLimitLayer`): their
    /// sum, over every host for a per-host one. Zero without an adaptive limiter.
    pub adaptive_limit: u64,
    /// Requests sent a second time because their reused connection was closed by the peer
    /// before any byte of the response (`ReplayLayer`).
    pub replays: u64,
    /// Connections idle now in the keyed pool (`pool::Pool`, and so in the transport); the
    /// legacy hyper-util path cannot see idleness and leaves it at zero.
    pub connections_idle: u64,
}

impl StatsSnapshot {
    /// Timeouts that fired in `phase`.
    pub fn timeouts(&self, phase: Phase) -> u64 {
        self.timeouts[phase.index()]
    }

    /// Timeouts of every phase added up.
    pub fn timeouts_total(&self) -> u64 {
        self.timeouts.iter().sum()
    }

    /// Drains given up for `why`.
    pub fn drains_abandoned(&self, why: DrainAbandon) -> u64 {
        self.drains_abandoned[why as usize]
    }

    /// Connections closed for `why`.
    pub fn connections_closed(&self, why: CloseReason) -> u64 {
        self.connections_closed[why as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_between_clones() {
        let a = Stats::new();
        let b = a.clone();
        assert!(a.same(&b));
        assert!(!a.same(&Stats::new()));
        b.timeout(Phase::BodyIdle);
        b.timeout(Phase::BodyIdle);
        b.overload();
        b.in_flight_add(2);
        b.in_flight_add(-1);
        b.waiting_add(3);
        b.drain_started();
        b.drain_finished();
        b.drain_abandoned(DrainAbandon::Concurrency);
        b.leak();
        b.connection_opened();
        b.connection_opened();
        b.connection_reused();
        b.connection_closed(CloseReason::Lifetime);
        b.replay();
        b.idle_add(3);
        b.idle_add(-1);
        let s = a.snapshot();
        assert_eq!(s.replays, 1);
        assert_eq!(s.timeouts(Phase::BodyIdle), 2);
        assert_eq!(s.timeouts(Phase::Total), 0);
        assert_eq!(s.timeouts_total(), 2);
        assert_eq!(s.overloads, 1);
        assert_eq!(s.in_flight, 1);
        assert_eq!(s.waiting, 3);
        assert_eq!((s.drains_started, s.drains_finished, s.leaks), (1, 1, 1));
        assert_eq!(s.drains_abandoned(DrainAbandon::Concurrency), 1);
        assert_eq!(s.connections_reused, 1);
        assert_eq!(s.connections_opened, 2);
        assert_eq!(s.connections_open, 1);
        assert_eq!(s.connections_closed(CloseReason::Lifetime), 1);
        assert_eq!(s.connections_idle, 2);
    }
}
