use std::sync::Arc;

use http::Uri;

use super::global::Global;
use super::per_host::{HostKey, Hosts};

/// Reads the counts of one [`ConcurrencyLimitLayer`](super::ConcurrencyLimitLayer) and of every
/// service it made. Cheap to clone; the numbers are live.
///
/// # Example
///
/// ```
/// let handle = tower_hardened::ConcurrencyLimitLayer::new(8).handle();
/// assert_eq!(handle.available(), 8);
/// ```
#[derive(Debug, Clone)]
pub struct LimitHandle {
    pub(crate) gate: Arc<Global>,
}

impl LimitHandle {
    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.gate.config.limit
    }

    /// Requests holding a permit now (until their response body is done).
    pub fn in_flight(&self) -> usize {
        self.gate.in_flight()
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.gate.waiting()
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.gate.available()
    }
}

/// Reads the counts of one [`PerHostLimitLayer`](super::PerHostLimitLayer) and of every service
/// it made. Cheap to clone; the numbers are live.
///
/// # Example
///
/// ```
/// let handle = tower_hardened::PerHostLimitLayer::new(4).handle();
/// assert_eq!(handle.limit(), 4);
/// assert_eq!(handle.hosts(), 0);
/// assert_eq!(handle.in_flight_for(&"https://example.com/".parse().unwrap()), 0);
/// ```
#[derive(Debug, Clone)]
pub struct PerHostHandle {
    pub(crate) gate: Arc<Hosts>,
}

impl PerHostHandle {
    /// The configured limit, per host.
    pub fn limit(&self) -> usize {
        self.gate.config.limit
    }

    /// Hosts in use now: those with a request in flight or waiting. Goes back to zero when
    /// every request is done (some idle hosts' state is kept: see
    /// [`PerHostLimitLayer`](super::PerHostLimitLayer)).
    pub fn hosts(&self) -> usize {
        self.gate.hosts()
    }

    /// Requests holding a permit now, over every host.
    pub fn in_flight(&self) -> usize {
        self.gate.in_flight()
    }

    /// Requests waiting for a permit now, over every host.
    pub fn waiting(&self) -> usize {
        self.gate.waiting()
    }

    /// Requests holding a permit for the host of `uri` (its scheme and authority).
    pub fn in_flight_for(&self, uri: &Uri) -> usize {
        self.gate.counts(&HostKey::of_uri(uri)).0
    }

    /// Requests waiting for the host of `uri`.
    pub fn waiting_for(&self, uri: &Uri) -> usize {
        self.gate.counts(&HostKey::of_uri(uri)).1
    }
}
