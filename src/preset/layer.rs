//! [`HardenedLayer`], the request-side stack of the preset, and the types it makes.

use hyper_util::client::legacy::connect::HttpConnector;
use tower_layer::Layer;

use super::Hardened;
use crate::body_limit::{ResponseBodyLimit, ResponseBodyLimitLayer};
use crate::deadline::{Deadline, DeadlineLayer};
use crate::drain::DrainOnDrop;
use crate::limit::{ConcurrencyLimit, PerHostLimit};
use crate::pool::PoolClient;
use crate::timeout::{
    BodyIdleTimeout, BodyIdleTimeoutLayer, ConnectTimeout, RequestWriteBody, RequestWriteTimeout,
    RequestWriteTimeoutLayer, ResponseHeaderTimeout, ResponseHeaderTimeoutLayer,
};

/// The request-side stack of [`Hardened`] around an inner service `S`.
pub type HardenedService<S> = Deadline<
    PerHostLimit<
        ConcurrencyLimit<
            DrainOnDrop<
                ResponseBodyLimit<ResponseHeaderTimeout<BodyIdleTimeout<RequestWriteTimeout<S>>>>,
            >,
        >,
    >,
>;

/// The connector of [`Hardened::client`]: hyper-util's `HttpConnector` bounded by the connect
/// timeout.
pub type HardenedConnector = ConnectTimeout<HttpConnector>;

/// The client of [`Hardened::client`], for request bodies of type `B`.
pub type HardenedClient<B> = HardenedService<PoolClient<HardenedConnector, RequestWriteBody<B>>>;

/// The request-side stack of a [`Hardened`] preset as a [`Layer`].
#[derive(Debug, Clone)]
pub struct HardenedLayer {
    pub(super) config: Hardened,
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
        let inner = ResponseBodyLimitLayer::new(c.max_response_body).layer(inner);
        let inner = c.drain.layer(inner);
        let inner = c.limits.global.layer(inner);
        let inner = c.limits.per_host.layer(inner);
        DeadlineLayer::new(c.total)
            .stats(stats.clone())
            .layer(inner)
    }
}
