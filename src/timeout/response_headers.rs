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

use crate::clock::{self, Bound, LazySleep};
use crate::deadline::{fired, RequestDeadline};
use crate::error::BoxError;
use crate::stats::Stats;

/// Fails a request whose response headers do not arrive within a limit: phase
/// [`ResponseHeaders`](crate::Phase::ResponseHeaders) (or [`Total`](crate::Phase::Total) when the
/// request's [`RequestDeadline`] comes first).
///
/// Go's `Transport.ResponseHeaderTimeout`. The clock starts when the request enters this layer;
/// put the layer inside the concurrency limits so that queue waits are not counted against it
/// (they are bounded by the deadline and the acquire timeout instead). The response body is not
/// covered: that is [`BodyIdleTimeoutLayer`](crate::BodyIdleTimeoutLayer)'s and the deadline's.
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

    /// Counts fired timeouts in `stats`.
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let bound = Bound::new(
            Instant::now(),
            self.layer.limit,
            crate::Phase::ResponseHeaders,
            RequestDeadline::of(&req).as_ref(),
        );
        let authority = req.uri().authority().cloned();
        ResponseHeaderTimeoutFuture {
            inner: self.inner.call(req),
            sleep: LazySleep::default(),
            bound,
            stats: self.layer.stats.clone(),
            authority,
        }
    }
}

pin_project! {
    /// The response future of [`ResponseHeaderTimeout`].
    pub struct ResponseHeaderTimeoutFuture<F> {
        #[pin]
        inner: F,
        sleep: LazySleep,
        bound: Bound,
        stats: Option<Stats>,
        authority: Option<Authority>,
    }
}

impl<F> std::fmt::Debug for ResponseHeaderTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseHeaderTimeoutFuture")
            .field("fires_at", &self.bound.at)
            .field("phase", &self.bound.phase)
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
        ready!(this.sleep.poll_until(this.bound.at, cx));
        let err = this.bound.error();
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}
