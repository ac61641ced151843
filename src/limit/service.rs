use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::gate::Admit;
use super::{
    ConcurrencyLimitLayer, LimitBody, LimitFuture, LimitHandle, PerHostHandle, PerHostLimitLayer,
};
use crate::error::BoxError;

/// Limits requests in flight, each counted until its response body ends: the service of both
/// [`ConcurrencyLimitLayer`] and [`PerHostLimitLayer`], as tower puts one `ConcurrencyLimit`
/// behind its two concurrency layers.
///
/// `L` is the layer that made it, which decides how a request is admitted: one global limit
/// ([`ConcurrencyLimitLayer`], the default, so `ConcurrencyLimit<S>` is the global limiter) or
/// one limit per host ([`PerHostLimitLayer`]; [`PerHostLimit<S>`] names that one). Only these
/// two layers admit requests (the `L: Admit` bound of the `Service` impl is private).
///
/// `poll_ready` is always ready: the wait for a permit happens in the [`LimitFuture`], where
/// the request's deadline and the acquire timeout bound it. A request that gets a permit at
/// once, on an inner service that is ready at once (hyper-util's legacy `Client` always is),
/// is sent from `call` itself, on an instance cloned once and reused. Otherwise the future gets
/// an inner service of its own (`S: Clone`: a clone when it must wait for a permit, or the
/// instance that answered `Pending`) and drives it to readiness once it holds a permit. An
/// instance whose `poll_ready` failed is never used again: the next request gets a new clone.
/// hyper-util's legacy `Client`, tower's `Buffer` and most client stacks are cheap to clone;
/// wrap anything else in tower's `Buffer`.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, Layer, Service, ServiceExt};
/// use tower_hardened::ConcurrencyLimitLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let layer = ConcurrencyLimitLayer::new(1);
/// let handle = layer.handle();
/// let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
/// }));
///
/// let resp = svc.ready().await?.call(Request::new(())).await?;
/// assert_eq!(handle.in_flight(), 1); // the body is not read yet: the permit is still held
/// let body = resp.into_body().collect().await?.to_bytes();
/// assert_eq!(body, "hi");
/// assert_eq!(handle.in_flight(), 0); // released at the end of the body
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ConcurrencyLimit<S, L = ConcurrencyLimitLayer> {
    inner: S,
    /// The instance requests are sent on (see [`LimitFuture`]); `inner` is never polled.
    active: Option<S>,
    layer: L,
}

/// Limits requests in flight to each host, each counted until its response body ends: the
/// service of [`PerHostLimitLayer`], a [`ConcurrencyLimit`] that admits by host.
///
/// Keyed by the request URI's scheme and authority (the `Host` header when the URI has none);
/// the host is compared without case and the scheme's default port is filled in. As for every
/// [`ConcurrencyLimit`], `poll_ready` is always ready, and a request that must wait (for a
/// permit or for the inner service) takes an instance of the inner service of its own into
/// its future (`S: Clone`).
///
/// # Example
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, Service, ServiceExt};
/// use tower_hardened::PerHostLimitLayer;
///
/// /// A response body that is never done, as a slow download.
/// struct Open;
/// impl http_body::Body for Open {
///     type Data = bytes::Bytes;
///     type Error = std::convert::Infallible;
///     fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>)
///         -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
///         Poll::Pending
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let layer = PerHostLimitLayer::new(2);
/// let handle = layer.handle();
/// let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Open))
/// }));
///
/// let uri = "http://example.com/a";
/// let a = svc.ready().await?.call(Request::get(uri).body(())?).await?;
/// let b = svc.ready().await?.call(Request::get(uri).body(())?).await?;
/// assert_eq!(handle.in_flight_for(&uri.parse()?), 2);
/// assert_eq!(handle.hosts(), 1);
/// drop((a, b)); // bodies dropped: permits released, the host no longer in use
/// assert_eq!(handle.hosts(), 0);
/// # Ok(()) }
/// ```
pub type PerHostLimit<S> = ConcurrencyLimit<S, PerHostLimitLayer>;

impl<S: Clone, L: Clone> Clone for ConcurrencyLimit<S, L> {
    fn clone(&self) -> Self {
        ConcurrencyLimit::new(self.inner.clone(), self.layer.clone())
    }
}

impl<S, L> ConcurrencyLimit<S, L> {
    /// Wraps `inner` with the limit of `layer` (shared with every other service of `layer`).
    pub fn new(inner: S, layer: L) -> Self {
        ConcurrencyLimit {
            inner,
            active: None,
            layer,
        }
    }

    /// The inner service, as given (requests are sent on clones of it).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Requests sent after this use a new clone of it.
    pub fn get_mut(&mut self) -> &mut S {
        self.active = None;
        &mut self.inner
    }

    /// Gives back the inner service, as given.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> ConcurrencyLimit<S> {
    /// A handle to read the counts of this limit.
    pub fn handle(&self) -> LimitHandle {
        self.layer.handle()
    }
}

impl<S> PerHostLimit<S> {
    /// A handle to read the per-host counts.
    pub fn handle(&self) -> PerHostHandle {
        self.layer.handle()
    }
}

impl<S, L, B, RB> Service<Request<B>> for ConcurrencyLimit<S, L>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
    L: Admit,
{
    type Response = Response<LimitBody<RB>>;
    type Error = BoxError;
    type Future = LimitFuture<S, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never waits here, where no deadline can see it: see the type's docs.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let admission = self.layer.admit(&req);
        LimitFuture::start(admission, &self.inner, &mut self.active, req)
    }
}
