use tower_layer::Layer;

use super::exchange::Cache;

use super::Telemetry;

/// Records every request in the OpenTelemetry HTTP client names: one `http.client.request`
/// span, and with the `metrics` feature the `http.client.*` series. Produces [`Telemetry`].
///
/// See the [module docs](super) for the names, the attributes and where it goes in a stack.
///
/// # Example
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_hardened::{DeadlineLayer, TelemetryLayer};
/// # use std::time::Duration;
///
/// let stack = ServiceBuilder::new()
///     .layer(TelemetryLayer::new()) // outermost: it sees every outcome, the deadline's too
///     .layer(DeadlineLayer::new(Duration::from_secs(30)));
/// # let _ = stack;
/// ```
#[derive(Debug, Clone, Default)]
pub struct TelemetryLayer {
    pub(crate) cache: Cache,
}

impl TelemetryLayer {
    /// A new layer. Every service it makes shares one set of registered series (with `metrics`:
    /// kept per method and host, at most 256 hosts). With the `metrics` feature, it also describes the crate's metrics to the
    /// recorder installed now (see `telemetry::describe_metrics`).
    pub fn new() -> Self {
        #[cfg(feature = "metrics")]
        super::describe_metrics();
        TelemetryLayer::default()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            cache: self.cache.clone(),
        }
    }
}
