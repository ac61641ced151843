//! [`ReplayFuture`], the response future of [`Replay`](super::Replay).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::uri::Authority;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::body::replay_of;
use super::layer::Retry;
use super::lost::{lost, FreshConnection};
use super::ReplayBody;
use crate::channels::fired;
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Error, NotRetried, Phase};
use crate::stats::Stats;

pin_project! {
    /// The response future of [`Replay`](super::Replay): the first attempt, and the replay if
    /// there is one.
    pub struct ReplayFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        fut: S::Future,
        // The first attempt's future is `fut` until this is set; then the replay's.
        replaying: bool,
        // Waiting for the service to be ready for the replay.
        pending: Option<Request<ReplayBody<B>>>,
        retry: Result<Retry<S>, NotRetried>,
        deadline: Option<RequestDeadline>,
        stats: Option<Stats>,
        authority: Option<Authority>,
        entered: Instant,
    }
}

impl<S, B> fmt::Debug for ReplayFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayFuture")
            .field("replayable", &self.retry.is_ok())
            .field("replaying", &self.replaying)
            .finish_non_exhaustive()
    }
}

impl<S, B> ReplayFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn new(
        fut: S::Future,
        retry: Result<Retry<S>, NotRetried>,
        deadline: Option<RequestDeadline>,
        stats: Option<Stats>,
        authority: Option<Authority>,
    ) -> Self {
        ReplayFuture {
            fut,
            replaying: false,
            pending: None,
            retry,
            deadline,
            stats,
            authority,
            entered: Instant::now(),
        }
    }
}

impl<S, B, RB> Future for ReplayFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(req) = this.pending.take() {
                let Ok(retry) = this.retry.as_mut() else {
                    unreachable!("a replay is only prepared with its service");
                };
                match retry.svc.poll_ready(cx) {
                    Poll::Pending => {
                        *this.pending = Some(req);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Ready(Ok(())) => {
                        let fut = retry.svc.call(req);
                        this.fut.set(fut);
                        *this.replaying = true;
                    }
                }
            }
            let err: BoxError = match ready!(this.fut.as_mut().poll(cx)) {
                Ok(resp) => return Poll::Ready(Ok(resp)),
                Err(e) => e.into(),
            };
            // Our own errors (every timeout, refusals) are never replayed.
            if Error::find(&*err).is_some() {
                return Poll::Ready(Err(err));
            }
            let Some(lost) = lost(&*err, *this.entered) else {
                return Poll::Ready(Err(err));
            };
            if *this.replaying {
                return Poll::Ready(Err(not_retried(lost.idle, NotRetried::Replayed, err)));
            }
            let retry = match this.retry.as_mut() {
                Ok(retry) => retry,
                Err(why) => return Poll::Ready(Err(not_retried(lost.idle, why.clone(), err))),
            };
            let body = match &retry.kept {
                None => ReplayBody::replayed(Vec::new(), None),
                Some(kept) => match replay_of(kept) {
                    Some((chunks, trailers)) => ReplayBody::replayed(chunks, trailers),
                    None => {
                        return Poll::Ready(Err(not_retried(
                            lost.idle,
                            NotRetried::BodyNotKept,
                            err,
                        )))
                    }
                },
            };
            if let Some(deadline) = this.deadline.filter(RequestDeadline::is_expired) {
                let e = Error::timeout(Phase::Total, deadline.budget()).with_source(err);
                fired(this.stats.as_ref(), this.authority.as_ref(), &e);
                return Poll::Ready(Err(e.into()));
            }
            let retired = lost.make_room();
            if let Some(stats) = this.stats.as_ref() {
                stats.replay();
            }
            tracing::debug!(
                authority = this.authority.as_ref().map(Authority::as_str),
                idle = ?lost.idle,
                stale_retired = retired,
                "reused connection closed by the peer before the response: sending the request again ({err})"
            );
            let mut parts = Request::new(()).into_parts().0;
            std::mem::swap(&mut parts, &mut retry.parts);
            parts.extensions.insert(FreshConnection);
            *this.pending = Some(Request::from_parts(parts, body));
        }
    }
}

/// The error of a lost request that is not sent (again): what happened, and why.
fn not_retried(idle: Option<std::time::Duration>, why: NotRetried, err: BoxError) -> BoxError {
    let e = Error::connection_closed(idle, why).with_source(err);
    tracing::debug!("{e}");
    e.into()
}
