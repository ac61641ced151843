//! [`ReplayFuture`], the response future of [`Replay`](super::Replay).

use std::borrow::BorrowMut;
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

pin_project! {
    /// The response future of [`Replay`](super::Replay): the first attempt, and the replay if
    /// there is one.
    pub struct ReplayFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        fut: S::Future,
        // Boxed: all a replay needs is in every replayable request's future, and futures are
        // moved as they go up the stack; a word moves for free.
        retry: Result<Box<Retry<S, B>>, NotRetried>,
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
            .field("replaying", &self.retry.as_ref().is_ok_and(|r| r.replaying))
            .finish_non_exhaustive()
    }
}

impl<S, B> ReplayFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn new(fut: S::Future, retry: Result<Box<Retry<S, B>>, NotRetried>) -> Self {
        ReplayFuture {
            fut,
            retry,
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
            if let Ok(retry) = this.retry.as_mut() {
                if let Some(pending) = &retry.pending {
                    let deadline = RequestDeadline::of(&pending.1);
                    let (mut svc, req) = ready!(
                        poll_replay_ready::<S, B, Request<ReplayBody<B>>>(retry, cx, deadline)
                    )?;
                    this.fut.set(svc.call(req));
                    retry.replaying = true;
                }
            }
            let err: BoxError = match ready!(this.fut.as_mut().poll(cx)) {
                Ok(resp) => return Poll::Ready(Ok(resp)),
                Err(e) => e.into(),
            };
            let deadline = match this.retry.as_ref() {
                Ok(retry) => retry.parts.extensions.get::<RequestDeadline>().copied(),
                Err(_) => None,
            };
            if let Err(err) = after_error(this.retry, err, *this.entered, deadline) {
                return Poll::Ready(Err(err));
            }
        }
    }
}

/// Waits for the service of the replay set up in `retry.pending` to be ready, bounded by the
/// request's `deadline` (nothing inside bounds a wait for readiness), and hands it over with
/// the replay's request.
#[allow(clippy::type_complexity)]
pub(crate) fn poll_replay_ready<S, B, R>(
    retry: &mut Retry<S, B>,
    cx: &mut Context<'_>,
    deadline: Option<RequestDeadline>,
) -> Poll<Result<(S, Request<ReplayBody<B>>), BoxError>>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    let (svc, req) = &mut **retry.pending.as_mut().expect("a replay is pending");
    match Service::<R>::poll_ready(svc, cx) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(*retry.pending.take().expect("just seen"))),
        Poll::Ready(Err(e)) => {
            retry.pending = None;
            Poll::Ready(Err(e.into()))
        }
        Poll::Pending => {
            let Some(d) = deadline else {
                return Poll::Pending;
            };
            ready!(retry.sleep.poll_until(d.instant(), cx));
            let e = Error::timeout(Phase::Total, d.budget());
            fired(retry.shared.layer.stats.as_ref(), req.uri().authority(), &e);
            retry.pending = None;
            Poll::Ready(Err(e.into()))
        }
    }
}

/// After an attempt failed with `err`: sets up the replay (in `retry.pending`, waiting for its
/// service) when the request may be replayed and the error says the connection was lost before
/// the response, else gives the error to return. `deadline` is the request's.
pub(crate) fn after_error<S, B, R: BorrowMut<Retry<S, B>>>(
    retry: &mut Result<R, NotRetried>,
    err: BoxError,
    entered: Instant,
    deadline: Option<RequestDeadline>,
) -> Result<(), BoxError> {
    // Our own errors (every timeout, refusals) are never replayed.
    if Error::find(&*err).is_some() {
        return Err(err);
    }
    let Some(lost) = lost(&*err, entered) else {
        return Err(err);
    };
    let retry: &mut Retry<S, B> = match retry.as_mut() {
        Ok(retry) => retry.borrow_mut(),
        Err(why) => return Err(not_retried(lost.idle, why.clone(), err)),
    };
    if retry.replaying {
        return Err(not_retried(lost.idle, NotRetried::Replayed, err));
    }
    let body = match &retry.kept {
        None => ReplayBody::replayed(Vec::new(), None),
        Some(kept) => match replay_of(kept) {
            Some((chunks, trailers)) => ReplayBody::replayed(chunks, trailers),
            None => return Err(not_retried(lost.idle, NotRetried::BodyNotKept, err)),
        },
    };
    let stats = retry.shared.layer.stats.as_ref();
    let authority = retry.parts.uri.authority();
    if let Some(deadline) = deadline.filter(|d| d.is_expired()) {
        let e = Error::timeout(Phase::Total, deadline.budget()).with_source(err);
        fired(stats, authority, &e);
        return Err(e.into());
    }
    let retired = lost.make_room();
    if let Some(stats) = stats {
        stats.replay();
    }
    tracing::debug!(
        authority = authority.map(Authority::as_str),
        idle = ?lost.idle,
        stale_retired = retired,
        "reused connection closed by the peer before the response: sending the request again ({err})"
    );
    let mut parts = Request::new(()).into_parts().0;
    std::mem::swap(&mut parts, &mut retry.parts);
    parts.extensions.insert(FreshConnection);
    let svc = retry.shared.service();
    retry.pending = Some(Box::new((svc, Request::from_parts(parts, body))));
    Ok(())
}

/// The error of a lost request that is not sent (again): what happened, and why.
fn not_retried(idle: Option<std::time::Duration>, why: NotRetried, err: BoxError) -> BoxError {
    let e = Error::connection_closed(idle, why).with_source(err);
    tracing::debug!("{e}");
    e.into()
}
