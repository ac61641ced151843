//! [`HardenedService`], the preset's request-side stack around an inner service.

use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::stack::{Fast, Stack};
use super::{HardenedBody, HardenedFuture, HardenedRequestBody};
use crate::error::BoxError;

/// The request-side stack of a [`Hardened`](super::Hardened) preset around an inner service
/// `S`, made by [`HardenedLayer`](super::HardenedLayer) (see the [module docs](super) for the
/// order of its layers).
///
/// Opaque: which layers make it up, and how, is not part of the API. `S` receives requests
/// whose bodies are [`HardenedRequestBody`]s (kept for a replay when small, timed while they
/// upload), and its response bodies come back wrapped in [`HardenedBody`].
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_hardened::{Hardened, HardenedRequestBody, HardenedService};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let inner = service_fn(|_req: Request<HardenedRequestBody<Full<bytes::Bytes>>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
/// });
/// let svc: HardenedService<_> = Hardened::new().layer().layer(inner);
/// let resp = svc.oneshot(Request::get("http://a.test/").body(Full::default())?).await?;
/// assert_eq!(resp.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HardenedService<S> {
    inner: Core<S>,
}

/// Which of the two stacks (see `stack`).
#[derive(Debug, Clone)]
pub(super) enum Core<S> {
    Fast(Fast<S>),
    Layered(Stack<S>),
}

impl<S> HardenedService<S> {
    /// How many timers the fused stack's requests have given back to its pool.
    #[cfg(test)]
    pub(super) fn timers_kept(&self) -> usize {
        match &self.inner {
            Core::Fast(s) => s.timers_kept(),
            Core::Layered(_) => 0,
        }
    }

    /// How many header clocks the fused stack's requests have given back to its pool.
    #[cfg(test)]
    pub(super) fn clocks_kept(&self) -> usize {
        match &self.inner {
            Core::Fast(s) => s.clocks_kept(),
            Core::Layered(_) => 0,
        }
    }

    pub(super) fn new(inner: Core<S>) -> Self {
        HardenedService { inner }
    }

    /// The inner service, as given to the layer.
    pub fn get_ref(&self) -> &S {
        match &self.inner {
            Core::Fast(s) => s.get_ref(),
            Core::Layered(s) => {
                &s.get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .get_ref()
                    .0
            }
        }
    }

    /// The inner service, mutably. Requests sent after this use a new clone of it (the limits
    /// send each request on a clone of the inner service).
    pub fn get_mut(&mut self) -> &mut S {
        match &mut self.inner {
            Core::Fast(s) => s.get_mut(),
            Core::Layered(s) => {
                &mut s
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .get_mut()
                    .0
            }
        }
    }

    /// Gives back the inner service, as given to the layer.
    pub fn into_inner(self) -> S {
        match self.inner {
            Core::Fast(s) => s.into_inner(),
            Core::Layered(s) => {
                s.into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .into_inner()
                    .0
            }
        }
    }
}

impl<S, B, RB> Service<Request<B>> for HardenedService<S>
where
    S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<HardenedBody<RB>>;
    type Error = BoxError;
    type Future = HardenedFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.inner {
            Core::Fast(s) => Service::<Request<B>>::poll_ready(s, cx),
            Core::Layered(s) => Service::<Request<B>>::poll_ready(s, cx),
        }
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        match &mut self.inner {
            Core::Fast(s) => HardenedFuture::fast(s.call(req)),
            Core::Layered(s) => HardenedFuture::layered(s.call(req)),
        }
    }
}
