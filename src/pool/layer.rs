use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tower_layer::Layer;

use super::hosts::{key_of, Hosts};
use super::PoolConnector;
use crate::clock;
use crate::stats::Stats;

/// Bounds the connections a connector makes: a per-host cap with a bounded wait, and a maximum
/// lifetime with jitter. Produces [`PoolConnector`].
///
/// Goes around any hyper-util connector (a `Service<Uri>` whose response implements
/// `hyper::rt::Read + Write` and `Connection`): `HttpConnector`, a TLS connector, a connector
/// already wrapped in a connect timeout.
///
/// Every service made by one layer (and every clone of them) shares one count per host: give
/// one layer to all the clients that should share a cap.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::{TokioExecutor, TokioTimer};
/// use tower::Layer;
/// use tower_hardened::{PoolConnectorLayer, RetireLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let connector = PoolConnectorLayer::new()
///     .max_conns_per_host(10)
///     .acquire_timeout(Duration::from_secs(5))
///     .max_lifetime(Duration::from_secs(600))
///     .layer(HttpConnector::new());
/// let client = Client::builder(TokioExecutor::new())
///     .pool_timer(TokioTimer::new())
///     .pool_idle_timeout(Duration::from_secs(90))
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
/// // Retires connections past their lifetime once they are done with a request.
/// let client = RetireLayer::new().layer(client);
/// # let _ = client; }
/// ```
///
/// # Panics
///
/// [`max_conns_per_host`](Self::max_conns_per_host) panics on zero (no connection could ever be made), and
/// the duration setters panic on zero durations.
#[derive(Debug, Clone)]
pub struct PoolConnectorLayer {
    pub(crate) max_conns_per_host: Option<usize>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_stall: Option<Duration>,
    pub(crate) stats: Option<Stats>,
    pub(crate) hosts: Arc<Hosts>,
}

impl Default for PoolConnectorLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolConnectorLayer {
    /// Default acquire timeout: HikariCP's `connectionTimeout`.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default jitter: HikariCP takes up to 2.5 % off each connection's lifetime.
    pub const DEFAULT_JITTER: f64 = 0.025;

    /// No cap and no lifetime yet (the connections are only tagged and counted); a 30 s
    /// acquire timeout and 2.5 % jitter once those are set.
    pub fn new() -> Self {
        PoolConnectorLayer {
            max_conns_per_host: None,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            max_lifetime: None,
            jitter: Self::DEFAULT_JITTER,
            idle_timeout: None,
            write_stall: None,
            stats: None,
            hosts: Hosts::new(None),
        }
    }

    /// At most `n` connections per scheme and authority, dialing, in use and idle together
    /// (Go's `MaxConnsPerHost`). A dial beyond it waits for one to close, up to
    /// [`acquire_timeout`](Self::acquire_timeout).
    #[track_caller]
    pub fn max_conns_per_host(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "tower-hardened: max_conns_per_host must be at least 1"
        );
        self.max_conns_per_host = Some(n);
        self.hosts = Hosts::new(Some(n));
        self
    }

    /// How long a dial waits for room under the per-host cap before failing with
    /// [`Phase::Acquire`](crate::Phase::Acquire). Default 30 s.
    #[track_caller]
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("acquire_timeout", d);
        self.acquire_timeout = d;
        self
    }

    /// Each connection stops being reused after `d` minus a random jitter (HikariCP's
    /// `maxLifetime`). A request in progress is never cut: the connection is retired when it
    /// comes back to the pool. Needs [`RetireLayer`](super::RetireLayer) on the client.
    #[track_caller]
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        clock::check_duration("max_lifetime", d);
        self.max_lifetime = Some(d);
        self
    }

    /// Up to this fraction of the lifetime is taken off each connection's lifetime at random,
    /// so connections made together do not all retire together. Default 0.025; 0 for none;
    /// values above 1 count as 1.
    ///
    /// # Panics
    ///
    /// On a negative or NaN fraction.
    #[track_caller]
    pub fn jitter(mut self, fraction: f64) -> Self {
        assert!(
            fraction >= 0.0,
            "tower-hardened: jitter must be a fraction >= 0"
        );
        self.jitter = fraction;
        self
    }

    /// The client's pool idle timeout, used only to tell closes for idleness
    /// ([`CloseReason::Idle`](crate::CloseReason::Idle)) apart from others in the stats.
    /// [`PoolClientBuilder`](super::PoolClientBuilder) sets it.
    #[track_caller]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("idle_timeout", d);
        self.idle_timeout = Some(d);
        self
    }

    /// Fails a connection whose writes (or flush, or shutdown) make no progress for `d`: the
    /// peer stopped reading and the socket's send buffer is full. Phase
    /// [`RequestWrite`](crate::Phase::RequestWrite).
    ///
    /// Without it, a connection to a peer that never reads and never closes keeps its task and
    /// socket forever: after the caller gave up (say on
    /// [`RequestWriteTimeoutLayer`](crate::RequestWriteTimeoutLayer)), hyper closes the
    /// connection, but closing first flushes what it buffered, into a socket that never drains.
    /// OkHttp's `writeTimeout` is this, at the socket. Off by default; the preset sets it.
    #[track_caller]
    pub fn write_stall_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("write_stall_timeout", d);
        self.write_stall = Some(d);
        self
    }

    /// Counts connections opened, closed (by reason) and open now, and acquire timeouts.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Connections dialing or open right now to `uri`'s scheme and authority.
    pub fn open_connections(&self, uri: &Uri) -> usize {
        key_of(uri).map_or(0, |k| self.hosts.open(&k))
    }

    /// Every host with a dial waiting or a connection open, with the count of connections
    /// dialing or open. Hosts are forgotten as soon as they have none.
    pub fn open_per_host(&self) -> Vec<(http::uri::Scheme, http::uri::Authority, usize)> {
        self.hosts
            .snapshot()
            .into_iter()
            .map(|((s, a), n)| (s, a, n))
            .collect()
    }
}

impl<C> Layer<C> for PoolConnectorLayer {
    type Service = PoolConnector<C>;

    fn layer(&self, inner: C) -> Self::Service {
        PoolConnector::new(inner, self.clone())
    }
}
