use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::conn::{release_h1, Lease, Proto};

/// The response body of a [`Transport`](super::Transport): hyper's body, holding the
/// connection it came on until it ends.
///
/// An HTTP/1 connection is checked out until the body is read to its end, fails or is dropped;
/// then it goes back to the pool once hyper is ready for the next request (a body dropped
/// before its end makes hyper close the connection unless the rest was already read: put a
/// [`DrainOnDropLayer`](crate::DrainOnDropLayer) above the transport to keep it). An HTTP/2
/// body holds one stream of its shared connection until the same moment.
///
/// It forwards `is_end_stream` and `size_hint`.
///
/// # Example
///
/// ```no_run
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
/// use tower_hardened::Transport;
///
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let transport = Transport::builder().build::<Empty<bytes::Bytes>>();
/// let req = http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?;
/// let resp = transport.oneshot(req).await?;
/// let body = resp.into_body().collect().await?; // the connection goes back here
/// # let _ = body;
/// # Ok(()) }
/// ```
pub struct TransportBody<B: Send + 'static> {
    inner: Incoming,
    // Boxed: a checkout is about 250 bytes, and the response that holds this body is moved
    // through every layer above the transport.
    lease: Option<Box<Lease<B>>>,
}

impl<B: Send + 'static> TransportBody<B> {
    pub(crate) fn new(inner: Incoming, lease: Box<Lease<B>>) -> Self {
        let mut body = TransportBody {
            inner,
            lease: Some(lease),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    /// The body ended or is dropped: give the connection, or the stream, back.
    fn release(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if matches!(lease.proto, Proto::H1(..)) {
            release_h1(*lease);
        }
    }

    /// The body failed: an HTTP/1 connection cannot be reused; an HTTP/2 stream error leaves the
    /// connection as it is (the pool sees it if the connection itself failed).
    fn fail(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if matches!(lease.proto, Proto::H1(..)) {
            lease.discard();
        }
    }
}

// Nothing is pinned structurally: `Incoming` is `Unpin` and the lease is only moved.
impl<B: Send + 'static> Unpin for TransportBody<B> {}

impl<B: Send + 'static> Body for TransportBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.fail(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Send + 'static> Drop for TransportBody<B> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<B: Send + 'static> fmt::Debug for TransportBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportBody")
            .field("holds_connection", &self.lease.is_some())
            .finish_non_exhaustive()
    }
}
