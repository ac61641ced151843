//! [`HardenedFuture`], the response future of the preset's stack.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::stack::{FastFuture, StackFuture};
use super::{HardenedBody, HardenedRequestBody};
use crate::error::BoxError;

pin_project! {
    /// The response future of a [`HardenedService`](super::HardenedService) around `S`, for
    /// request bodies `B` and the inner response body `RB`.
    ///
    /// Opaque: which layers' futures make it up is not part of the API. It waits for its limit
    /// permits (bounded by the acquire timeout and the deadline), then for the response head
    /// (bounded by the response-header timeout and the deadline), and resolves to a response
    /// whose body is a [`HardenedBody`]. Its bounds are those of the service's `Service` impl.
    pub struct HardenedFuture<S, B, RB>
    where
        S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>>,
        S: Clone,
        S::Error: Into<BoxError>,
        B: Body,
        B::Error: Into<BoxError>,
        RB: Body,
        RB: Send,
        RB: 'static,
        RB::Error: Into<BoxError>,
    {
        #[pin]
        inner: Inner<S, B, RB>,
        _body: PhantomData<fn() -> RB>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<S, B, RB>
    where
        S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>>,
        S: Clone,
        S::Error: Into<BoxError>,
        B: Body,
        B::Error: Into<BoxError>,
        RB: Body,
        RB: Send,
        RB: 'static,
        RB::Error: Into<BoxError>,
    {
        Fast { #[pin] fut: FastFuture<S, B> },
        // Boxed: only the adaptive stack pays for its size.
        Layered { fut: Pin<Box<StackFuture<S, B>>> },
    }
}

impl<S, B, RB> HardenedFuture<S, B, RB>
where
    S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    #[inline]
    pub(super) fn fast(fut: FastFuture<S, B>) -> Self {
        HardenedFuture {
            inner: Inner::Fast { fut },
            _body: PhantomData,
        }
    }

    pub(super) fn layered(fut: StackFuture<S, B>) -> Self {
        HardenedFuture {
            inner: Inner::Layered { fut: Box::pin(fut) },
            _body: PhantomData,
        }
    }
}

impl<S, B, RB> fmt::Debug for HardenedFuture<S, B, RB>
where
    S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardenedFuture").finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for HardenedFuture<S, B, RB>
where
    S: Service<Request<HardenedRequestBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Output = Result<Response<HardenedBody<RB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match self.project().inner.project() {
            InnerProj::Fast { fut } => ready!(fut.poll(cx))?.map(HardenedBody::fast),
            InnerProj::Layered { fut } => ready!(fut.as_mut().poll(cx))?.map(HardenedBody::layered),
        }))
    }
}
