use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::drainer::{Config, Shared};
use super::DrainOnDrop;
use crate::clock;
use crate::stats::Stats;

/// Reads response bodies dropped before their end in the background, so their HTTP/1
/// connections go back to the pool, and optionally reports bodies held too long:
/// [`DrainOnDrop`].
///
/// | setting | default | why |
/// |---|---|---|
/// | [`max_drain_bytes`](Self::max_drain_bytes) | 256 KiB | Go's server drains up to 256 KiB of an unread request body to keep a connection; on loopback or a LAN that is well under a millisecond, on 100 Mbit/s about 20 ms — less than a new TCP + TLS handshake. A 64 KiB body is saved. |
/// | [`max_drain_time`](Self::max_drain_time) | 100 ms | OkHttp discards a closed body for at most 100 ms before closing the connection. Past that, a reconnect is cheaper than holding a task and a connection. |
/// | [`max_concurrent_drains`](Self::max_concurrent_drains) | 64 | OkHttp discards on the caller's thread and runs at most 64 calls (`maxRequests`), so at most 64 discards run at once. A burst of drops past the cap costs closed connections, never tasks. |
/// | [`leak_threshold`](Self::leak_threshold) | off | As HikariCP's `leakDetectionThreshold`: a body held a long time is normal for streams, downloads and long polls, so only you know what "too long" is. Turn it on with a value above your longest legitimate body. |
///
/// Every service made by one layer (and its clones) shares one set of drain permits and one
/// leak sweeper. The setters build a new set: call them before [`Layer::layer`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{DrainOnDropLayer, Stats};
///
/// let stats = Stats::new();
/// let layer = DrainOnDropLayer::new()
///     .max_drain_bytes(1 << 20)
///     .max_drain_time(Duration::from_millis(250))
///     .leak_threshold(Duration::from_secs(60))
///     .stats(stats.clone());
/// assert_eq!(layer.get_max_drain_bytes(), 1 << 20);
/// ```
///
/// # Panics
///
/// [`max_drain_time`](Self::max_drain_time) and [`leak_threshold`](Self::leak_threshold) panic
/// on a zero duration: a drain that may take no time never drains, and a zero threshold reports
/// every body; both are configuration mistakes, told at construction.
#[derive(Clone)]
pub struct DrainOnDropLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for DrainOnDropLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainOnDropLayer")
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats.is_some())
            .finish()
    }
}

impl Default for DrainOnDropLayer {
    fn default() -> Self {
        DrainOnDropLayer::new()
    }
}

impl DrainOnDropLayer {
    /// Default byte cap of one drain: 256 KiB.
    pub const DEFAULT_MAX_DRAIN_BYTES: u64 = 256 * 1024;
    /// Default time cap of one drain: 100 ms.
    pub const DEFAULT_MAX_DRAIN_TIME: Duration = Duration::from_millis(100);
    /// Default number of drains running at once: 64.
    pub const DEFAULT_MAX_CONCURRENT_DRAINS: usize = 64;

    /// Drain on drop with the default caps, leak detection off.
    pub fn new() -> Self {
        DrainOnDropLayer {
            shared: Shared::new(
                Config {
                    max_bytes: Self::DEFAULT_MAX_DRAIN_BYTES,
                    max_time: Self::DEFAULT_MAX_DRAIN_TIME,
                    max_drains: Self::DEFAULT_MAX_CONCURRENT_DRAINS,
                    leak_threshold: None,
                },
                None,
            ),
        }
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config;
        f(&mut config);
        DrainOnDropLayer {
            shared: Shared::new(config, self.shared.stats.clone()),
        }
    }

    /// Gives up a drain (and lets the connection close) once it has read more than `bytes`, or
    /// at once when the body's size hint already says it is longer. Zero drains only bodies
    /// with no data left (a chunked terminator, trailers).
    pub fn max_drain_bytes(self, bytes: u64) -> Self {
        self.with(|c| c.max_bytes = bytes)
    }

    /// Gives up a drain (and lets the connection close) when the body has not ended `limit`
    /// after it was dropped.
    #[track_caller]
    pub fn max_drain_time(self, limit: Duration) -> Self {
        clock::check_duration("DrainOnDropLayer max_drain_time", limit);
        self.with(|c| c.max_time = limit)
    }

    /// At most `n` drains run at once; a body dropped while `n` run is dropped at once (its
    /// connection closes) and counted as
    /// [`DrainAbandon::Concurrency`](crate::DrainAbandon::Concurrency). Zero turns draining off
    /// (leak detection alone). Values above tokio's `Semaphore::MAX_PERMITS` (about 2^61) are
    /// taken as that.
    pub fn max_concurrent_drains(self, n: usize) -> Self {
        self.with(|c| c.max_drains = n.min(tokio::sync::Semaphore::MAX_PERMITS))
    }

    /// Reports (once, with `tracing::warn!`: method, URI without userinfo and query, age; and in
    /// [`StatsSnapshot::leaks`](crate::StatsSnapshot::leaks)) every response body neither
    /// finished nor dropped `threshold` after its headers arrived. Off by default.
    ///
    /// The watchdog is wall-clock: it fires even when nobody polls the body. One sweeper task
    /// per layer does it (no task or timer per request); it reports a body between `threshold`
    /// and `threshold × 1.1` after its headers, and ends with the layer and its last body.
    #[track_caller]
    pub fn leak_threshold(self, threshold: Duration) -> Self {
        clock::check_duration("DrainOnDropLayer leak_threshold", threshold);
        self.with(|c| c.leak_threshold = Some(threshold))
    }

    /// Turns leak detection off again.
    pub fn no_leak_detection(self) -> Self {
        self.with(|c| c.leak_threshold = None)
    }

    /// Counts drains started, finished and abandoned (by reason) and leaks in `stats`.
    pub fn stats(self, stats: Stats) -> Self {
        DrainOnDropLayer {
            shared: Shared::new(self.shared.config, Some(stats)),
        }
    }

    /// The byte cap of one drain.
    pub fn get_max_drain_bytes(&self) -> u64 {
        self.shared.config.max_bytes
    }

    /// The time cap of one drain.
    pub fn get_max_drain_time(&self) -> Duration {
        self.shared.config.max_time
    }

    /// The cap on drains running at once.
    pub fn get_max_concurrent_drains(&self) -> usize {
        self.shared.config.max_drains
    }

    /// The leak threshold, if leak detection is on.
    pub fn get_leak_threshold(&self) -> Option<Duration> {
        self.shared.config.leak_threshold
    }

    /// Drains running now, across every service made by this layer.
    pub fn drains_running(&self) -> usize {
        self.shared.drains_running()
    }
}

impl<S> Layer<S> for DrainOnDropLayer {
    type Service = DrainOnDrop<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainOnDrop {
            inner,
            shared: self.shared.clone(),
        }
    }
}
