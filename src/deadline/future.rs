use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::{DeadlineBody, RequestDeadline};
use crate::channels::fired;
use crate::clock::LazySleep;
use crate::error::{BoxError, Error, Phase};
use crate::stats::Stats;
use http::uri::Authority;
use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;

pin_project! {
    /// The response future of [`Deadline`](super::Deadline): fails with [`Phase::Total`] when the
    /// deadline passes before the response headers, and hands the deadline on to the body.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        sleep: LazySleep,
        deadline: RequestDeadline,
        // The deadline sent on as `grpc-timeout`, if it was.
        hop: Option<Instant>,
        stats: Option<Stats>,
        authority: Option<Authority>,
        expired: bool,
    }
}

impl<F> std::fmt::Debug for DeadlineFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineFuture")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<F> DeadlineFuture<F> {
    pub(crate) fn new(
        inner: F,
        deadline: RequestDeadline,
        expired: bool,
        hop: Option<Instant>,
        stats: Option<Stats>,
        authority: Option<Authority>,
    ) -> Self {
        DeadlineFuture {
            inner,
            sleep: LazySleep::default(),
            expired,
            deadline,
            hop,
            stats,
            authority,
        }
    }
}

/// Whether the deadline sent to the next hop has passed, give or take the timer's resolution.
fn hop_expired(hop: Instant) -> bool {
    Instant::now() + std::time::Duration::from_millis(1) >= hop
}

impl<F, RB, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<DeadlineBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // A deadline already gone when the request came in: do not start the exchange at all.
        if !*this.expired {
            if let Poll::Ready(res) = this.inner.poll(cx) {
                return Poll::Ready(match res {
                    Ok(resp) => Ok(resp.map(|body| {
                        DeadlineBody::reporting(
                            body,
                            *this.deadline,
                            this.stats.take(),
                            this.authority.take(),
                        )
                    })),
                    // A hop further in that enforces the deadline it was sent (tonic's channel
                    // applies the grpc-timeout, failing with its own `Cancelled`) races this
                    // clock and can win by the header's rounding and the timer's resolution:
                    // a failure once that deadline has passed is this deadline's. Not an error
                    // of one of our layers inside, though: it names its own phase and was
                    // counted where it fired.
                    Err(e) => {
                        let e: BoxError = e.into();
                        if this.hop.is_some_and(hop_expired) && Error::find(&*e).is_none() {
                            let err =
                                Error::timeout(Phase::Total, this.deadline.budget()).with_source(e);
                            fired(this.stats.as_ref(), this.authority.as_ref(), &err);
                            Err(err.into())
                        } else {
                            Err(e)
                        }
                    }
                });
            }
        }
        ready!(this.sleep.poll_until(this.deadline.instant(), cx));
        let err = Error::timeout(Phase::Total, this.deadline.budget());
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}
