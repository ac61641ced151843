use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::exchange::{Cache, Recording};
use super::{TelemetryBody, TelemetryFuture};
use crate::error::BoxError;

/// Records each request from `call` to the end of its response body: see
/// [`TelemetryLayer`](super::TelemetryLayer).
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceExt};
/// use tower_hardened::Telemetry;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let svc = Telemetry::new(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
/// }));
/// let req = Request::get("http://example.com/").body(())?;
/// let resp = svc.oneshot(req).await?;
/// assert_eq!(resp.into_body().collect().await?.to_bytes(), "hi"); // the span ends here
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Telemetry<S> {
    pub(crate) inner: S,
    pub(crate) cache: Cache,
}

impl<S> Telemetry<S> {
    /// Records the requests sent to `inner` (with series of its own: use
    /// [`TelemetryLayer`](super::TelemetryLayer) to share them between services).
    pub fn new(inner: S) -> Self {
        Telemetry {
            inner,
            cache: Cache::default(),
        }
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

impl<S, B, RB> Service<Request<B>> for Telemetry<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
{
    type Response = Response<TelemetryBody<RB>>;
    type Error = BoxError;
    type Future = TelemetryFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let rec = Recording::start(&mut req, &mut self.cache);
        let inner = {
            let _entered = rec.span.enter();
            self.inner.call(req)
        };
        TelemetryFuture::new(inner, rec)
    }
}
