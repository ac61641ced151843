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

/// An error from inside a request whose deadline was sent on as `grpc-timeout` (to `hop`).
///
/// A hop further in that enforces the deadline it was sent (tonic's channel applies the
/// grpc-timeout, failing with its own `Cancelled`) races this clock and can win by the header's
/// rounding and the timer's resolution: a failure once that deadline has passed is this
/// deadline's, counted. Not an error of one of our layers inside, though: it names its own
/// phase and was counted where it fired.
pub(crate) fn hop_error(
    e: BoxError,
    hop: Option<Instant>,
    deadline: &RequestDeadline,
    stats: Option<&Stats>,
    authority: Option<&Authority>,
) -> BoxError {
    if hop.is_some_and(hop_expired) && Error::find(&*e).is_none() {
        let err = Error::timeout(Phase::Total, deadline.budget()).with_source(e);
        fired(stats, authority, &err);
        return err.into();
    }
    e
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
                            std::mem::take(this.sleep),
                        )
                    })),
                    Err(e) => Err(hop_error(
                        e.into(),
                        *this.hop,
                        this.deadline,
                        this.stats.as_ref(),
                        this.authority.as_ref(),
                    )),
                });
            }
        }
        ready!(this.sleep.poll_until(this.deadline.instant(), cx));
        let err = Error::timeout(Phase::Total, this.deadline.budget());
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Body;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_waits_reuses_the_futures_timer_and_is_cut_at_the_deadline() {
        // The head comes after a wait (the future arms its timer), then the body waits: it is
        // bounded by the timer the future made, not a second one.
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut resp = Some(Response::new(body));
        let mut polls = 0;
        let inner = std::future::poll_fn(move |_| {
            polls += 1;
            if polls == 1 {
                Poll::Pending
            } else {
                Poll::Ready(Ok::<_, BoxError>(resp.take().unwrap()))
            }
        });
        let deadline = RequestDeadline::after(Duration::from_secs(2));
        let mut fut = tokio_test::task::spawn(DeadlineFuture::new(
            inner, deadline, false, None, None, None,
        ));
        assert!(fut.poll().is_pending());
        let body = match fut.poll() {
            Poll::Ready(Ok(resp)) => resp.into_body(),
            _ => panic!("the head"),
        };
        assert!(body.has_timer(), "the future's timer went to the body");
        tx.send_data(Bytes::from("a")).await.unwrap();
        let mut body = tokio_test::task::spawn(body);
        let frame = body.enter(|cx, b| b.poll_frame(cx));
        assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        assert!(body.enter(|cx, b| b.poll_frame(cx)).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(body.is_woken());
        let err = match body.enter(|cx, b| b.poll_frame(cx)) {
            Poll::Ready(Some(Err(e))) => e,
            _ => panic!("cut at the deadline"),
        };
        assert_eq!(
            Error::find(&*err).and_then(Error::phase),
            Some(Phase::Total)
        );
        drop(tx);
    }
}
