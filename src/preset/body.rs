//! [`HardenedBody`], the response body of the preset's stack.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::stack::{FastBody, StackBody};
use crate::error::BoxError;

pin_project! {
    /// The response body of a [`HardenedService`](super::HardenedService): the inner service's
    /// body `B`, bounded by the request's deadline and the body-idle timeout, capped in bytes,
    /// holding its limit permits until it ends, and drained in the background if dropped early.
    ///
    /// Opaque: which wrappers make it up is not part of the API. Forwards `size_hint` and
    /// `is_end_stream` of `B` (until a bound ends the body early).
    ///
    /// # Example
    ///
    /// ```
    /// use http::{Request, Response};
    /// use http_body::Body;
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{service_fn, ServiceExt};
    /// use tower_hardened::{Hardened, HardenedBody, HardenedRequestBody};
    /// use tower::Layer;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
    /// let inner = service_fn(|_req: Request<HardenedRequestBody<Full<bytes::Bytes>>>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
    /// });
    /// let svc = Hardened::new().layer().layer(inner);
    /// let resp = svc.oneshot(Request::get("http://a.test/").body(Full::default())?).await?;
    /// let body: HardenedBody<Full<bytes::Bytes>> = resp.into_body();
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// assert_eq!(body.collect().await?.to_bytes(), "hi");
    /// # Ok(()) }
    /// ```
    pub struct HardenedBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Fast { #[pin] body: FastBody<B> },
        // Boxed: only the adaptive stack pays for its size.
        Layered { body: Pin<Box<StackBody<B>>> },
    }
}

impl<B> HardenedBody<B> {
    #[inline]
    pub(super) fn fast(body: FastBody<B>) -> Self {
        HardenedBody {
            inner: Inner::Fast { body },
        }
    }

    pub(super) fn layered(body: StackBody<B>) -> Self {
        HardenedBody {
            inner: Inner::Layered {
                body: Box::pin(body),
            },
        }
    }
}

impl<B> fmt::Debug for HardenedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardenedBody").finish_non_exhaustive()
    }
}

impl<B> Body for HardenedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.project() {
            InnerProj::Fast { body } => body.poll_frame(cx),
            InnerProj::Layered { body } => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Fast { body } => body.is_end_stream(),
            Inner::Layered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Fast { body } => body.size_hint(),
            Inner::Layered { body } => body.size_hint(),
        }
    }
}
