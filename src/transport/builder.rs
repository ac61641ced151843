use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body::Body;
use hyper::client::conn::{http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use super::conn::MakeConn;
use super::Transport;
use crate::clock;
use crate::error::BoxError;
use crate::pool::PoolBuilder;
use crate::stats::Stats;
use crate::timeout::{ConnectTimeout, ConnectTimeoutLayer};

/// Which HTTP version a [`Transport`] speaks on a new connection.
///
/// # Example
///
/// ```
/// use tower_hardened::{Protocol, Transport};
///
/// let transport = Transport::builder()
///     .protocol(Protocol::Http2)
///     .build::<http_body_util::Empty<bytes::Bytes>>();
/// # let _ = transport;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 with prior knowledge (no upgrade, no ALPN): for servers known to speak it, such as
    /// gRPC servers on plain TCP.
    Http2,
    /// Whatever the connector negotiated: HTTP/2 when it reports ALPN `h2`
    /// (`Connected::is_negotiated_h2()`), HTTP/1.1 otherwise (and so always on plain TCP).
    #[default]
    Alpn,
}

type H2Configure = Arc<dyn Fn(&mut http2::Builder<TokioExecutor>) + Send + Sync>;

/// The settings a transport's connections are made with.
pub(crate) struct Config {
    pub(crate) protocol: Protocol,
    pub(crate) h1: http1::Builder,
    pub(crate) h2_keep_alive_interval: Duration,
    pub(crate) h2_keep_alive_timeout: Duration,
    pub(crate) h2_configure: Option<H2Configure>,
    pub(crate) write_stall: Option<Duration>,
}

/// Builds a [`Transport`]: its pool's bounds, its protocol and its connector.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`protocol`](Self::protocol) | [`Protocol::Alpn`] (HTTP/1.1 on plain TCP) | hyper-util's legacy client |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s (DNS + TCP, the default connector only) | OkHttp `connectTimeout` (Go: 30 s) |
/// | [`write_stall_timeout`](Self::write_stall_timeout) | 30 s without write progress | OkHttp `writeTimeout` (10 s, per write); Go and hyper have none |
/// | [`max_idle`](Self::max_idle) | 100 in total | Go `MaxIdleConns` |
/// | [`max_idle_per_host`](Self::max_idle_per_host) | 16 | the preset |
/// | [`idle_timeout`](Self::idle_timeout) | 90 s | Go `IdleConnTimeout` |
/// | [`max_lifetime`](Self::max_lifetime), [`jitter`](Self::jitter) | 30 min − up to 2.5 % | HikariCP `maxLifetime` |
/// | [`max_conns_per_host`](Self::max_conns_per_host) | none | Go `MaxConnsPerHost` |
/// | [`acquire_timeout`](Self::acquire_timeout) | 30 s | HikariCP `connectionTimeout` |
/// | [`max_waiters_per_host`](Self::max_waiters_per_host) | 1024 | Envoy's pending queue |
/// | [`held_threshold`](Self::held_threshold) | off | HikariCP `leakDetectionThreshold` |
/// | [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) | 20 s, idle connections included | off in hyper and Go; Go recommends `ReadIdleTimeout` |
/// | [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout) | 20 s | hyper's default |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{Protocol, Transport};
///
/// let transport = Transport::builder()
///     .max_idle(50)
///     .max_conns_per_host(8)
///     .idle_timeout(Duration::from_secs(30))
///     .protocol(Protocol::Http1)
///     .build::<http_body_util::Full<bytes::Bytes>>();
/// # let _ = transport;
/// ```
///
/// # Panics
///
/// Every setter panics at once on a value that cannot work (a zero duration, a zero cap where
/// one connection or waiter is the least), with a `tower-hardened: ...` message; see
/// [`PoolBuilder`] for the pool's.
#[derive(Clone)]
pub struct TransportBuilder {
    pool: PoolBuilder,
    protocol: Protocol,
    connect_timeout: Duration,
    idle_timeout: Duration,
    h1: http1::Builder,
    h2_keep_alive_interval: Duration,
    h2_keep_alive_timeout: Duration,
    h2_configure: Option<H2Configure>,
    write_stall: Duration,
    stats: Option<Stats>,
}

impl fmt::Debug for TransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportBuilder")
            .field("pool", &self.pool)
            .field("protocol", &self.protocol)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_stall_timeout", &self.write_stall)
            .field("h2_keep_alive_interval", &self.h2_keep_alive_interval)
            .field("h2_keep_alive_timeout", &self.h2_keep_alive_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for TransportBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The stream limit assumed for an HTTP/2 connection before the peer's SETTINGS arrive: Go's
/// `initialMaxConcurrentStreams` and hyper's `initial_max_send_streams`.
const H2_INITIAL_STREAMS: usize = 100;

impl TransportBuilder {
    /// Default connect timeout (DNS + TCP): OkHttp's.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default interval between HTTP/2 keep-alive PINGs.
    pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
    /// Default wait for a PING's answer before the connection is closed: hyper's.
    pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
    /// Default limit on a socket write (or flush) making no progress: OkHttp's `writeTimeout`
    /// is 10 s per write; 30 s leaves room for slow uplinks while a peer that never reads
    /// still gets a typed error.
    pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

    /// The defaults of the table above.
    pub fn new() -> Self {
        TransportBuilder {
            pool: PoolBuilder::new(),
            protocol: Protocol::default(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: PoolBuilder::DEFAULT_IDLE_TIMEOUT,
            h1: http1::Builder::new(),
            h2_keep_alive_interval: Self::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            h2_keep_alive_timeout: Self::DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            h2_configure: None,
            write_stall: Self::DEFAULT_WRITE_STALL_TIMEOUT,
            stats: None,
        }
    }

    /// The HTTP version of new connections (default [`Protocol::Alpn`]).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Name resolution plus TCP connect of the default connector must be done within `d`
    /// ([`Phase::Connect`](crate::Phase::Connect)). A connector of your own
    /// ([`build_with_connector`](Self::build_with_connector)) brings its own timeouts: wrap it
    /// in [`ConnectTimeoutLayer`](crate::ConnectTimeoutLayer) (inside the TLS step).
    #[track_caller]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("connect_timeout", d);
        self.connect_timeout = d;
        self
    }

    /// A socket write, flush or shutdown pending for `d` without progress fails its connection
    /// (default 30 s): a peer that never reads cannot hold a connection task, and the request
    /// gets an error naming [`Phase::RequestWrite`](crate::Phase::RequestWrite) (found with
    /// [`Error::find`](crate::Error::find) through the [`ConnectionError`](crate::ConnectionError)).
    /// It bounds each wait for the socket, not the whole upload: a body the peer keeps taking,
    /// however slowly, is never cut. One timer per connection, armed only when a write waits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_hardened::Transport;
    ///
    /// let transport = Transport::builder()
    ///     .write_stall_timeout(Duration::from_secs(10))
    ///     .build::<http_body_util::Full<bytes::Bytes>>();
    /// # let _ = transport;
    /// ```
    #[track_caller]
    pub fn write_stall_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("write_stall_timeout", d);
        self.write_stall = d;
        self
    }

    /// At most `n` idle connections in total, least recently used closed first (Go's
    /// `MaxIdleConns`); see [`PoolBuilder::max_idle`].
    pub fn max_idle(mut self, n: usize) -> Self {
        self.pool = self.pool.max_idle(n);
        self
    }

    /// At most `n` idle connections per scheme and authority; see
    /// [`PoolBuilder::max_idle_per_host`].
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.pool = self.pool.max_idle_per_host(n);
        self
    }

    /// Idle connections are closed after `d` unused; see [`PoolBuilder::idle_timeout`]. Also
    /// the TCP keep-alive time of the default connector (as hyper-util's `build_http` does).
    #[track_caller]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.pool = self.pool.idle_timeout(d);
        self.idle_timeout = d;
        self
    }

    /// Connections stop being reused `d` minus a jitter after they were made; see
    /// [`PoolBuilder::max_lifetime`].
    #[track_caller]
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.pool = self.pool.max_lifetime(d);
        self
    }

    /// The fraction of the lifetime taken off at random; see [`PoolBuilder::jitter`].
    #[track_caller]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.pool = self.pool.jitter(fraction);
        self
    }

    /// At most `n` connections per scheme and authority, dialing + in use + idle (Go's
    /// `MaxConnsPerHost`); see [`PoolBuilder::max_conns_per_host`]. An HTTP/2 connection counts
    /// once however many streams it carries.
    #[track_caller]
    pub fn max_conns_per_host(mut self, n: usize) -> Self {
        self.pool = self.pool.max_conns_per_host(n);
        self
    }

    /// How long a request waits for room in the pool; see [`PoolBuilder::acquire_timeout`].
    #[track_caller]
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.pool = self.pool.acquire_timeout(d);
        self
    }

    /// At most `n` requests wait for a connection per host; see
    /// [`PoolBuilder::max_waiters_per_host`].
    #[track_caller]
    pub fn max_waiters_per_host(mut self, n: usize) -> Self {
        self.pool = self.pool.max_waiters_per_host(n);
        self
    }

    /// Reports a connection checked out longer than `d` (an HTTP/1 response body held unread,
    /// say); see [`PoolBuilder::held_threshold`].
    #[track_caller]
    pub fn held_threshold(mut self, d: Duration) -> Self {
        self.pool = self.pool.held_threshold(d);
        self
    }

    /// HTTP/2 connections, idle ones included, send a PING after `d` without frames from the
    /// peer, so that a shared connection whose peer vanished (half-open) is found and closed
    /// instead of stalling every stream on it.
    #[track_caller]
    pub fn http2_keep_alive_interval(mut self, d: Duration) -> Self {
        clock::check_duration("http2_keep_alive_interval", d);
        self.h2_keep_alive_interval = d;
        self
    }

    /// How long an HTTP/2 PING may go unanswered before the connection is closed (its streams
    /// fail, new requests go to a new connection).
    #[track_caller]
    pub fn http2_keep_alive_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("http2_keep_alive_timeout", d);
        self.h2_keep_alive_timeout = d;
        self
    }

    /// Further settings of hyper's HTTP/1 connection builder (header limits, buffer sizes, ...).
    pub fn http1(mut self, configure: impl FnOnce(&mut http1::Builder)) -> Self {
        configure(&mut self.h1);
        self
    }

    /// Further settings of hyper's HTTP/2 connection builder (window sizes, frame size, ...),
    /// applied after the keep-alive settings of this builder. Each call adds to the earlier
    /// ones.
    pub fn http2(
        mut self,
        configure: impl Fn(&mut http2::Builder<TokioExecutor>) + Send + Sync + 'static,
    ) -> Self {
        self.h2_configure = Some(match self.h2_configure.take() {
            None => Arc::new(configure),
            Some(earlier) => Arc::new(move |b: &mut http2::Builder<TokioExecutor>| {
                earlier(b);
                configure(b);
            }),
        });
        self
    }

    /// Counts connections (opened, reused, idle, closed by reason), acquire timeouts,
    /// overloads and held checkouts in `stats`, and connect timeouts of the default connector.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.pool = self.pool.stats(stats.clone());
        self.stats = Some(stats);
        self
    }

    /// A transport over hyper-util's `HttpConnector` (`http://` only) in a
    /// [`ConnectTimeout`], for request bodies of type `B`.
    pub fn build<B>(&self) -> Transport<B>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut http = HttpConnector::new();
        http.set_keepalive(Some(self.idle_timeout));
        let mut timeout = ConnectTimeoutLayer::new(self.connect_timeout);
        if let Some(stats) = &self.stats {
            timeout = timeout.stats(stats.clone());
        }
        self.build_with_connector(ConnectTimeout::new(http, timeout))
    }

    /// A transport over `connector`: any `Service<Uri>` whose connections implement hyper's
    /// `Read + Write` and hyper-util's `Connection` (a TLS connector, a proxy connector, ...),
    /// used as given.
    pub fn build_with_connector<C, B>(&self, connector: C) -> Transport<B>
    where
        C: Service<Uri> + Clone + Send + Sync + 'static,
        C::Response: Read + Write + Connection + Unpin + Send + 'static,
        C::Future: Send + 'static,
        C::Error: Into<BoxError>,
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let config = Arc::new(Config {
            protocol: self.protocol,
            h1: self.h1.clone(),
            h2_keep_alive_interval: self.h2_keep_alive_interval,
            h2_keep_alive_timeout: self.h2_keep_alive_timeout,
            h2_configure: self.h2_configure.clone(),
            write_stall: Some(self.write_stall),
        });
        let mut pool = self.pool.clone();
        if self.protocol == Protocol::Http2 {
            pool = pool.expected_capacity(H2_INITIAL_STREAMS);
        }
        let make = MakeConn {
            connector,
            config,
            _body: PhantomData,
        };
        Transport::from_pool(pool.build(make))
    }
}
