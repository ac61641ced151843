//! The preset's outer guarantees as one service and one future: telemetry, the total
//! deadline, the per-host and the global limit. Their body side is [`FusedBody`]: the permits
//! held until the body ends, drain-on-drop, the body cap and the body-idle timeout.
//!
//! The same rules as the layers' (`Telemetry`, `Deadline`, `PerHostLimit`, `ConcurrencyLimit`,
//! `DrainOnDrop`, `ResponseBodyLimit`, `BodyIdleTimeout`), in one state machine instead of
//! seven nested ones: the request and the response move once, both permits come from one
//! admission, and the deadline arms no timer of its own while something inside bounds the
//! wait by it (the response-header timeout, which takes the deadline as its own bound, and
//! the body's one timer). Where nothing inside bounds a wait (the inner service not ready,
//! a queue for a permit), this future arms one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Method, Request, Response, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::fused_body::FusedBody;
use crate::channels::fired;
use crate::clock::{Bound, LazySleep};
use crate::deadline::{hop_expired, DeadlineLayer, Stamp};
use crate::drain::DrainShared;
use crate::error::{BoxError, Error, Phase};
use crate::limit::{
    AcquireFuture, Admission, Admit, ConcurrencyLimitLayer, PerHostLimitLayer, Permit, Ticket,
};
use crate::stats::Stats;
use crate::telemetry::{Cache, Outcome, Recording};

/// What every request of the fused service shares.
pub(super) struct Config {
    /// The deadline's rules (budget, `grpc-timeout` propagation, stats).
    pub(super) deadline: DeadlineLayer,
    pub(super) stats: Stats,
    pub(super) drain: Arc<DrainShared>,
    pub(super) max_body: u64,
    pub(super) body_idle: Duration,
}

/// The preset's outer guarantees around `S` (see the module docs).
pub(super) struct Fused<S> {
    inner: S,
    /// A clone of `inner` that was ready, kept for the next request (as the limits do).
    active: Option<S>,
    cache: Cache,
    per_host: PerHostLimitLayer,
    global: ConcurrencyLimitLayer,
    config: Arc<Config>,
}

impl<S: Clone> Clone for Fused<S> {
    fn clone(&self) -> Self {
        Fused {
            inner: self.inner.clone(),
            active: None,
            cache: self.cache.clone(),
            per_host: self.per_host.clone(),
            global: self.global.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Fused<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Fused<S> {
    pub(super) fn new(
        inner: S,
        cache: Cache,
        per_host: PerHostLimitLayer,
        global: ConcurrencyLimitLayer,
        config: Config,
    ) -> Self {
        Fused {
            inner,
            active: None,
            cache,
            per_host,
            global,
            config: Arc::new(config),
        }
    }

    pub(super) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(super) fn get_mut(&mut self) -> &mut S {
        self.active = None;
        &mut self.inner
    }

    pub(super) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Fused<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError> + Clone,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<FusedBody<RB>>;
    type Error = BoxError;
    type Future = FusedFuture<S, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never waits here, where no deadline can see it: the future waits, bounded.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let rec = Recording::start(&mut req, &mut self.cache);
        let stamp = Stamp::on(&mut req, &self.config.deadline);
        let held = self
            .config
            .drain
            .leaks
            .as_ref()
            .map(|_| (req.method().clone(), req.uri().clone()));
        let ctx = Ctx {
            config: self.config.clone(),
            stamp,
            authority: req.uri().authority().cloned(),
            held,
        };
        // A deadline gone when the request came in: no permit, no exchange.
        let state = if stamp.expired {
            State::Expired
        } else {
            let _entered = rec.span.enter();
            self.start(req)
        };
        FusedFuture {
            state,
            rec: Some(rec),
            ctx,
        }
    }
}

impl<S> Fused<S> {
    /// One admission for both limits, the host's first (as the layers are ordered), then the
    /// call if both let the request in at once.
    fn start<B>(&mut self, req: Request<B>) -> State<S, B>
    where
        S: Service<Request<B>, Error = BoxError> + Clone,
    {
        let host = match self.per_host.admit(&req) {
            Admission::Now(permit) => permit,
            Admission::Refused(err) => return State::refused(err),
            Admission::Wait(ticket, acquire) => {
                let wait = Wait::new(ticket, acquire, self.inner.clone(), req);
                return State::waiting(wait, None, Some(self.global.clone()));
            }
        };
        let global = match self.global.admit(&req) {
            Admission::Now(permit) => permit,
            // The host's permit goes back with the refusal.
            Admission::Refused(err) => return State::refused(err),
            Admission::Wait(ticket, acquire) => {
                let wait = Wait::new(ticket, acquire, self.inner.clone(), req);
                return State::waiting(wait, Some(host), None);
            }
        };
        let svc = self.active.get_or_insert_with(|| self.inner.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => State::Calling {
                fut: svc.call(req),
                permits: Some((host, global)),
            },
            Poll::Ready(Err(e)) => {
                self.active = None;
                State::Refused { err: Some(e) }
            }
            Poll::Pending => {
                let svc = self.active.take().expect("just made");
                State::Ready {
                    ready: Box::new(Ready {
                        svc,
                        req: Some(req),
                        permits: Some((host, global)),
                        sleep: LazySleep::default(),
                    }),
                }
            }
        }
    }
}

/// What the request carries from the call to its body.
pub(super) struct Ctx {
    pub(super) config: Arc<Config>,
    pub(super) stamp: Stamp,
    pub(super) authority: Option<Authority>,
    /// The method and URI a held-body report names (with leak detection on).
    pub(super) held: Option<(Method, Uri)>,
}

/// A request waiting for a permit (boxed: only a request that waits pays for it).
struct Wait<S, B> {
    // Dropped before the ticket, as in the limit layers: a permit the dying acquire may hold
    // goes back before the host's entry is released.
    acquire: AcquireFuture,
    ticket: Option<Ticket>,
    bound: Option<Bound>,
    sleep: LazySleep,
    call: Option<(S, Request<B>)>,
}

impl<S, B> Wait<S, B> {
    fn new(ticket: Ticket, acquire: AcquireFuture, svc: S, req: Request<B>) -> Self {
        let bound = wait_bound(&ticket, &req);
        Wait {
            acquire,
            ticket: Some(ticket),
            bound,
            sleep: LazySleep::default(),
            call: Some((svc, req)),
        }
    }
}

/// When a wait for a permit ends: the limit's acquire timeout cut by the deadline, as in the
/// limit layers.
fn wait_bound<B>(ticket: &Ticket, req: &Request<B>) -> Option<Bound> {
    let deadline = crate::deadline::RequestDeadline::of(req);
    match (ticket.scope().config().acquire_timeout, deadline) {
        (Some(limit), d) => Some(Bound::new(
            Instant::now(),
            limit,
            Phase::Acquire,
            d.as_ref(),
        )),
        (None, Some(d)) => Some(Bound {
            at: d.instant(),
            phase: Phase::Total,
            limit: d.budget(),
        }),
        (None, None) => None,
    }
}

/// Admitted, waiting for the inner service to be ready (boxed: rare).
struct Ready<S, B> {
    svc: S,
    req: Option<Request<B>>,
    permits: Option<(Permit, Permit)>,
    sleep: LazySleep,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Waiting {
            wait: Box<Wait<S, B>>,
            // The host's permit, while waiting for the global one.
            host: Option<Permit>,
            // The global limit, while waiting for the host's permit.
            global: Option<ConcurrencyLimitLayer>,
        },
        Ready { ready: Box<Ready<S, B>> },
        Calling {
            #[pin]
            fut: S::Future,
            permits: Option<(Permit, Permit)>,
        },
        Refused { err: Option<BoxError> },
        Expired,
        Done,
    }
}

impl<S: Service<Request<B>>, B> State<S, B> {
    fn refused(err: Error) -> Self {
        State::Refused {
            err: Some(err.into()),
        }
    }

    fn waiting(
        wait: Wait<S, B>,
        host: Option<Permit>,
        global: Option<ConcurrencyLimitLayer>,
    ) -> Self {
        State::Waiting {
            wait: Box::new(wait),
            host,
            global,
        }
    }
}

pin_project! {
    /// The response future of [`Fused`].
    pub(super) struct FusedFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        rec: Option<Recording>,
        ctx: Ctx,
    }
}

impl<S: Service<Request<B>>, B> fmt::Debug for FusedFuture<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting for a permit",
            State::Ready { .. } => "waiting for the inner service",
            State::Calling { .. } => "calling",
            State::Refused { .. } => "refused",
            State::Expired => "expired",
            State::Done => "done",
        };
        f.debug_struct("FusedFuture")
            .field("state", &state)
            .field("deadline", &self.ctx.stamp.deadline)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for FusedFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Output = Result<Response<FusedBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = {
            let _entered = this.rec.as_ref().map(|r| r.span.enter());
            ready!(poll_state(this.state, this.ctx, cx))
        };
        let mut rec = this
            .rec
            .take()
            .expect("FusedFuture polled after completion");
        Poll::Ready(match res {
            Ok((resp, permits)) => {
                rec.headers(resp.status());
                let version = resp.version();
                let ctx = this.ctx;
                Ok(resp.map(|body| FusedBody::new(body, version, permits, rec, ctx)))
            }
            Err(e) => {
                let e = hop_error(e, this.ctx);
                rec.finish(Outcome::Failed(&*e));
                Err(e)
            }
        })
    }
}

type Answer<RB> = Result<(Response<RB>, (Permit, Permit)), BoxError>;

fn poll_state<S, B, RB>(
    mut state: Pin<&mut State<S, B>>,
    ctx: &Ctx,
    cx: &mut Context<'_>,
) -> Poll<Answer<RB>>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Calling { fut, permits } => {
                let res = ready!(fut.poll(cx));
                let permits = permits.take().expect("calling with permits");
                state.set(State::Done);
                return Poll::Ready(match res {
                    Ok(resp) => Ok((resp, permits)),
                    // The permits go back here: the exchange is over.
                    Err(e) => Err(e),
                });
            }
            StateProj::Waiting { wait, host, global } => {
                // The timer first: at the bound a free permit is no use any more.
                if let Some(bound) = wait.bound {
                    if wait.sleep.poll_until(bound.at, cx).is_ready() {
                        let err = give_up(&mut wait.ticket, ctx, bound);
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                }
                let permit = match ready!(wait.acquire.as_mut().poll(cx)) {
                    Ok(permit) => permit,
                    Err(_) => unreachable!("limiter semaphore closed"),
                };
                // A lagging timer driver may not have fired a timer already due: never start
                // an exchange past its bound. The permit goes on to the next waiter.
                if let Some(bound) = wait.bound.filter(|b| Instant::now() >= b.at) {
                    drop(permit);
                    let err = give_up(&mut wait.ticket, ctx, bound);
                    state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
                let permit = wait
                    .ticket
                    .take()
                    .expect("waiting with a ticket")
                    .admit(permit);
                let (host, global) = match (host.take(), global.take()) {
                    // This was the wait for the global permit.
                    (Some(host), _) => (host, permit),
                    // The host's permit came: now the global limit.
                    (None, Some(mut layer)) => match layer.admit(request_of(wait)) {
                        Admission::Now(global) => (permit, global),
                        Admission::Refused(err) => {
                            state.set(State::Done);
                            return Poll::Ready(Err(err.into()));
                        }
                        Admission::Wait(ticket, acquire) => {
                            wait.bound = wait_bound(&ticket, request_of(wait));
                            wait.ticket = Some(ticket);
                            wait.acquire = acquire;
                            *host = Some(permit);
                            continue;
                        }
                    },
                    (None, None) => unreachable!("a wait is for one of the two permits"),
                };
                let (svc, req) = wait.call.take().expect("waiting with a request");
                let sleep = std::mem::take(&mut wait.sleep);
                state.set(State::Ready {
                    ready: Box::new(Ready {
                        svc,
                        req: Some(req),
                        permits: Some((host, global)),
                        sleep,
                    }),
                });
            }
            StateProj::Ready { ready } => {
                match ready.svc.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        state.set(State::Done);
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => {
                        // Nothing inside bounds a wait for readiness: the deadline does.
                        let d = ctx.stamp.deadline;
                        ready!(ready.sleep.poll_until(d.instant(), cx));
                        state.set(State::Done);
                        return Poll::Ready(Err(deadline_error(ctx)));
                    }
                }
                let req = ready.req.take().expect("ready with a request");
                let permits = ready.permits.take();
                let fut = ready.svc.call(req);
                state.set(State::Calling { fut, permits });
            }
            StateProj::Refused { err } => {
                let err = err.take().expect("refused with an error");
                state.set(State::Done);
                return Poll::Ready(Err(err));
            }
            StateProj::Expired => {
                state.set(State::Done);
                return Poll::Ready(Err(deadline_error(ctx)));
            }
            StateProj::Done => panic!("FusedFuture polled after completion"),
        }
    }
}

fn request_of<S, B>(wait: &Wait<S, B>) -> &Request<B> {
    &wait.call.as_ref().expect("waiting with a request").1
}

/// The deadline's error, counted.
fn deadline_error(ctx: &Ctx) -> BoxError {
    let err = Error::timeout(Phase::Total, ctx.stamp.deadline.budget());
    fired(Some(&ctx.config.stats), ctx.authority.as_ref(), &err);
    err.into()
}

/// A hop further in that enforces the deadline it was sent (tonic's channel applies the
/// `grpc-timeout`, failing with its own `Cancelled`) races this clock and can win by the
/// header's rounding and the timer's resolution: a failure once that deadline has passed is
/// this deadline's. Not an error of one of our layers inside, though: it names its own phase
/// and was counted where it fired.
fn hop_error(e: BoxError, ctx: &Ctx) -> BoxError {
    if ctx.stamp.hop.is_some_and(hop_expired) && Error::find(&*e).is_none() {
        let err = Error::timeout(Phase::Total, ctx.stamp.deadline.budget()).with_source(e);
        fired(Some(&ctx.config.stats), ctx.authority.as_ref(), &err);
        return err.into();
    }
    e
}

/// A wait for a permit that reached its bound: the ticket is given up, and the timeout
/// counted.
fn give_up(ticket: &mut Option<Ticket>, ctx: &Ctx, bound: Bound) -> BoxError {
    let err = bound.error();
    let stats = ticket
        .as_ref()
        .and_then(|t| t.scope().config().stats.clone());
    drop(ticket.take());
    fired(stats.as_ref(), ctx.authority.as_ref(), &err);
    err.into()
}
