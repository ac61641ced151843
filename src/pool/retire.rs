use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::connector::dials_on_this_thread;
use super::ConnectionInfo;
use crate::channels::{HeaderClock, HeaderHold};
use crate::clock::LazySleep;
use crate::error::BoxError;
use crate::io_watch::keep_alive_hint;
use crate::replay::lost::LostConnection;
use crate::stats::Stats;
use crate::telemetry::Exchange;

/// The request side of max lifetime: retires connections of
/// [`PoolConnector`](super::PoolConnector) that are past their lifetime, without ever cutting
/// a request in progress. Produces [`Retire`].
///
/// Goes directly around hyper-util's legacy `Client` (it needs the client to fill in
/// `capture_connection`; a layer in between that keeps a request waiting for more than a
/// second after its HTTP/1 connection ended, a retry with a backoff, would see it failed as
/// lost, see below). For each request it captures the connection used; once a connection
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
/// hyper-util can hand a request to a pooled HTTP/1 connection in the moment the server closes
/// it, and then neither send it nor fail it (a race of hyper's request channel with the end of
/// the connection's task): a request still waiting 1 s after its connection's task ended, with
/// hyper-util neither answering it nor retrying it elsewhere, fails as lost on a reused
/// connection, which a [`ReplayLayer`](crate::ReplayLayer) (and the preset) sends again when it
/// may.
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
            watch: None,
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
        // The connection the request was handed to, watched for its end (see `Watch`).
        watch: Option<Watch>,
    }
}

/// How long a request may stay on a connection that is gone, with hyper-util neither
/// answering nor dialing for it nor handing it to another connection, before it is failed as
/// lost. hyper-util hands a request back (and retries it) in the same moment the connection's
/// task ends, so this only has to outlast scheduling.
pub(crate) const LOST_IN_HANDOFF_AFTER: Duration = Duration::from_secs(1);

/// The connection a pending request was last handed to.
///
/// hyper-util can hand a request to a pooled HTTP/1 connection in the very moment the server
/// closes it and the connection's task ends: hyper's `SendRequest` queues it in tokio's mpsc
/// channel after the task's receiver was dropped and drained, so the request is never written,
/// never handed back for hyper-util's retry, and never failed: its response future waits until
/// something drops it (tokio-rs/tokio#7714; the channel is freed only with the `SendRequest`,
/// which that same future holds). When the connection's IO goes while the request waits on it,
/// hyper-util normally either has the answer (an error) at once or retries, which dials or
/// captures another connection in the poll that follows; if none of that happens within
/// [`LOST_IN_HANDOFF_AFTER`], the request is failed as lost on a reused connection, so that a
/// replay layer sends it again.
struct Watch {
    info: ConnectionInfo,
    // How long the connection had been idle when the request was seen on it.
    idle: Duration,
    ticket: Option<u64>,
    // The waker registered on `info`, to register again only when it changes.
    waker: Option<Waker>,
    // Since when the request has been waiting on `info` gone, and the timer for it.
    gone_since: Option<Instant>,
    sleep: LazySleep,
    // hyper-util dialed for the request after `info` went: it retries, wait for its connection.
    redialed: bool,
}

impl Watch {
    fn new(info: ConnectionInfo) -> Watch {
        Watch {
            idle: info.idle(),
            info,
            ticket: None,
            waker: None,
            gone_since: None,
            sleep: LazySleep::default(),
            redialed: false,
        }
    }

    /// Registers `waker` to be woken when the connection goes (again only when it changed);
    /// whether the connection is still there.
    fn register(&mut self, waker: &Waker) -> bool {
        if self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return !self.info.is_gone();
        }
        let there = self.info.wake_when_gone(&mut self.ticket, waker);
        self.waker = there.then(|| waker.clone());
        there
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.info.forget_waker(ticket);
        }
    }
}

/// The `ConnectionInfo` of the connection hyper-util last handed the request to.
fn captured(capture: &CaptureConnection) -> Option<ConnectionInfo> {
    ConnectionInfo::of(capture.connection_metadata().as_ref()?)
}

/// The source of the error a request lost in the handoff fails with.
#[derive(Debug)]
struct LostInHandoff;

impl std::fmt::Display for LostInHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "hyper-util handed the request to a pooled connection as that connection ended; \
             it was never written, and hyper neither sent it nor handed it back",
        )
    }
}

impl std::error::Error for LostInHandoff {}

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
        // Did hyper-util dial in this poll? (It retries a request handed back to it.)
        let dials = dials_on_this_thread();
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
        if polled.is_pending() {
            if let Some(lost) = watch(this.watch, this.capture.as_ref(), dials, cx) {
                return Poll::Ready(Err(lost));
            }
            return Poll::Pending;
        }
        *this.watch = None;
        let resp = ready!(polled).map_err(Into::into)?;
        if let Some(info) = resp.extensions().get::<ConnectionInfo>() {
            let hint = keep_alive_hint(&resp);
            info.on_response(this.capture.take(), this.stats.as_ref(), hint);
        }
        Poll::Ready(Ok(resp))
    }
}

/// The request is still pending: watches the connection it waits on (see [`Watch`]); the error
/// when it was lost in the handoff. `dials` is the thread's dial count before this poll.
fn watch(
    slot: &mut Option<Watch>,
    capture: Option<&CaptureConnection>,
    dials: u64,
    cx: &mut Context<'_>,
) -> Option<BoxError> {
    // The common case: waiting on a connection that is still there.
    if let Some(w) = slot.as_mut() {
        if w.register(cx.waker()) {
            return None;
        }
    }
    // Not watching yet, or the connection is gone: what is captured now? (Not an HTTP/2
    // connection: its requests may wait for another request's dial, in HTTP/2-only mode, with
    // no dial of their own to tell a retry.)
    let info = captured(capture?)?;
    if info.is_http2() {
        return None;
    }
    let w = match slot {
        Some(w) if w.info.id() == info.id() => w,
        _ => {
            let w = slot.insert(Watch::new(info));
            if w.register(cx.waker()) {
                return None;
            }
            w
        }
    };
    if w.redialed || dials != dials_on_this_thread() {
        // hyper-util retries: the next capture is watched when it comes.
        w.redialed = true;
        return None;
    }
    let since = *w.gone_since.get_or_insert_with(Instant::now);
    let at = crate::clock::add(since, LOST_IN_HANDOFF_AFTER);
    if w.sleep.poll_until(at, cx).is_pending() {
        return None;
    }
    let idle = w.idle;
    tracing::debug!(
        connection = w.info.id(),
        "request lost in hyper-util's handoff to a connection that ended: failed as lost"
    );
    *slot = None;
    let lost = LostConnection {
        idle,
        source: Some(std::sync::Arc::new(LostInHandoff)),
    };
    Some(Box::new(lost))
}
