//! [`TlsHandshakeTimeoutLayer`]: the TLS handshake of a TLS connector, as its own phase.

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
use crate::channels::split::{self, Split};
use crate::clock::{self, LazySleep};
use crate::error::{BoxError, Error, Phase};
use crate::stats::Stats;

/// Bounds the TLS handshake of a TLS connector (a [`Service<Uri>`](tower_service::Service)
/// such as hyper-rustls' `HttpsConnector`): [`TlsHandshakeTimeout`].
///
/// Fails with an [`Error`] of [`Phase::TlsHandshake`] when the handshake is not done within the
/// limit. **Where the handshake starts** is learnt from a
/// [`ConnectTimeout`](super::ConnectTimeout) around the TCP connector *inside* the TLS
/// connector: when it connects, the handshake clock starts; while it is connecting, this layer
/// does not count (the connect phase has its own limit). So a slow DNS or TCP step is never
/// blamed on TLS, and a stalled handshake is never blamed on the connect step:
///
/// ```text
/// TlsHandshakeTimeout( HttpsConnector( ConnectTimeout( HttpConnector ) ) )
///        ^ TLS only                          ^ DNS + TCP
/// ```
///
/// Without a `ConnectTimeout` inside (or with a TLS connector that connects TCP on another
/// task), the limit covers the **whole call** from the moment the connector is called:
/// connecting included. That is still a bound, just not a split one.
///
/// The connection type is unchanged (hyper-util's legacy client needs its `Connection` impl for
/// pooling and ALPN) and errors of the connector pass through unchanged (boxed) — among them a
/// [`Phase::Connect`] timeout from inside, found with [`Error::find`].
///
/// # Example
///
/// With hyper-rustls, through hyper-util's legacy client:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
/// use tower_hardened::{ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};
/// use tower_layer::Layer;
/// # use tokio_rustls::rustls;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let roots = rustls::RootCertStore::empty();
/// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
///     rustls::crypto::ring::default_provider(),
/// ))
/// .with_safe_default_protocol_versions()
/// .unwrap()
/// .with_root_certificates(roots)
/// .with_no_client_auth();
///
/// let mut http = HttpConnector::new();
/// http.enforce_http(false); // let https URIs through to the TLS connector
/// let tcp = ConnectTimeoutLayer::new(Duration::from_secs(5)).layer(http);
/// let https = hyper_rustls::HttpsConnectorBuilder::new()
///     .with_tls_config(tls)
///     .https_or_http()
///     .enable_http1()
///     .wrap_connector(tcp);
/// let connector = TlsHandshakeTimeoutLayer::new(Duration::from_secs(10)).layer(https);
///
/// let client: Client<_, String> = Client::builder(TokioExecutor::new()).build(connector);
/// # let _ = client;
/// # }
/// ```
///
/// # Panics
///
/// [`TlsHandshakeTimeoutLayer::new`] panics when the limit is zero.
#[derive(Debug, Clone)]
pub struct TlsHandshakeTimeoutLayer {
    limit: Duration,
    stats: Option<Stats>,
}

impl TlsHandshakeTimeoutLayer {
    /// The TLS handshake must be done within `limit` of TCP being connected.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        clock::check_duration("TlsHandshakeTimeoutLayer limit", limit);
        TlsHandshakeTimeoutLayer { limit, stats: None }
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

impl<S> Layer<S> for TlsHandshakeTimeoutLayer {
    type Service = TlsHandshakeTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TlsHandshakeTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// A TLS connector whose handshakes must be done within a limit: see
/// [`TlsHandshakeTimeoutLayer`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceExt;
/// use tower_hardened::{Error, Phase, TlsHandshakeTimeout, TlsHandshakeTimeoutLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // A "TLS connector" whose handshake never ends (and has no ConnectTimeout inside, so the
/// // limit covers the whole call).
/// let stalled = tower::service_fn(|_uri: http::Uri| std::future::pending::<Result<(), std::io::Error>>());
/// let connector = TlsHandshakeTimeout::new(stalled, TlsHandshakeTimeoutLayer::new(Duration::from_secs(10)));
/// let err = connector.oneshot("https://example.test".parse().unwrap()).await.unwrap_err();
/// assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::TlsHandshake));
/// assert_eq!(err.to_string(), "TLS handshake not done within 10s");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TlsHandshakeTimeout<S> {
    inner: S,
    layer: TlsHandshakeTimeoutLayer,
}

impl<S> TlsHandshakeTimeout<S> {
    /// Wraps the TLS connector `inner` with the limit of `layer`.
    pub fn new(inner: S, layer: TlsHandshakeTimeoutLayer) -> Self {
        TlsHandshakeTimeout { inner, layer }
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

impl<S> Service<Uri> for TlsHandshakeTimeout<S>
where
    S: Service<Uri>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TlsHandshakeTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let authority = dst.authority().cloned();
        TlsHandshakeTimeoutFuture {
            inner: self.inner.call(dst),
            called: Instant::now(),
            split: Split::Unseen,
            sleep: LazySleep::default(),
            limit: self.layer.limit,
            stats: self.layer.stats.clone(),
            authority,
        }
    }
}

pin_project! {
    /// The future of [`TlsHandshakeTimeout`]: the connection, or [`Phase::TlsHandshake`] at the
    /// limit.
    ///
    /// Each poll of the inner future runs inside a task-local scope in which a
    /// [`ConnectTimeout`](super::ConnectTimeout) inside reports "connecting" and "connected at";
    /// the timer is armed from the latter (or from the call, when nothing reports).
    ///
    /// It is `Unpin` when the inner future is, as hyper-util's legacy client requires of a
    /// connector's future: the timer is boxed, and only made when first needed.
    pub struct TlsHandshakeTimeoutFuture<F> {
        #[pin]
        inner: F,
        called: Instant,
        split: Split,
        sleep: LazySleep,
        limit: Duration,
        stats: Option<Stats>,
        authority: Option<Authority>,
    }
}

impl<F> std::fmt::Debug for TlsHandshakeTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsHandshakeTimeoutFuture")
            .field("split", &self.split)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for TlsHandshakeTimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (res, seen) = split::scope(*this.split, || this.inner.poll(cx));
        *this.split = seen;
        if let Poll::Ready(res) = res {
            return Poll::Ready(res.map_err(Into::into));
        }
        let start = match seen {
            // Nothing inside tells where TCP ends: the limit covers the whole call.
            Split::Unseen => *this.called,
            // The connect step is running; it has its own limit, not ours.
            Split::Connecting => return Poll::Pending,
            Split::Connected(at) => at,
        };
        ready!(this.sleep.poll_until(clock::add(start, *this.limit), cx));
        let err = Error::timeout(Phase::TlsHandshake, *this.limit);
        fired(this.stats.as_ref(), this.authority.as_ref(), &err);
        Poll::Ready(Err(err.into()))
    }
}
