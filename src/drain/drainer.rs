//! The shared state of one layer (its caps, its drain permits, its leak registry) and the
//! background drain itself.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use http_body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::leak::Registry;
use crate::clock;
use crate::error::BoxError;
use crate::stats::{DrainAbandon, Stats};

/// The caps of one layer, fixed at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) max_bytes: u64,
    pub(crate) max_time: Duration,
    pub(crate) max_drains: usize,
    pub(crate) leak_threshold: Option<Duration>,
}

/// What every service and body made from one layer shares: the drain permits (so the cap on
/// concurrent drains holds across clones) and the leak registry (so one sweeper serves them all).
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) stats: Option<Stats>,
    drains: Arc<Semaphore>,
    pub(crate) leaks: Option<Arc<Registry>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("drains_running", &self.drains_running())
            .field("leak_detection", &self.leaks.is_some())
            .finish()
    }
}

/// Type-erased "drain this dropped body": monomorphised where the body's bounds are known (the
/// response future), called from `Drop`, where they are not.
pub(crate) type DrainFn<B> = fn(&Arc<Shared>, Pin<Box<B>>);

impl Shared {
    pub(crate) fn new(config: Config, stats: Option<Stats>) -> Arc<Shared> {
        let leaks = config
            .leak_threshold
            .map(|t| Arc::new(Registry::new(t, stats.clone())));
        Arc::new(Shared {
            config,
            drains: Arc::new(Semaphore::new(config.max_drains)),
            stats,
            leaks,
        })
    }

    /// Drains running now.
    pub(crate) fn drains_running(&self) -> usize {
        self.config.max_drains - self.drains.available_permits()
    }

    fn abandon(&self, why: DrainAbandon, read: u64) {
        if let Some(stats) = &self.stats {
            stats.drain_abandoned(why);
        }
        tracing::debug!(
            reason = ?why,
            read,
            "dropped response body not drained; its HTTP/1 connection will be closed"
        );
    }

    /// Decides at drop time whether `body` gets a background drain, and starts it.
    pub(crate) fn on_drop<B>(self: &Arc<Self>, body: Pin<Box<B>>)
    where
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return;
        }
        if body.size_hint().lower() > self.config.max_bytes {
            return self.abandon(DrainAbandon::Bytes, 0);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.abandon(DrainAbandon::NoRuntime, 0);
        };
        // Never queue: a burst of drops past the cap costs closed connections, not tasks.
        let Ok(permit) = self.drains.clone().try_acquire_owned() else {
            return self.abandon(DrainAbandon::Concurrency, 0);
        };
        if let Some(stats) = &self.stats {
            stats.drain_started();
        }
        let until = clock::add(Instant::now(), self.config.max_time);
        let report = Report {
            shared: self.clone(),
            read: 0,
            done: false,
            _permit: permit,
        };
        runtime.spawn(drain(body, until, report));
    }
}

/// Counts the drain's outcome exactly once, and releases the permit after the body is gone.
/// Dropped without an outcome (the runtime shut down under the task): counted as `NoRuntime`.
struct Report {
    shared: Arc<Shared>,
    read: u64,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Report {
    fn finish(mut self, outcome: Result<(), DrainAbandon>) {
        self.done = true;
        match outcome {
            Ok(()) => {
                if let Some(stats) = &self.shared.stats {
                    stats.drain_finished();
                }
                tracing::trace!(read = self.read, "dropped response body drained to its end");
            }
            Err(why) => self.shared.abandon(why, self.read),
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if !self.done {
            self.shared.abandon(DrainAbandon::NoRuntime, self.read);
        }
    }
}

async fn drain<B>(mut body: Pin<Box<B>>, until: Instant, mut report: Report)
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let max = report.shared.config.max_bytes;
    let read = &mut report.read;
    let reading = async {
        loop {
            // Frames are dropped as soon as they are counted: a drain holds no data.
            match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                None => return Ok(()),
                Some(Err(_)) => return Err(DrainAbandon::Error),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        *read = read.saturating_add(data.remaining() as u64);
                        if *read > max {
                            return Err(DrainAbandon::Bytes);
                        }
                    }
                    if body.is_end_stream() {
                        return Ok(());
                    }
                }
            }
        }
    };
    // Timers inside the body that fire now end no caller's request: not counted as timeouts.
    let outcome = tokio::time::timeout_at(until, crate::channels::background::drain(reading))
        .await
        .unwrap_or(Err(DrainAbandon::Time));
    // The body goes first (back to the pool, or closed), then the permit.
    drop(body);
    report.finish(outcome);
}
