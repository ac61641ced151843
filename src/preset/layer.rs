//! [`HardenedLayer`], the request-side stack of the preset as a layer.

use tower_layer::Layer;

use super::fused::{Config, Fused};
use super::request_body::Compact;
use super::service::Core;
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
    /// The service under it is the crate's transport, which finds the header clock and the
    /// deadline in the request body when the fused stack puts them there, so it needs no
    /// request extensions (for [`Hardened::client`]; the layered stack puts them in the
    /// extensions anyway).
    pub(super) own_transport: bool,
}

impl<S> Layer<S> for HardenedLayer {
    type Service = HardenedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let c = &self.config;
        let stats = &c.stats;
        let deadline = DeadlineLayer::new(c.total)
            .stats(stats.clone())
            .propagate_grpc_timeout(self.grpc);
        let Some(adaptive) = &c.limits.adaptive else {
            let config = Config {
                deadline,
                stats: stats.clone(),
                drain: c.drain.shared.clone(),
                max_body: c.max_response_body,
                body_idle: c.body_idle,
                response_headers: c.response_headers,
                request_write: c.request_write,
                extensions: !self.own_transport,
                sleeps: Default::default(),
            };
            return HardenedService::new(Core::Fast(Fused::new(
                inner,
                c.telemetry.cache.clone(),
                c.limits.per_host.clone(),
                c.limits.global.clone(),
                self.replay(),
                config,
            )));
        };
        let inner = RequestWriteTimeoutLayer::new(c.request_write)
            .stats(stats.clone())
            .layer(Compact(inner));
        let inner = BodyIdleTimeoutLayer::new(c.body_idle)
            .stats(stats.clone())
            .layer(inner);
        let inner = ResponseHeaderTimeoutLayer::new(c.response_headers)
            .stats(stats.clone())
            .layer(inner);
        let inner = self.replay().layer(inner);
        let inner = ResponseBodyLimitLayer::new(c.max_response_body).layer(inner);
        let inner = c.drain.layer(inner);
        let inner = c.limits.global.layer(inner);
        let inner = adaptive.layer(inner);
        let inner = deadline.layer(inner);
        HardenedService::new(Core::Layered(c.telemetry.layer(inner)))
    }
}

impl HardenedLayer {
    fn replay(&self) -> ReplayLayer {
        ReplayLayer::new()
            .replay_put_delete(self.config.replay_put_delete)
            .stats(self.config.stats.clone())
    }
}
