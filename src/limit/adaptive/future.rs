use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::gate::{AcquireFuture, Admission, Permit, Ticket};
use super::AdaptiveLimitBody;
use crate::clock::Bound;
use crate::deadline::RequestDeadline;
use crate::error::BoxError;

pin_project! {
    /// The response future of [`AdaptiveLimit`](super::AdaptiveLimit).
    ///
    /// It waits for a permit (in arrival order, bounded by the acquire timeout and the
    /// request's [`RequestDeadline`]), then drives its own clone of the inner service to
    /// readiness, calls it, and hands the permit to the response body
    /// ([`AdaptiveLimitBody`]). The latency sample starts when the permit is granted. Dropped
    /// while waiting, it gives its place back; dropped after the request was sent and before
    /// the response, that counts as an overload signal (the caller gave up on the server).
    pub struct AdaptiveLimitFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Boxed while they wait: only a request that waits pays for it.
        Waiting {
            acquire: AcquireFuture,
            ticket: Option<Ticket>,
            timer: Option<(Pin<Box<Sleep>>, Bound)>,
            call: Option<Box<(S, Request<B>)>>,
        },
        Ready {
            call: Option<Box<(S, Request<B>)>>,
            permit: Option<Permit>,
        },
        Calling {
            #[pin]
            fut: S::Future,
            permit: Option<Permit>,
        },
        Refused {
            err: Option<BoxError>,
        },
        Done,
    }
}

impl<S, B> std::fmt::Debug for AdaptiveLimitFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting for a permit",
            State::Ready { .. } => "waiting for the inner service",
            State::Calling { .. } => "calling",
            State::Refused { .. } => "refused",
            State::Done => "done",
        };
        f.debug_struct("AdaptiveLimitFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// Statuses that say the server is overloaded: a sample of them is an overload signal.
fn is_overload(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

impl<S, B> AdaptiveLimitFuture<S, B>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    /// Starts a request on a clone of `inner`. With a permit at once and an inner service
    /// ready at once (polled here with a no-op waker), the request is sent now.
    pub(crate) fn start(admission: Admission, inner: &S, req: Request<B>) -> Self {
        let state = match admission {
            Admission::Refused(err) => State::Refused {
                err: Some(err.into()),
            },
            Admission::Wait(ticket, acquire) => {
                let timer =
                    bound(&ticket, &req).map(|b| (Box::pin(tokio::time::sleep_until(b.at)), b));
                State::Waiting {
                    acquire,
                    ticket: Some(ticket),
                    timer,
                    call: Some(Box::new((inner.clone(), req))),
                }
            }
            Admission::Now(mut permit) => {
                let mut svc = inner.clone();
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match svc.poll_ready(&mut cx) {
                    Poll::Ready(Ok(())) => {
                        let fut = svc.call(req);
                        permit.sent();
                        State::Calling {
                            fut,
                            permit: Some(permit),
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        permit.finish(false);
                        State::Refused {
                            err: Some(e.into()),
                        }
                    }
                    Poll::Pending => State::Ready {
                        call: Some(Box::new((svc, req))),
                        permit: Some(permit),
                    },
                }
            }
        };
        AdaptiveLimitFuture { state }
    }
}

/// Where a wait ends: the acquire timeout or the request's deadline, whichever is first.
fn bound<B>(ticket: &Ticket, req: &Request<B>) -> Option<Bound> {
    let deadline = RequestDeadline::of(req);
    crate::limit::config::wait_bound(ticket.limiter().config().acquire_timeout, deadline.as_ref())
}

impl<S, B, RB> Future for AdaptiveLimitFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
{
    type Output = Result<Response<AdaptiveLimitBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting {
                    acquire,
                    ticket,
                    timer,
                    call,
                } => {
                    // The timer first: at the bound a free permit is no use any more.
                    if let Some((sleep, bound)) = timer {
                        if sleep.as_mut().poll(cx).is_ready() {
                            let err = give_up(ticket.take(), call.as_deref(), *bound);
                            state.set(State::Done);
                            return Poll::Ready(Err(err));
                        }
                    }
                    let permit = match ready!(acquire.as_mut().poll(cx)) {
                        Ok(permit) => permit,
                        Err(_) => unreachable!("the adaptive limiter's semaphore is never closed"),
                    };
                    let ticket = ticket.take().expect("waiting with a ticket");
                    // A lagging timer may not have fired yet: never start an exchange past its
                    // bound. The permit goes back unused.
                    if let Some((_, bound)) = timer.as_ref().filter(|(_, b)| Instant::now() >= b.at)
                    {
                        let bound = *bound;
                        let stats = ticket.limiter().config().stats.clone();
                        ticket.decline(permit);
                        let err = fired(stats, call.as_deref(), bound);
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    let permit = ticket.admit(permit);
                    let call = call.take();
                    state.set(State::Ready {
                        call,
                        permit: Some(permit),
                    });
                }
                StateProj::Ready { call, permit } => {
                    let (inner, _) = &mut **call.as_mut().expect("ready with a service");
                    if let Err(e) = ready!(inner.poll_ready(cx)) {
                        if let Some(permit) = permit.take() {
                            permit.finish(false);
                        }
                        state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let (mut inner, req) = *call.take().expect("ready with a request");
                    let fut = inner.call(req);
                    let mut permit = permit.take();
                    if let Some(p) = &mut permit {
                        p.sent();
                    }
                    state.set(State::Calling { fut, permit });
                }
                StateProj::Calling { fut, permit } => {
                    let res = ready!(fut.poll(cx));
                    let permit = permit.take().expect("calling with a permit");
                    state.set(State::Done);
                    return Poll::Ready(match res {
                        Ok(resp) => {
                            let mut permit = permit;
                            permit.answered(is_overload(resp.status()));
                            Ok(resp.map(|body| AdaptiveLimitBody::new(body, permit)))
                        }
                        Err(e) => {
                            permit.finish(false);
                            Err(e.into())
                        }
                    });
                }
                StateProj::Refused { err } => {
                    let err = err.take().expect("refused with an error");
                    state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
                StateProj::Done => panic!("AdaptiveLimitFuture polled after completion"),
            }
        }
    }
}

/// Leaves the queue at the bound and reports it.
fn give_up<S, B>(ticket: Option<Ticket>, call: Option<&(S, Request<B>)>, bound: Bound) -> BoxError {
    let stats = ticket
        .as_ref()
        .and_then(|t| t.limiter().config().stats.clone());
    drop(ticket);
    fired(stats, call, bound)
}

fn fired<S, B>(
    stats: Option<crate::Stats>,
    call: Option<&(S, Request<B>)>,
    bound: Bound,
) -> BoxError {
    let err = bound.error();
    let authority = call.and_then(|(_, r)| r.uri().authority());
    crate::channels::fired(stats.as_ref(), authority, &err);
    err.into()
}
