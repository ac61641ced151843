use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::{AdaptiveLimitBody, AdaptiveLimitFuture, AdaptiveLimitHandle, AdaptiveLimitLayer};
use crate::error::BoxError;

/// Limits requests in flight with an adaptive limit, each counted until its response body
/// ends: see [`AdaptiveLimitLayer`].
///
/// `poll_ready` is always ready: the wait for a permit happens in the
/// [`AdaptiveLimitFuture`], bounded by the request's deadline and the acquire timeout. Each
/// request is sent on a clone of the inner service (`S: Clone`), driven to readiness once it
/// holds a permit.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, Layer, Service, ServiceExt};
/// use tower_hardened::{AdaptiveLimitLayer, Gradient};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let layer = AdaptiveLimitLayer::new(Gradient::new(), 1..=100);
/// let handle = layer.handle();
/// let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
/// }));
///
/// let resp = svc.ready().await?.call(Request::new(())).await?;
/// assert_eq!(handle.in_flight(), 1); // the body is not read yet: still in flight
/// assert_eq!(resp.into_body().collect().await?.to_bytes(), "hi");
/// assert_eq!(handle.in_flight(), 0); // its latency sample ends here
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AdaptiveLimit<S> {
    inner: S,
    layer: AdaptiveLimitLayer,
}

impl<S: Clone> Clone for AdaptiveLimit<S> {
    fn clone(&self) -> Self {
        AdaptiveLimit::new(self.inner.clone(), self.layer.clone())
    }
}

impl<S> AdaptiveLimit<S> {
    /// Wraps `inner` with the limit of `layer` (shared with every other service of `layer`).
    pub fn new(inner: S, layer: AdaptiveLimitLayer) -> Self {
        AdaptiveLimit { inner, layer }
    }

    /// A handle to read the limit and the counts.
    pub fn handle(&self) -> AdaptiveLimitHandle {
        self.layer.handle()
    }

    /// The inner service, as given (requests are sent on clones of it).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Gives back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for AdaptiveLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
{
    type Response = Response<AdaptiveLimitBody<RB>>;
    type Error = BoxError;
    type Future = AdaptiveLimitFuture<S, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never waits here, where no deadline can see it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let admission = self.layer.shared.admit(&req);
        AdaptiveLimitFuture::start(admission, &self.inner, req)
    }
}
