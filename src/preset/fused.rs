//! The preset's guarantees as one service and one future: telemetry, the total deadline, the
//! per-host and the global limit, the replay of a request whose reused connection was lost, and
//! the response-header timeout and request-write timeout of each attempt. Their body side is
//! [`FusedBody`]: the permits held until the body ends, drain-on-drop, the body cap, the
//! body-idle timeout, and the upload's watch while it goes on.
//!
//! The same rules as the layers' (`Telemetry`, `Deadline`, `PerHostLimit`, `ConcurrencyLimit`,
//! `DrainOnDrop`, `ResponseBodyLimit`, `Replay`, `ResponseHeaderTimeout`, `BodyIdleTimeout`,
//! `RequestWriteTimeout`), from the same parts, in one state machine instead of ten nested
//! ones: the request and the response move once, both permits come from one admission, and the
//! deadline arms no timer of its own while the header timer (which takes the deadline as its
//! own bound) or the body's one timer does. Where nothing else bounds a wait (the inner service
//! not ready, a queue for a permit, a replay waiting for its service), this future arms one.
//! The replay's copy of the request is taken before the deadline and the header clock go into
//! the attempt (its extensions, or on the crate's own transport its body or the call), so a
//! request that came with no extensions is copied without allocating for them.
//! Why, and what each part costs: docs/design.md and BENCHMARKS.md in the repository.

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
use super::HardenedRequestBody;
use crate::channels::fired;
use crate::clock::{Bound, LazySleep, SleepPool};
use crate::deadline::{self, DeadlineLayer, RequestDeadline, Stamp};
use crate::drain::DrainShared;
use crate::error::{BoxError, Error, NotRetried, Phase};
use crate::limit::{
    give_up, AcquireFuture, Admission, Admit, ConcurrencyLimitLayer, PerHostLimitLayer, Permit,
    Ticket,
};
use crate::replay::{self, ReplayBody, ReplayShared, Retry};
use crate::stats::Stats;
use crate::telemetry::{Cache, Outcome, Recording};
use crate::timeout::{watch_upload, HeaderTimer, UploadWatch};

/// What the inner service is sent: the body kept for a replay and timed while it uploads.
type Sent<B> = Request<HardenedRequestBody<B>>;

/// What every request of the fused service shares.
pub(super) struct Config {
    /// The deadline's rules (budget, `grpc-timeout` propagation, stats).
    pub(super) deadline: DeadlineLayer,
    pub(super) stats: Stats,
    pub(super) drain: Arc<DrainShared>,
    pub(super) max_body: u64,
    pub(super) body_idle: Duration,
    pub(super) response_headers: Duration,
    pub(super) request_write: Duration,
    /// Whether each attempt carries its deadline and header clock in the request's extensions
    /// (as the layers put them). Not for the crate's own transport, which finds the clock, and
    /// the deadline in it, in an upload's body or handed over with the call (a body over when
    /// sent): no extension map per request. Only for a `Fused` directly over that transport.
    pub(super) extensions: bool,
    /// The header and body timers the requests hand on to each other.
    pub(super) sleeps: SleepPool,
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
    replay: Arc<ReplayShared<S>>,
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
            replay: self.replay.clone(),
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
        replay: replay::ReplayLayer,
        config: Config,
    ) -> Self {
        Fused {
            inner,
            active: None,
            cache,
            per_host,
            global,
            config: Arc::new(config),
            replay: ReplayShared::new(replay),
        }
    }

    pub(super) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(super) fn get_mut(&mut self) -> &mut S {
        self.active = None;
        // Replays go to a snapshot of the service as changed, as `Replay::get_mut` does.
        self.replay = ReplayShared::new(self.replay.layer.clone());
        &mut self.inner
    }

    pub(super) fn into_inner(self) -> S {
        self.inner
    }

    /// How many timers the requests have given back to the pool.
    #[cfg(test)]
    pub(super) fn timers_kept(&self) -> usize {
        self.config.sleeps.len()
    }

    /// How many header clocks the requests have given back to the pool.
    #[cfg(test)]
    pub(super) fn clocks_kept(&self) -> usize {
        self.config.sleeps.clocks()
    }
}

impl<S, B, RB> Service<Request<B>> for Fused<S>
where
    S: Service<Sent<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
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

    #[inline]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let rec = Recording::start(&mut req, &mut self.cache);
        let (stamp, ours) = Stamp::compute(&mut req, &self.config.deadline);
        let ctx = Ctx {
            config: self.config.clone(),
            stamp,
            ours,
            authority: req.uri().authority().cloned(),
            held: None,
            entered: stamp.now,
        };
        // The future's box first: the replay's copy and the state are written into it, not
        // moved there.
        let mut parts = Box::pin(Parts {
            state: State::Done,
            rec: Some(rec),
            ctx,
            retry: Err(NotRetried::Replayed),
        });
        let mut this = parts.as_mut().project();
        // A deadline gone when the request came in: no permit, no exchange.
        if stamp.expired {
            this.state.set(State::Expired);
            return FusedFuture { parts };
        }
        // Copied for a replay before the deadline goes in (see the module docs).
        let mut req = replay::prepare(&self.replay, &self.inner, req, this.retry);
        if self.config.drain.leaks.is_some() && this.retry.is_err() {
            // A replayable request's copy has them already (see `respond`).
            this.ctx.held = Some((req.method().clone(), req.uri().clone()));
        }
        this.ctx.stamp_on(&mut req);
        let entered = this.rec.as_ref().map(|r| r.span.enter());
        this.state.set(self.start(req, this.ctx));
        drop(entered);
        FusedFuture { parts }
    }
}

impl<S> Fused<S> {
    /// One admission for both limits, the host's first (as the layers are ordered), then the
    /// call if both let the request in at once.
    #[inline]
    fn start<B>(&mut self, req: Request<ReplayBody<B>>, ctx: &Ctx) -> State<S, B>
    where
        S: Service<Sent<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        let host = match self.per_host.admit(&req) {
            Admission::Now(permit) => permit,
            Admission::Refused(err) => return State::refused(err),
            Admission::Wait(ticket, acquire) => {
                let wait = Wait::new(ticket, acquire, self.inner.clone(), req, ctx);
                return State::waiting(wait, None, Some(self.global.clone()));
            }
        };
        let global = match self.global.admit(&req) {
            Admission::Now(permit) => permit,
            // The host's permit goes back with the refusal.
            Admission::Refused(err) => return State::refused(err),
            Admission::Wait(ticket, acquire) => {
                let wait = Wait::new(ticket, acquire, self.inner.clone(), req, ctx);
                return State::waiting(wait, Some(host), None);
            }
        };
        let svc = self.active.get_or_insert_with(|| self.inner.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {
                // Sent right as it came in: the clock read of its deadline is its start.
                let (fut, timer, upload) = send(svc, req, ctx, ctx.stamp.now);
                State::Calling {
                    fut,
                    permits: Some((global, host)),
                    timer,
                    upload,
                }
            }
            Poll::Ready(Err(e)) => {
                self.active = None;
                State::Refused {
                    err: Some(e.into()),
                }
            }
            Poll::Pending => {
                let svc = self.active.take().expect("just made");
                State::Ready {
                    ready: Box::new(Ready {
                        svc,
                        req: Some(req),
                        permits: Some((global, host)),
                        sleep: LazySleep::default(),
                    }),
                }
            }
        }
    }
}

/// Sends one attempt of the request at `now`, with its response-header timer and the watch
/// of its upload (none for a body already over).
#[inline]
fn send<S, B>(
    svc: &mut S,
    mut req: Request<ReplayBody<B>>,
    ctx: &Ctx,
    now: Instant,
) -> (S::Future, HeaderTimer, Option<UploadWatch>)
where
    S: Service<Sent<B>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let config = &ctx.config;
    let deadline = Some(ctx.stamp.deadline);
    let limit = config.response_headers;
    let (timer, clock) = HeaderTimer::detached_pooled(limit, deadline, now, &config.sleeps);
    // The crate's transport finds the clock in an upload's body or is handed it (below); any
    // other client finds it in the extensions.
    let clock = if config.extensions {
        req.extensions_mut().insert(clock);
        None
    } else {
        Some(clock)
    };
    if req.body().is_end_stream() {
        // Nothing to send, keep or time: the body goes before the request is sent, and the
        // crate's transport (the only client here without extensions) is handed the clock.
        let req = req.map(|_| HardenedRequestBody::over());
        if let Some(clock) = clock {
            crate::transport::hand_clock(clock);
        }
        return (svc.call(req), timer, None);
    }
    // An upload holds the clock until the body is sent.
    let stats = Some(&config.stats);
    let (req, watch) = watch_upload(req, config.request_write, deadline, stats, clock);
    let req = req.map(HardenedRequestBody::boxed);
    (svc.call(req), timer, Some(watch))
}

/// What the request carries from the call to its body.
pub(super) struct Ctx {
    pub(super) config: Arc<Config>,
    pub(super) stamp: Stamp,
    /// The deadline is this stack's (not an earlier one the request came with): it goes into
    /// each attempt's extensions.
    pub(super) ours: bool,
    pub(super) authority: Option<Authority>,
    /// The method and URI a held-body report names (with leak detection on).
    pub(super) held: Option<(Method, Uri)>,
    /// When the first attempt was sent.
    pub(super) entered: Instant,
}

impl Ctx {
    /// Puts the deadline in an attempt's extensions, when it is ours (an earlier one the
    /// request came with is there already) and the service under it reads it there.
    fn stamp_on<B>(&self, req: &mut Request<B>) {
        if self.ours && self.config.extensions {
            req.extensions_mut().insert(self.stamp.deadline);
        }
    }
}

/// A request waiting for a permit (boxed: only a request that waits pays for it).
struct Wait<S, B> {
    // Dropped before the ticket, as in the limit layers: a permit the dying acquire may hold
    // goes back before the host's entry is released.
    acquire: AcquireFuture,
    ticket: Option<Ticket>,
    bound: Option<Bound>,
    sleep: LazySleep,
    call: Option<(S, Request<ReplayBody<B>>)>,
}

impl<S, B> Wait<S, B> {
    fn new(
        ticket: Ticket,
        acquire: AcquireFuture,
        svc: S,
        req: Request<ReplayBody<B>>,
        ctx: &Ctx,
    ) -> Self {
        let bound = wait_bound(&ticket, ctx.stamp.deadline);
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
fn wait_bound(ticket: &Ticket, deadline: RequestDeadline) -> Option<Bound> {
    crate::limit::wait_bound(ticket.scope().config().acquire_timeout, Some(&deadline))
}

/// Admitted, waiting for the inner service to be ready (boxed: rare).
struct Ready<S, B> {
    svc: S,
    req: Option<Request<ReplayBody<B>>>,
    permits: Option<(Permit, Permit)>,
    sleep: LazySleep,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Sent<B>>,
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
            // Here and in every state: (global, host), released in that order (as the layers
            // release them).
            permits: Option<(Permit, Permit)>,
            timer: HeaderTimer,
            upload: Option<UploadWatch>,
        },
        // The attempt's connection was lost before the response: the replay (in the retry)
        // waits for its service.
        Replaying { permits: Option<(Permit, Permit)> },
        Refused { err: Option<BoxError> },
        Expired,
        Done,
    }
}

impl<S: Service<Sent<B>>, B> State<S, B> {
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

/// The response future of [`Fused`]: its parts in one box, so that the future moves as one
/// word on its way from the call to the caller's `await` (a few moves of a few hundred bytes
/// each cost more than the allocation).
pub(super) struct FusedFuture<S, B>
where
    S: Service<Sent<B>>,
{
    parts: Pin<Box<Parts<S, B>>>,
}

pin_project! {
    /// What a [`FusedFuture`] holds.
    struct Parts<S, B>
    where
        S: Service<Sent<B>>,
    {
        #[pin]
        state: State<S, B>,
        rec: Option<Recording>,
        ctx: Ctx,
        // What a replay needs, or why there is none.
        retry: Result<Retry<S, B>, NotRetried>,
    }
}

impl<S: Service<Sent<B>>, B> fmt::Debug for FusedFuture<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = &*self.parts;
        let state = match &parts.state {
            State::Waiting { .. } => "waiting for a permit",
            State::Ready { .. } => "waiting for the inner service",
            State::Calling { .. } => "calling",
            State::Replaying { .. } => "replaying",
            State::Refused { .. } => "refused",
            State::Expired => "expired",
            State::Done => "done",
        };
        f.debug_struct("FusedFuture")
            .field("state", &state)
            .field("deadline", &parts.ctx.stamp.deadline)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for FusedFuture<S, B>
where
    S: Service<Sent<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Output = Result<Response<FusedBody<RB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut().parts.as_mut().project();
        let res = ready!(poll_state(this.state, this.ctx, this.retry, this.rec, cx));
        Poll::Ready(res.map_err(|e| {
            let e = hop_error(e, this.ctx);
            let mut rec = this
                .rec
                .take()
                .expect("FusedFuture polled after completion");
            rec.finish(Outcome::Failed(&*e));
            e
        }))
    }
}

/// The response of an attempt, with the body that holds both permits, the watch of an upload
/// still going on and the record until it ends.
#[inline]
fn respond<S, B, RB>(
    resp: Response<RB>,
    permits: (Permit, Permit),
    upload: Option<UploadWatch>,
    mut rec: Recording,
    ctx: &mut Ctx,
    retry: &mut Result<Retry<S, B>, NotRetried>,
) -> Response<FusedBody<RB>>
where
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    rec.headers(resp.status());
    let version = resp.version();
    if ctx.held.is_none() && ctx.config.drain.leaks.is_some() {
        // The replay's copy is done with: what a held-body report names moves from it.
        if let Ok(retry) = retry.as_mut() {
            let parts = &mut retry.parts;
            let uri = std::mem::take(&mut parts.uri);
            ctx.held = Some((std::mem::take(&mut parts.method), uri));
        }
    }
    resp.map(|body| FusedBody::new(body, version, permits, upload, rec, ctx))
}

/// Polls the exchange, in the request's span: the response with its body, made where the
/// attempt's response comes out (so the response moves as little as it can), or the error (the
/// record is still there for the caller to end).
#[inline]
fn poll_state<S, B, RB>(
    mut state: Pin<&mut State<S, B>>,
    ctx: &mut Ctx,
    retry: &mut Result<Retry<S, B>, NotRetried>,
    rec: &mut Option<Recording>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<FusedBody<RB>>, BoxError>>
where
    S: Service<Sent<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    let entered = rec.as_ref().map(|r| r.span.enter());
    loop {
        match state.as_mut().project() {
            StateProj::Calling {
                fut,
                permits,
                timer,
                upload,
            } => {
                let sleeps = &ctx.config.sleeps;
                let err = match fut.poll(cx) {
                    Poll::Ready(Ok(resp)) => {
                        let permits = permits.take().expect("calling with permits");
                        let upload = upload.take();
                        timer.recycle(sleeps);
                        state.set(State::Done);
                        // The body is made outside the span, as the layers' are.
                        drop(entered);
                        let rec = rec.take().expect("FusedFuture polled after completion");
                        let resp = respond(resp, permits, upload, rec, ctx, retry);
                        return Poll::Ready(Ok(resp));
                    }
                    Poll::Ready(Err(e)) => {
                        timer.recycle(sleeps);
                        e.into()
                    }
                    Poll::Pending => {
                        // An upload that stalled (counted where it fired).
                        if let Some(Poll::Ready(bound)) = upload.as_mut().map(|u| u.poll_fired(cx))
                        {
                            state.set(State::Done);
                            return Poll::Ready(Err(bound.error().into()));
                        }
                        let err = ready!(timer.poll_fired_pooled(sleeps, cx)).error();
                        fired(Some(&ctx.config.stats), ctx.authority.as_ref(), &err);
                        // The permits go back here, with the attempt: the exchange is over.
                        state.set(State::Done);
                        return Poll::Ready(Err(err.into()));
                    }
                };
                if let (Ok(retry), None, Some(_)) = (&*retry, &ctx.held, &ctx.config.drain.leaks) {
                    // A replay takes the copy: what a held-body report names is kept first.
                    let parts = &retry.parts;
                    ctx.held = Some((parts.method.clone(), parts.uri.clone()));
                }
                let deadline = Some(ctx.stamp.deadline);
                if let Err(err) = replay::after_error(retry, err, ctx.entered, deadline) {
                    state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
                let permits = permits.take();
                state.set(State::Replaying { permits });
            }
            StateProj::Replaying { permits } => {
                let retry = retry.as_mut().expect("replaying with a retry");
                let deadline = Some(ctx.stamp.deadline);
                let ready = ready!(replay::poll_ready::<S, B, Sent<B>>(retry, cx, deadline));
                let (mut svc, mut req) = match ready {
                    Ok(ready) => ready,
                    Err(err) => {
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                };
                ctx.stamp_on(&mut req);
                let (fut, timer, upload) = send(&mut svc, req, ctx, Instant::now());
                retry.replaying = true;
                let permits = permits.take();
                state.set(State::Calling {
                    fut,
                    permits,
                    timer,
                    upload,
                });
            }
            StateProj::Waiting { wait, host, global } => {
                // The timer first: at the bound a free permit is no use any more.
                if let Some(bound) = wait.bound {
                    if wait.sleep.poll_until(bound.at, cx).is_ready() {
                        let err = give_up(wait.ticket.take(), ctx.authority.as_ref(), bound);
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
                    let err = give_up(wait.ticket.take(), ctx.authority.as_ref(), bound);
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
                            wait.bound = wait_bound(&ticket, ctx.stamp.deadline);
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
                        permits: Some((global, host)),
                        sleep,
                    }),
                });
            }
            StateProj::Ready { ready } => {
                match ready.svc.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
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
                ctx.entered = Instant::now();
                let (fut, timer, upload) = send(&mut ready.svc, req, ctx, ctx.entered);
                state.set(State::Calling {
                    fut,
                    permits,
                    timer,
                    upload,
                });
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

fn request_of<S, B>(wait: &Wait<S, B>) -> &Request<ReplayBody<B>> {
    &wait.call.as_ref().expect("waiting with a request").1
}

/// The deadline's error, counted.
fn deadline_error(ctx: &Ctx) -> BoxError {
    let err = Error::timeout(Phase::Total, ctx.stamp.deadline.budget());
    fired(Some(&ctx.config.stats), ctx.authority.as_ref(), &err);
    err.into()
}

/// An error from inside, as the deadline sees it (see `deadline::hop_error`).
fn hop_error(e: BoxError, ctx: &Ctx) -> BoxError {
    let stats = Some(&ctx.config.stats);
    let stamp = &ctx.stamp;
    deadline::hop_error(e, stamp.hop, &stamp.deadline, stats, ctx.authority.as_ref())
}
