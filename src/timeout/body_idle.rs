//! [`BodyIdleTimeoutLayer`]: a bound on the gap between two frames of the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::channels::fired;
use crate::clock::{self, Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Phase};
use crate::stats::Stats;

/// Fails a response body that sends no frame for a while: phase [`BodyIdle`](Phase::BodyIdle)
/// (or [`Total`](Phase::Total) when the request's [`RequestDeadline`] comes first).
///
/// The idle clock starts when the response headers arrive and restarts at every frame, so a slow
/// but steady download passes however long it is (bound it as a whole with
/// [`DeadlineLayer`](crate::DeadlineLayer)), while a stalled one fails after the limit. OkHttp's
/// `readTimeout`, Envoy's `stream_idle_timeout`; Go has no equivalent.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::BodyIdleTimeoutLayer;
///
/// let layer = BodyIdleTimeoutLayer::new(Duration::from_secs(30));
/// # let _ = layer;
/// ```
///
/// # Panics
///
/// [`BodyIdleTimeoutLayer::new`] panics when the limit is zero.
#[derive(Debug, Clone)]
pub struct BodyIdleTimeoutLayer {
    limit: Duration,
    stats: Option<Stats>,
}

impl BodyIdleTimeoutLayer {
    /// At most `limit` between two frames of the response body.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        clock::check_duration("BodyIdleTimeoutLayer limit", limit);
        BodyIdleTimeoutLayer { limit, stats: None }
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

impl<S> Layer<S> for BodyIdleTimeoutLayer {
    type Service = BodyIdleTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyIdleTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`BodyIdleTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct BodyIdleTimeout<S> {
    inner: S,
    layer: BodyIdleTimeoutLayer,
}

impl<S> BodyIdleTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: BodyIdleTimeoutLayer) -> Self {
        BodyIdleTimeout { inner, layer }
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

impl<S, B, RB> Service<Request<B>> for BodyIdleTimeout<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<BodyIdleTimeoutBody<RB>>;
    type Error = BoxError;
    type Future = BodyIdleTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = RequestDeadline::of(&req);
        let authority = req.uri().authority().cloned();
        BodyIdleTimeoutFuture {
            inner: self.inner.call(req),
            config: Some(IdleConfig {
                limit: self.layer.limit,
                deadline,
                stats: self.layer.stats.clone(),
                authority,
            }),
        }
    }
}

#[derive(Debug)]
struct IdleConfig {
    limit: Duration,
    deadline: Option<RequestDeadline>,
    stats: Option<Stats>,
    authority: Option<Authority>,
}

pin_project! {
    /// The response future of [`BodyIdleTimeout`]: wraps the body when the headers arrive.
    pub struct BodyIdleTimeoutFuture<F> {
        #[pin]
        inner: F,
        config: Option<IdleConfig>,
    }
}

impl<F> std::fmt::Debug for BodyIdleTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyIdleTimeoutFuture")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for BodyIdleTimeoutFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<BodyIdleTimeoutBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx)).map_err(Into::into)?;
        let config = this
            .config
            .take()
            .expect("BodyIdleTimeoutFuture polled after completion");
        Poll::Ready(Ok(resp.map(|body| BodyIdleTimeoutBody::new(body, config))))
    }
}

pin_project! {
    /// A response body that fails when no frame arrives within the idle limit; forwards
    /// `size_hint` and `is_end_stream`.
    pub struct BodyIdleTimeoutBody<B> {
        #[pin]
        inner: B,
        sleep: LazySleep,
        bound: Bound,
        config: IdleConfig,
        done: bool,
    }
}

impl<B> std::fmt::Debug for BodyIdleTimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyIdleTimeoutBody")
            .field("fires_at", &self.bound.at)
            .field("phase", &self.bound.phase)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> BodyIdleTimeoutBody<B> {
    fn new(inner: B, config: IdleConfig) -> Self {
        let bound = Bound::new(
            Instant::now(),
            config.limit,
            Phase::BodyIdle,
            config.deadline.as_ref(),
        );
        BodyIdleTimeoutBody {
            inner,
            sleep: LazySleep::default(),
            bound,
            config,
            done: false,
        }
    }
}

impl<B> Body for BodyIdleTimeoutBody<B>
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
        // The inner body first: a frame that is ready was sent by the peer in time, however late
        // the caller polls; only the total deadline still applies to it.
        let res = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if let Some(d) = this.config.deadline.filter(|d| now >= d.instant()) {
                    // Past the request's deadline (whatever the idle bound was when the last
                    // frame came): the deadline is what fails it.
                    *this.bound = Bound {
                        at: d.instant(),
                        phase: Phase::Total,
                        limit: d.budget(),
                    };
                    None
                } else {
                    // The idle clock restarts when a frame is handed to the caller.
                    *this.bound = Bound::new(
                        now,
                        this.config.limit,
                        Phase::BodyIdle,
                        this.config.deadline.as_ref(),
                    );
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
            Poll::Ready(Some(Err(e))) => Some(Some(Err(e.into()))),
            Poll::Ready(None) => Some(None),
            Poll::Pending => {
                ready!(this.sleep.poll_until(this.bound.at, cx));
                None
            }
        };
        *this.done = true;
        if let Some(res) = res {
            return Poll::Ready(res);
        }
        let err = this.bound.error();
        fired(
            this.config.stats.as_ref(),
            this.config.authority.as_ref(),
            &err,
        );
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
