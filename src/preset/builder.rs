//! [`Hardened`], the builder of the preset: its settings, defaults and the clients it makes.

use std::time::Duration;

use tower_layer::Layer;

use super::{HardenedClient, HardenedLayer, HardenedService};
use crate::body_limit::ResponseBodyLimitLayer;
use crate::drain::DrainOnDropLayer;
use crate::limit::{
    AdaptiveLimitHandle, AdaptiveLimitLayer, ConcurrencyLimitLayer, LimitHandle, PerHostHandle,
    PerHostLimitLayer,
};
use crate::pool::{PoolClient, PoolClientBuilder, PoolConnector};
use crate::stats::Stats;
use crate::timeout::{ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};
use crate::transport::TransportBuilder;

use super::client::PresetTransport;
use super::HardenedRequestBody;
use crate::https::HardenedConnector;

/// The one-line safe stack: see the [module docs](crate::preset) for the order and the defaults.
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
    pub(super) stats: Stats,
    pub(super) total: Duration,
    pub(super) connect: Duration,
    pub(super) tls_handshake: Duration,
    pub(super) response_headers: Duration,
    pub(super) body_idle: Duration,
    pub(super) request_write: Duration,
    pub(super) max_in_flight: usize,
    pub(super) max_requests_per_host: usize,
    pub(super) max_waiting: usize,
    pub(super) acquire_timeout: Duration,
    /// The adaptive per-host limit of [`Hardened::adaptive`], as given.
    pub(super) adaptive: Option<AdaptiveLimitLayer>,
    /// The global and per-host limits: built from the four fields above whenever one of them (or
    /// the stats handle) changes, and shared by every layer, client and clone made from here.
    pub(super) limits: Limits,
    pub(super) drain: DrainOnDropLayer,
    pub(super) max_response_body: u64,
    /// The legacy client's pool ([`Hardened::legacy_client`]).
    pub(super) pool: PoolClientBuilder,
    /// The transport of [`Hardened::client`] and [`Hardened::client_with`].
    pub(super) transport: TransportBuilder,
    /// The one transport (and pool) of [`Hardened::client`]: made by the first client, shared
    /// by every client and clone made from here until a transport setting changes.
    pub(super) shared: SharedTransport,
    pub(super) max_response_header_bytes: usize,
    /// The request span and metrics, outermost; one per preset, so every layer and client made
    /// from it shares its registered series.
    pub(super) telemetry: crate::telemetry::TelemetryLayer,
    /// Your TLS settings ([`Hardened::tls_config`]); the preset's defaults when `None`.
    #[cfg(feature = "rustls")]
    pub(super) tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub(super) replay_put_delete: bool,
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
    /// Default idle timeout of pooled connections ([`transport_with`](Self::transport_with),
    /// and [`pool_with`](Self::pool_with) for the legacy client): 50 s, below the 60 s idle
    /// timeout of AWS load balancers and nginx's 75 s `keepalive_timeout`, so that the pool,
    /// not the server, closes an idle connection (Go's 90 s is above both).
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
    /// Default of [`max_idle`](Self::max_idle): idle connections kept in total, all hosts
    /// together (Go's `MaxIdleConns`).
    pub const DEFAULT_MAX_IDLE: usize = 100;
    /// Default idle connections kept per host ([`transport_with`](Self::transport_with),
    /// [`pool_with`](Self::pool_with)).
    pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 16;
    /// Default connections per host, dialing + in use + idle
    /// ([`transport_with`](Self::transport_with), [`pool_with`](Self::pool_with)).
    pub const DEFAULT_MAX_CONNS_PER_HOST: usize = 128;
    /// Default of [`max_response_header_bytes`](Self::max_response_header_bytes).
    pub const DEFAULT_MAX_RESPONSE_HEADER_BYTES: usize = 400 * 1024;
    /// Default of [`max_response_body`](Self::max_response_body): no cap (`u64::MAX`).
    pub const DEFAULT_MAX_RESPONSE_BODY: u64 = u64::MAX;

    /// The stack with every default of the [module docs](crate::preset).
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
                None,
            ),
            adaptive: None,
            drain: DrainOnDropLayer::new()
                .leak_threshold(Self::DEFAULT_LEAK_THRESHOLD)
                .stats(stats.clone()),
            max_response_body: Self::DEFAULT_MAX_RESPONSE_BODY,
            pool: PoolClientBuilder::new()
                .idle_timeout(Self::DEFAULT_IDLE_TIMEOUT)
                .max_idle_per_host(Self::DEFAULT_MAX_IDLE_PER_HOST)
                .max_conns_per_host(Self::DEFAULT_MAX_CONNS_PER_HOST)
                .acquire_timeout(Self::DEFAULT_ACQUIRE_TIMEOUT)
                .write_stall_timeout(Self::DEFAULT_REQUEST_WRITE)
                .stats(stats.clone()),
            transport: TransportBuilder::new()
                .max_idle(Self::DEFAULT_MAX_IDLE)
                .idle_timeout(Self::DEFAULT_IDLE_TIMEOUT)
                .max_idle_per_host(Self::DEFAULT_MAX_IDLE_PER_HOST)
                .max_conns_per_host(Self::DEFAULT_MAX_CONNS_PER_HOST)
                .acquire_timeout(Self::DEFAULT_ACQUIRE_TIMEOUT)
                .write_stall_timeout(Self::DEFAULT_REQUEST_WRITE)
                .stats(stats.clone()),
            shared: SharedTransport::default(),
            max_response_header_bytes: Self::DEFAULT_MAX_RESPONSE_HEADER_BYTES,
            telemetry: crate::telemetry::TelemetryLayer::new(),
            #[cfg(feature = "rustls")]
            tls_config: None,
            replay_put_delete: false,
            stats,
        }
    }

    /// A new transport for the next [`client`](Self::client): the setters of anything a
    /// transport is made with end with this (the clients made before keep theirs).
    pub(super) fn with_new_transport(mut self) -> Self {
        self.shared = SharedTransport::default();
        self
    }

    /// A fresh set of limits from the current settings (the limit setters end with this).
    fn with_new_limits(mut self) -> Self {
        self.limits = Limits::build(
            self.max_in_flight,
            self.max_requests_per_host,
            self.max_waiting,
            self.acquire_timeout,
            &self.stats,
            self.adaptive.as_ref(),
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
        self.with_new_transport()
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
        self.with_new_transport()
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
    /// `RequestWrite`); also the write-stall timeout of the connections' sockets
    /// ([`TransportBuilder::write_stall_timeout`], and
    /// [`PoolClientBuilder::write_stall_timeout`] for the legacy client).
    ///
    /// # Panics
    ///
    /// When the duration is zero (use a very large one to mean "no limit").
    #[track_caller]
    pub fn request_write(mut self, limit: Duration) -> Self {
        crate::clock::check_duration("Hardened::request_write", limit);
        self.request_write = limit;
        self.pool = self.pool.write_stall_timeout(limit);
        self.transport = self.transport.write_stall_timeout(limit);
        self.with_new_transport()
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
        self.transport = self.transport.acquire_timeout(limit);
        self.with_new_transport().with_new_limits()
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

    /// Limits each host adaptively instead of with the static
    /// [`max_requests_per_host`](Self::max_requests_per_host): `limit` keeps one limit per host
    /// (scheme + authority), which falls when that host's latency, body included, grows or its
    /// requests time out or fail, and grows back while it stays healthy. It sits outside the
    /// static global cap ([`max_in_flight`](Self::max_in_flight)), so one slow host shrinks only
    /// its own share. The preset sets its queue bound and acquire timeout
    /// ([`max_waiting`](Self::max_waiting), [`acquire_timeout`](Self::acquire_timeout)) and its
    /// stats; everything else (algorithm, bounds, windows, probes) is `limit`'s. The highest
    /// limit of `limit` is then each host's cap. Off by default. Makes a new set of limits.
    ///
    /// ```
    /// use tower_hardened::{AdaptiveLimitLayer, Gradient, Hardened};
    ///
    /// let hardened = Hardened::new().adaptive(AdaptiveLimitLayer::new(Gradient::new(), 4..=64));
    /// assert!(hardened.adaptive_handle().is_some());
    /// ```
    pub fn adaptive(mut self, limit: AdaptiveLimitLayer) -> Self {
        self.adaptive = Some(limit);
        self.with_new_limits()
    }

    /// Reads the adaptive per-host limits of [`adaptive`](Self::adaptive) (each host's current
    /// limit, in-flight and waiting counts), shared by every layer and client of this preset.
    /// `None` when the per-host limit is the static one.
    pub fn adaptive_handle(&self) -> Option<AdaptiveLimitHandle> {
        self.limits
            .adaptive
            .as_ref()
            .map(AdaptiveLimitLayer::handle)
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

    /// At most `n` idle connections in total, all hosts together, the least recently used
    /// closed first (Go's `MaxIdleConns`; default [100](Self::DEFAULT_MAX_IDLE)). A bound of the
    /// transport of [`client`](Self::client) and [`client_with`](Self::client_with), exact and
    /// counted by [`StatsSnapshot::connections_idle`](crate::StatsSnapshot::connections_idle).
    /// The legacy client cannot enforce it: hyper-util's pool keeps its idle list to itself
    /// (see the [`pool`](crate::pool) module). Zero keeps no connection idle.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.transport = self.transport.max_idle(n);
        self.with_new_transport()
    }

    /// Changes the transport settings of [`client`](Self::client) and
    /// [`client_with`](Self::client_with) (idle timeout and caps, lifetime, connections per
    /// host, HTTP/2 PINGs, hyper's builders, ...), keeping the ones `f` does not set:
    /// `.transport_with(|t| t.idle_timeout(Duration::from_secs(30)))`. The preset's stats
    /// handle is given to it; the connector is the preset's (its connect and TLS timeouts),
    /// so `f`'s `connect_timeout` is not used.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_hardened::Hardened;
    ///
    /// let hardened = Hardened::new()
    ///     .transport_with(|t| t.max_conns_per_host(8).max_lifetime(Duration::from_secs(300)));
    /// # let _ = hardened;
    /// ```
    pub fn transport_with(mut self, f: impl FnOnce(TransportBuilder) -> TransportBuilder) -> Self {
        self.transport = f(self.transport).stats(self.stats.clone());
        self.with_new_transport()
    }

    /// Replaces the legacy client's pool settings (idle timeout, idle and connection caps,
    /// lifetime, acquire and write-stall timeouts) with `pool` as it is: none of the preset's
    /// pool defaults are kept. To change some and keep the others, use
    /// [`Hardened::pool_with`]. The preset's stats handle is given to it. Only
    /// [`legacy_client`](Self::legacy_client) and [`legacy_client_with`](Self::legacy_client_with)
    /// use it; [`transport_with`](Self::transport_with) sets the others'.
    pub fn pool(mut self, pool: PoolClientBuilder) -> Self {
        self.pool = pool.stats(self.stats.clone());
        self
    }

    /// Changes the legacy client's pool settings, keeping the ones `f` does not set:
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
        self.with_new_transport()
    }

    /// Also sends PUT and DELETE once more when their reused connection was closed before the
    /// response (off by default, as in Go; see [`ReplayLayer`](crate::ReplayLayer) for the
    /// requests that are replayed).
    pub fn replay_put_delete(mut self, allow: bool) -> Self {
        self.replay_put_delete = allow;
        self
    }

    /// Counts into `stats` instead of the preset's own handle.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.drain = self.drain.stats(stats.clone());
        self.pool = self.pool.stats(stats.clone());
        self.transport = self.transport.stats(stats.clone());
        self.stats = stats;
        self.with_new_transport().with_new_limits()
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

    /// The request-side stack, as a layer for any client (see the [module docs](crate::preset)).
    pub fn layer(&self) -> HardenedLayer {
        HardenedLayer {
            config: self.clone(),
            grpc: false,
            own_transport: false,
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

    /// A ready client with the whole stack, for request bodies of type `B`: `http://`, and with
    /// the `rustls` feature `https://` too (see [`HardenedConnector`]), HTTP/2 where ALPN
    /// offers it.
    ///
    /// It runs on the crate's [`Transport`](crate::Transport), whose pool bounds are exact
    /// ([`max_idle`](Self::max_idle), [`transport_with`](Self::transport_with)). Every client
    /// made from this value and its clones, whatever its body type, shares one transport: one
    /// pool, one set of idle connections. The pool lives while this value, a clone of it or a
    /// client does (idle connections are reaped by their idle timeout meanwhile); a transport
    /// setting gives the clients made after it a new one. Its response body is a
    /// [`HardenedClientBody`](super::HardenedClientBody).
    pub fn client<B>(&self) -> HardenedClient<B>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<crate::BoxError>,
    {
        let transport = self
            .shared
            .0
            .get_or_init(|| {
                self.transport_builder()
                    .build_with_connector(self.connector())
                    .with_clock_of(super::client::clock_of)
            })
            .clone();
        HardenedClient::new(self.transport_layer().layer(transport))
    }

    /// A ready client over your own connector (a proxy connector, a TLS connector of your own
    /// built with [`Hardened::tls_layer`] and [`Hardened::connect_layer`], ...) on the crate's
    /// [`Transport`](crate::Transport), under the whole stack. Each call makes a transport (a
    /// pool) of its own, shared by the returned client's clones. The connector is used as
    /// given: wrap it in this preset's connect and TLS layers for their timeouts.
    pub fn client_with<C, B>(&self, connector: C) -> HardenedClient<B>
    where
        C: tower_service::Service<http::Uri> + Clone + Send + Sync + 'static,
        C::Response: hyper::rt::Read
            + hyper::rt::Write
            + hyper_util::client::legacy::connect::Connection
            + Unpin
            + Send
            + 'static,
        C::Future: Send + 'static,
        C::Error: Into<crate::BoxError>,
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<crate::BoxError>,
    {
        let transport = self
            .transport_builder()
            .build_with_connector(connector)
            .with_clock_of(super::client::clock_of);
        HardenedClient::new(self.transport_layer().layer(transport))
    }

    /// The request-side stack for the crate's own transport under it.
    fn transport_layer(&self) -> HardenedLayer {
        HardenedLayer {
            own_transport: true,
            ..self.layer()
        }
    }

    /// The transport settings with what the preset owns applied: the response head cap.
    fn transport_builder(&self) -> TransportBuilder {
        let header_bytes = self.max_response_header_bytes;
        let h2_header_bytes = u32::try_from(header_bytes).unwrap_or(u32::MAX);
        self.transport
            .clone()
            .http1(|b| {
                b.max_buf_size(header_bytes);
            })
            .http2(move |b| {
                b.max_header_list_size(h2_header_bytes);
            })
    }

    /// The whole stack over hyper-util's legacy client, with the bounds of the
    /// [`pool_with`](Self::pool_with) settings and this preset's connector: for users who
    /// bring hyper-util's client. It cannot bound idle connections in total
    /// ([`max_idle`](Self::max_idle)); see the [`pool`](crate::pool) module.
    pub fn legacy_client<B>(
        &self,
    ) -> HardenedService<PoolClient<HardenedConnector, HardenedRequestBody<B>>>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<crate::BoxError>,
    {
        self.legacy_client_with(self.connector())
    }

    /// The whole stack over hyper-util's legacy client on your own connector (for example an
    /// HTTPS connector built with [`Hardened::tls_layer`] and [`Hardened::connect_layer`]);
    /// its response bodies are [`HardenedBody`](super::HardenedBody)`<Incoming>`.
    pub fn legacy_client_with<C, B>(
        &self,
        connector: C,
    ) -> HardenedService<PoolClient<C, HardenedRequestBody<B>>>
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

/// The one transport of a preset's [`Hardened::client`]s, made at the first one.
#[derive(Clone, Default)]
pub(super) struct SharedTransport(std::sync::Arc<std::sync::OnceLock<PresetTransport>>);

impl std::fmt::Debug for SharedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(t) => f.debug_tuple("SharedTransport").field(t).finish(),
            None => f.write_str("SharedTransport(not yet made)"),
        }
    }
}

/// The two limiters of one [`Hardened`] value.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub(super) global: ConcurrencyLimitLayer,
    pub(super) per_host: PerHostLimitLayer,
    /// Set by [`Hardened::adaptive`]: takes the static per-host limit's place.
    pub(super) adaptive: Option<AdaptiveLimitLayer>,
}

impl Limits {
    fn build(
        in_flight: usize,
        per_host: usize,
        waiting: usize,
        acquire: Duration,
        stats: &Stats,
        adaptive: Option<&AdaptiveLimitLayer>,
    ) -> Limits {
        Limits {
            adaptive: adaptive.map(|a| {
                a.clone()
                    .per_host()
                    .max_waiting(waiting)
                    .acquire_timeout(acquire)
                    .stats(stats.clone())
                    .without_in_flight_count()
            }),
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
