//! The one-line safe stack: [`Hardened`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let client = tower_hardened::Hardened::new().client::<http_body_util::Full<bytes::Bytes>>();
//! # let _ = client; }
//! ```
//!
//! gives a hyper-util legacy client with every layer of this crate in the right order, every
//! default below, and one shared [`Stats`] handle. Every default can be changed: with a setter
//! of the same name, and for the drain and pool rows through [`Hardened::drain_with`] and
//! [`Hardened::pool_with`] (which keep the defaults you do not set); use [`Hardened::layer`] to
//! put the request-side stack around any other client (a tonic channel, your own stack), or
//! [`ServiceBuilderExt`] to compose by hand.
//!
//! # The stack, outer to inner
//!
//! ```text
//! Telemetry → Deadline → PerHostLimit → ConcurrencyLimit → DrainOnDrop → ResponseBodyLimit
//!   → ResponseHeaderTimeout → BodyIdleTimeout → RequestWriteTimeout
//!   → Retire → hyper-util Client (pool_timer set) → PoolConnector → ConnectTimeout → HttpConnector
//! ```
//!
//! - Telemetry is outermost so that it sees every outcome, the deadline's too (see
//!   [`telemetry`](crate::telemetry)).
//! - The deadline is next so that queue waits, pool waits, connecting and the body all count.
//! - The limits come next so that their waits happen inside the deadline, and their permits live
//!   in the response body, released when it ends or is dropped. The per-host limit is outside the
//!   global one (DESIGN.md lists them the other way round): a request first waits for its host,
//!   then for a global permit, so requests queued for one slow host never sit on global permits
//!   and starve every other host. Both count into one [`Stats`] without counting a request twice:
//!   `in_flight` is the global limiter's, `waiting` is the sum of both queues.
//! - Drain-on-drop sits inside the limits: a dropped body gives its permit back at once while its
//!   connection is drained in the background (bounded, and limited in number).
//! - The phase timeouts are innermost, around the client itself, so they time the exchange and
//!   not the queues.
//! - On the connector: the per-host connection cap outside the connect timeout, so a wait for a
//!   connection slot is `Acquire` and never blamed on DNS or TCP. For HTTPS, put
//!   [`TlsHandshakeTimeoutLayer`] around your TLS connector and [`Hardened::connect_layer`]
//!   around its TCP connector, and pass it to [`Hardened::client_with`].
//!
//! # Defaults, and where they come from
//!
//! | knob | ours | Go `DefaultTransport` | OkHttp | HikariCP / Envoy | why ours |
//! |---|---|---|---|---|---|
//! | total deadline | 30 s | ∞ (`Client.Timeout`) | ∞ (`callTimeout`) | Envoy route 15 s | a bound must exist; long enough for slow APIs and modest downloads |
//! | connect (DNS + TCP) | 10 s | 30 s | 10 s | Envoy 5 s | OkHttp's: a host that takes 10 s to accept is down |
//! | TLS handshake | 10 s | 10 s | (in connect) | — | Go's |
//! | response headers | 10 s | ∞ | 10 s (`readTimeout`) | — | OkHttp's; a server that has not started answering in 10 s is stuck |
//! | body idle | 30 s | ∞ | 10 s (`readTimeout`) | Envoy stream idle 5 min | between OkHttp and Envoy: streams may pause, stalls must end |
//! | request write | 10 s | ∞ | 10 s (`writeTimeout`) | — | OkHttp's; also bounds a socket write that makes no progress ([`PoolConnectorLayer::write_stall_timeout`](crate::PoolConnectorLayer::write_stall_timeout)), so a peer that never reads cannot pin a connection task |
//! | requests in flight | 256 | ∞ | 64 (`maxRequests`) | HikariCP pool 10 | OkHttp's is tuned for phones; 256 bounds a server's fan-out |
//! | requests per host | 64 | ∞ (`MaxConnsPerHost`) | 5 (`maxRequestsPerHost`) | — | 5 throttles service-to-service traffic; 64 still stops one slow host from taking everything |
//! | waiting requests, per queue (global, each host) | 1024 | — | ∞ | Envoy pending queue 1024 | Envoy's: then fail fast with `Overloaded` |
//! | permit wait (acquire) | 10 s | — | — | HikariCP 30 s | fail a request that cannot start in a third of its deadline |
//! | drain of a dropped body | 256 KiB / 100 ms / 64 at once | — (must read yourself) | ≤ 100 ms | — | see [`DrainOnDropLayer`] |
//! | held-body report | 60 s | — | — | HikariCP leak threshold off (≥ 2 s) | twice the deadline: a body nobody reads for that long is a leak |
//! | idle timeout (reaped) | 90 s | 90 s | 5 min | HikariCP 10 min | Go's |
//! | idle connections per host | 16 | 2 | 5 (in all) | — | Go's 2 causes connection churn under load |
//! | connections per host | 128 | ∞ | — | — | in-flight per host plus idle, with room for background dials |
//! | max connection lifetime | 30 min − ≤ 2.5 % | ∞ | ∞ | HikariCP 30 min − ≤ 2.5 % | HikariCP's: DNS changes and server rotation are picked up |
//! | response header bytes | 400 KiB | 10 MiB (`MaxResponseHeaderBytes`) | — | — | HTTP/1: hyper's own read-buffer ceiling (408 KiB) rounded down — hyper has no separate HTTP/1 head limit, that ceiling is the cap, and a 64 KiB one made 64 KiB bodies 1.21x slower (BENCHMARKS.md); HTTP/2: the same 400 KiB (hyper's client default is 16 KiB), so both protocols accept the same heads |
//! | response body bytes | unlimited | ∞ | ∞ | — | streams are legitimate; set [`Hardened::max_response_body`] when you collect |

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use tower_layer::Layer;

use crate::body_limit::{ResponseBodyLimit, ResponseBodyLimitLayer};
use crate::deadline::{Deadline, DeadlineLayer};
use crate::drain::{DrainOnDrop, DrainOnDropLayer};
use crate::limit::{
    ConcurrencyLimit, ConcurrencyLimitLayer, LimitHandle, PerHostHandle, PerHostLimit,
    PerHostLimitLayer,
};
use crate::pool::{PoolClient, PoolClientBuilder, PoolConnector};
use crate::stats::Stats;
use crate::timeout::{
    BodyIdleTimeout, BodyIdleTimeoutLayer, ConnectTimeout, ConnectTimeoutLayer, RequestWriteBody,
    RequestWriteTimeout, RequestWriteTimeoutLayer, ResponseHeaderTimeout,
    ResponseHeaderTimeoutLayer, TlsHandshakeTimeoutLayer,
};

/// The request-side stack of [`Hardened`] around an inner service `S`.
pub type HardenedService<S> = crate::telemetry::Telemetry<
    Deadline<
        PerHostLimit<
            ConcurrencyLimit<
                DrainOnDrop<
                    ResponseBodyLimit<
                        ResponseHeaderTimeout<BodyIdleTimeout<RequestWriteTimeout<S>>>,
                    >,
                >,
            >,
        >,
    >,
>;

/// The connector of [`Hardened::client`]: hyper-util's `HttpConnector` bounded by the connect
/// timeout.
pub type HardenedConnector = ConnectTimeout<HttpConnector>;

/// The client of [`Hardened::client`], for request bodies of type `B`.
pub type HardenedClient<B> = HardenedService<PoolClient<HardenedConnector, RequestWriteBody<B>>>;

/// The one-line safe stack: see the [module docs](self) for the order and the defaults.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
/// use tower_hardened::{Error, Hardened};
///
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let hardened = Hardened::new().total(Duration::from_secs(10));
/// let stats = hardened.stats_handle();
/// let client = hardened.client::<Empty<Bytes>>();
///
/// let req = http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?;
/// match client.oneshot(req).await {
///     Ok(resp) => println!("{} bytes", resp.into_body().collect().await?.to_bytes().len()),
///     Err(e) => println!("failed in {:?}: {e}", Error::find(&*e).and_then(Error::phase)),
/// }
/// println!("{:?}", stats.snapshot());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Hardened {
    stats: Stats,
    total: Duration,
    connect: Duration,
    tls_handshake: Duration,
    response_headers: Duration,
    body_idle: Duration,
    request_write: Duration,
    max_in_flight: usize,
    max_requests_per_host: usize,
    max_waiting: usize,
    acquire_timeout: Duration,
    /// The global and per-host limits: built from the four fields above whenever one of them (or
    /// the stats handle) changes, and shared by every layer, client and clone made from here.
    limits: Limits,
    drain: DrainOnDropLayer,
    max_response_body: u64,
    pool: PoolClientBuilder,
    max_response_header_bytes: usize,
}

impl Default for Hardened {
    fn default() -> Self {
        Hardened::new()
    }
}

impl Hardened {
    /// Default of [`total`](Self::total).
    pub const DEFAULT_TOTAL: Duration = Duration::from_secs(30);
    /// Default of [`connect`](Self::connect).
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
    /// Default of [`tls_handshake`](Self::tls_handshake).
    pub const DEFAULT_TLS_HANDSHAKE: Duration = Duration::from_secs(10);
    /// Default of [`response_headers`](Self::response_headers).
    pub const DEFAULT_RESPONSE_HEADERS: Duration = Duration::from_secs(10);
    /// Default of [`body_idle`](Self::body_idle).
    pub const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(30);
    /// Default of [`request_write`](Self::request_write).
    pub const DEFAULT_REQUEST_WRITE: Duration = Duration::from_secs(10);
    /// Default of [`max_in_flight`](Self::max_in_flight).
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
    /// Default of [`max_requests_per_host`](Self::max_requests_per_host).
    pub const DEFAULT_MAX_REQUESTS_PER_HOST: usize = 64;
    /// Default of [`max_waiting`](Self::max_waiting).
    pub const DEFAULT_MAX_WAITING: usize = 1024;
    /// Default of [`acquire_timeout`](Self::acquire_timeout).
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default held-body report threshold of the drain settings ([`drain_with`](Self::drain_with)).
    pub const DEFAULT_LEAK_THRESHOLD: Duration = Duration::from_secs(60);
    /// Default idle connections kept per host ([`pool_with`](Self::pool_with)).
    pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 16;
    /// Default connections per host, dialing + in use + idle ([`pool_with`](Self::pool_with)).
    pub const DEFAULT_MAX_CONNS_PER_HOST: usize = 128;
    /// Default of [`max_response_header_bytes`](Self::max_response_header_bytes).
    pub const DEFAULT_MAX_RESPONSE_HEADER_BYTES: usize = 400 * 1024;

    /// The stack with every default of the [module docs](self).
    pub fn new() -> Self {
        let stats = Stats::new();
        Hardened {
            total: Self::DEFAULT_TOTAL,
            connect: Self::DEFAULT_CONNECT,
            tls_handshake: Self::DEFAULT_TLS_HANDSHAKE,
            response_headers: Self::DEFAULT_RESPONSE_HEADERS,
            body_idle: Self::DEFAULT_BODY_IDLE,
            request_write: Self::DEFAULT_REQUEST_WRITE,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            max_requests_per_host: Self::DEFAULT_MAX_REQUESTS_PER_HOST,
            max_waiting: Self::DEFAULT_MAX_WAITING,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            limits: Limits::build(
                Self::DEFAULT_MAX_IN_FLIGHT,
                Self::DEFAULT_MAX_REQUESTS_PER_HOST,
                Self::DEFAULT_MAX_WAITING,
                Self::DEFAULT_ACQUIRE_TIMEOUT,
                &stats,
            ),
            drain: DrainOnDropLayer::new()
                .leak_threshold(Self::DEFAULT_LEAK_THRESHOLD)
                .stats(stats.clone()),
            max_response_body: u64::MAX,
            pool: PoolClientBuilder::new()
                .max_idle_per_host(Self::DEFAULT_MAX_IDLE_PER_HOST)
                .max_conns_per_host(Self::DEFAULT_MAX_CONNS_PER_HOST)
                .acquire_timeout(Self::DEFAULT_ACQUIRE_TIMEOUT)
                .write_stall_timeout(Self::DEFAULT_REQUEST_WRITE)
                .stats(stats.clone()),
            max_response_header_bytes: Self::DEFAULT_MAX_RESPONSE_HEADER_BYTES,
            stats,
        }
    }

    /// A fresh set of limits from the current settings (the limit setters end with this).
    fn with_new_limits(mut self) -> Self {
        self.limits = Limits::build(
            self.max_in_flight,
            self.max_requests_per_host,
            self.max_waiting,
            self.acquire_timeout,
            &self.stats,
        );
        self
    }

    /// The total deadline of each exchange, body included (phase `Total`).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn total(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::total", limit);
        self.total = limit;
        self
    }

    /// The bound on name resolution plus TCP connect (phase `Connect`).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn connect(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::connect", limit);
        self.connect = limit;
        self
    }

    /// The bound on the TLS handshake, for [`Hardened::tls_layer`] (phase `TlsHandshake`).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn tls_handshake(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::tls_handshake", limit);
        self.tls_handshake = limit;
        self
    }

    /// The bound on the wait for response headers (phase `ResponseHeaders`).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn response_headers(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::response_headers", limit);
        self.response_headers = limit;
        self
    }

    /// The longest gap between two frames of a response body (phase `BodyIdle`).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn body_idle(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::body_idle", limit);
        self.body_idle = limit;
        self
    }

    /// The longest time the peer may leave a request body frame untaken (phase
    /// `RequestWrite`); also the pool's write-stall timeout
    /// ([`PoolClientBuilder::write_stall_timeout`]).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn request_write(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::request_write", limit);
        self.request_write = limit;
        self.pool = self.pool.write_stall_timeout(limit);
        self
    }

    /// The longest wait for a concurrency permit, and for a connection slot under the pool's
    /// per-host connection cap (phase `Acquire` for both). Makes a new set of limits.
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn acquire_timeout(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::acquire_timeout", limit);
        self.acquire_timeout = limit;
        self.pool = self.pool.acquire_timeout(limit);
        self.with_new_limits()
    }

    /// At most `n` requests in flight at once, bodies included.
    ///
    /// # Panics
    ///
    /// When `n` is zero or above tokio's `Semaphore::MAX_PERMITS`.
    #[track_caller]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        crate::limit::check_limit("Hardened::max_in_flight", n);
        self.max_in_flight = n;
        self.with_new_limits()
    }

    /// At most `n` requests in flight at once to one scheme + authority, bodies included. (A
    /// count of requests: the pool's `max_conns_per_host` counts connections.)
    ///
    /// # Panics
    ///
    /// When `n` is zero or above tokio's `Semaphore::MAX_PERMITS`.
    #[track_caller]
    pub fn max_requests_per_host(mut self, n: usize) -> Self {
        crate::limit::check_limit("Hardened::max_requests_per_host", n);
        self.max_requests_per_host = n;
        self.with_new_limits()
    }

    /// At most `n` requests waiting in each queue — the global one, and each host's — for a
    /// permit; more fail at once with `Overloaded`. (A request waits in one queue at a time:
    /// first its host's, then the global one.)
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n;
        self.with_new_limits()
    }

    /// Replaces the drain-on-drop settings (caps, held-body threshold) with `drain` as it is:
    /// none of the preset's drain defaults are kept (the held-body report is off unless `drain`
    /// sets it). To change some and keep the others, use [`Hardened::drain_with`]. The preset's
    /// stats handle is given to it.
    pub fn drain(mut self, drain: DrainOnDropLayer) -> Self {
        self.drain = drain.stats(self.stats.clone());
        self
    }

    /// Changes the preset's drain-on-drop settings, keeping the ones `f` does not set:
    /// `.drain_with(|d| d.max_drain_bytes(1 << 20))`.
    pub fn drain_with(mut self, f: impl FnOnce(DrainOnDropLayer) -> DrainOnDropLayer) -> Self {
        self.drain = f(self.drain).stats(self.stats.clone());
        self
    }

    /// Caps every response body at `bytes` (error kind `BodyTooLarge`). Unlimited by default.
    ///
    /// # Panics
    ///
    /// When `bytes` is zero.
    #[track_caller]
    pub fn max_response_body(mut self, bytes: u64) -> Self {
        let _ = ResponseBodyLimitLayer::new(bytes);
        self.max_response_body = bytes;
        self
    }

    /// Replaces the pool settings (idle timeout, idle and connection caps, lifetime, acquire and
    /// write-stall timeouts) with `pool` as it is: none of the preset's pool defaults are kept.
    /// To change some and keep the others, use [`Hardened::pool_with`]. The preset's stats
    /// handle is given to it.
    pub fn pool(mut self, pool: PoolClientBuilder) -> Self {
        self.pool = pool.stats(self.stats.clone());
        self
    }

    /// Changes the preset's pool settings, keeping the ones `f` does not set:
    /// `.pool_with(|p| p.idle_timeout(Duration::from_secs(30)))`.
    pub fn pool_with(mut self, f: impl FnOnce(PoolClientBuilder) -> PoolClientBuilder) -> Self {
        self.pool = f(self.pool).stats(self.stats.clone());
        self
    }

    /// The largest response head (status line and headers) accepted, in bytes (hyper's
    /// `http1_max_buf_size`, HTTP/2's `max_header_list_size`).
    ///
    /// # Panics
    ///
    /// Below 8 KiB, hyper's own minimum.
    #[track_caller]
    pub fn max_response_header_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes >= 8192,
            "tower-hardened: Hardened::max_response_header_bytes must be at least 8192 (hyper's minimum)"
        );
        self.max_response_header_bytes = bytes;
        self
    }

    /// Counts into `stats` instead of the preset's own handle.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.drain = self.drain.stats(stats.clone());
        self.pool = self.pool.stats(stats.clone());
        self.stats = stats;
        self.with_new_limits()
    }

    /// The stats handle every layer of this preset counts into.
    pub fn stats_handle(&self) -> Stats {
        self.stats.clone()
    }

    /// Reads the global limit's counts. Every layer and client made from this preset (and from
    /// its clones) shares that one limit, until a limit setter makes a new one.
    pub fn limit_handle(&self) -> LimitHandle {
        self.limits.global.handle()
    }

    /// Reads the per-host limit's counts, shared like [`limit_handle`](Self::limit_handle).
    pub fn per_host_handle(&self) -> PerHostHandle {
        self.limits.per_host.handle()
    }

    /// The request-side stack, as a layer for any client (see the [module docs](self)).
    pub fn layer(&self) -> HardenedLayer {
        HardenedLayer {
            config: self.clone(),
        }
    }

    /// The connect-timeout layer for a TCP connector, sharing this preset's stats.
    pub fn connect_layer(&self) -> ConnectTimeoutLayer {
        ConnectTimeoutLayer::new(self.connect).stats(self.stats.clone())
    }

    /// The TLS-handshake-timeout layer for a TLS connector, sharing this preset's stats.
    pub fn tls_layer(&self) -> TlsHandshakeTimeoutLayer {
        TlsHandshakeTimeoutLayer::new(self.tls_handshake).stats(self.stats.clone())
    }

    /// A ready hyper-util client for `http://` with the whole stack, request bodies of type `B`.
    pub fn client<B>(&self) -> HardenedClient<B>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<crate::BoxError>,
    {
        let mut http = HttpConnector::new();
        http.set_keepalive(Some(Duration::from_secs(90)));
        self.client_with(self.connect_layer().layer(http))
    }

    /// A ready hyper-util client over your own connector (for example an HTTPS connector built
    /// with [`Hardened::tls_layer`] and [`Hardened::connect_layer`]).
    pub fn client_with<C, B>(
        &self,
        connector: C,
    ) -> HardenedService<PoolClient<C, RequestWriteBody<B>>>
    where
        PoolConnector<C>:
            hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<crate::BoxError>,
    {
        let header_bytes = self.max_response_header_bytes;
        let mut pool = self.pool.clone();
        if pool.connector_layer().write_stall.is_none() {
            // A pool given whole by `Hardened::pool` without one: a peer that never reads must
            // still not pin a connection task (see `PoolConnectorLayer::write_stall_timeout`).
            pool = pool.write_stall_timeout(self.request_write);
        }
        let pool = pool.configure(move |b| {
            b.http1_max_buf_size(header_bytes)
                .http2_max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX));
        });
        self.layer().layer(pool.build(connector))
    }
}

/// The two limiters of one [`Hardened`] value.
#[derive(Debug, Clone)]
struct Limits {
    global: ConcurrencyLimitLayer,
    per_host: PerHostLimitLayer,
}

impl Limits {
    fn build(
        in_flight: usize,
        per_host: usize,
        waiting: usize,
        acquire: Duration,
        stats: &Stats,
    ) -> Limits {
        Limits {
            global: ConcurrencyLimitLayer::new(in_flight)
                .max_waiting(waiting)
                .acquire_timeout(acquire)
                .stats(stats.clone()),
            // Both limiters count into one handle; only the global one counts `in_flight`.
            per_host: PerHostLimitLayer::new(per_host)
                .max_waiting(waiting)
                .acquire_timeout(acquire)
                .stats(stats.clone())
                .without_in_flight_count(),
        }
    }
}

/// The request-side stack of a [`Hardened`] preset as a [`Layer`].
#[derive(Debug, Clone)]
pub struct HardenedLayer {
    config: Hardened,
}

impl<S> Layer<S> for HardenedLayer {
    type Service = HardenedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let c = &self.config;
        let stats = &c.stats;
        let inner = RequestWriteTimeoutLayer::new(c.request_write)
            .stats(stats.clone())
            .layer(inner);
        let inner = BodyIdleTimeoutLayer::new(c.body_idle)
            .stats(stats.clone())
            .layer(inner);
        let inner = ResponseHeaderTimeoutLayer::new(c.response_headers)
            .stats(stats.clone())
            .layer(inner);
        let inner = ResponseBodyLimitLayer::new(c.max_response_body).layer(inner);
        let inner = c.drain.layer(inner);
        let inner = c.limits.global.layer(inner);
        let inner = c.limits.per_host.layer(inner);
        let inner = DeadlineLayer::new(c.total)
            .stats(stats.clone())
            .layer(inner);
        crate::telemetry::TelemetryLayer::new().layer(inner)
    }
}

/// Adds this crate's layers to [`tower::ServiceBuilder`], one method each, for those who
/// compose by hand. Sealed: only `ServiceBuilder` implements it.
///
/// The names differ from tower's own `ServiceBuilder` methods (`concurrency_limit`, `timeout`)
/// on purpose: inherent methods would win and silently give tower's semantics.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_hardened::ServiceBuilderExt;
///
/// let builder = ServiceBuilder::new()
///     .deadline(Duration::from_secs(30))
///     .held_concurrency_limit(64)
///     .per_host_limit(8)
///     .drain_on_drop()
///     .response_header_timeout(Duration::from_secs(10))
///     .body_idle_timeout(Duration::from_secs(30))
///     .request_write_timeout(Duration::from_secs(10));
/// # let _ = builder;
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds a [`DeadlineLayer`].
    fn deadline(
        self,
        budget: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<DeadlineLayer, L>>;
    /// Adds a [`ConcurrencyLimitLayer`] (the permit is held until the body ends).
    fn held_concurrency_limit(
        self,
        max: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ConcurrencyLimitLayer, L>>;
    /// Adds a [`PerHostLimitLayer`].
    fn per_host_limit(
        self,
        max_per_host: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<PerHostLimitLayer, L>>;
    /// Adds a [`DrainOnDropLayer`] with its defaults.
    fn drain_on_drop(self) -> tower::ServiceBuilder<tower_layer::Stack<DrainOnDropLayer, L>>;
    /// Adds a [`ResponseBodyLimitLayer`].
    fn response_body_limit(
        self,
        max: u64,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseBodyLimitLayer, L>>;
    /// Adds a [`ResponseHeaderTimeoutLayer`].
    fn response_header_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseHeaderTimeoutLayer, L>>;
    /// Adds a [`BodyIdleTimeoutLayer`].
    fn body_idle_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<BodyIdleTimeoutLayer, L>>;
    /// Adds a [`RequestWriteTimeoutLayer`].
    fn request_write_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<RequestWriteTimeoutLayer, L>>;
    /// Adds the whole request-side stack of a [`Hardened`] preset.
    fn hardened(
        self,
        preset: &Hardened,
    ) -> tower::ServiceBuilder<tower_layer::Stack<HardenedLayer, L>>;
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

impl<L> ServiceBuilderExt<L> for tower::ServiceBuilder<L> {
    fn deadline(
        self,
        budget: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<DeadlineLayer, L>> {
        self.layer(DeadlineLayer::new(budget))
    }
    fn held_concurrency_limit(
        self,
        max: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ConcurrencyLimitLayer, L>> {
        self.layer(ConcurrencyLimitLayer::new(max))
    }
    fn per_host_limit(
        self,
        max_per_host: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<PerHostLimitLayer, L>> {
        self.layer(PerHostLimitLayer::new(max_per_host))
    }
    fn drain_on_drop(self) -> tower::ServiceBuilder<tower_layer::Stack<DrainOnDropLayer, L>> {
        self.layer(DrainOnDropLayer::new())
    }
    fn response_body_limit(
        self,
        max: u64,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseBodyLimitLayer, L>> {
        self.layer(ResponseBodyLimitLayer::new(max))
    }
    fn response_header_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseHeaderTimeoutLayer, L>> {
        self.layer(ResponseHeaderTimeoutLayer::new(limit))
    }
    fn body_idle_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<BodyIdleTimeoutLayer, L>> {
        self.layer(BodyIdleTimeoutLayer::new(limit))
    }
    fn request_write_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<RequestWriteTimeoutLayer, L>> {
        self.layer(RequestWriteTimeoutLayer::new(limit))
    }
    fn hardened(
        self,
        preset: &Hardened,
    ) -> tower::ServiceBuilder<tower_layer::Stack<HardenedLayer, L>> {
        self.layer(preset.layer())
    }
}

#[cfg(test)]
mod tests;
