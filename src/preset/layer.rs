//! [`HardenedLayer`], the request-side stack of the preset as a layer.

use tower_layer::Layer;

use super::host::HostLimit;
use super::{Hardened, HardenedService};
use crate::body_limit::ResponseBodyLimitLayer;
use crate::deadline::DeadlineLayer;
use crate::replay::ReplayLayer;
use crate::timeout::{BodyIdleTimeoutLayer, RequestWriteTimeoutLayer, ResponseHeaderTimeoutLayer};

/// The request-side stack of a [`Hardened`] preset as a [`Layer`].
#[derive(Debug, Clone)]
pub struct HardenedLayer {
    pub(super) config: Hardened,
    /// Sends the time left as `grpc-timeout` (for [`Hardened::grpc_layer`]).
    pub(super) grpc: bool,
}

impl<S> Layer<S> for HardenedLayer {
    type Service = HardenedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let c = &self.config;
        let stats = &c.stats;
        let inner = RequestWriteTimeoutLayer::new(c.request_write)
            .stats(stats.clone())
            .layer(inner);
        let inner = BodyIdleTimeoutLayer::new(c.body_idle)
            .stats(stats.clone())
            .layer(inner);
        let inner = ResponseHeaderTimeoutLayer::new(c.response_headers)
            .stats(stats.clone())
            .layer(inner);
        let inner = ReplayLayer::new()
            .replay_put_delete(c.replay_put_delete)
            .stats(stats.clone())
            .layer(inner);
        let inner = ResponseBodyLimitLayer::new(c.max_response_body).layer(inner);
        let inner = c.drain.layer(inner);
        let inner = c.limits.global.layer(inner);
        let inner = match &c.limits.adaptive {
            Some(adaptive) => HostLimit::Adaptive(adaptive.layer(inner)),
            None => HostLimit::Static(c.limits.per_host.layer(inner)),
        };
        let inner = DeadlineLayer::new(c.total)
            .stats(stats.clone())
            .propagate_grpc_timeout(self.grpc)
            .layer(inner);
        HardenedService::new(c.telemetry.layer(inner))
    }
}
