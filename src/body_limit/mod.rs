//! A byte cap on response bodies: [`ResponseBodyLimitLayer`].
//!
//! A body longer than the cap fails with
//! [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge) as soon as more than the cap has
//! been read, or before a byte is read when its size hint (its `content-length`) already says it
//! is too large. Use it wherever bodies are collected into memory: an endless or huge body would
//! exhaust memory long before a timeout fires on a fast link.
//!
//! Put it around the client, inside the limits and the deadline (the preset puts it just inside
//! drain-on-drop). [`ResponseBodyLimitLayer::new`] panics on a zero cap.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{Error, ErrorKind, ResponseBodyLimitLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(ResponseBodyLimitLayer::new(1024))
//!     .service(service_fn(|_req: Request<()>| async {
//!         let big = bytes::Bytes::from(vec![0u8; 4096]);
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(big)))
//!     }));
//! let resp = svc.oneshot(Request::new(())).await?;
//! let err = resp.into_body().collect().await.unwrap_err();
//! assert_eq!(Error::find(&*err).unwrap().kind(), ErrorKind::BodyTooLarge);
//! assert_eq!(err.to_string(), "response body longer than 1024 bytes");
//! # Ok(()) }
//! ```
//!
//! How it compares with `http_body_util::Limited`, tower-http and Go: docs/comparisons.md in the
//! repository.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{BoxError, Error};

/// Caps every response body at a number of bytes: see the [module docs](self).
///
/// # Panics
///
/// [`ResponseBodyLimitLayer::new`] panics when the cap is zero (use a body-less request, not a
/// zero cap, to refuse bodies).
#[derive(Debug, Clone, Copy)]
pub struct ResponseBodyLimitLayer {
    max: u64,
}

impl ResponseBodyLimitLayer {
    /// Response bodies may be at most `max` bytes.
    #[track_caller]
    pub fn new(max: u64) -> Self {
        assert!(
            max > 0,
            "tower-hardened: ResponseBodyLimitLayer cap must be greater than zero"
        );
        ResponseBodyLimitLayer { max }
    }

    /// The configured cap in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }
}

impl<S> Layer<S> for ResponseBodyLimitLayer {
    type Service = ResponseBodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseBodyLimit {
            inner,
            max: self.max,
        }
    }
}

/// The service of [`ResponseBodyLimitLayer`].
#[derive(Debug, Clone)]
pub struct ResponseBodyLimit<S> {
    inner: S,
    max: u64,
}

impl<S> ResponseBodyLimit<S> {
    /// Wraps `inner` with a cap of `max` bytes per response body.
    pub fn new(inner: S, layer: ResponseBodyLimitLayer) -> Self {
        ResponseBodyLimit {
            inner,
            max: layer.max,
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

impl<S, B, RB> Service<Request<B>> for ResponseBodyLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBodyLimitBody<RB>>;
    type Error = BoxError;
    type Future = ResponseBodyLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ResponseBodyLimitFuture {
            inner: self.inner.call(req),
            max: self.max,
        }
    }
}

pin_project! {
    /// The response future of [`ResponseBodyLimit`].
    #[derive(Debug)]
    pub struct ResponseBodyLimitFuture<F> {
        #[pin]
        inner: F,
        max: u64,
    }
}

impl<F, RB, E> Future for ResponseBodyLimitFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBodyLimitBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx)).map_err(Into::into)?;
        let max = *this.max;
        Poll::Ready(Ok(resp.map(|inner| ResponseBodyLimitBody::new(inner, max))))
    }
}

pin_project! {
    /// A response body that fails once it has given more than its cap. Forwards `size_hint`
    /// and `is_end_stream`.
    #[derive(Debug)]
    pub struct ResponseBodyLimitBody<B> {
        #[pin]
        inner: B,
        left: u64,
        max: u64,
        done: bool,
    }
}

impl<B> ResponseBodyLimitBody<B> {
    /// Caps `inner` at `max` bytes.
    pub fn new(inner: B, max: u64) -> Self {
        ResponseBodyLimitBody {
            inner,
            left: max,
            max,
            done: false,
        }
    }
}

impl<B> Body for ResponseBodyLimitBody<B>
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
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Known too large before a byte is read: fail at once instead of reading up to the cap.
        if this.inner.size_hint().lower() > *this.max {
            *this.done = true;
            return Poll::Ready(Some(Err(Error::body_too_large(*this.max).into())));
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                let n = frame.data_ref().map_or(0, |d| d.remaining() as u64);
                match this.left.checked_sub(n) {
                    Some(left) => {
                        *this.left = left;
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => {
                        *this.done = true;
                        Poll::Ready(Some(Err(Error::body_too_large(*this.max).into())))
                    }
                }
            }
            Some(Err(e)) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}
