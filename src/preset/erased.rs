//! The request body type of the preset's one transport: every client of one [`Hardened`]
//! shares one pool whatever its body type, so bodies are erased to [`ErasedBody`] on the way in.
//! An empty body (`Empty<Bytes>`, an empty `Full` or `String`) is recognised and costs nothing;
//! any other is boxed, so the body is three words: a request of more than 256 bytes is copied
//! by the slower path of `memcpy` at each of its moves, and the replay's wrapper comes on top.
//!
//! [`Hardened`]: super::Hardened

use std::any::Any;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Empty, Full};
use pin_project_lite::pin_project;

use crate::error::BoxError;

/// A request body of any type, as the preset's transport takes it. `Sync` whatever the body (so
/// the client's futures are): a boxed body sits in a `Mutex`, which its polls reach through
/// `get_mut`, without locking.
pub(crate) enum ErasedBody {
    Empty,
    Full(Box<Full<Bytes>>),
    Boxed(Box<dyn SyncBody>),
}

/// A boxed body behind its `Mutex`: one allocation for both.
pub(crate) trait SyncBody: Send + Sync {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
    fn is_end_stream(&self) -> bool;
    fn size_hint(&self) -> SizeHint;
}

impl<B> SyncBody for Mutex<ToBytes<B>>
where
    B: Body + Send + Unpin,
    B::Error: Into<BoxError>,
{
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let body = self.get_mut().unwrap_or_else(PoisonError::into_inner);
        Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

impl std::fmt::Debug for ErasedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            ErasedBody::Empty => "Empty",
            ErasedBody::Full(_) => "Full",
            ErasedBody::Boxed(_) => "Boxed",
        };
        f.debug_tuple("ErasedBody").field(&kind).finish()
    }
}

impl ErasedBody {
    /// `body`, unboxed when it is one of the usual types.
    pub(crate) fn new<B>(body: B) -> ErasedBody
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let any: &mut dyn Any = &mut slot;
        if any.is::<Option<Empty<Bytes>>>() {
            return ErasedBody::Empty;
        }
        if let Some(full) = any.downcast_mut::<Option<Full<Bytes>>>() {
            let full = full.take().expect("just put there");
            if full.is_end_stream() {
                return ErasedBody::Empty;
            }
            return ErasedBody::Full(Box::new(full));
        }
        if let Some(s) = any.downcast_mut::<Option<String>>() {
            return ErasedBody::full(Bytes::from(s.take().expect("just put there")));
        }
        if any.is::<Option<ErasedBody>>() {
            let erased = any.downcast_mut::<Option<ErasedBody>>();
            return erased.and_then(Option::take).expect("just put there");
        }
        let body = slot.expect("just put there");
        ErasedBody::Boxed(Box::new(Mutex::new(ToBytes { inner: body })))
    }

    fn full(bytes: Bytes) -> ErasedBody {
        if bytes.is_empty() {
            ErasedBody::Empty
        } else {
            ErasedBody::Full(Box::new(Full::new(bytes)))
        }
    }
}

pin_project! {
    /// `B` with `Bytes` frames and a boxed error, its hints forwarded (http-body-util's
    /// `MapFrame` drops the size hint, which HTTP/1's `Content-Length` and the replay need).
    pub(crate) struct ToBytes<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Body for ToBytes<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx).map(|frame| {
            frame.map(|f| {
                f.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                    .map_err(Into::into)
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Body for ErasedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ErasedBody::Empty => Poll::Ready(None),
            ErasedBody::Full(full) => Pin::new(&mut **full)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
            ErasedBody::Boxed(boxed) => boxed.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ErasedBody::Empty => true,
            ErasedBody::Full(full) => full.is_end_stream(),
            ErasedBody::Boxed(boxed) => boxed.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ErasedBody::Empty => SizeHint::with_exact(0),
            ErasedBody::Full(full) => full.size_hint(),
            ErasedBody::Boxed(boxed) => boxed.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn bytes_of(body: ErasedBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[test]
    fn a_request_with_it_fits_the_fast_copy_before_and_after_the_replay_wraps_it() {
        let (erased, replay) = (
            std::mem::size_of::<http::Request<ErasedBody>>(),
            std::mem::size_of::<http::Request<crate::replay::ReplayBody<ErasedBody>>>(),
        );
        assert!(
            erased <= 256 && replay <= 256,
            "{erased} and {replay} bytes"
        );
    }

    #[tokio::test]
    async fn the_usual_bodies_are_recognised_and_others_are_boxed_with_their_hints() {
        let empty = ErasedBody::new(Empty::<Bytes>::new());
        assert!(matches!(empty, ErasedBody::Empty));
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));

        let full = ErasedBody::new(Full::new(Bytes::from_static(b"abc")));
        assert!(matches!(full, ErasedBody::Full(_)));
        assert_eq!(full.size_hint().exact(), Some(3));
        assert_eq!(bytes_of(full).await, "abc");

        let string = ErasedBody::new(String::from("hello"));
        assert!(matches!(string, ErasedBody::Full(_)));
        assert_eq!(bytes_of(string).await, "hello");
        assert!(matches!(ErasedBody::new(String::new()), ErasedBody::Empty));

        let again = ErasedBody::new(ErasedBody::new(String::from("z")));
        assert!(matches!(again, ErasedBody::Full(_)), "not boxed twice");

        assert!(matches!(
            ErasedBody::new(Full::new(Bytes::new())),
            ErasedBody::Empty
        ));

        // Another type, with another `Data`: boxed, with its size hint and bytes.
        let other = Full::new(std::io::Cursor::new(vec![1u8, 2, 3, 4]));
        let boxed = ErasedBody::new(other);
        assert!(matches!(boxed, ErasedBody::Boxed(_)));
        assert_eq!(boxed.size_hint().exact(), Some(4));
        assert_eq!(bytes_of(boxed).await, &[1u8, 2, 3, 4][..]);
    }
}
