//! The two algorithms' settings: [`Aimd`] and [`Gradient`], and [`AdaptiveAlgorithm`], either.

use std::time::Duration;

use crate::clock;

/// Additive increase, multiplicative decrease (TCP Reno's rule) for an
/// [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer).
///
/// At the end of each sampling window the limit falls to `limit × backoff` if the window saw an
/// overload signal — a timeout, an error, a refusal from below, a `429`/`503`/`504`, a request
/// dropped before its response — or if its median latency (admission to the end of the body)
/// was above the threshold: `tolerance × minimum RTT` by default, or a fixed
/// [`latency_threshold`](Self::latency_threshold). Otherwise it grows by `increase`, unless the
/// window was app-limited (never half as many requests in flight as the limit allowed).
///
/// Defaults: `increase` 1, `backoff` 0.9 (Netflix concurrency-limits' `AIMDLimit`),
/// `tolerance` 1.5.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{AdaptiveLimitLayer, Aimd};
///
/// // Halve on overload; a window whose median latency passes 250 ms counts as one.
/// let aimd = Aimd::new().backoff(0.5).latency_threshold(Duration::from_millis(250));
/// let layer = AdaptiveLimitLayer::new(aimd, 1..=100);
/// assert_eq!(layer.handle().limit(), 20);
/// ```
///
/// # Panics
///
/// [`increase`](Self::increase) panics on zero, [`backoff`](Self::backoff) unless
/// `0 < backoff < 1`, [`tolerance`](Self::tolerance) unless it is a finite number above 1, and
/// [`latency_threshold`](Self::latency_threshold) on zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    pub(crate) increase: usize,
    pub(crate) backoff: f64,
    pub(crate) tolerance: f64,
    pub(crate) latency_threshold: Option<Duration>,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            increase: 1,
            backoff: 0.9,
            tolerance: 1.5,
            latency_threshold: None,
        }
    }
}

impl Aimd {
    /// The defaults: `+1` per window, `× 0.9` on overload, overload above 1.5 × the minimum RTT.
    pub fn new() -> Self {
        Aimd::default()
    }

    /// How much the limit grows after a window without overload.
    #[track_caller]
    pub fn increase(mut self, increase: usize) -> Self {
        assert!(
            increase > 0,
            "tower-hardened: Aimd increase must be greater than zero (the limit could never grow)"
        );
        self.increase = increase;
        self
    }

    /// The factor the limit is multiplied by after a window with overload.
    #[track_caller]
    pub fn backoff(mut self, backoff: f64) -> Self {
        assert!(
            backoff > 0.0 && backoff < 1.0,
            "tower-hardened: Aimd backoff must be above 0 and below 1 (got {backoff})"
        );
        self.backoff = backoff;
        self
    }

    /// A window whose median latency is above `tolerance × minimum RTT` counts as overload.
    /// The minimum RTT is measured as for [`Gradient`] (see
    /// [`AdaptiveLimitLayer::min_rtt_probe`](super::AdaptiveLimitLayer::min_rtt_probe)).
    #[track_caller]
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        assert!(
            tolerance > 1.0 && tolerance.is_finite(),
            "tower-hardened: Aimd tolerance must be a finite number above 1 (got {tolerance})"
        );
        self.tolerance = tolerance;
        self.latency_threshold = None;
        self
    }

    /// A window whose median latency is above `threshold` counts as overload, instead of a
    /// multiple of the minimum RTT. No minimum RTT is measured then, so there are no probes.
    #[track_caller]
    pub fn latency_threshold(mut self, threshold: Duration) -> Self {
        clock::check_duration("Aimd latency_threshold", threshold);
        self.latency_threshold = Some(threshold);
        self
    }
}

/// Envoy's gradient controller for an [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer):
/// `gradient = (minRTT + buffer) / sampleRTT`, clamped to `[0.5, 2]`, and the new limit is
/// `limit × gradient`.
///
/// The sample RTT is the median latency of a sampling window, each latency running from
/// admission to the end of the response body. When the server queues, its latency grows with
/// what is sent beyond its capacity and the gradient brings the limit back to about
/// `(1 + buffer) ×` that capacity in one window; while it does not, the limit grows by
/// `1 + buffer` per window (by one request at least), unless the window was app-limited (never half as many requests in
/// flight as the limit allowed), when it does not grow at all. A window with overload signals
/// (timeouts, errors, refusals from below, `429`/`503`/`504`, requests dropped before their
/// response) takes a fraction `r` of failures into account as `gradient ≤ 1 − r/2`: it never
/// grows, and a window where everything failed halves the limit even though the latency of a
/// timeout says nothing (Netflix concurrency-limits #137).
///
/// The minimum RTT is measured at startup and re-measured on a jittered interval with half
/// the limit (see [`AdaptiveLimitLayer::min_rtt_probe`](super::AdaptiveLimitLayer::min_rtt_probe)).
///
/// Default `buffer` 0.1. Envoy's is 0.25 plus `√limit` of headroom every window: on a server
/// whose latency grows in proportion beyond a capacity of 20 to 40 requests, that settles 40 to
/// 50 % above the capacity; this settles 10 % above it (`benches/adaptive.rs`).
///
/// # Example
///
/// ```
/// use tower_hardened::{AdaptiveLimitLayer, Gradient};
///
/// let layer = AdaptiveLimitLayer::new(Gradient::new().buffer(0.2), 4..=256).initial_limit(32);
/// assert_eq!(layer.handle().limit(), 16); // the first minimum-RTT probe runs at half
/// ```
///
/// # Panics
///
/// [`buffer`](Self::buffer) panics unless the buffer is a finite number above zero (with no
/// buffer the limit could never grow).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    pub(crate) buffer: f64,
}

impl Default for Gradient {
    fn default() -> Self {
        Gradient { buffer: 0.1 }
    }
}

impl Gradient {
    /// The defaults: a buffer of 10 % of the minimum RTT.
    pub fn new() -> Self {
        Gradient::default()
    }

    /// The latency above the minimum RTT still taken as "not queueing", as a fraction of it.
    #[track_caller]
    pub fn buffer(mut self, buffer: f64) -> Self {
        assert!(
            buffer > 0.0 && buffer.is_finite(),
            "tower-hardened: Gradient buffer must be a finite number above zero (got {buffer})"
        );
        self.buffer = buffer;
        self
    }
}

/// The algorithm of an [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer): [`Aimd`] or
/// [`Gradient`] (both convert into it).
///
/// # Example
///
/// ```
/// use tower_hardened::{AdaptiveAlgorithm, Gradient};
///
/// let algorithm: AdaptiveAlgorithm = Gradient::new().into();
/// assert!(matches!(algorithm, AdaptiveAlgorithm::Gradient(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AdaptiveAlgorithm {
    /// Additive increase, multiplicative decrease.
    Aimd(Aimd),
    /// Envoy's gradient.
    Gradient(Gradient),
}

impl AdaptiveAlgorithm {
    /// Whether the algorithm needs the minimum RTT (and so the probes that measure it).
    pub(crate) fn needs_min_rtt(&self) -> bool {
        match self {
            AdaptiveAlgorithm::Aimd(a) => a.latency_threshold.is_none(),
            AdaptiveAlgorithm::Gradient(_) => true,
        }
    }
}

impl From<Aimd> for AdaptiveAlgorithm {
    fn from(a: Aimd) -> Self {
        AdaptiveAlgorithm::Aimd(a)
    }
}

impl From<Gradient> for AdaptiveAlgorithm {
    fn from(g: Gradient) -> Self {
        AdaptiveAlgorithm::Gradient(g)
    }
}
