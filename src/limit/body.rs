use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::gate::Permit;
use crate::error::BoxError;

pin_project! {
    /// A response body that holds its request's concurrency permit until the body is done.
    ///
    /// The permit is released when the body ends (it returns `None`, or reports
    /// [`is_end_stream`](Body::is_end_stream) after a frame), fails, or is dropped — whichever
    /// comes first. A body that is already at its end when the response arrives (an empty body,
    /// a `HEAD` response) releases the permit at once.
    ///
    /// Forwards `size_hint` and `is_end_stream` of the inner body unchanged.
    pub struct LimitBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B> std::fmt::Debug for LimitBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitBody")
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> LimitBody<B> {
    pub(crate) fn new(inner: B, permit: Option<Permit>) -> Self {
        let permit = if inner.is_end_stream() { None } else { permit };
        LimitBody { inner, permit }
    }
}

impl<B> LimitBody<B> {
    /// Whether this body still holds its permit (it has not ended, failed or been dropped).
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for LimitBody<B>
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
        match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => {}
            // The last frame, an error, or the end: this request no longer uses the server.
            _ => drop(this.permit.take()),
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
