//! [`HardenedClient`], the ready client of [`Hardened::client`](super::Hardened::client), with
//! its response future and body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::marker::PhantomData;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::erased::ErasedBody;
use super::{HardenedBody, HardenedFuture, HardenedRequestBody, HardenedService};
use crate::error::BoxError;
use crate::transport::{Transport, TransportBody};

/// The transport of a preset's clients: one pool for every request body type (bodies are
/// erased on the way in).
pub(super) type PresetTransport = Transport<HardenedRequestBody<ErasedBody>>;

/// Where the preset's transport finds a request's response-header clock: in an upload's request
/// body, where the fused stack puts it (see `HardenedLayer::own_transport`; one over when sent
/// is handed over with the call), or in the extensions, where the layered stack (with an
/// adaptive per-host limit) puts it.
pub(super) fn clock_of(
    req: &Request<HardenedRequestBody<ErasedBody>>,
) -> Option<&crate::channels::HeaderClock> {
    req.body()
        .header_clock()
        .or_else(|| req.extensions().get::<crate::channels::HeaderClock>())
}

/// What the client is made of: the crate's [`Transport`] under the preset's stack. Private, so
/// that another transport changes no public type.
type Inner = HardenedService<PresetTransport>;

/// The ready client of [`Hardened::client`](super::Hardened::client) and
/// [`Hardened::client_with`](super::Hardened::client_with), for request bodies of type `B`: the
/// preset's whole stack over the crate's [`Transport`] and its bounded pool.
///
/// Opaque: the transport under it is not part of the API. Cloning it is cheap, and every
/// clone shares the connections, the limits and the stats; so do all the clients that
/// [`Hardened::client`](super::Hardened::client) makes from one value, whatever their body
/// type.
///
/// # Example
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
/// use tower_hardened::{Hardened, HardenedClient};
///
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let client: HardenedClient<Empty<Bytes>> = Hardened::new().client();
/// let req = http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?;
/// let body = client.oneshot(req).await?.into_body().collect().await?.to_bytes();
/// # let _ = body; Ok(()) }
/// ```
pub struct HardenedClient<B> {
    inner: Inner,
    _body: PhantomData<fn(B)>,
}

impl<B> HardenedClient<B> {
    pub(super) fn new(inner: Inner) -> Self {
        HardenedClient {
            inner,
            _body: PhantomData,
        }
    }
}

impl<B> HardenedClient<B> {
    /// The preset's service under it (for tests).
    #[cfg(test)]
    pub(super) fn service(&self) -> &Inner {
        &self.inner
    }
}

impl<B> Clone for HardenedClient<B> {
    fn clone(&self) -> Self {
        HardenedClient::new(self.inner.clone())
    }
}

impl<B> fmt::Debug for HardenedClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardenedClient").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for HardenedClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<HardenedClientBody>;
    type Error = BoxError;
    type Future = HardenedClientFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        HardenedClientFuture {
            inner: self.inner.call(req.map(ErasedBody::new)),
            _body: PhantomData,
        }
    }
}

pin_project! {
    /// The response future of [`HardenedClient`]: resolves to a response whose body is a
    /// [`HardenedClientBody`], or to the error of the phase that failed.
    ///
    /// Opaque: which futures make it up is not part of the API.
    pub struct HardenedClientFuture<B> {
        #[pin]
        inner: HardenedFuture<PresetTransport, ErasedBody, PresetResponseBody>,
        _body: PhantomData<fn(B)>,
    }
}

/// The transport's response body.
type PresetResponseBody = TransportBody<HardenedRequestBody<ErasedBody>>;

impl<B> fmt::Debug for HardenedClientFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardenedClientFuture")
            .finish_non_exhaustive()
    }
}

impl<B> Future for HardenedClientFuture<B> {
    type Output = Result<Response<HardenedClientBody>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let resp = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(resp.map(|inner| HardenedClientBody { inner })))
    }
}

pin_project! {
    /// The response body of [`HardenedClient`]: bytes from the server, bounded in time and
    /// size, holding the request's limit permits until it ends, and drained in the background
    /// if dropped early (so its connection goes back to the pool).
    ///
    /// Opaque: which transport and wrappers make it up is not part of the API. Forwards the
    /// transport's `size_hint` and `is_end_stream`.
    pub struct HardenedClientBody {
        #[pin]
        inner: HardenedBody<PresetResponseBody>,
    }
}

impl fmt::Debug for HardenedClientBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardenedClientBody").finish_non_exhaustive()
    }
}

impl Body for HardenedClientBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
