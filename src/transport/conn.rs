//! One pooled connection of the transport (an HTTP/1 or HTTP/2 `SendRequest`), the task that
//! drives it, and the dial that makes both.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use http_body::Body;
use hyper::client::conn::{http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::builder::{Config, Protocol};
use super::io::{TransportIo, Wire};
use crate::error::BoxError;
use crate::pool::{Checkout, ConnectionWatch, Poolable};
use crate::stats::CloseReason;
use crate::telemetry::ConnMeter;

/// What the transport pools by: scheme and authority, with its hash computed once per request.
///
/// An `Authority` hashes byte by byte, lower-cased, and the pool looks its key up a few times
/// per request: measured with callgrind, hashing the pair each time cost about 5,000
/// instructions per request. The hash is keyed by a per-process random state, as a
/// `HashMap`'s is, so hosts chosen by a peer cannot be made to collide.
#[derive(Clone)]
pub(crate) struct Key {
    hash: u64,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
}

impl Key {
    pub(crate) fn new(scheme: Scheme, authority: Authority) -> Key {
        static STATE: OnceLock<RandomState> = OnceLock::new();
        // Both compare without case: hash them lower-cased, in one write each (`Authority`'s
        // own `Hash` writes byte by byte).
        fn write_lower(h: &mut impl Hasher, s: &str) {
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                h.write(s.to_ascii_lowercase().as_bytes());
            } else {
                h.write(s.as_bytes());
            }
            h.write_u8(0xff);
        }
        let mut h = STATE.get_or_init(RandomState::new).build_hasher();
        write_lower(&mut h, scheme.as_str());
        write_lower(&mut h, authority.as_str());
        let hash = h.finish();
        Key {
            hash,
            scheme,
            authority,
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        // The same bytes (the usual case) first: a case-insensitive compare costs more.
        self.hash == other.hash
            && (self.authority.as_str() == other.authority.as_str()
                || self.authority == other.authority)
            && self.scheme == other.scheme
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// A checkout of the transport's pool.
pub(crate) type Lease<B> = Checkout<Key, Conn<B>>;

/// A pooled connection: the request side of one hyper connection, whose other side runs on a
/// task of its own.
pub(crate) struct Conn<B: Send + 'static> {
    pub(crate) proto: Proto<B>,
    /// What the connector said about it (ALPN, proxy, extras for the responses).
    pub(crate) connected: Arc<Connected>,
    /// The `Host` header of its requests (HTTP/1), made once.
    pub(crate) host: HeaderValue,
    /// What its IO tells the requests on it (reads, the server's keep-alive hint).
    pub(crate) wire: Arc<Wire>,
    /// Counts it active while a request uses it (with `metrics`).
    pub(crate) meter: ConnMeter,
}

pub(crate) enum Proto<B: Send + 'static> {
    H1(http1::SendRequest<B>, Arc<H1Shared<B>>),
    H2(http2::SendRequest<B>, Arc<H2Shared>),
}

impl<B: Send + 'static> Poolable for Conn<B> {
    fn is_open(&self) -> bool {
        match &self.proto {
            Proto::H1(tx, shared) => !shared.done.load(Ordering::Acquire) && !tx.is_closed(),
            Proto::H2(tx, shared) => !shared.done.load(Ordering::Acquire) && !tx.is_closed(),
        }
    }

    fn capacity(&self) -> usize {
        match &self.proto {
            Proto::H1(..) => 1,
            Proto::H2(_, shared) => shared.streams.load(Ordering::Relaxed),
        }
    }

    fn idle_timeout(&self) -> Option<std::time::Duration> {
        // The server's `Keep-Alive: timeout` hint, less the margin (HTTP/1 only).
        self.wire.idle_limit()
    }

    fn share(&self) -> Option<Self> {
        match &self.proto {
            Proto::H1(..) => None,
            Proto::H2(tx, shared) => Some(Conn {
                proto: Proto::H2(tx.clone(), shared.clone()),
                connected: self.connected.clone(),
                host: self.host.clone(),
                wire: self.wire.clone(),
                meter: self.meter.clone(),
            }),
        }
    }

    fn watch(&mut self, watch: ConnectionWatch) {
        let slot = match &self.proto {
            Proto::H1(_, shared) => &shared.watch,
            Proto::H2(_, shared) => &shared.watch,
        };
        let _ = slot.set(watch);
    }
}

/// What an HTTP/1 connection's task shares with its checkouts: where a checkout waits until
/// hyper is ready for the next request, and whether the task has ended.
pub(crate) struct H1Shared<B: Send + 'static> {
    slot: Mutex<H1Slot<B>>,
    /// A checkout is parked in the slot (read by the task after each poll without the lock).
    parked: AtomicBool,
    done: AtomicBool,
    watch: OnceLock<ConnectionWatch>,
}

struct H1Slot<B: Send + 'static> {
    parked: Option<Parked<B>>,
    waker: Option<Waker>,
}

struct Parked<B: Send + 'static> {
    lease: Lease<B>,
}

impl<B: Send + 'static> H1Shared<B> {
    fn new() -> Self {
        H1Shared {
            slot: Mutex::new(H1Slot {
                parked: None,
                waker: None,
            }),
            parked: AtomicBool::new(false),
            done: AtomicBool::new(false),
            watch: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, H1Slot<B>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What an HTTP/2 connection's task shares with its checkouts: the peer's stream limit as last
/// seen, and whether the task has ended.
pub(crate) struct H2Shared {
    streams: AtomicUsize,
    done: AtomicBool,
    watch: OnceLock<ConnectionWatch>,
}

/// Gives an HTTP/1 checkout back once hyper is ready for another request on it: at once if it
/// already is (the usual case: the connection's task has handled the end of the body by the
/// time the caller sees it), else through the connection's task, which sees hyper become
/// ready. If hyper closes the connection instead (a body dropped before its end, a
/// `Connection: close`), it is counted as [`CloseReason::Other`]; an IO error as `Error`.
pub(crate) fn release_h1<B: Send + 'static>(lease: Lease<B>) {
    let Proto::H1(tx, shared) = &lease.proto else {
        drop(lease);
        return;
    };
    if tx.is_ready() {
        drop(lease);
        return;
    }
    let shared = shared.clone();
    let mut slot = shared.lock();
    if shared.done.load(Ordering::Acquire) {
        drop(slot);
        drop(lease);
        return;
    }
    slot.parked = Some(Parked { lease });
    shared.parked.store(true, Ordering::Release);
    let waker = slot.waker.clone();
    drop(slot);
    if let Some(w) = waker {
        w.wake();
    }
}

/// Drives one HTTP/1 connection, and gives a parked checkout back when hyper is ready.
struct H1Task<T, B>
where
    T: Read + Write + Unpin,
    B: Body + Send + 'static,
{
    conn: Option<http1::Connection<T, B>>,
    shared: Arc<H1Shared<B>>,
    registered: bool,
    _open: OpenMeter,
}

impl<T, B> Future for H1Task<T, B>
where
    T: Read + Write + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(());
        };
        let res = Pin::new(conn).poll(cx);
        if !this.registered || this.shared.parked.load(Ordering::Acquire) {
            let mut slot = this.shared.lock();
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            this.registered = true;
            if res.is_pending() {
                let ready = match slot.parked.as_mut() {
                    Some(p) => match &mut p.lease.proto {
                        Proto::H1(tx, _) => match tx.poll_ready(cx) {
                            Poll::Ready(Ok(())) => Some(None),
                            // hyper chose to close it (not an IO error: that ends the
                            // task with an error, below).
                            Poll::Ready(Err(_)) => Some(Some(CloseReason::Other)),
                            Poll::Pending => None,
                        },
                        Proto::H2(..) => Some(None),
                    },
                    None => None,
                };
                if let Some(discard) = ready {
                    let parked = slot.parked.take().expect("checked above");
                    this.shared.parked.store(false, Ordering::Release);
                    drop(slot);
                    let mut lease = parked.lease;
                    if let Some(reason) = discard {
                        lease.discard_as(reason);
                    }
                    drop(lease);
                }
            }
        }
        let Poll::Ready(res) = res else {
            return Poll::Pending;
        };
        let reason = match res {
            Ok(()) => CloseReason::Other,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/1 connection ended with an error");
                CloseReason::Error
            }
        };
        // The connection is gone: say so before anything is given back, so that nothing
        // hands it out in between.
        this.shared.done.store(true, Ordering::Release);
        let parked = {
            let mut slot = this.shared.lock();
            this.shared.parked.store(false, Ordering::Release);
            slot.waker = None;
            slot.parked.take()
        };
        this.conn = None;
        if let Some(mut parked) = parked {
            parked.lease.discard_as(reason);
            drop(parked);
        }
        if let Some(w) = this.shared.watch.get() {
            w.closed();
        }
        Poll::Ready(())
    }
}

/// Drives one HTTP/2 connection and tells the pool when the peer's stream limit changes.
struct H2Task<T, B>
where
    T: Read + Write + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    conn: Option<http2::Connection<T, B, TokioExecutor>>,
    shared: Arc<H2Shared>,
    streams: usize,
    _open: OpenMeter,
}

impl<T, B> Future for H2Task<T, B>
where
    T: Read + Write + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(());
        };
        let res = Pin::new(&mut *conn).poll(cx);
        let streams = conn.current_max_send_streams();
        if streams != this.streams {
            this.streams = streams;
            this.shared.streams.store(streams, Ordering::Relaxed);
            if let Some(w) = this.shared.watch.get() {
                w.capacity_changed();
            }
        }
        let Poll::Ready(res) = res else {
            return Poll::Pending;
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
        }
        this.shared.done.store(true, Ordering::Release);
        this.conn = None;
        if let Some(w) = this.shared.watch.get() {
            w.closed();
        }
        Poll::Ready(())
    }
}

/// The transport's connector for its pool: dials with the user's connector, does the HTTP/1 or
/// HTTP/2 handshake, and spawns the connection's task.
pub(crate) struct MakeConn<C, B> {
    pub(crate) connector: C,
    pub(crate) config: Arc<Config>,
    pub(crate) _body: PhantomData<fn() -> B>,
}

impl<C: Clone, B> Clone for MakeConn<C, B> {
    fn clone(&self) -> Self {
        MakeConn {
            connector: self.connector.clone(),
            config: self.config.clone(),
            _body: PhantomData,
        }
    }
}

type BoxFuture<O> = Pin<Box<dyn Future<Output = O> + Send>>;

impl<C, B> Service<Key> for MakeConn<C, B>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Conn<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Conn<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(
        &mut self,
        Key {
            scheme, authority, ..
        }: Key,
    ) -> Self::Future {
        let mut connector = self.connector.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let host = host_header(&scheme, &authority)?;
            let uri = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()?;
            poll_fn(|cx| connector.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let io = connector.call(uri).await.map_err(Into::into)?;
            let connected = io.connected();
            let wire = Wire::new();
            let io = TransportIo::new(io, wire.clone(), config.write_stall);
            let (meter, open) = OpenMeter::new(&scheme, &authority);
            let h2 = match config.protocol {
                Protocol::Http1 => false,
                Protocol::Http2 => true,
                Protocol::Alpn => connected.is_negotiated_h2(),
            };
            let proto = if h2 {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .keep_alive_interval(config.h2_keep_alive_interval)
                    .keep_alive_timeout(config.h2_keep_alive_timeout)
                    .keep_alive_while_idle(true);
                if let Some(configure) = &config.h2_configure {
                    configure(&mut builder);
                }
                let (tx, conn) = builder.handshake::<_, B>(io).await?;
                let streams = conn.current_max_send_streams();
                let shared = Arc::new(H2Shared {
                    streams: AtomicUsize::new(streams),
                    done: AtomicBool::new(false),
                    watch: OnceLock::new(),
                });
                tokio::spawn(H2Task {
                    conn: Some(conn),
                    shared: shared.clone(),
                    streams,
                    _open: open,
                });
                Proto::H2(tx, shared)
            } else {
                let (tx, conn) = config.h1.handshake::<_, B>(io).await?;
                let shared = Arc::new(H1Shared::new());
                tokio::spawn(H1Task {
                    conn: Some(conn),
                    shared: shared.clone(),
                    registered: false,
                    _open: open,
                });
                Proto::H1(tx, shared)
            };
            Ok(Conn {
                proto,
                connected: Arc::new(connected),
                host,
                wire,
                meter,
            })
        })
    }
}

/// A connection counted open in the `metrics` gauges while its task runs (nothing without
/// the feature): `http.client.open_connections` (idle, and active while a request's
/// [`Exchange`](crate::telemetry::Exchange) uses it) and, when it ends,
/// `http.client.connection.duration`.
struct OpenMeter {
    #[cfg(feature = "metrics")]
    tracker: ConnMeter,
    #[cfg(feature = "metrics")]
    opened: tokio::time::Instant,
}

impl OpenMeter {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn new(scheme: &Scheme, authority: &Authority) -> (ConnMeter, OpenMeter) {
        #[cfg(feature = "metrics")]
        {
            use crate::telemetry::record::{ConnTracker, Server};
            let tracker = Arc::new(ConnTracker::new(Server::new(Some(scheme), Some(authority))));
            tracker.opened();
            let open = OpenMeter {
                tracker: tracker.clone(),
                opened: tokio::time::Instant::now(),
            };
            (tracker, open)
        }
        #[cfg(not(feature = "metrics"))]
        (ConnMeter, OpenMeter {})
    }
}

impl Drop for OpenMeter {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.tracker.closed(self.opened.elapsed());
    }
}

/// `host[:port]` as an HTTP/1 `Host` header: no userinfo, no default port.
fn host_header(scheme: &Scheme, authority: &Authority) -> Result<HeaderValue, BoxError> {
    let default = match scheme.as_str() {
        "https" | "wss" => 443,
        _ => 80,
    };
    let host = authority.host();
    let value = match authority.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    Ok(HeaderValue::from_str(&value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_as_scheme_and_authority_do() {
        let key = |s: &str, a: &str| Key::new(s.parse().unwrap(), a.parse().unwrap());
        let (a, b) = (key("http", "Example.com:80"), key("http", "example.com:80"));
        assert!(a == b, "authorities compare without case");
        assert_eq!(a.hash, b.hash, "equal keys hash alike");
        assert!(key("http", "example.com:81") != b);
        assert!(key("https", "example.com:80") != b);
        assert_eq!(format!("{a:?}"), "http://Example.com:80");
    }

    #[test]
    fn host_header_drops_userinfo_and_default_ports() {
        let cases = [
            ("http", "example.com", "example.com"),
            ("http", "example.com:80", "example.com"),
            ("http", "example.com:8080", "example.com:8080"),
            ("https", "example.com:443", "example.com"),
            ("https", "example.com:80", "example.com:80"),
            ("http", "user:pw@example.com:81", "example.com:81"),
            ("http", "[::1]:3000", "[::1]:3000"),
        ];
        for (scheme, authority, want) in cases {
            let got = host_header(&scheme.parse().unwrap(), &authority.parse().unwrap()).unwrap();
            assert_eq!(got, want, "{scheme}://{authority}");
        }
    }
}
