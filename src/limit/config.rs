//! The settings both limiters share, and their bound checks.

use std::fmt;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::Bound;
use crate::deadline::RequestDeadline;

use crate::error::{Error, Phase};
use crate::stats::Stats;

/// Envoy's default pending-request queue per cluster (`max_pending_requests`).
pub(crate) const DEFAULT_MAX_WAITING: usize = 1024;

/// How many idle hosts' state a per-host limiter keeps by default (see [`Config::max_idle_hosts`]).
pub(crate) const DEFAULT_MAX_IDLE_HOSTS: usize = 64;

/// The settings of one limiter, global or per host.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) limit: usize,
    pub(crate) max_waiting: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) stats: Option<Stats>,
    /// Whether this limiter counts `in_flight` in `stats` (the preset stacks two limiters on one
    /// handle and lets only the global one count it, so no request counts twice).
    pub(crate) count_in_flight: bool,
    /// Per host only: idle hosts' entries are kept until they outnumber both this and the hosts
    /// in use; then every idle one is removed at once.
    pub(crate) max_idle_hosts: usize,
}

/// Where a wait for a permit ends, starting now: the limiter's acquire timeout or the request's
/// deadline, whichever is first (none without either).
pub(crate) fn wait_bound(
    acquire_timeout: Option<Duration>,
    deadline: Option<&RequestDeadline>,
) -> Option<Bound> {
    match (acquire_timeout, deadline) {
        (Some(limit), d) => Some(Bound::new(Instant::now(), limit, Phase::Acquire, d)),
        (None, Some(d)) => Some(Bound {
            at: d.instant(),
            phase: Phase::Total,
            limit: d.budget(),
        }),
        (None, None) => None,
    }
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
            max_idle_hosts: DEFAULT_MAX_IDLE_HOSTS,
        }
    }

    /// The stats handle, if in-flight requests are to be counted in it.
    #[inline]
    pub(crate) fn in_flight_stats(&self) -> Option<&Stats> {
        self.stats.as_ref().filter(|_| self.count_in_flight)
    }

    /// The error of a request refused because `waiting` requests already wait in `scope`.
    pub(crate) fn refuse(&self, waiting: usize, scope: &dyn fmt::Display) -> Error {
        if let Some(stats) = &self.stats {
            stats.overload();
        }
        let err = Error::overloaded(Phase::Acquire, waiting);
        tracing::debug!(scope = %scope, limit = self.limit, "{err}");
        err
    }
}
