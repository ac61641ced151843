//! [`ConnectTimeoutLayer`]: name resolution plus TCP connect of a connector, as one phase.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::Uri;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::channels::fired;
use crate::channels::split;
use crate::clock::{self, LazySleep};
use crate::error::{BoxError, Error, Phase};
use crate::stats::Stats;

/// Bounds each call of a connector (a [`Service<Uri>`](tower_service::Service) whose response is
/// the connection): [`ConnectTimeout`].
///
/// The limit covers the whole call of the wrapped connector — with hyper-util's
/// `HttpConnector` that is name resolution **plus** the TCP connect to every address it tries —
/// and fails with an [`Error`] of [`Phase::Connect`]. Put it directly around the TCP connector,
/// *inside* the TLS connector, so that it covers DNS and TCP only:
/// `TlsHandshakeTimeout(HttpsConnector(ConnectTimeout(HttpConnector)))`. There it also tells a
/// [`TlsHandshakeTimeoutLayer`](super::TlsHandshakeTimeoutLayer) above it when TCP is done, so
/// the TLS handshake gets its own clock.
///
/// The connection type is unchanged (hyper-util's legacy client needs its `Connection` impl for
/// pooling and ALPN) and errors of the connector pass through unchanged (boxed). A timeout's
/// [`source()`](std::error::Error::source) is an `io::Error` of kind `TimedOut`.
///
/// It takes any request type, so it also goes into reqwest's
/// `ClientBuilder::connector_layer` (whose request type cannot be named); there it wraps
/// reqwest's whole connector, so its limit covers DNS, TCP, TLS and any proxy tunnel together,
/// and a timeout is a `reqwest::Error` whose `is_connect()` and `is_timeout()` are true. See
/// the `reqwest` module (feature `reqwest`).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
/// use tower_hardened::ConnectTimeoutLayer;
/// use tower_layer::Layer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let connector = ConnectTimeoutLayer::new(Duration::from_secs(5)).layer(HttpConnector::new());
/// let client: Client<_, String> = Client::builder(TokioExecutor::new()).build(connector);
/// # let _ = client;
/// # }
/// ```
///
/// # Panics
///
/// [`ConnectTimeoutLayer::new`] panics when the limit is zero.
#[derive(Debug, Clone)]
pub struct ConnectTimeoutLayer {
    limit: Duration,
    stats: Option<Stats>,
}

impl ConnectTimeoutLayer {
    /// Connecting (name resolution plus TCP) must be done within `limit`.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        clock::check_duration("ConnectTimeoutLayer limit", limit);
        ConnectTimeoutLayer { limit, stats: None }
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

impl<S> Layer<S> for ConnectTimeoutLayer {
    type Service = ConnectTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// A connector whose calls must be done within a limit: see [`ConnectTimeoutLayer`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::connect::HttpConnector;
/// use tower::ServiceExt;
/// use tower_hardened::{ConnectTimeout, ConnectTimeoutLayer, Error, Phase};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // A connector that never connects.
/// let never = tower::service_fn(|_uri: http::Uri| std::future::pending::<Result<(), std::io::Error>>());
/// let connector = ConnectTimeout::new(never, ConnectTimeoutLayer::new(Duration::from_secs(3)));
/// let err = connector.oneshot("http://example.test".parse().unwrap()).await.unwrap_err();
/// assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::Connect));
/// assert_eq!(err.to_string(), "connect (DNS + TCP) not done within 3s");
/// # let _ = HttpConnector::new();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectTimeout<S> {
    inner: S,
    layer: ConnectTimeoutLayer,
}

impl<S> ConnectTimeout<S> {
    /// Wraps the connector `inner` with the limit of `layer`.
    pub fn new(inner: S, layer: ConnectTimeoutLayer) -> Self {
        ConnectTimeout { inner, layer }
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

/// Generic over the request type so that it also fits connector stacks whose request type
/// cannot be named or read, such as reqwest's `ClientBuilder::connector_layer`; the authority
/// (for logs) is read when the request is a [`Uri`].
impl<S, R> Service<R> for ConnectTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ConnectTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: R) -> Self::Future {
        let authority = (&dst as &dyn std::any::Any)
            .downcast_ref::<Uri>()
            .and_then(|uri| uri.authority().cloned());
        let at = clock::add(Instant::now(), self.layer.limit);
        ConnectTimeoutFuture {
            inner: self.inner.call(dst),
            at,
            sleep: LazySleep::default(),
            limit: self.layer.limit,
            stats: self.layer.stats.clone(),
            authority,
        }
    }
}

pin_project! {
    /// The future of [`ConnectTimeout`]: the connection, or [`Phase::Connect`] at the limit.
    ///
    /// It is `Unpin` when the inner future is, as hyper-util's legacy client requires of a
    /// connector's future: the timer is boxed, and only made when the inner future is not
    /// ready at once (one allocation per new connection; `benches/connect.rs` measures the
    /// cost against the bare connector).
    pub struct ConnectTimeoutFuture<F> {
        #[pin]
        inner: F,
        at: Instant,
        sleep: LazySleep,
        limit: Duration,
        stats: Option<Stats>,
        authority: Option<Authority>,
    }
}

impl<F> std::fmt::Debug for ConnectTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectTimeoutFuture")
            .field("deadline", &self.at)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ConnectTimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        split::connecting();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            if res.is_ok() {
                split::connected(Instant::now());
            }
            return Poll::Ready(res.map_err(Into::into));
        }
        ready!(this.sleep.poll_until(*this.at, cx));
        // An io::Error of kind TimedOut as the cause, as a connect timeout of the OS would be:
        // clients that walk the source chain for one (reqwest's `Error::is_timeout`) see a
        // timeout.
        let err = Error::timeout(Phase::Connect, *this.limit)
            .with_source(std::io::Error::from(std::io::ErrorKind::TimedOut));
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}
