//! Helpers of these tests: scripted bodies driven from the test, and static trait assertions
//! (the same as `src/test_util.rs`, which the unit tests with private access use).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tower_hardened::{BoxError, Error, Phase};

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

pub(crate) fn assert_send_sync<T: Send + Sync>() {}
pub(crate) fn assert_clone<T: Clone>() {}

/// The phase of this crate's error inside a boxed error, if any.
pub(crate) fn phase_of(err: &BoxError) -> Option<Phase> {
    Error::find(&**err).and_then(Error::phase)
}
