use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::gate::Permit;
use crate::error::BoxError;

pin_project! {
    /// A response body that holds its request's adaptive-limit permit, and ends its latency
    /// sample, when the body is done.
    ///
    /// The end of the body (`None`, or [`is_end_stream`](Body::is_end_stream) after a frame) is
    /// a latency sample; an error frame is an overload signal; a drop before the end is a
    /// sample of "at least this long". A body already at its end when the response arrives
    /// ends the sample at once.
    ///
    /// Forwards `size_hint` and `is_end_stream` of the inner body unchanged.
    pub struct AdaptiveLimitBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B> std::fmt::Debug for AdaptiveLimitBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimitBody")
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> AdaptiveLimitBody<B> {
    pub(crate) fn new(inner: B, permit: Permit) -> Self {
        let permit = if inner.is_end_stream() {
            permit.finish(true);
            None
        } else {
            Some(permit)
        };
        AdaptiveLimitBody { inner, permit }
    }
}

impl<B> AdaptiveLimitBody<B> {
    /// Whether this body still holds its permit (it has not ended, failed or been dropped).
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for AdaptiveLimitBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let ok = match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => None,
            Some(Ok(_)) | None => Some(true),
            Some(Err(_)) => Some(false),
        };
        if let Some(ok) = ok {
            if let Some(permit) = this.permit.take() {
                permit.finish(ok);
            }
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
