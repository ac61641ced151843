use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::ConnectionInfo;
use crate::channels::{HeaderClock, HeaderHold};
use crate::error::BoxError;
use crate::io_watch::keep_alive_hint;
use crate::stats::Stats;
use crate::telemetry::Exchange;

/// The request side of max lifetime: retires connections of
/// [`PoolConnector`](super::PoolConnector) that are past their lifetime, without ever cutting
/// a request in progress. Produces [`Retire`].
///
/// Goes directly around hyper-util's legacy `Client` (it needs the client to fill in
/// `capture_connection`). For each request it captures the connection used; once a connection
/// is past its lifetime, it calls hyper-util's `Connected::poison()` on it, so the pool never
/// hands it out again: a connection in use finishes its exchange and is closed instead of
/// going back to the pool; an idle one is skipped by the next checkout and closed by the
/// pool's idle reaper. The connection's own lifetime timer (in [`PoolIo`](super::PoolIo))
/// poisons idle connections at the due time once any request has gone through this layer on
/// them.
///
/// It also counts reused connections in [`Stats`], and reads the server's `Keep-Alive:
/// timeout=N` hint from HTTP/1 responses: a connection idle for nearly that long (the hint less
/// 1 s, or less half of it when it is under 2 s) is retired the same way, so it is never handed
/// out once the server may have closed it.
///
/// It uses hyper-util's `capture_connection`, which keeps one capture per request: a
/// `capture_connection` of your own made *before* this layer is replaced by this layer's (it
/// will never be filled), and one made *after* it replaces this layer's: lifetimes are then not
/// enforced for that request, and an outer
/// [`ResponseHeaderTimeoutLayer`](crate::ResponseHeaderTimeoutLayer), which waits for this
/// layer to see the connection before its clock starts, does not start (the deadline still
/// applies). Read [`ConnectionInfo`] from the response extensions instead of capturing.
///
/// # Example
///
/// ```
/// use tower::Layer;
/// use tower_hardened::{RetireLayer, Stats};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Empty<bytes::Bytes>>();
/// let client = RetireLayer::new().stats(Stats::new()).layer(client);
/// # let _ = client; }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RetireLayer {
    stats: Option<Stats>,
}

impl RetireLayer {
    /// A new layer.
    pub fn new() -> Self {
        RetireLayer::default()
    }

    /// Counts reused connections in `stats`.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl<S> Layer<S> for RetireLayer {
    type Service = Retire<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retire {
            inner,
            stats: self.stats.clone(),
        }
    }
}

/// Retires connections past their lifetime once they finish a request: see [`RetireLayer`].
///
/// # Example
///
/// ```
/// use tower_hardened::{PoolClientBuilder, Retire};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let client = PoolClientBuilder::new().build_http::<http_body_util::Empty<bytes::Bytes>>();
/// let hyper_client = client.get_ref(); // the hyper-util client inside
/// # let _ = hyper_client; }
/// ```
#[derive(Debug, Clone)]
pub struct Retire<S> {
    inner: S,
    stats: Option<Stats>,
}

impl<S> Retire<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Retire { inner, stats: None }
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

impl<S, B, RB> Service<Request<B>> for Retire<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = RetireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let capture = capture_connection(&mut req);
        let header_hold = req.extensions().get::<HeaderClock>().map(HeaderClock::hold);
        let exchange = Exchange::of(&req);
        RetireFuture {
            inner: self.inner.call(req),
            capture: Some(capture),
            stats: self.stats.clone(),
            header_hold,
            exchange,
        }
    }
}

pin_project! {
    /// The response future of [`Retire`].
    pub struct RetireFuture<F> {
        #[pin]
        inner: F,
        capture: Option<CaptureConnection>,
        stats: Option<Stats>,
        // Released once the connection is obtained: an outer response-header clock starts then.
        header_hold: Option<HeaderHold>,
        // Told once the connection is obtained: an outer telemetry layer's (with `metrics`).
        exchange: Option<Exchange>,
    }
}

impl<F> std::fmt::Debug for RetireFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetireFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for RetireFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = this.inner.poll(cx);
        if this.header_hold.is_some()
            && this
                .capture
                .as_ref()
                .is_some_and(|c| c.connection_metadata().is_some())
        {
            // hyper-util records the connection just before it sends the request on it.
            *this.header_hold = None;
        }
        if let (Some(exchange), Some(capture)) = (this.exchange.as_ref(), this.capture.as_ref()) {
            if exchange.connected_via(capture) {
                *this.exchange = None;
            }
        }
        let resp = ready!(polled).map_err(Into::into)?;
        if let Some(info) = resp.extensions().get::<ConnectionInfo>() {
            let hint = keep_alive_hint(&resp);
            info.on_response(this.capture.take(), this.stats.as_ref(), hint);
        }
        Poll::Ready(Ok(resp))
    }
}
