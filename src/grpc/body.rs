use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;

use super::status_of;
use crate::error::BoxError;

pin_project! {
    /// A gRPC response body whose errors are [`Status`]es ([`status_of`]): a deadline or an idle
    /// limit that cuts a stream mid-way reaches the caller as `DeadlineExceeded`.
    ///
    /// Forwards `size_hint` and `is_end_stream` of the inner body.
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B> GrpcBody<B> {
    /// Maps the errors of `inner`.
    pub fn new(inner: B) -> Self {
        GrpcBody { inner }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").finish_non_exhaustive()
    }
}

impl<B> Body for GrpcBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project()
            .inner
            .poll_frame(cx)
            .map(|frame| frame.map(|res| res.map_err(|e| status_of(e.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
