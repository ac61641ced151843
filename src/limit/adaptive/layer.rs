use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tokio::sync::Semaphore;
use tower_layer::Layer;

use super::control::Settings;
use super::gate::{Admission, Config, Hosts, Limiter};
use super::key::HostKey;
use super::{AdaptiveAlgorithm, AdaptiveLimit, AdaptiveLimitHandle};
use crate::clock;
use crate::stats::Stats;

/// Limits how many requests are in flight at once, with a limit that follows the server's
/// latency and overload signals, each request counted (and its latency measured) until its
/// response body ends: [`AdaptiveLimit`].
///
/// The limit moves within `limits` by the rules of the algorithm, [`Aimd`](super::Aimd) or
/// [`Gradient`](super::Gradient). Like [`ConcurrencyLimitLayer`](crate::ConcurrencyLimitLayer),
/// one layer is one limit shared by every service it makes (or, with
/// [`per_host`](Self::per_host), one limit per host), waiters queue in a bounded queue inside
/// the response future, and each setter returns a layer with a fresh limit. Read the limit with
/// [`handle`](Self::handle) or in [`StatsSnapshot::adaptive_limit`](crate::StatsSnapshot).
///
/// Defaults: initial limit 20 (within `limits`), at most 1024 requests waiting, no acquire
/// timeout of its own, windows of at least 100 ms, the minimum RTT re-measured every 60 s plus
/// up to 15 % (Envoy's defaults).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{AdaptiveLimitLayer, Gradient, Stats};
///
/// let stats = Stats::new();
/// let layer = AdaptiveLimitLayer::new(Gradient::new(), 2..=200)
///     .initial_limit(16)
///     .max_waiting(64)
///     .acquire_timeout(Duration::from_secs(1))
///     .stats(stats.clone());
/// let handle = layer.handle();
/// assert_eq!(handle.limit(), 8); // the first minimum-RTT probe runs at half the limit
/// assert_eq!(stats.snapshot().adaptive_limit, 8);
/// ```
///
/// # Panics
///
/// [`new`](Self::new) panics when `limits` is empty (min above max), starts at zero or ends
/// above tokio's `Semaphore::MAX_PERMITS`; [`initial_limit`](Self::initial_limit) when the
/// limit is outside `limits`; [`acquire_timeout`](Self::acquire_timeout),
/// [`update_interval`](Self::update_interval) and [`min_rtt_probe`](Self::min_rtt_probe) on a
/// zero duration, and `min_rtt_probe` on a jitter outside `[0, 1]`.
#[derive(Debug, Clone)]
pub struct AdaptiveLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    pub(crate) gate: Gate,
}

#[derive(Debug)]
pub(crate) enum Gate {
    One(Arc<Limiter>),
    PerHost(Hosts),
}

impl Shared {
    fn new(config: Config) -> Shared {
        let config = Arc::new(config);
        let gate = if config.per_host {
            Gate::PerHost(Hosts::new(config.clone()))
        } else {
            Gate::One(Arc::new(Limiter::new(config.clone(), None)))
        };
        Shared { config, gate }
    }

    pub(crate) fn admit<B>(&self, req: &Request<B>) -> Admission {
        match &self.gate {
            Gate::One(l) => l.admit(),
            Gate::PerHost(hosts) => hosts.admit(HostKey::of(req)),
        }
    }
}

/// Envoy's default initial limit is 3 and Netflix's 20; 20 starts nearer a real capacity.
const DEFAULT_INITIAL: usize = 20;
/// Envoy's `max_pending_requests`.
const DEFAULT_MAX_WAITING: usize = 1024;

impl AdaptiveLimitLayer {
    /// An adaptive limit by `algorithm`, always within `limits` (`min..=max`).
    #[track_caller]
    pub fn new(algorithm: impl Into<AdaptiveAlgorithm>, limits: RangeInclusive<usize>) -> Self {
        let (min, max) = (*limits.start(), *limits.end());
        assert!(
            min > 0,
            "tower-hardened: AdaptiveLimitLayer limits must start above zero (a limit of zero would make every request wait forever)"
        );
        assert!(
            min <= max,
            "tower-hardened: AdaptiveLimitLayer limits must not be empty (min {min} is above max {max})"
        );
        assert!(
            max <= Semaphore::MAX_PERMITS,
            "tower-hardened: AdaptiveLimitLayer max limit must be at most {}",
            Semaphore::MAX_PERMITS
        );
        AdaptiveLimitLayer::from_config(Config {
            settings: Settings {
                algorithm: algorithm.into(),
                min,
                max,
                initial: DEFAULT_INITIAL.clamp(min, max),
                update_interval: Duration::from_millis(100),
                probe_interval: Duration::from_secs(60),
                probe_jitter: 0.15,
            },
            max_waiting: DEFAULT_MAX_WAITING,
            acquire_timeout: None,
            stats: None,
            per_host: false,
            count_in_flight: true,
        })
    }

    fn from_config(config: Config) -> Self {
        AdaptiveLimitLayer {
            shared: Arc::new(Shared::new(config)),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = (*self.shared.config).clone();
        f(&mut config);
        AdaptiveLimitLayer::from_config(config)
    }

    /// The limit to start from (default 20, or the nearest bound of `limits`). Start at or
    /// below what the servers can take: the first minimum-RTT probe runs at half of it.
    #[track_caller]
    pub fn initial_limit(self, initial: usize) -> Self {
        let s = &self.shared.config.settings;
        assert!(
            (s.min..=s.max).contains(&initial),
            "tower-hardened: AdaptiveLimitLayer initial_limit {initial} is outside its limits {}..={}",
            s.min,
            s.max
        );
        self.with(|c| c.settings.initial = initial)
    }

    /// At most `max` requests wait for a permit (per host with [`per_host`](Self::per_host));
    /// the next one fails at once with an [`Overloaded`](crate::ErrorKind::Overloaded) error of
    /// phase [`Acquire`](crate::Phase::Acquire). Zero means no queue; `usize::MAX` unbounded.
    pub fn max_waiting(self, max: usize) -> Self {
        self.with(|c| c.max_waiting = max)
    }

    /// Gives up waiting for a permit after `timeout`, with a timeout error of phase
    /// [`Acquire`](crate::Phase::Acquire) — or of [`Total`](crate::Phase::Total) if the
    /// request's deadline comes first.
    #[track_caller]
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        clock::check_duration("AdaptiveLimitLayer acquire_timeout", timeout);
        self.with(|c| c.acquire_timeout = Some(timeout))
    }

    /// The shortest sampling window (default 100 ms, Envoy's `concurrency_update_interval`).
    /// A window also waits for a few samples (10, or the limit if lower).
    #[track_caller]
    pub fn update_interval(self, interval: Duration) -> Self {
        clock::check_duration("AdaptiveLimitLayer update_interval", interval);
        self.with(|c| c.settings.update_interval = interval)
    }

    /// Re-measures the minimum RTT every `interval` plus a random part of up to
    /// `jitter × interval` (default 60 s and 0.15, Envoy's), so that many clients do not
    /// probe a server at the same moment.
    ///
    /// A probe halves the limit (at least the minimum) until a few requests sent at that
    /// limit have ended (twice the probe limit, 5 to 25), takes their median latency as the
    /// new minimum RTT, and puts the limit back. Requests beyond the probe limit wait in the
    /// queue meanwhile (up to [`max_waiting`](Self::max_waiting), as at any full limit) —
    /// Envoy drops to a limit of 3 and rejects the rest with `503`s. A
    /// probe also runs when the limit sat at its minimum for 5 windows in a row (Envoy's rule:
    /// the minimum RTT may be stale). Between probes, a window faster than the minimum RTT
    /// lowers it. ([`Aimd`](super::Aimd) with a fixed `latency_threshold` needs no minimum
    /// RTT and never probes.)
    #[track_caller]
    pub fn min_rtt_probe(self, interval: Duration, jitter: f64) -> Self {
        clock::check_duration("AdaptiveLimitLayer min_rtt_probe interval", interval);
        assert!(
            (0.0..=1.0).contains(&jitter),
            "tower-hardened: AdaptiveLimitLayer min_rtt_probe jitter must be within 0 and 1 (got {jitter})"
        );
        self.with(|c| {
            c.settings.probe_interval = interval;
            c.settings.probe_jitter = jitter;
        })
    }

    /// One limit per host (scheme + authority, as
    /// [`PerHostLimitLayer`](crate::PerHostLimitLayer) keys them) instead of one for every
    /// request, so a slow host's limit falls without cutting the others'. Each host starts at
    /// the initial limit and learns on its own; the queue bound is per host. Hosts with nothing
    /// in flight keep what they learned until the map grows past twice its size at its last
    /// pruning (and past 64); then those are removed.
    pub fn per_host(self) -> Self {
        self.with(|c| c.per_host = true)
    }

    /// Counts in-flight and waiting requests, refusals, acquire timeouts and the current limit
    /// ([`StatsSnapshot::adaptive_limit`](crate::StatsSnapshot)) in `stats`. Give one
    /// [`Stats`] to one limiter only (see
    /// [`ConcurrencyLimitLayer::stats`](crate::ConcurrencyLimitLayer::stats)).
    pub fn stats(self, stats: Stats) -> Self {
        self.with(|c| c.stats = Some(stats))
    }

    /// Counts waits, refusals, timeouts and the limit in the stats but not `in_flight`, for an
    /// adaptive limiter stacked with a global one on the same handle (the preset does this).
    #[cfg(feature = "preset")]
    pub(crate) fn without_in_flight_count(self) -> Self {
        self.with(|c| c.count_in_flight = false)
    }

    /// A handle to read the limit and the counts, shared with every service the layer makes.
    pub fn handle(&self) -> AdaptiveLimitHandle {
        AdaptiveLimitHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit::new(inner, self.clone())
    }
}
