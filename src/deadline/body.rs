use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::RequestDeadline;
use crate::channels::fired;
use crate::clock::LazySleep;
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
        sleep: LazySleep,
        at: Instant,
        budget: std::time::Duration,
        stats: Option<Stats>,
        authority: Option<Authority>,
        done: bool,
    }
}

impl<B> std::fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineBody")
            .field("deadline", &self.at)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> DeadlineBody<B> {
    /// Bounds `inner` by `deadline`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_body::Body;
    /// use tower_hardened::{DeadlineBody, RequestDeadline};
    ///
    /// let body = http_body_util::Full::new(bytes::Bytes::from("hi"));
    /// let body = DeadlineBody::new(body, RequestDeadline::after(Duration::from_secs(5)));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub fn new(inner: B, deadline: RequestDeadline) -> Self {
        DeadlineBody::reporting(inner, deadline, None, None, LazySleep::default())
    }

    /// Bounds `inner` by `deadline`, and reports a timeout to `stats` and in the log with
    /// `authority` (what [`Deadline`](super::Deadline) does). `sleep` is the response future's
    /// timer for the same deadline, if it made one: a body that waits reuses it.
    pub(crate) fn reporting(
        inner: B,
        deadline: RequestDeadline,
        stats: Option<Stats>,
        authority: Option<Authority>,
        sleep: LazySleep,
    ) -> Self {
        DeadlineBody {
            inner,
            sleep,
            at: deadline.instant(),
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

    /// Whether a timer was made for this body (or handed over to it).
    #[cfg(test)]
    pub(crate) fn has_timer(&self) -> bool {
        self.sleep.is_armed()
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
        let res = match this.inner.poll_frame(cx) {
            // A frame that is ready at once still counts against the deadline, so a body that is
            // always ready (an endless fast stream) is cut too; no timer is needed for that.
            Poll::Ready(Some(Ok(frame))) if Instant::now() < *this.at => {
                return Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Ok(_))) => None,
            Poll::Ready(Some(Err(e))) => Some(Some(Err(e.into()))),
            Poll::Ready(None) => Some(None),
            Poll::Pending => {
                ready!(this.sleep.poll_until(*this.at, cx));
                None
            }
        };
        *this.done = true;
        if let Some(res) = res {
            return Poll::Ready(res);
        }
        let err = Error::timeout(Phase::Total, *this.budget);
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Some(Err(err.into())))
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
