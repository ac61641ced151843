use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use super::gate::Limiter;
use super::key::HostKey;
use super::layer::{Gate, Shared};

/// Reads the limit and the counts of one [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer) and
/// of every service it made. Cheap to clone; the numbers are live.
///
/// For a [`per_host`](super::AdaptiveLimitLayer::per_host) layer, `limit`, `in_flight` and
/// `waiting` add up every host it keeps; `limit_for` and `min_rtt_for` read one.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{AdaptiveLimitLayer, Aimd};
///
/// let aimd = Aimd::new().latency_threshold(Duration::from_millis(100));
/// let handle = AdaptiveLimitLayer::new(aimd, 1..=64).initial_limit(10).handle();
/// assert_eq!((handle.limit(), handle.in_flight(), handle.waiting()), (10, 0, 0));
/// assert_eq!(handle.min_rtt(), None); // nothing measured yet
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveLimitHandle {
    pub(crate) shared: Arc<Shared>,
}

impl AdaptiveLimitHandle {
    fn sum(&self, f: impl Fn(&Limiter) -> usize) -> usize {
        match &self.shared.gate {
            Gate::One(l) => f(l),
            Gate::PerHost(hosts) => hosts.each().iter().map(|l| f(l)).sum(),
        }
    }

    fn for_uri(&self, uri: &Uri) -> Option<Arc<Limiter>> {
        match &self.shared.gate {
            Gate::One(l) => Some(l.clone()),
            Gate::PerHost(hosts) => hosts.get(&HostKey::of_uri(uri)),
        }
    }

    /// The limit now (during a minimum-RTT probe, the probe's).
    pub fn limit(&self) -> usize {
        self.sum(Limiter::limit)
    }

    /// Requests holding a permit now (until their response body is done).
    pub fn in_flight(&self) -> usize {
        self.sum(Limiter::in_flight)
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.sum(Limiter::waiting)
    }

    /// The minimum RTT measured so far (`None` before the first measurement, for a per-host
    /// layer, and for [`Aimd`](super::Aimd) with a fixed latency threshold).
    pub fn min_rtt(&self) -> Option<Duration> {
        match &self.shared.gate {
            Gate::One(l) => l.min_rtt(),
            Gate::PerHost(_) => None,
        }
    }

    /// The limit for the host of `uri` (scheme and authority); `None` if the layer keeps no
    /// limit for that host (yet, or any more). For a layer that is not per host, its limit.
    pub fn limit_for(&self, uri: &Uri) -> Option<usize> {
        self.for_uri(uri).map(|l| l.limit())
    }

    /// The minimum RTT measured for the host of `uri`.
    pub fn min_rtt_for(&self, uri: &Uri) -> Option<Duration> {
        self.for_uri(uri).and_then(|l| l.min_rtt())
    }

    /// Hosts a per-host layer keeps a limit for (zero for a layer that is not per host).
    pub fn hosts(&self) -> usize {
        match &self.shared.gate {
            Gate::One(_) => 0,
            Gate::PerHost(hosts) => hosts.each().len(),
        }
    }
}
