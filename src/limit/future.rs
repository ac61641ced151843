use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::gate::{AcquireFuture, Admission, Permit, Ticket};

use super::LimitBody;
use crate::clock::{Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::error::BoxError;

pin_project! {
    /// The response future of [`ConcurrencyLimit`](super::ConcurrencyLimit) and
    /// [`PerHostLimit`](super::PerHostLimit).
    ///
    /// It waits for a permit (in arrival order, bounded by the acquire timeout and the request's
    /// [`RequestDeadline`]), then drives its own instance of the inner service to readiness
    /// (bounded only by a deadline layer around it), calls it, and hands the permit to the
    /// response body ([`LimitBody`]). A request with a permit at once, on an inner service
    /// ready at once, was already sent by `call`: this future then only awaits the response.
    /// Dropped at any point, it gives back whatever it holds: its place in the queue or its
    /// permit. (Dropped unpolled after `call` sent the request, its permit goes back at once;
    /// an inner service that starts work in `call` itself, as tower's `Buffer` queues it, goes
    /// on with that request uncounted. hyper-util's client starts nothing until polled.)
    pub struct LimitFuture<S, B>
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
        // The service and the request are boxed while they wait: only a request that waits pays
        // for it, and inline they would make every limit future (and every future around it)
        // as large as the whole client stack plus a request, moved at every layer.
        Waiting {
            acquire: AcquireFuture,
            ticket: Option<Ticket>,
            // When the wait ends, if anything bounds it; the timer is made on the first poll
            // that has to wait.
            bound: Option<Bound>,
            sleep: LazySleep,
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

impl<S, B> std::fmt::Debug for LimitFuture<S, B>
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
        f.debug_struct("LimitFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, B> LimitFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// Starts a request. `template` is the limiter's inner service, never polled; `active` is
    /// the instance the limiter sends on, cloned from `template` when there is none.
    ///
    /// The fast path: with a permit at once and `active` ready at once (polled here with a
    /// no-op waker; hyper-util's client and most client stacks are always ready), the request
    /// is sent now, with no clone per request. If `active` answers `Pending` it may hold a
    /// place in a queue of its own (tower's `Buffer` does): that instance goes into the future,
    /// which polls it again with the task's waker, and the next request clones a new one. If
    /// it fails, it is dropped, never polled again (tower's rule for a failed service), and the
    /// error is this request's response. A request that must wait for a permit gets a clone of
    /// `template` in its future, driven to readiness once it holds a permit; one refused (a
    /// full queue) gets nothing.
    pub(crate) fn start(
        admission: Admission,
        template: &S,
        active: &mut Option<S>,
        req: Request<B>,
    ) -> Self
    where
        S: Clone,
        S::Error: Into<BoxError>,
    {
        let permit = match admission {
            Admission::Now(permit) => permit,
            Admission::Refused(err) => {
                let err = Some(err.into());
                return LimitFuture {
                    state: State::Refused { err },
                };
            }
            Admission::Wait(ticket, acquire) => {
                return LimitFuture::waiting(ticket, acquire, template.clone(), req)
            }
        };
        let svc = active.get_or_insert_with(|| template.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let state = match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => State::Calling {
                fut: svc.call(req),
                permit: Some(permit),
            },
            Poll::Ready(Err(e)) => {
                *active = None;
                State::Refused {
                    err: Some(e.into()),
                }
            }
            Poll::Pending => State::Ready {
                call: active.take().map(|svc| Box::new((svc, req))),
                permit: Some(permit),
            },
        };
        LimitFuture { state }
    }

    /// A request queued for a permit, bounded by the acquire timeout and its deadline.
    fn waiting(ticket: Ticket, acquire: AcquireFuture, svc: S, req: Request<B>) -> Self {
        let deadline = RequestDeadline::of(&req);
        let bound =
            super::config::wait_bound(ticket.scope().config().acquire_timeout, deadline.as_ref());
        LimitFuture {
            state: State::Waiting {
                acquire,
                ticket: Some(ticket),
                bound,
                sleep: LazySleep::default(),
                call: Some(Box::new((svc, req))),
            },
        }
    }
}

impl<S, B, RB> Future for LimitFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
{
    type Output = Result<Response<LimitBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting {
                    acquire,
                    ticket,
                    bound,
                    sleep,
                    call,
                } => {
                    // The timer first: at the deadline a free permit is no use any more.
                    let bound = *bound;
                    if let Some(bound) = bound {
                        if sleep.poll_until(bound.at, cx).is_ready() {
                            let err = give_up(ticket.take(), authority_of(call.as_deref()), bound);
                            state.set(State::Done);
                            return Poll::Ready(Err(err));
                        }
                    }
                    let permit = match ready!(acquire.as_mut().poll(cx)) {
                        Ok(permit) => permit,
                        Err(_) => unreachable!("limiter semaphore closed"),
                    };
                    // A busy or lagging timer driver may not have fired a timer that is already
                    // due: never start an exchange past its bound. The permit goes straight on
                    // to the next waiter.
                    if let Some(bound) = bound.filter(|b| Instant::now() >= b.at) {
                        drop(permit);
                        let err = give_up(ticket.take(), authority_of(call.as_deref()), bound);
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    let permit = ticket.take().expect("waiting with a ticket").admit(permit);
                    let call = call.take();
                    state.set(State::Ready {
                        call,
                        permit: Some(permit),
                    });
                }
                StateProj::Ready { call, permit } => {
                    let (inner, _) = &mut **call.as_mut().expect("ready with a service");
                    if let Err(e) = ready!(inner.poll_ready(cx)) {
                        state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let (mut inner, req) = *call.take().expect("ready with a request");
                    let fut = inner.call(req);
                    let permit = permit.take();
                    state.set(State::Calling { fut, permit });
                }
                StateProj::Calling { fut, permit } => {
                    let res = ready!(fut.poll(cx));
                    let permit = permit.take();
                    state.set(State::Done);
                    return Poll::Ready(match res {
                        Ok(resp) => Ok(resp.map(|body| LimitBody::new(body, permit))),
                        // The permit is dropped here: the exchange is over.
                        Err(e) => Err(e.into()),
                    });
                }
                StateProj::Refused { err } => {
                    let err = err.take().expect("refused with an error");
                    state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
                StateProj::Done => panic!("LimitFuture polled after completion"),
            }
        }
    }
}

/// Leaves the queue at the bound (a permit handed over meanwhile goes back) and reports it.
/// A wait for a permit that reached its bound: the ticket is given up (its place in the queue
/// goes back), and the timeout counted.
pub(crate) fn give_up(
    ticket: Option<Ticket>,
    authority: Option<&http::uri::Authority>,
    bound: Bound,
) -> BoxError {
    let err = bound.error();
    let stats = ticket
        .as_ref()
        .and_then(|t| t.scope().config().stats.clone());
    drop(ticket);
    crate::channels::fired(stats.as_ref(), authority, &err);
    err.into()
}

fn authority_of<S, B>(call: Option<&(S, Request<B>)>) -> Option<&http::uri::Authority> {
    call.and_then(|(_, r)| r.uri().authority())
}
