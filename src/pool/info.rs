use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
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

/// The live connections of one host, for retiring the stale ones at once (see
/// [`ConnectionInfo::retire_stale_peers`]).
pub(crate) type Peers = Mutex<HashMap<u64, Weak<Shared>>>;

/// No value yet, in the atomics below.
const NONE: u64 = u64::MAX;

/// Why a connection was retired (`Shared::retired`).
const NOT_RETIRED: u8 = 0;
const RETIRED_LIFETIME: u8 = 1;
const RETIRED_IDLE: u8 = 2;

pub(crate) struct Shared {
    id: u64,
    opened_at: Instant,
    retire_at: Option<Instant>,
    host: Option<HostKey>,
    requests: AtomicU64,
    expired: AtomicBool,
    /// `NOT_RETIRED`, or why it was poisoned.
    retired: AtomicU8,
    /// The host's live connections, this one included while its IO lives.
    peers: Option<Arc<Peers>>,
    /// Nanoseconds after `opened_at` of the last read or write that succeeded (set by `PoolIo`).
    last_io: AtomicU64,
    /// Reads that succeeded (with data, or the end of the stream), in total.
    reads: AtomicU64,
    /// The exchange in progress, as `PoolIo` saw it begin with its first write: the responses
    /// seen on this connection before it (`NONE`: no exchange yet), the successful reads before
    /// it, and how long the connection had been idle (ns).
    ex_responses: AtomicU64,
    ex_reads: AtomicU64,
    ex_idle: AtomicU64,
    /// The connection speaks HTTP/2 (its first write was the preface): exchanges interleave.
    http2: AtomicBool,
    /// The server's `Keep-Alive: timeout=N` hint in ms (`NONE`: none).
    hint_ms: AtomicU64,
    /// A captured `Connected` of this connection: the only handle on hyper-util's poison pill.
    /// Taken out when the connection's IO is dropped, which breaks the cycle
    /// `Connected -> extra -> ConnectionInfo -> pill -> Connected`; after that (`Pill::gone`)
    /// none is stored again, since a response can be seen after its connection closed
    /// (`Connection: close` with an empty body, HTTP/2 streams in flight).
    pill: Mutex<Pill>,
    /// `Pill::gone`, readable without the lock.
    gone: AtomicBool,
    /// Retired before it carried any request: its IO ends it (see `close_if_never_used`).
    close: AtomicBool,
    /// The waker of the IO's pending read, until the connection carried a request.
    read_waker: Mutex<Option<std::task::Waker>>,
    /// `http.client.open_connections` and `http.client.connection.duration` of this connection.
    #[cfg(feature = "metrics")]
    tracker: crate::telemetry::record::ConnTracker,
}

/// What [`ConnectionInfo::exchange`] knows about the exchange in progress on a connection (or
/// its last one), from the connection's IO: enough to tell whether a request that failed there
/// was written on a reused connection that the peer closed before sending anything back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exchange {
    /// A response had come back on the connection before this exchange began.
    pub(crate) reused: bool,
    /// How long the connection had been idle when this exchange began (its first write).
    pub(crate) idle: Duration,
    /// Reads that succeeded since the exchange began: data, or the end of the stream.
    pub(crate) reads: u64,
    /// The connection speaks HTTP/2: exchanges interleave and the counts above mean nothing.
    pub(crate) http2: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain inserts and removals only: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The poison pill's handle, whether the connection is gone, and the requests to wake when it
/// goes (each with its ticket).
#[derive(Default)]
struct Pill {
    capture: Option<CaptureConnection>,
    gone: bool,
    waiting: Vec<(u64, std::task::Waker)>,
}

static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

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
    /// A new connection's tag, registered among `peers` (its host's live connections) until
    /// [`release`](Self::release).
    pub(crate) fn with_peers(
        host: Option<HostKey>,
        retire_after: Option<Duration>,
        peers: Option<Arc<Peers>>,
    ) -> ConnectionInfo {
        let now = Instant::now();
        let info = ConnectionInfo {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                opened_at: now,
                retire_at: retire_after.map(|d| crate::clock::add(now, d)),
                requests: AtomicU64::new(0),
                expired: AtomicBool::new(false),
                retired: AtomicU8::new(NOT_RETIRED),
                peers,
                last_io: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                ex_responses: AtomicU64::new(NONE),
                ex_reads: AtomicU64::new(0),
                ex_idle: AtomicU64::new(0),
                http2: AtomicBool::new(false),
                hint_ms: AtomicU64::new(NONE),
                pill: Mutex::new(Pill::default()),
                gone: AtomicBool::new(false),
                close: AtomicBool::new(false),
                read_waker: Mutex::new(None),
                #[cfg(feature = "metrics")]
                tracker: crate::telemetry::record::ConnTracker::new(
                    crate::telemetry::record::Server::new(
                        host.as_ref().map(|(s, _)| s),
                        host.as_ref().map(|(_, a)| a),
                    ),
                ),
                host,
            }),
        };
        if let Some(peers) = &info.shared.peers {
            lock(peers).insert(info.id(), Arc::downgrade(&info.shared));
        }
        info
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

    /// Whether it has been retired: marked so that hyper-util's pool never hands it out again
    /// (past its lifetime, idle for nearly as long as the server's `Keep-Alive: timeout` hint,
    /// or as stale as a connection of the same host that the server had closed).
    pub fn is_retired(&self) -> bool {
        self.shared.retired.load(Relaxed) != NOT_RETIRED
    }

    /// Whether it was retired for idleness (the server's hint, or stale like a closed peer)
    /// rather than for its lifetime.
    pub(crate) fn retired_for_idleness(&self) -> bool {
        self.shared.retired.load(Relaxed) == RETIRED_IDLE
    }

    /// The server's `Keep-Alive: timeout=N` hint, from the last HTTP/1 response that had one.
    pub fn keep_alive_hint(&self) -> Option<Duration> {
        match self.shared.hint_ms.load(Relaxed) {
            NONE => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// How long since its last successful read or write.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_nanos(self.shared.last_io.load(Relaxed));
        self.shared.opened_at.elapsed().saturating_sub(last)
    }

    /// The lifetime timer fired.
    pub(crate) fn expire(&self) {
        self.shared.expired.store(true, Relaxed);
        self.try_poison(RETIRED_LIFETIME);
    }

    /// Idle for too long by the server's hint: retire it now.
    pub(crate) fn retire_idle(&self) {
        self.try_poison(RETIRED_IDLE);
    }

    /// IO succeeded at `now` (a read with data or end of stream when `read`).
    pub(crate) fn note_io(&self, now: Instant, read: bool) {
        let at = now.saturating_duration_since(self.shared.opened_at);
        self.shared
            .last_io
            .store(u64::try_from(at.as_nanos()).unwrap_or(NONE - 1), Relaxed);
        if read {
            self.shared.reads.fetch_add(1, Relaxed);
        }
    }

    /// The first write of an exchange: `responses` seen before it, idle for `idle` before it.
    pub(crate) fn begin_exchange(&self, responses: u64, idle: Duration) {
        let s = &*self.shared;
        s.ex_reads.store(s.reads.load(Relaxed), Relaxed);
        s.ex_idle
            .store(u64::try_from(idle.as_nanos()).unwrap_or(NONE - 1), Relaxed);
        s.ex_responses.store(responses, Relaxed);
    }

    /// Its first write was the HTTP/2 preface.
    pub(crate) fn set_http2(&self) {
        self.shared.http2.store(true, Relaxed);
    }

    /// Whether a request is on its way and its response head has not come back yet (as far as
    /// [`RetireLayer`](super::RetireLayer) has seen).
    pub(crate) fn awaiting_response(&self) -> bool {
        let r = self.shared.ex_responses.load(Relaxed);
        r != NONE && r == self.requests()
    }

    /// The exchange in progress (or the last one), for telling whether a failed request can be
    /// replayed: see [`Exchange`].
    pub(crate) fn exchange(&self) -> Option<Exchange> {
        let s = &*self.shared;
        let responses = s.ex_responses.load(Relaxed);
        if responses == NONE {
            return None;
        }
        Some(Exchange {
            reused: responses > 0,
            idle: Duration::from_nanos(s.ex_idle.load(Relaxed)),
            reads: s
                .reads
                .load(Relaxed)
                .saturating_sub(s.ex_reads.load(Relaxed)),
            http2: s.http2.load(Relaxed),
        })
    }

    /// Retires every other live connection of its host that has been idle for at least
    /// `min_idle`: when a server closes idle connections, it closes many at once. Returns how
    /// many were retired now.
    pub(crate) fn retire_stale_peers(&self, min_idle: Duration) -> usize {
        let Some(peers) = &self.shared.peers else {
            return 0;
        };
        let stale: Vec<ConnectionInfo> = lock(peers)
            .values()
            .filter_map(Weak::upgrade)
            .map(|shared| ConnectionInfo { shared })
            .filter(|c| c.id() != self.id() && !c.is_retired() && c.idle() >= min_idle)
            .collect();
        stale
            .iter()
            .filter(|c| c.try_poison(RETIRED_IDLE) || c.close_if_never_used())
            .count()
    }

    /// A response came back on this connection; `capture` is the request's captured connection,
    /// `hint` the response's `Keep-Alive: timeout` (HTTP/1 only).
    pub(crate) fn on_response(
        &self,
        capture: Option<CaptureConnection>,
        stats: Option<&Stats>,
        hint: Option<Duration>,
    ) {
        if let Some(hint) = hint {
            let ms = u64::try_from(hint.as_millis()).unwrap_or(NONE - 1);
            self.shared.hint_ms.store(ms, Relaxed);
        }
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
            self.try_poison(RETIRED_LIFETIME);
        }
    }

    fn lock_pill(&self) -> std::sync::MutexGuard<'_, Pill> {
        self.shared.pill.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Poisons the connection for `why`, if it can be (a response was seen on it, so its pill
    /// is known) and was not already. Whether it was poisoned now.
    fn try_poison(&self, why: u8) -> bool {
        let pill = self.lock_pill();
        let Some(capture) = pill.capture.as_ref() else {
            return false;
        };
        let meta = capture.connection_metadata();
        let Some(connected) = meta.as_ref() else {
            return false;
        };
        let s = &self.shared.retired;
        if s.compare_exchange(NOT_RETIRED, why, Relaxed, Relaxed)
            .is_err()
        {
            return false;
        }
        connected.poison();
        if why == RETIRED_LIFETIME {
            tracing::debug!(
                connection = self.id(),
                age = ?self.age(),
                "connection past its max lifetime retired: not reused, closed when idle"
            );
        } else {
            tracing::debug!(
                connection = self.id(),
                idle = ?self.idle(),
                hint = ?self.keep_alive_hint(),
                "connection retired before the server closes it for idleness"
            );
        }
        true
    }

    /// Retires a connection that never carried a request (dialed for a checkout that another
    /// connection won, and pooled unused): with no captured `Connected`, hyper-util's poison
    /// pill is out of reach, so its IO ends the connection instead, as the server's close
    /// would ([`close_requested`](Self::close_requested)). Whether it was retired now.
    fn close_if_never_used(&self) -> bool {
        let s = &*self.shared;
        if s.ex_responses.load(Relaxed) != NONE
            || s.retired
                .compare_exchange(NOT_RETIRED, RETIRED_IDLE, Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        s.close.store(true, Relaxed);
        if s.ex_responses.load(Relaxed) != NONE {
            // Its first request was written in between (from another thread): it carries it,
            // and stays as it was, so its lifetime and keep-alive hint still retire it.
            s.close.store(false, Relaxed);
            s.retired.store(NOT_RETIRED, Relaxed);
            return false;
        }
        let waker = lock(&s.read_waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
        tracing::debug!(
            connection = self.id(),
            idle = ?self.idle(),
            "unused connection closed before the server closes it for idleness"
        );
        true
    }

    /// Whether the connection is to be ended by its IO: retired unused
    /// ([`retire_stale_peers`](Self::retire_stale_peers)), and still nothing written on it.
    pub(crate) fn close_requested(&self) -> bool {
        self.shared.close.load(Relaxed) && self.shared.ex_responses.load(Relaxed) == NONE
    }

    /// Keeps the waker of the IO's pending read, for [`close_if_never_used`](Self::close_if_never_used).
    pub(crate) fn set_read_waker(&self, waker: &std::task::Waker) {
        lock(&self.shared.read_waker).clone_from(&Some(waker.clone()));
    }

    /// The connection carries its first request, or is gone: no read waker is kept any more.
    pub(crate) fn clear_read_waker(&self) {
        lock(&self.shared.read_waker).take();
    }

    /// The tag of the connection hyper-util describes with `connected` (our connector put it in
    /// the `Connected`'s extras).
    pub(crate) fn of(connected: &hyper_util::client::legacy::connect::Connected) -> Option<Self> {
        let mut extensions = http::Extensions::new();
        connected.get_extras(&mut extensions);
        extensions.remove::<ConnectionInfo>()
    }

    /// Whether the connection speaks HTTP/2 (its client preface was written).
    pub(crate) fn is_http2(&self) -> bool {
        self.shared.http2.load(Relaxed)
    }

    /// Whether the connection's IO is gone (hyper-util's connection task ended).
    pub(crate) fn is_gone(&self) -> bool {
        self.shared.gone.load(Relaxed)
    }

    /// Wakes `waker` when the connection's IO goes, under `ticket` (set at the first call, then
    /// kept for [`forget_waker`](Self::forget_waker)); false if it is gone already.
    pub(crate) fn wake_when_gone(
        &self,
        ticket: &mut Option<u64>,
        waker: &std::task::Waker,
    ) -> bool {
        let mut pill = self.lock_pill();
        if pill.gone {
            return false;
        }
        let kept = ticket.and_then(|t| pill.waiting.iter_mut().find(|(id, _)| *id == t));
        match kept {
            Some((_, kept)) => kept.clone_from(waker),
            None => {
                let t = NEXT_TICKET.fetch_add(1, Relaxed);
                pill.waiting.push((t, waker.clone()));
                *ticket = Some(t);
            }
        }
        true
    }

    /// Drops the waker registered under `ticket`.
    pub(crate) fn forget_waker(&self, ticket: u64) {
        self.lock_pill().waiting.retain(|(id, _)| *id != ticket);
    }

    /// The connection's IO is gone: drop the pill (and with it the reference cycle), for good,
    /// and leave the host's live connections.
    pub(crate) fn release(&self) {
        self.clear_read_waker();
        let mut pill = self.lock_pill();
        pill.gone = true;
        self.shared.gone.store(true, Relaxed);
        let capture = pill.capture.take();
        let waiting = std::mem::take(&mut pill.waiting);
        drop(pill);
        drop(capture);
        for (_, waker) in waiting {
            waker.wake();
        }
        if let Some(peers) = &self.shared.peers {
            lock(peers).remove(&self.id());
        }
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
