use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::client::legacy::connect::CaptureConnection;
use tokio::time::Instant;

use super::hosts::HostKey;
use crate::stats::Stats;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What this crate knows about one pooled connection: when it was opened, when it retires.
///
/// [`PoolConnector`](super::PoolConnector) tags every connection it makes with one (through
/// hyper-util's `Connected::extra`), so hyper-util's client puts a clone in the extensions of
/// every response that connection carries.
///
/// # Example
///
/// ```no_run
/// use http_body_util::Empty;
/// use tower::ServiceExt;
/// use tower_hardened::{ConnectionInfo, PoolClientBuilder};
///
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let client = PoolClientBuilder::new().build_http::<Empty<bytes::Bytes>>();
/// let req = http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?;
/// let resp = client.oneshot(req).await?;
/// let info = resp.extensions().get::<ConnectionInfo>().expect("tagged by PoolConnector");
/// println!("connection #{} is {:?} old", info.id(), info.age());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConnectionInfo {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    id: u64,
    opened_at: Instant,
    retire_at: Option<Instant>,
    host: Option<HostKey>,
    requests: AtomicU64,
    expired: AtomicBool,
    poisoned: AtomicBool,
    /// A captured `Connected` of this connection: the only handle on hyper-util's poison pill.
    /// Taken out when the connection's IO is dropped, which breaks the cycle
    /// `Connected -> extra -> ConnectionInfo -> pill -> Connected`; after that (`Pill::gone`)
    /// none is stored again, since a response can be seen after its connection closed
    /// (`Connection: close` with an empty body, HTTP/2 streams in flight).
    pill: Mutex<Pill>,
    /// `http.client.open_connections` and `http.client.connection.duration` of this connection.
    #[cfg(feature = "metrics")]
    tracker: crate::telemetry::record::ConnTracker,
}

/// The poison pill's handle, and whether the connection is gone.
#[derive(Default)]
struct Pill {
    capture: Option<CaptureConnection>,
    gone: bool,
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("id", &self.id())
            .field("age", &self.age())
            .field("retire_at", &self.shared.retire_at)
            .field("requests", &self.requests())
            .field("retired", &self.is_retired())
            .finish()
    }
}

impl ConnectionInfo {
    pub(crate) fn new(host: Option<HostKey>, retire_after: Option<Duration>) -> ConnectionInfo {
        let now = Instant::now();
        ConnectionInfo {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                opened_at: now,
                retire_at: retire_after.map(|d| crate::clock::add(now, d)),
                requests: AtomicU64::new(0),
                expired: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
                pill: Mutex::new(Pill::default()),
                #[cfg(feature = "metrics")]
                tracker: crate::telemetry::record::ConnTracker::new(
                    crate::telemetry::record::Server::new(
                        host.as_ref().map(|(s, _)| s),
                        host.as_ref().map(|(_, a)| a),
                    ),
                ),
                host,
            }),
        }
    }

    /// A number unique to this connection within the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// When the connection was established (TCP, and TLS if the inner connector does it).
    pub fn opened_at(&self) -> Instant {
        self.shared.opened_at
    }

    /// How long ago it was established.
    pub fn age(&self) -> Duration {
        self.shared.opened_at.elapsed()
    }

    /// When it stops being reused: its lifetime with jitter applied, if a lifetime is set.
    pub fn retire_at(&self) -> Option<Instant> {
        self.shared.retire_at
    }

    /// The scheme and authority it was dialed for.
    pub fn host(&self) -> Option<(&http::uri::Scheme, &http::uri::Authority)> {
        self.shared.host.as_ref().map(|(s, a)| (s, a))
    }

    /// Requests it has answered, as seen by [`RetireLayer`](super::RetireLayer).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Relaxed)
    }

    /// Whether it is past its lifetime (as far as this crate has noticed).
    pub fn is_expired(&self) -> bool {
        self.shared.expired.load(Relaxed)
            || self.shared.retire_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Whether it has been retired: marked so that hyper-util's pool never hands it out again.
    pub fn is_retired(&self) -> bool {
        self.shared.poisoned.load(Relaxed)
    }

    /// The lifetime timer fired.
    pub(crate) fn expire(&self) {
        self.shared.expired.store(true, Relaxed);
        self.try_poison();
    }

    /// A response came back on this connection; `capture` is the request's captured connection.
    pub(crate) fn on_response(&self, capture: Option<CaptureConnection>, stats: Option<&Stats>) {
        let n = self.shared.requests.fetch_add(1, Relaxed) + 1;
        if n > 1 {
            if let Some(stats) = stats {
                stats.connection_reused();
            }
        }
        if let Some(capture) = capture {
            let mut pill = self.lock_pill();
            if !pill.gone && pill.capture.is_none() && capture.connection_metadata().is_some() {
                pill.capture = Some(capture);
            }
        }
        if self.is_expired() {
            self.shared.expired.store(true, Relaxed);
            self.try_poison();
        }
    }

    fn lock_pill(&self) -> std::sync::MutexGuard<'_, Pill> {
        self.shared.pill.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_poison(&self) {
        let pill = self.lock_pill();
        let Some(capture) = pill.capture.as_ref() else {
            return;
        };
        let meta = capture.connection_metadata();
        if let Some(connected) = meta.as_ref() {
            if !self.shared.poisoned.swap(true, Relaxed) {
                connected.poison();
                tracing::debug!(
                    connection = self.id(),
                    age = ?self.age(),
                    "connection past its max lifetime retired: not reused, closed when idle"
                );
            }
        }
    }

    /// The connection's IO is gone: drop the pill (and with it the reference cycle), for good.
    pub(crate) fn release(&self) {
        let mut pill = self.lock_pill();
        pill.gone = true;
        let capture = pill.capture.take();
        drop(pill);
        drop(capture);
    }
}

/// The metrics side of a connection's life, for the `telemetry` module.
#[cfg(feature = "metrics")]
impl ConnectionInfo {
    /// The connection is established: counted open (idle until a request uses it).
    pub(crate) fn track_open(&self) {
        self.shared.tracker.opened();
    }

    /// The connection is closed: counted no more, its duration recorded.
    pub(crate) fn track_close(&self) {
        self.shared.tracker.closed(self.age());
    }

    /// A request starts using the connection: active until the returned use is dropped.
    pub(crate) fn begin_use(&self) -> ConnectionUse {
        self.shared.tracker.begin_use();
        ConnectionUse(self.clone())
    }
}

/// One request's use of a connection; dropped when its exchange ends.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct ConnectionUse(ConnectionInfo);

#[cfg(feature = "metrics")]
impl Drop for ConnectionUse {
    fn drop(&mut self) {
        self.0.shared.tracker.end_use();
    }
}
