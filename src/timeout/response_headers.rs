//! [`ResponseHeaderTimeoutLayer`]: a bound on the wait for the response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::channels::{fired, HeaderClock};
use crate::clock::{self, Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::error::BoxError;
use crate::stats::Stats;

/// Fails a request whose response headers do not arrive within a limit: phase
/// [`ResponseHeaders`](crate::Phase::ResponseHeaders) (or [`Total`](crate::Phase::Total) when the
/// request's [`RequestDeadline`] comes first).
///
/// Go's `Transport.ResponseHeaderTimeout`. The clock starts when the response future is first
/// polled (right after the service inside it is first polled, which is when clients such as
/// hyper-util's and this crate's transport send), or later when layers of this crate inside it
/// can tell that the request is on its way: with
/// [`RequestWriteTimeoutLayer`](crate::RequestWriteTimeoutLayer) inside, once the connection has
/// asked for the last piece of the request body (it hands large frames over in 64 KiB slices,
/// so what is still unsent then is at most the connection's write buffer); with [`RetireLayer`](crate::RetireLayer) (and so the preset's client) inside, once the
/// connection is obtained. Connecting, the TLS handshake and the upload have limits of their own
/// and are then not counted twice, so a stall there is named by its own phase. Put the layer
/// inside the concurrency limits so that queue waits are not counted against it (they are
/// bounded by the deadline and the acquire timeout instead). The response body is not covered:
/// that is [`BodyIdleTimeoutLayer`](crate::BodyIdleTimeoutLayer)'s and the deadline's.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_hardened::{Error, Phase, ResponseHeaderTimeoutLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let slow = service_fn(|_req: Request<()>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// });
/// let svc = ServiceBuilder::new()
///     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(5)))
///     .service(slow);
/// let err = svc.oneshot(Request::new(())).await.unwrap_err();
/// assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::ResponseHeaders));
/// assert_eq!(err.to_string(), "no response headers within 5s");
/// # }
/// ```
///
/// # Panics
///
/// [`ResponseHeaderTimeoutLayer::new`] panics when the limit is zero.
#[derive(Debug, Clone)]
pub struct ResponseHeaderTimeoutLayer {
    limit: Duration,
    stats: Option<Stats>,
}

impl ResponseHeaderTimeoutLayer {
    /// Response headers must arrive within `limit`.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        clock::check_duration("ResponseHeaderTimeoutLayer limit", limit);
        ResponseHeaderTimeoutLayer { limit, stats: None }
    }

    /// Counts fired timeouts in `stats`, by phase.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The configured limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl<S> Layer<S> for ResponseHeaderTimeoutLayer {
    type Service = ResponseHeaderTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseHeaderTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ResponseHeaderTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct ResponseHeaderTimeout<S> {
    inner: S,
    layer: ResponseHeaderTimeoutLayer,
}

impl<S> ResponseHeaderTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: ResponseHeaderTimeoutLayer) -> Self {
        ResponseHeaderTimeout { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Gives back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for ResponseHeaderTimeout<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseHeaderTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let deadline = RequestDeadline::of(&req);
        let timer = HeaderTimer::start(&mut req, self.layer.limit, deadline, Instant::now());
        let authority = req.uri().authority().cloned();
        ResponseHeaderTimeoutFuture {
            inner: self.inner.call(req),
            timer,
            stats: self.layer.stats.clone(),
            authority,
        }
    }
}

/// The response-header timer of one attempt: started by the request's [`HeaderClock`] (put in
/// the request for the client under it to hold while it connects and uploads), cut by the
/// request's deadline, which it alone bounds the attempt by while the clock is held.
#[derive(Debug)]
pub(crate) struct HeaderTimer {
    // Boxed (lazily): the futures holding it stay `Unpin`.
    sleep: LazySleep,
    // Taken only when the timer goes back to a pool.
    clock: Option<HeaderClock>,
    entered: Instant,
    limit: Duration,
    deadline: Option<RequestDeadline>,
    // Known once the clock started (and how many restarts the clock had then).
    bound: Option<Bound>,
    restarts: u64,
}

impl HeaderTimer {
    /// The timer of `req`'s attempt, entered at `now`, with the phase's `limit`.
    #[inline]
    pub(crate) fn start<B>(
        req: &mut Request<B>,
        limit: Duration,
        deadline: Option<RequestDeadline>,
        now: Instant,
    ) -> HeaderTimer {
        let (timer, clock) = HeaderTimer::detached(limit, deadline, now);
        req.extensions_mut().insert(clock);
        timer
    }

    /// As [`start`](Self::start), but the clock is given back for the caller to hand to the
    /// client under it (the preset puts it in the request body or hands it over, for its own
    /// transport).
    #[inline]
    pub(crate) fn detached(
        limit: Duration,
        deadline: Option<RequestDeadline>,
        now: Instant,
    ) -> (HeaderTimer, HeaderClock) {
        let clock = HeaderClock::with_deadline(deadline);
        (
            HeaderTimer::with(clock.clone(), limit, deadline, now),
            clock,
        )
    }

    /// As [`detached`](Self::detached), with the clock from `pool` when it has one, and the
    /// timer taken from it when first polled (give both back with [`recycle`](Self::recycle)).
    #[cfg(feature = "preset")]
    #[inline]
    pub(crate) fn detached_pooled(
        limit: Duration,
        deadline: Option<RequestDeadline>,
        now: Instant,
        pool: &crate::clock::SleepPool,
    ) -> (HeaderTimer, HeaderClock) {
        let clock = pool.take_clock(deadline);
        let timer = HeaderTimer::with(clock.clone(), limit, deadline, now);
        (timer, clock)
    }

    #[inline]
    fn with(
        clock: HeaderClock,
        limit: Duration,
        deadline: Option<RequestDeadline>,
        now: Instant,
    ) -> HeaderTimer {
        HeaderTimer {
            sleep: LazySleep::default(),
            clock: Some(clock),
            entered: now,
            limit,
            deadline,
            bound: None,
            restarts: 0,
        }
    }

    fn clock(&self) -> &HeaderClock {
        self.clock
            .as_ref()
            .expect("a header timer polled after it was given back")
    }

    /// Ready with the bound that fired (not yet counted).
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<Bound> {
        let bound = ready!(self.poll_bound(cx));
        ready!(self.sleep.poll_until(bound.at, cx));
        Poll::Ready(bound)
    }

    /// As [`poll_fired`](Self::poll_fired), with a timer from `pool` (give it back with
    /// [`recycle`](Self::recycle)).
    #[cfg(feature = "preset")]
    #[inline]
    pub(crate) fn poll_fired_pooled(
        &mut self,
        pool: &crate::clock::SleepPool,
        cx: &mut Context<'_>,
    ) -> Poll<Bound> {
        let bound = ready!(self.poll_bound(cx));
        ready!(self.sleep.poll_until_pooled(pool, bound.at, cx));
        Poll::Ready(bound)
    }

    /// The timer goes back to `pool` (the attempt is over).
    #[cfg(feature = "preset")]
    #[inline]
    pub(crate) fn recycle(&mut self, pool: &crate::clock::SleepPool) {
        match self.clock.take() {
            Some(clock) => pool.put_for_headers(&mut self.sleep, clock),
            None => self.sleep.recycle(pool),
        }
    }

    /// The bound the attempt is timed by now, `Pending` while nothing can fire.
    #[inline]
    fn poll_bound(&mut self, cx: &mut Context<'_>) -> Poll<Bound> {
        if self.bound.is_some() && self.clock().restarts() != self.restarts {
            // Stopped again (a request sent once more on another connection): wait for the
            // new start.
            self.bound = None;
        }
        let bound = match self.bound {
            Some(bound) => bound,
            // A clock never held starts here, at the timer's first look, right after the
            // first poll of the service under it: a request first polled late (made, then
            // awaited after other work) is not timed from its call.
            None => match self.clock().poll_started(Instant::now(), cx) {
                Some(start) => {
                    self.restarts = self.clock().restarts();
                    *self.bound.insert(Bound::new(
                        start,
                        self.limit,
                        crate::Phase::ResponseHeaders,
                        self.deadline.as_ref(),
                    ))
                }
                // Not started (connecting, uploading): only the request deadline can fire.
                None => match &self.deadline {
                    Some(d) => Bound::new(
                        self.entered,
                        Duration::MAX,
                        crate::Phase::ResponseHeaders,
                        Some(d),
                    ),
                    None => return Poll::Pending,
                },
            },
        };
        Poll::Ready(bound)
    }
}

pin_project! {
    /// The response future of [`ResponseHeaderTimeout`].
    pub struct ResponseHeaderTimeoutFuture<F> {
        #[pin]
        inner: F,
        timer: HeaderTimer,
        stats: Option<Stats>,
        authority: Option<Authority>,
    }
}

impl<F> std::fmt::Debug for ResponseHeaderTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseHeaderTimeoutFuture")
            .field("fires_at", &self.timer.bound.map(|b| b.at))
            .field("phase", &self.timer.bound.map(|b| b.phase))
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseHeaderTimeoutFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res.map_err(Into::into));
        }
        let bound = ready!(this.timer.poll_fired(cx));
        let err = bound.error();
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}
