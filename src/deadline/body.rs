use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::future::fired;
use super::RequestDeadline;
use crate::error::{BoxError, Error, Phase};
use crate::stats::Stats;

pin_project! {
    /// A response body bounded by the request's deadline: the next frame after the deadline is an
    /// error of [`Phase::Total`], even if the body never ends or never sends another byte.
    ///
    /// Forwards `size_hint` and `is_end_stream` of the inner body.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        budget: std::time::Duration,
        stats: Option<Stats>,
        authority: Option<Authority>,
        done: bool,
    }
}

impl<B> std::fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineBody")
            .field("deadline", &self.sleep.deadline())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> DeadlineBody<B> {
    /// Bounds `inner` by `deadline`.
    pub fn new(
        inner: B,
        deadline: RequestDeadline,
        stats: Option<Stats>,
        authority: Option<Authority>,
    ) -> Self {
        DeadlineBody {
            inner,
            sleep: tokio::time::sleep_until(deadline.instant()),
            budget: deadline.budget(),
            stats,
            authority,
            done: false,
        }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for DeadlineBody<B>
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
        // The timer first: a body that is always ready (an endless fast stream) is cut too.
        if this.sleep.poll(cx).is_ready() {
            *this.done = true;
            let err = Error::timeout(Phase::Total, *this.budget);
            fired(this.stats.as_ref(), this.authority.as_ref(), &err);
            return Poll::Ready(Some(Err(err.into())));
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
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
