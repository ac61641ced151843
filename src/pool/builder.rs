use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_layer::Layer;

use super::{PoolConnector, PoolConnectorLayer, Retire, RetireLayer};
use crate::clock;
use crate::stats::Stats;

/// The client [`PoolClientBuilder`] builds: hyper-util's legacy client over a
/// [`PoolConnector`], wrapped in [`Retire`].
pub type PoolClient<C, B> = Retire<Client<PoolConnector<C>, B>>;

type Configure = Arc<dyn Fn(&mut Builder) + Send + Sync>;

/// Builds a hyper-util legacy client with bounded, really reaped pools.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`idle_timeout`](Self::idle_timeout) | 90 s, reaped by a timer | Go `IdleConnTimeout` |
/// | [`max_idle_per_host`](Self::max_idle_per_host) | 5 | OkHttp `ConnectionPool(5, …)` (Go's 2 churns under load) |
/// | [`max_conns_per_host`](Self::max_conns_per_host) | none | Go `MaxConnsPerHost` 0 (unlimited) |
/// | [`acquire_timeout`](Self::acquire_timeout) | 30 s | HikariCP `connectionTimeout` |
/// | [`max_lifetime`](Self::max_lifetime) | 30 min − up to 2.5 % | HikariCP `maxLifetime` |
///
/// It always sets `pool_timer(TokioTimer)`: without a timer hyper-util never reaps idle
/// connections (hyper #3640) and they stay open until the next request to the same host finds
/// them expired. The idle reaper wakes every `max(idle_timeout, 90 ms)`, so an idle connection
/// is closed between `idle_timeout` and twice that after it went idle.
///
/// Connect and TLS-handshake timeouts are not stacked here: pass a connector already wrapped in
/// them (the preset does). The cap goes outside them, so waiting for room under the cap is
/// bounded by the acquire timeout and never eats into the connect timeout.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use http_body_util::Empty;
/// use tower::ServiceExt;
/// use tower_hardened::{PoolClientBuilder, Stats};
///
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let stats = Stats::new();
/// let client = PoolClientBuilder::new()
///     .idle_timeout(Duration::from_secs(30))
///     .max_conns_per_host(16)
///     .max_lifetime(Duration::from_secs(300))
///     .stats(stats.clone())
///     .build_http::<Empty<bytes::Bytes>>();
/// let resp = client.oneshot(http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?).await?;
/// # let _ = resp;
/// println!("{} connections open", stats.snapshot().connections_open);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PoolClientBuilder {
    idle_timeout: Duration,
    max_idle_per_host: usize,
    connector: PoolConnectorLayer,
    stats: Option<Stats>,
    configure: Option<Configure>,
}

impl fmt::Debug for PoolClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolClientBuilder")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .field("connector", &self.connector)
            .field("configure", &self.configure.is_some())
            .finish()
    }
}

impl Default for PoolClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolClientBuilder {
    /// Default idle timeout: Go's `IdleConnTimeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    /// Default idle connections kept per host: OkHttp's pool size.
    pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 5;
    /// Default max lifetime: HikariCP's `maxLifetime`.
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

    /// The defaults of the table above.
    pub fn new() -> Self {
        PoolClientBuilder {
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_idle_per_host: Self::DEFAULT_MAX_IDLE_PER_HOST,
            connector: PoolConnectorLayer::new()
                .max_lifetime(Self::DEFAULT_MAX_LIFETIME)
                .idle_timeout(Self::DEFAULT_IDLE_TIMEOUT),
            stats: None,
            configure: None,
        }
    }

    /// Idle connections are closed after this long unused (reaped by a timer).
    #[track_caller]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("idle_timeout", d);
        self.idle_timeout = d;
        self.connector = self.connector.idle_timeout(d);
        self
    }

    /// At most `n` idle connections kept per host; more are closed when they come back.
    /// Zero disables pooling altogether (a connection per request).
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// At most `n` connections per host, dialing, in use and idle together; see
    /// [`PoolConnectorLayer::max_conns_per_host`].
    #[track_caller]
    pub fn max_conns_per_host(mut self, n: usize) -> Self {
        self.connector = self.connector.max_conns_per_host(n);
        self
    }

    /// How long a request waits for room under the per-host cap; see
    /// [`PoolConnectorLayer::acquire_timeout`].
    #[track_caller]
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.connector = self.connector.acquire_timeout(d);
        self
    }

    /// Connections are retired after this long, minus up to `jitter` of it at random; see
    /// [`PoolConnectorLayer::max_lifetime`].
    #[track_caller]
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.connector = self.connector.max_lifetime(d);
        self
    }

    /// The fraction of the lifetime taken off at random; see [`PoolConnectorLayer::jitter`].
    #[track_caller]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.connector = self.connector.jitter(fraction);
        self
    }

    /// Fails a connection whose writes make no progress for `d` (see
    /// [`PoolConnectorLayer::write_stall_timeout`]).
    #[track_caller]
    pub fn write_stall_timeout(mut self, d: Duration) -> Self {
        self.connector = self.connector.write_stall_timeout(d);
        self
    }

    /// Counts connections (opened, reused, closed by reason, open now) and acquire timeouts.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.connector = self.connector.stats(stats.clone());
        self.stats = Some(stats);
        self
    }

    /// Further settings of hyper-util's builder (HTTP/2, HTTP/1 options, ...), applied before
    /// the pool settings of this builder, which therefore always win. Each call adds to the
    /// earlier ones, applied in the order given.
    pub fn configure(mut self, f: impl Fn(&mut Builder) + Send + Sync + 'static) -> Self {
        self.configure = Some(match self.configure.take() {
            None => Arc::new(f),
            Some(earlier) => Arc::new(move |b: &mut Builder| {
                earlier(b);
                f(b);
            }),
        });
        self
    }

    /// The connector layer clients of this builder use. Clients built by one builder share it,
    /// and with it the per-host cap; use it to read [`open connections per
    /// host`](PoolConnectorLayer::open_per_host).
    pub fn connector_layer(&self) -> &PoolConnectorLayer {
        &self.connector
    }

    /// A client over `connector`.
    pub fn build<C, B>(&self, connector: C) -> PoolClient<C, B>
    where
        PoolConnector<C>: Connect + Clone + Send + Sync + 'static,
        B: http_body::Body + Send,
        B::Data: Send,
    {
        let mut builder = Client::builder(TokioExecutor::new());
        if let Some(configure) = &self.configure {
            configure(&mut builder);
        }
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_host);
        let client = builder.build(self.connector.layer(connector));
        let mut retire = RetireLayer::new();
        if let Some(stats) = &self.stats {
            retire = retire.stats(stats.clone());
        }
        retire.layer(client)
    }

    /// A client over hyper-util's plain `HttpConnector` (`http://` only).
    pub fn build_http<B>(&self) -> PoolClient<HttpConnector, B>
    where
        B: http_body::Body + Send,
        B::Data: Send,
    {
        let mut connector = HttpConnector::new();
        if self.max_idle_per_host > 0 {
            // As hyper-util's own `build_http` does: TCP keepalive probes at the idle timeout.
            connector.set_keepalive(Some(self.idle_timeout));
        }
        self.build(connector)
    }
}
