use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tonic::Status;
use tower_service::Service;

use super::{status_of, GrpcBody, GrpcFuture};
use crate::error::BoxError;

/// Turns every error of the inner service, and of its response bodies, into a [`Status`]
/// ([`status_of`]): the outermost service of [`Hardened::grpc_layer`](crate::Hardened::grpc_layer).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::Request;
/// use tower::{service_fn, ServiceExt};
/// use tower_hardened::{grpc::Grpc, Error, Phase};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = Grpc::new(service_fn(|_req: Request<()>| async {
///     Err::<http::Response<String>, _>(Error::timeout(Phase::Total, Duration::from_secs(1)))
/// }));
/// let status = svc.oneshot(Request::new(())).await.unwrap_err();
/// assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Grpc<S> {
    inner: S,
}

impl<S> Grpc<S> {
    /// Maps the errors of `inner`.
    pub fn new(inner: S) -> Self {
        Grpc { inner }
    }

    /// The inner service.
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

impl<S, B, RB> Service<Request<B>> for Grpc<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<GrpcBody<RB>>;
    type Error = Status;
    type Future = GrpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Under `Hardened::grpc_layer` the inner stack is always ready (its limits wait, and
        // drive the channel's readiness, inside the response future), so this never fails:
        // tonic would turn a readiness error into `Unknown`.
        self.inner.poll_ready(cx).map_err(|e| status_of(e.into()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        GrpcFuture::new(self.inner.call(req))
    }
}

/// Boxes the request body into a `tonic::body::Body` again after the request-side layers have
/// wrapped it, so a tonic `Channel` (which takes nothing else) can be the inner service. One
/// allocation per call.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceExt};
/// use tower_hardened::grpc::BoxRequestBody;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let channel_like = service_fn(|_req: Request<tonic::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(tonic::body::Body::empty()))
/// });
/// let svc = BoxRequestBody::new(channel_like);
/// let body = http_body_util::Full::new(bytes::Bytes::from("message"));
/// svc.oneshot(Request::new(body)).await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BoxRequestBody<S> {
    inner: S,
}

impl<S> BoxRequestBody<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        BoxRequestBody { inner }
    }

    /// The inner service.
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

impl<S, B> Service<Request<B>> for BoxRequestBody<S>
where
    S: Service<Request<tonic::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.inner.call(req.map(tonic::body::Body::new))
    }
}
