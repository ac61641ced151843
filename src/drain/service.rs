use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::drainer::Shared;
use super::{DrainOnDropBody, DrainOnDropFuture, DrainOnDropLayer};
use crate::error::BoxError;

/// Drains dropped response bodies in the background and watches for held ones: see
/// [`DrainOnDropLayer`].
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_hardened::DrainOnDropLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let svc = ServiceBuilder::new()
///     .layer(DrainOnDropLayer::new())
///     .service(service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
///     }));
/// let resp = svc.oneshot(Request::new(())).await?;
/// assert_eq!(resp.into_body().collect().await?.to_bytes(), "hi");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DrainOnDrop<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for DrainOnDrop<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainOnDrop")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<S> DrainOnDrop<S> {
    /// Wraps `inner` with the caps (and shared permits and sweeper) of `layer`.
    pub fn new(inner: S, layer: DrainOnDropLayer) -> Self {
        DrainOnDrop {
            inner,
            shared: layer.shared,
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

impl<S, B, RB> Service<Request<B>> for DrainOnDrop<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<DrainOnDropBody<RB>>;
    type Error = BoxError;
    type Future = DrainOnDropFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Only paid for when leak detection is on: two cheap clones (the URI is shared bytes).
        let held = self
            .shared
            .leaks
            .as_ref()
            .map(|_| (req.method().clone(), req.uri().clone()));
        DrainOnDropFuture::new(self.inner.call(req), self.shared.clone(), held)
    }
}
