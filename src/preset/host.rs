//! The preset's per-host limit: static ([`PerHostLimit`], the default) or adaptive
//! ([`AdaptiveLimit`] per host, with [`Hardened::adaptive`](super::Hardened::adaptive)). One
//! private service, future and body for both, so the preset's opaque types do not change with
//! the choice.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::BoxError;
use crate::limit::{
    AdaptiveLimit, AdaptiveLimitBody, AdaptiveLimitFuture, LimitBody, LimitFuture, PerHostLimit,
};

/// The per-host limiter of the preset's stack.
#[derive(Debug, Clone)]
pub(super) enum HostLimit<S> {
    Static(PerHostLimit<S>),
    Adaptive(AdaptiveLimit<S>),
}

impl<S> HostLimit<S> {
    pub(super) fn get_ref(&self) -> &S {
        match self {
            HostLimit::Static(s) => s.get_ref(),
            HostLimit::Adaptive(s) => s.get_ref(),
        }
    }

    pub(super) fn get_mut(&mut self) -> &mut S {
        match self {
            HostLimit::Static(s) => s.get_mut(),
            HostLimit::Adaptive(s) => s.get_mut(),
        }
    }

    pub(super) fn into_inner(self) -> S {
        match self {
            HostLimit::Static(s) => s.into_inner(),
            HostLimit::Adaptive(s) => s.into_inner(),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for HostLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: Body,
{
    type Response = Response<HostBody<RB>>;
    type Error = BoxError;
    type Future = HostFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            HostLimit::Static(s) => s.poll_ready(cx),
            HostLimit::Adaptive(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self {
            HostLimit::Static(s) => HostFuture::Static { inner: s.call(req) },
            HostLimit::Adaptive(s) => HostFuture::Adaptive { inner: s.call(req) },
        }
    }
}

pin_project! {
    /// The response future of [`HostLimit`].
    #[project = HostFutureProj]
    pub(super) enum HostFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        Static { #[pin] inner: LimitFuture<S, B> },
        Adaptive { #[pin] inner: AdaptiveLimitFuture<S, B> },
    }
}

impl<S, B, RB> Future for HostFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: Body,
{
    type Output = Result<Response<HostBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HostFutureProj::Static { inner } => inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(|inner| HostBody::Static { inner }))),
            HostFutureProj::Adaptive { inner } => inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(|inner| HostBody::Adaptive { inner }))),
        }
    }
}

pin_project! {
    /// The response body of [`HostLimit`]: holds the request's per-host permit until it ends.
    #[project = HostBodyProj]
    pub(super) enum HostBody<B> {
        Static { #[pin] inner: LimitBody<B> },
        Adaptive { #[pin] inner: AdaptiveLimitBody<B> },
    }
}

impl<B> Body for HostBody<B>
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
        match self.project() {
            HostBodyProj::Static { inner } => inner.poll_frame(cx),
            HostBodyProj::Adaptive { inner } => inner.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            HostBody::Static { inner } => inner.is_end_stream(),
            HostBody::Adaptive { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            HostBody::Static { inner } => inner.size_hint(),
            HostBody::Adaptive { inner } => inner.size_hint(),
        }
    }
}
