use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Method, Response, Uri};
use http_body::Body;
use pin_project_lite::pin_project;

use super::drainer::Shared;
use super::DrainOnDropBody;
use crate::error::BoxError;

pin_project! {
    /// The response future of [`DrainOnDrop`](super::DrainOnDrop): wraps the response body in a
    /// [`DrainOnDropBody`].
    pub struct DrainOnDropFuture<F> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
        held: Option<(Method, Uri)>,
    }
}

impl<F> fmt::Debug for DrainOnDropFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainOnDropFuture").finish_non_exhaustive()
    }
}

impl<F> DrainOnDropFuture<F> {
    pub(crate) fn new(inner: F, shared: Arc<Shared>, held: Option<(Method, Uri)>) -> Self {
        DrainOnDropFuture {
            inner,
            shared,
            held,
        }
    }
}

impl<F, RB, E> Future for DrainOnDropFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Output = Result<Response<DrainOnDropBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx)).map_err(Into::into)?;
        let version = resp.version();
        let shared = this.shared.clone();
        let held = this.held.take();
        Poll::Ready(Ok(
            resp.map(|body| DrainOnDropBody::new(body, version, shared, held))
        ))
    }
}
