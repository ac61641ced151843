use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tower_service::Service;

use super::pool::Pool;
use super::poolable::Poolable;
use super::state::Config;
use crate::clock;
use crate::error::BoxError;
use crate::stats::Stats;

/// Builds a keyed [`Pool`] with every bound, and documented defaults.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`max_idle`](Self::max_idle) | 100 in total, least recently used closed first | Go `MaxIdleConns` |
/// | [`max_idle_per_host`](Self::max_idle_per_host) | 16 | this crate's preset (Go's 2 churns under load, OkHttp keeps 5) |
/// | [`idle_timeout`](Self::idle_timeout) | 90 s | Go `IdleConnTimeout` |
/// | [`max_lifetime`](Self::max_lifetime), [`jitter`](Self::jitter) | 30 min − up to 2.5 % | HikariCP `maxLifetime` |
/// | [`max_conns_per_host`](Self::max_conns_per_host) | none | Go `MaxConnsPerHost` 0 (unlimited) |
/// | [`acquire_timeout`](Self::acquire_timeout) | 30 s | HikariCP `connectionTimeout` |
/// | [`max_waiters_per_host`](Self::max_waiters_per_host) | 1024 | Envoy's pending-request queue |
/// | [`held_threshold`](Self::held_threshold) | off | HikariCP `leakDetectionThreshold` (off) |
/// | [`expected_capacity`](Self::expected_capacity) | 1 | — |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::PoolBuilder;
///
/// let builder = PoolBuilder::new()
///     .max_idle(50)
///     .max_idle_per_host(4)
///     .idle_timeout(Duration::from_secs(30))
///     .max_conns_per_host(8)
///     .acquire_timeout(Duration::from_secs(2));
/// # let _ = builder;
/// ```
///
/// # Panics
///
/// The setters panic on a zero duration, a zero `max_conns_per_host`, `max_waiters_per_host` or
/// `expected_capacity`, and a negative or NaN jitter: at construction, never at checkout.
#[derive(Clone)]
pub struct PoolBuilder {
    config: Config,
    stats: Option<Stats>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .field("stats", &self.stats.is_some())
            .finish()
    }
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolBuilder {
    /// Default idle connections in total: Go's `MaxIdleConns`.
    pub const DEFAULT_MAX_IDLE: usize = 100;
    /// Default idle connections per key: the preset's.
    pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 16;
    /// Default idle timeout: Go's `IdleConnTimeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    /// Default max lifetime: HikariCP's `maxLifetime`.
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
    /// Default jitter: HikariCP takes up to 2.5 % off each connection's lifetime.
    pub const DEFAULT_JITTER: f64 = 0.025;
    /// Default acquire timeout: HikariCP's `connectionTimeout`.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default bound on waiting checkouts per key: Envoy's pending queue.
    pub const DEFAULT_MAX_WAITERS_PER_HOST: usize = 1024;

    /// The defaults of the table above.
    pub fn new() -> Self {
        PoolBuilder {
            config: Config {
                max_idle: Self::DEFAULT_MAX_IDLE,
                max_idle_per_host: Self::DEFAULT_MAX_IDLE_PER_HOST,
                idle_timeout: Some(Self::DEFAULT_IDLE_TIMEOUT),
                max_lifetime: Some(Self::DEFAULT_MAX_LIFETIME),
                jitter: Self::DEFAULT_JITTER,
                max_conns_per_host: usize::MAX,
                acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
                max_waiters_per_host: Self::DEFAULT_MAX_WAITERS_PER_HOST,
                held_threshold: None,
                expected_capacity: 1,
            },
            stats: None,
        }
    }

    /// At most `n` idle connections in the whole pool (Go's `MaxIdleConns`): one more closes
    /// the least recently used idle connection of any key
    /// ([`CloseReason::Cap`](crate::CloseReason::Cap)). Zero keeps none idle.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.config.max_idle = n;
        self
    }

    /// At most `n` idle connections per key: one more closes that key's least recently used
    /// idle connection ([`CloseReason::Cap`](crate::CloseReason::Cap)). Zero keeps none idle.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.config.max_idle_per_host = n;
        self
    }

    /// Idle connections are closed after `d` unused ([`CloseReason::Idle`](crate::CloseReason::Idle)),
    /// by the pool's one reaper task, at the due time.
    #[track_caller]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("idle_timeout", d);
        self.config.idle_timeout = Some(d);
        self
    }

    /// Each connection stops being handed out `d` minus a random [`jitter`](Self::jitter) after
    /// it was made ([`CloseReason::Lifetime`](crate::CloseReason::Lifetime)). One in use is
    /// never cut: it is closed when it comes back (a shared one, when its last checkout does).
    #[track_caller]
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        clock::check_duration("max_lifetime", d);
        self.config.max_lifetime = Some(d);
        self
    }

    /// Up to this fraction of the lifetime is taken off each connection's at random, so that
    /// connections made together do not all retire together. Default 0.025; 0 for none; above
    /// 1 counts as 1.
    #[track_caller]
    pub fn jitter(mut self, fraction: f64) -> Self {
        assert!(
            fraction >= 0.0,
            "tower-hardened: jitter must be a fraction >= 0"
        );
        self.config.jitter = fraction;
        self
    }

    /// At most `n` connections per key, dialing, in use and idle together (Go's
    /// `MaxConnsPerHost`). A checkout beyond it waits for one to come back, up to the
    /// [`acquire_timeout`](Self::acquire_timeout).
    #[track_caller]
    pub fn max_conns_per_host(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "tower-hardened: max_conns_per_host must be at least 1"
        );
        self.config.max_conns_per_host = n;
        self
    }

    /// How long a checkout waits for room (a connection to come back, under
    /// [`max_conns_per_host`](Self::max_conns_per_host)) before it fails with
    /// [`Phase::Acquire`](crate::Phase::Acquire). A checkout whose dial is in flight waits for
    /// that dial instead, bounded by the connector's own timeout.
    #[track_caller]
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        clock::check_duration("acquire_timeout", d);
        self.config.acquire_timeout = d;
        self
    }

    /// At most `n` checkouts wait per key; one more fails at once with
    /// [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded).
    #[track_caller]
    pub fn max_waiters_per_host(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "tower-hardened: max_waiters_per_host must be at least 1 (a checkout that cannot be \
             served at once waits, dials included)"
        );
        self.config.max_waiters_per_host = n;
        self
    }

    /// A checkout held longer than `d` is reported once: a `tracing::warn!` and
    /// [`StatsSnapshot::leaks`](crate::StatsSnapshot::leaks). Like the drain layer's held-body
    /// report, it is a wall-clock watchdog (the reaper task), with no timer per checkout.
    #[track_caller]
    pub fn held_threshold(mut self, d: Duration) -> Self {
        clock::check_duration("held_threshold", d);
        self.config.held_threshold = Some(d);
        self
    }

    /// How many waiting checkouts one dial in flight is counted to serve before its connection
    /// is there to say: 1 (the default) for exclusive connections; the expected stream limit
    /// for connections known to be shared (HTTP/2 with prior knowledge: 100, the value Go and
    /// hyper assume before the peer's SETTINGS). After the first connection of a key, the
    /// capacity of its latest connection is used.
    #[track_caller]
    pub fn expected_capacity(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "tower-hardened: expected_capacity must be at least 1"
        );
        self.config.expected_capacity = n;
        self
    }

    /// Counts connections opened, reused, idle, closed (by [`CloseReason`](crate::CloseReason)),
    /// acquire timeouts, overloads and held checkouts in `stats`.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// A pool whose connections `connector` makes: a [`Service`] from the key to a new
    /// connection, called on a task of its own for each dial (and given up when nobody waits
    /// for the dial any more; see the [module docs](super)).
    pub fn build<K, T, M>(self, connector: M) -> Pool<K, T>
    where
        K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
        T: Poolable,
        M: Service<K, Response = T> + Clone + Send + Sync + 'static,
        M::Future: Send + 'static,
        M::Error: Into<BoxError>,
    {
        let make = Arc::new(move |key: K| {
            let mut svc = connector.clone();
            let fut: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, BoxError>> + Send>,
            > = Box::pin(async move {
                poll_fn(|cx| svc.poll_ready(cx)).await.map_err(Into::into)?;
                svc.call(key).await.map_err(Into::into)
            });
            fut
        });
        Pool::new(self.config, self.stats, make)
    }
}
