use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Method, Uri, Version};
use http_body::{Body, Frame, SizeHint};

use super::drainer::{DrainFn, Shared};
use super::leak::LeakKey;
use crate::error::BoxError;

/// A response body that, when dropped before its end, is read to the end in the background (up
/// to the caps of its [`DrainOnDropLayer`](super::DrainOnDropLayer)) so its HTTP/1 connection
/// goes back to the pool; and that is reported when held past the leak threshold.
///
/// Forwards `size_hint` and `is_end_stream` of the inner body. Counts as finished (nothing to
/// drain, never reported as held) once the inner body reports its end, returns `None`, or fails.
///
/// The inner body lives in a `Pin<Box<_>>`: one allocation per response, the price of being
/// able to hand a body that may not be `Unpin` (every timeout body holds a timer) over to the
/// drain task from `Drop`, without `unsafe`.
pub struct DrainOnDropBody<B> {
    inner: Option<Pin<Box<B>>>,
    done: bool,
    shared: Arc<Shared>,
    /// `None` for HTTP/2 and later: a stream reset costs nothing, there is nothing to save.
    drain: Option<DrainFn<B>>,
    leak: Option<LeakKey>,
}

impl<B> fmt::Debug for DrainOnDropBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainOnDropBody")
            .field("done", &self.done)
            .field("drain_on_drop", &self.drain.is_some())
            .field("watched", &self.leak.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> DrainOnDropBody<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(
        inner: B,
        version: Version,
        shared: Arc<Shared>,
        held: Option<(Method, Uri)>,
    ) -> Self {
        let done = inner.is_end_stream();
        let drain: Option<DrainFn<B>> = if version >= Version::HTTP_2 {
            None
        } else {
            Some(|shared, body| shared.on_drop(body))
        };
        let leak = match (&shared.leaks, held) {
            (Some(registry), Some((method, uri))) if !done => Some(registry.register(method, uri)),
            _ => None,
        };
        DrainOnDropBody {
            inner: Some(Box::pin(inner)),
            done,
            shared,
            drain,
            leak,
        }
    }
}

impl<B> DrainOnDropBody<B> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        self.inner
            .as_deref()
            .expect("the inner body is only taken on drop")
    }

    fn finished(&mut self) {
        self.done = true;
        self.unwatch();
    }

    fn unwatch(&mut self) {
        if let (Some(key), Some(registry)) = (self.leak.take(), &self.shared.leaks) {
            registry.remove(key);
        }
    }
}

impl<B> Body for DrainOnDropBody<B>
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
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if inner.is_end_stream() {
                    this.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.finished();
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                this.finished();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) if !self.done => b.size_hint(),
            _ => SizeHint::with_exact(0),
        }
    }
}

impl<B> Drop for DrainOnDropBody<B> {
    fn drop(&mut self) {
        self.unwatch();
        if self.done {
            return;
        }
        if let (Some(body), Some(drain)) = (self.inner.take(), self.drain) {
            drain(&self.shared, body);
        }
    }
}
