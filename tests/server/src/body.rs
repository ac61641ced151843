//! [`ChannelBody`]: a response or request body whose frames a test sends one at a time.
//!
//! ```
//! use http_body::Body;
//! use tower_hardened_test_server::body::ChannelBody;
//!
//! let (tx, body) = ChannelBody::new();
//! tx.send(Ok(bytes::Bytes::from("a"))).unwrap();
//! assert!(!body.is_end_stream());
//! drop(tx); // the body ends after the frames sent
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The error a [`ChannelBody`] yields: what the test sent.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sending side of a [`ChannelBody`]: each `Ok` is a data frame, an `Err` the body's error.
pub type BodyTx = mpsc::UnboundedSender<Result<Bytes, BoxError>>;

/// A body whose frames the test sends one by one; ends when the sender is dropped.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Result<Bytes, BoxError>>,
    hint: SizeHint,
    ended: bool,
}

impl ChannelBody {
    /// A body and the sender of its frames; its size hint says nothing.
    pub fn new() -> (BodyTx, ChannelBody) {
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

    /// The same body with `hint` as its size hint.
    pub fn with_hint(mut self, hint: SizeHint) -> Self {
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
