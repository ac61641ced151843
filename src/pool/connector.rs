use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use tower_service::Service;

use super::hosts::key_of;
use super::{PoolConnectFuture, PoolConnectorLayer, PoolIo};
use crate::error::BoxError;

thread_local! {
    // Dials started on this thread: `RetireFuture` reads it around a poll of hyper-util's
    // client to tell that the client dialed for its request in that poll.
    static DIALS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Dials started on this thread so far (wrapping).
pub(crate) fn dials_on_this_thread() -> u64 {
    DIALS.with(std::cell::Cell::get)
}

/// A connector whose connections are capped per host and retire with age: see
/// [`PoolConnectorLayer`].
///
/// # Example
///
/// ```
/// use hyper_util::client::legacy::connect::HttpConnector;
/// use tower_hardened::{PoolConnector, PoolConnectorLayer};
///
/// let connector = PoolConnector::new(HttpConnector::new(), PoolConnectorLayer::new().max_conns_per_host(4));
/// assert_eq!(connector.open_connections(&"http://example.com".parse().unwrap()), 0);
/// ```
#[derive(Debug, Clone)]
pub struct PoolConnector<C> {
    inner: C,
    layer: Arc<PoolConnectorLayer>,
}

impl<C> PoolConnector<C> {
    /// Wraps `inner` with the limits of `layer`.
    pub fn new(inner: C, layer: PoolConnectorLayer) -> Self {
        PoolConnector {
            inner,
            layer: Arc::new(layer),
        }
    }

    /// Connections dialing or open right now to `uri`'s scheme and authority.
    pub fn open_connections(&self, uri: &Uri) -> usize {
        self.layer.open_connections(uri)
    }

    /// The inner connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner connector, mutably.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Gives back the inner connector.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Service<Uri> for PoolConnector<C>
where
    C: Service<Uri> + Clone,
    C::Error: Into<BoxError>,
{
    type Response = PoolIo<C::Response>;
    type Error = BoxError;
    type Future = PoolConnectFuture<C, C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let ready = self.inner.poll_ready(cx).map_err(Into::into);
        if ready.is_pending() {
            // A dial on its way (the connector is not ready yet) counts as one.
            DIALS.with(|d| d.set(d.get().wrapping_add(1)));
        }
        ready
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        DIALS.with(|d| d.set(d.get().wrapping_add(1)));
        // The inner connector was made ready by `poll_ready`: hand that one to the future and
        // keep a fresh clone (tower-service's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let host = key_of(&dst).map(|k| self.layer.hosts.handle(k));
        PoolConnectFuture::new(ready, dst, host, self.layer.clone())
    }
}
