//! [`HardenedRequestBody`], the request body the preset hands to the client under it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use crate::channels::HeaderClock;
use crate::error::BoxError;
use crate::replay::ReplayBody;
use crate::timeout::RequestWriteBody;

/// The request body a [`HardenedService`](super::HardenedService) hands to the client under
/// it, for the caller's body `B`: kept for a replay when small ([`ReplayBody`]) and timed while
/// it uploads ([`RequestWriteBody`]). Name your client's body type with it:
///
/// ```
/// use hyper_util::client::legacy::Client;
/// use tower::Layer;
/// use tower_hardened::{Hardened, HardenedRequestBody};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mine: Client<_, HardenedRequestBody<http_body_util::Empty<bytes::Bytes>>> =
///     Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
/// let client = Hardened::new().layer().layer(mine);
/// # let _ = client; }
/// ```
///
/// One word whatever `B` is: a body over when sent (a `GET`'s) is not kept at all, any other
/// is boxed. A client moves each request through several owners and channels on its way to
/// the wire, and a request of more than 256 bytes is copied by the slower path of `memcpy` at
/// each move (about 800 instructions per request on the crate's transport, more than a box);
/// hyper's dispatch channel carries the request with 24 bytes of its own.
pub struct HardenedRequestBody<B> {
    // `None`: over when sent.
    body: Option<Pin<Box<RequestWriteBody<ReplayBody<B>>>>>,
}

impl<B: Body> HardenedRequestBody<B> {
    /// The body as sent: nothing for one over and not watched (its header clock, if it carried
    /// one, is dropped: the layered stack's is in the extensions).
    #[inline]
    pub(crate) fn new(body: RequestWriteBody<ReplayBody<B>>) -> Self
    where
        B::Error: Into<BoxError>,
    {
        if !body.is_watched() && body.is_end_stream() {
            Self::over()
        } else {
            Self::boxed(body)
        }
    }

    /// A body over when sent.
    #[inline]
    pub(crate) fn over() -> Self {
        HardenedRequestBody { body: None }
    }

    #[inline]
    pub(crate) fn boxed(body: RequestWriteBody<ReplayBody<B>>) -> Self {
        HardenedRequestBody {
            body: Some(Box::pin(body)),
        }
    }
}

impl<B> HardenedRequestBody<B> {
    /// The response-header clock an upload carries (the fused preset's, on the crate's
    /// transport; one over when sent hands its clock to the transport instead).
    pub(crate) fn header_clock(&self) -> Option<&HeaderClock> {
        self.body.as_ref().and_then(|b| b.header_clock())
    }
}

impl<B> fmt::Debug for HardenedRequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let over = self.body.is_none();
        f.debug_struct("HardenedRequestBody")
            .field("over", &over)
            .finish_non_exhaustive()
    }
}

impl<B> Body for HardenedRequestBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().body {
            None => Poll::Ready(None),
            Some(body) => body.as_mut().poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.body {
            None => SizeHint::with_exact(0),
            Some(body) => body.size_hint(),
        }
    }
}

/// The layered stack's innermost step (with an adaptive limit): the request-write timeout's
/// body made a [`HardenedRequestBody`] for the client under it.
#[derive(Debug, Clone)]
pub(super) struct Compact<S>(pub(super) S);

impl<S, B> Service<Request<RequestWriteBody<ReplayBody<B>>>> for Compact<S>
where
    S: Service<Request<HardenedRequestBody<B>>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestWriteBody<ReplayBody<B>>>) -> Self::Future {
        self.0.call(req.map(HardenedRequestBody::new))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;
    use crate::channels::HeaderClock;

    fn sent<B: Body>(body: B) -> RequestWriteBody<ReplayBody<B>>
    where
        B::Error: Into<BoxError>,
    {
        let req = Request::new(ReplayBody::pass(body));
        let limit = std::time::Duration::from_secs(1);
        let clock = Some(HeaderClock::default());
        crate::timeout::watch_upload(req, limit, None, None, clock)
            .0
            .into_body()
    }

    #[test]
    fn a_request_with_it_fits_the_fast_copy_in_hypers_dispatch_channel() {
        // hyper's HTTP/1 and HTTP/2 dispatch channels carry the request with a 24-byte
        // callback: 232 + 24 is 256 bytes, memcpy's fast path.
        type Sent = Request<HardenedRequestBody<Full<Bytes>>>;
        assert_eq!(std::mem::size_of::<HardenedRequestBody<Full<Bytes>>>(), 8);
        assert!(
            std::mem::size_of::<Sent>() <= 232,
            "{}",
            std::mem::size_of::<Sent>()
        );
    }

    #[tokio::test]
    async fn a_body_over_when_sent_keeps_nothing_and_others_are_sent_whole() {
        let over = HardenedRequestBody::new(sent(Empty::<Bytes>::new()));
        assert!(over.body.is_none());
        assert!(over.is_end_stream());
        assert_eq!(over.size_hint().exact(), Some(0));
        assert!(over.header_clock().is_none());
        assert!(over.collect().await.unwrap().to_bytes().is_empty());

        let full = HardenedRequestBody::new(sent(Full::new(Bytes::from_static(b"hello"))));
        assert!(full.body.is_some());
        assert!(!full.is_end_stream());
        assert_eq!(full.size_hint().exact(), Some(5));
        assert!(full.header_clock().is_some());
        assert_eq!(&full.collect().await.unwrap().to_bytes()[..], b"hello");
    }
}
