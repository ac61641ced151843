//! Test helpers for the unit tests that need private access (limit, drain, pool, preset):
//! scripted bodies driven from the test, and static trait assertions. The tests of the other
//! layers use only the public API and live in `tests/layers/`, with a copy of these helpers.

#[cfg(any(feature = "limit", feature = "drain"))]
pub(crate) use self::bodies::*;

/// Scripted bodies, for the limit and drain tests.
#[cfg(any(feature = "limit", feature = "drain"))]
mod bodies {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::{Body, Frame, SizeHint};
    use tokio::sync::mpsc;

    use crate::error::BoxError;

    /// A body whose frames the test sends one by one; ends when the sender is dropped.
    pub(crate) struct ChannelBody {
        rx: mpsc::UnboundedReceiver<Result<Bytes, BoxError>>,
        hint: SizeHint,
        ended: bool,
    }

    pub(crate) type BodyTx = mpsc::UnboundedSender<Result<Bytes, BoxError>>;

    impl ChannelBody {
        pub(crate) fn new() -> (BodyTx, ChannelBody) {
            let (tx, rx) = mpsc::unbounded_channel();
            (
                tx,
                ChannelBody {
                    rx,
                    hint: SizeHint::default(),
                    ended: false,
                },
            )
        }

        pub(crate) fn with_hint(mut self, hint: SizeHint) -> Self {
            self.hint = hint;
            self
        }
    }

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.ended = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            }
        }

        fn is_end_stream(&self) -> bool {
            self.ended
        }

        fn size_hint(&self) -> SizeHint {
            self.hint
        }
    }

    /// What polling a body once gives.
    #[cfg(feature = "limit")]
    pub(crate) type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

    /// Polls a body once, with a no-op waker.
    #[cfg(feature = "limit")]
    pub(crate) fn poll_once<B: Body + Unpin>(body: &mut B) -> Polled<B> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        Pin::new(body).poll_frame(&mut cx)
    }
}

pub(crate) fn assert_send_sync<T: Send + Sync>() {}
pub(crate) fn assert_clone<T: Clone>() {}

/// The phase of this crate's error inside a boxed error, if any.
#[cfg(any(feature = "limit", feature = "pool"))]
pub(crate) fn phase_of(err: &crate::BoxError) -> Option<crate::Phase> {
    crate::Error::find(&**err).and_then(crate::Error::phase)
}
