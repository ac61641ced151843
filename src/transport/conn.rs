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
    /// An HTTP/1 connection whose sender was dropped to take back a request stranded in
    /// hyper's queue (see [`UntilEnded`]): closed.
    Closed,
}

impl<B: Send + 'static> Poolable for Conn<B> {
    fn is_open(&self) -> bool {
        match &self.proto {
            Proto::H1(tx, shared) => !shared.done.load(Ordering::Acquire) && !tx.is_closed(),
            Proto::H2(tx, shared) => !shared.done.load(Ordering::Acquire) && !tx.is_closed(),
            Proto::Closed => false,
        }
    }

    fn capacity(&self) -> usize {
        match &self.proto {
            Proto::H1(..) => 1,
            Proto::H2(_, shared) => shared.streams.load(Ordering::Relaxed),
            Proto::Closed => 0,
        }
    }

    fn idle_timeout(&self) -> Option<std::time::Duration> {
        // The server's `Keep-Alive: timeout` hint, less the margin (HTTP/1 only).
        self.wire.idle_limit()
    }

    fn share(&self) -> Option<Self> {
        match &self.proto {
            Proto::H1(..) | Proto::Closed => None,
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
            Proto::Closed => return,
        };
        let _ = slot.set(watch);
    }
}

/// What an HTTP/1 connection's task shares with its checkouts: where a checkout waits until
/// hyper is ready for the next request, whether the task has ended, and who waits for it to.
pub(crate) struct H1Shared<B: Send + 'static> {
    slot: Mutex<H1Slot<B>>,
    /// A checkout is parked in the slot (read by the task after each poll without the lock).
    parked: AtomicBool,
    done: AtomicBool,
    /// Set once the task has dropped hyper's connection, and with it the receiving end of its
    /// queue of requests (after `done`): a request still in the queue then comes back only
    /// when the queue goes (see [`UntilEnded`]).
    ended: AtomicBool,
    watch: OnceLock<ConnectionWatch>,
}

struct H1Slot<B: Send + 'static> {
    parked: Option<Parked<B>>,
    waker: Option<Waker>,
    /// The task of the request waiting for its response on this connection (one at a time on
    /// HTTP/1), woken when the connection's task ends.
    sending: Option<Waker>,
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
                sending: None,
            }),
            parked: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            watch: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, H1Slot<B>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task has dropped hyper's connection, and with it the receiving end of its queue of
    /// requests: each request that end drained was failed or handed back then. One queued
    /// after that is stranded there (see [`UntilEnded`]): its sender is woken to look.
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let sending = self.lock().sending.take();
        if let Some(w) = sending {
            w.wake();
        }
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
                        Proto::H2(..) | Proto::Closed => Some(None),
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
        this.finish(reason);
        Poll::Ready(())
    }
}

impl<T, B> H1Task<T, B>
where
    T: Read + Write + Unpin,
    B: Body + Send + 'static,
{
    /// The connection is over (`reason`): drops hyper's connection and tells the checkouts.
    fn finish(&mut self, reason: CloseReason) {
        // The connection is gone: say so before anything is given back, so that nothing
        // hands it out in between.
        self.shared.done.store(true, Ordering::Release);
        let parked = {
            let mut slot = self.shared.lock();
            self.shared.parked.store(false, Ordering::Release);
            slot.waker = None;
            slot.parked.take()
        };
        self.conn = None;
        self.shared.end();
        if let Some(mut parked) = parked {
            parked.lease.discard_as(reason);
            drop(parked);
        }
        if let Some(w) = self.shared.watch.get() {
            w.closed();
        }
    }
}

impl<T, B> Drop for H1Task<T, B>
where
    T: Read + Write + Unpin,
    B: Body + Send + 'static,
{
    /// Dropped before its connection ended (its runtime shut down, or hyper panicked): the
    /// same as an end, so no request waits on it and no parked checkout, which holds the
    /// shared state, is kept by it.
    fn drop(&mut self) {
        if self.conn.is_some() {
            self.finish(CloseReason::Error);
        }
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/1 request's exchange (`F`, hyper's `try_send_request`) on its connection
    /// (`proto`), which takes the request back if the connection's task ends while it is still
    /// in hyper's queue. hyper queues a request in a tokio channel; one queued as the task drops
    /// that channel's receiving end stays in it, neither written nor failed nor handed back
    /// (tokio-rs/tokio#7714), and `F` would wait for a response that never comes. The channel
    /// itself goes with its last sender, hyper's `SendRequest` in `proto`: dropped then (which
    /// leaves `proto` [`Closed`](Proto::Closed)), it hands the request back unsent, and `F`
    /// ends with it as hyper ends any request it gives back.
    pub(crate) struct UntilEnded<'a, F, B>
    where
        B: Send,
        B: 'static,
    {
        #[pin]
        fut: F,
        proto: &'a mut Proto<B>,
        registered: bool,
    }

    impl<F, B> PinnedDrop for UntilEnded<'_, F, B>
    where
        B: Send,
        B: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            // The waker of a request that is over is not kept (it would keep its task's
            // memory while the connection idles).
            let this = this.project();
            if let (true, Proto::H1(_, shared)) = (*this.registered, &**this.proto) {
                // Dropped outside the lock.
                let ours = shared.lock().sending.take();
                drop(ours);
            }
        }
    }
}

/// `fut`, the exchange of a request on the HTTP/1 connection `proto`, taking the request back
/// if the connection ends with it unsent (see [`UntilEnded`]).
pub(crate) fn until_ended<F: Future, B: Send + 'static>(
    fut: F,
    proto: &mut Proto<B>,
) -> UntilEnded<'_, F, B> {
    UntilEnded {
        fut,
        proto,
        registered: false,
    }
}

impl<F: Future, B: Send + 'static> Future for UntilEnded<'_, F, B> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Proto::H1(_, shared) = &**this.proto else {
            // Closed below, and the hand-back was not seen then: `fut` waits for it (hyper's
            // oneshot wakes this task).
            return Poll::Pending;
        };
        {
            let mut slot = shared.lock();
            if !slot
                .sending
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                slot.sending = Some(cx.waker().clone());
            }
            *this.registered = true;
        }
        if !shared.ended.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // Ended: whatever hyper's connection held was answered before `ended` was set, so one
        // more poll sees it. That poll is out of tokio's task budget: a task that has spent it
        // (one driving many requests) would otherwise see a stored answer as `Pending`.
        if let Poll::Ready(out) = unbudgeted(this.fut.as_mut(), cx) {
            return Poll::Ready(out);
        }
        // Stranded in the queue: dropping the sender drops the queue, which hands it back.
        let ours = shared.lock().sending.take();
        drop(ours);
        tracing::debug!("request stranded in hyper's queue as its connection ended: taken back");
        **this.proto = Proto::Closed;
        unbudgeted(this.fut, cx)
    }
}

/// Polls `fut` outside tokio's task budget.
fn unbudgeted<F: Future>(fut: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    std::pin::pin!(tokio::task::unconstrained(fut)).poll(cx)
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

    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Empty;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    type Io = hyper_util::rt::TokioIo<tokio::io::DuplexStream>;

    /// A real HTTP/1 connection over a pipe: its sender as a checkout holds it, the state it
    /// shares with its task, hyper's connection (not driven here) and the peer's end.
    async fn h1() -> (
        Proto<Empty<Bytes>>,
        Arc<H1Shared<Empty<Bytes>>>,
        http1::Connection<Io, Empty<Bytes>>,
        tokio::io::DuplexStream,
    ) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let io = hyper_util::rt::TokioIo::new(ours);
        let (tx, conn) = http1::handshake::<_, Empty<Bytes>>(io).await.unwrap();
        let shared = Arc::new(H1Shared::new());
        (Proto::H1(tx, shared.clone()), shared, conn, theirs)
    }

    fn request(id: &'static str) -> http::Request<Empty<Bytes>> {
        http::Request::get("/")
            .header("x-id", id)
            .body(Empty::new())
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_still_queued_as_its_connection_ended_is_taken_back_unsent() {
        let (mut proto, shared, conn, _theirs) = h1().await;
        let Proto::H1(tx, _) = &mut proto else {
            unreachable!()
        };
        // Queued in hyper's channel: nothing drives the connection that would take it.
        let sending = tx.try_send_request(request("queued"));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut sent = Box::pin(until_ended(sending, &mut proto));
        assert!(sent.as_mut().poll(&mut cx).is_pending());
        // The task says it ended. (In the race the receiving end is gone by then and the
        // sender is the queue's last; here hyper's connection keeps it until dropped below.)
        shared.end();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "its task woken");
        assert!(
            sent.as_mut().poll(&mut cx).is_pending(),
            "the queue is still there"
        );
        assert!(
            shared.lock().sending.is_none(),
            "no waker kept once taken back"
        );
        drop(conn);
        let Poll::Ready(Err(mut err)) = sent.as_mut().poll(&mut cx) else {
            panic!("handed back when the queue went")
        };
        let back = err.take_message().expect("the request itself, unsent");
        assert_eq!(back.headers()["x-id"], "queued");
        drop(sent);
        assert!(matches!(proto, Proto::Closed), "its sender was dropped");
    }

    /// Answered in the moment its connection ends: the first poll fails it as hyper does when
    /// it drops its queue, and the task says it ended, before the request has looked.
    struct AnsweredAsItEnds {
        shared: Arc<H1Shared<Empty<Bytes>>>,
        polls: u8,
    }

    impl Future for AnsweredAsItEnds {
        type Output = u8;

        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u8> {
            self.polls += 1;
            if self.polls == 1 {
                self.shared.end();
                return Poll::Pending;
            }
            Poll::Ready(7)
        }
    }

    #[tokio::test]
    async fn a_request_answered_as_its_connection_ended_keeps_its_answer() {
        // hyper fails (or hands back) what its queue held when the connection goes, before the
        // task says it ended: that answer wins, and the connection is left as it is.
        let (mut proto, shared, _conn, _theirs) = h1().await;
        let (_count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let answered = AnsweredAsItEnds { shared, polls: 0 };
        let mut sent = Box::pin(until_ended(answered, &mut proto));
        assert_eq!(sent.as_mut().poll(&mut cx), Poll::Ready(7));
        drop(sent);
        assert!(matches!(proto, Proto::H1(..)));
    }

    #[tokio::test]
    async fn an_answer_given_as_the_connection_ended_is_seen_by_a_task_out_of_budget() {
        // A task that drives many requests may have spent tokio's budget when it is woken: a
        // budgeted poll (hyper's oneshot) then says `Pending` although its answer is there.
        let (mut proto, shared, _conn, _theirs) = h1().await;
        let (answer, answered) = tokio::sync::oneshot::channel::<u8>();
        let mut sent = Box::pin(until_ended(answered, &mut proto));
        assert!(futures_poll_once(sent.as_mut()).await.is_none(), "waiting");
        let (fill, mut spend) = tokio::sync::mpsc::unbounded_channel::<()>();
        for _ in 0..1_000 {
            fill.send(()).unwrap();
        }
        let mut answer = Some(answer);
        let out = poll_fn(|cx| {
            let spent = (0..1_000).any(|_| spend.poll_recv(cx).is_pending());
            assert!(spent, "the task's budget is spent");
            answer.take().unwrap().send(7).unwrap();
            shared.end();
            Poll::Ready(sent.as_mut().poll(cx))
        })
        .await;
        assert_eq!(out, Poll::Ready(Ok(7)), "answered, not taken back");
        drop(sent);
        assert!(
            matches!(proto, Proto::H1(..)),
            "its connection left as it is"
        );
    }

    #[tokio::test]
    async fn a_request_that_is_over_leaves_no_waker_behind() {
        let (mut proto, shared, _conn, _theirs) = h1().await;
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut sent = Box::pin(until_ended(std::future::pending::<()>(), &mut proto));
        assert!(sent.as_mut().poll(&mut cx).is_pending());
        assert!(shared.lock().sending.is_some());
        drop(sent);
        assert!(
            shared.lock().sending.is_none(),
            "the caller's task is not kept"
        );
        assert_eq!(Arc::strong_count(&count), 2, "only ours and the waker's");
        drop(waker);
        assert_eq!(Arc::strong_count(&count), 1);
    }

    /// Waits, without a waker of its own, until its connection's task has ended: ready only
    /// if something else wakes it then.
    fn until_told(shared: Arc<H1Shared<Empty<Bytes>>>) -> impl Future<Output = ()> + Unpin {
        poll_fn(move |_| {
            if shared.ended.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The transport's task on a real connection, with its peer's end.
    async fn driven() -> (
        Proto<Empty<Bytes>>,
        Arc<H1Shared<Empty<Bytes>>>,
        tokio::task::JoinHandle<()>,
        tokio::io::DuplexStream,
    ) {
        let (proto, shared, conn, theirs) = h1().await;
        let (_meter, open) = OpenMeter::new(&Scheme::HTTP, &"a.test".parse().unwrap());
        let task = tokio::spawn(H1Task {
            conn: Some(conn),
            shared: shared.clone(),
            registered: false,
            _open: open,
        });
        (proto, shared, task, theirs)
    }

    #[tokio::test]
    async fn the_connection_s_task_wakes_a_waiting_request_when_the_peer_closes() {
        let (mut proto, shared, task, theirs) = driven().await;
        let mut sent = Box::pin(until_ended(until_told(shared.clone()), &mut proto));
        assert!(futures_poll_once(sent.as_mut()).await.is_none(), "waiting");
        drop(theirs);
        // A bound for the test only: without the task's wake it would wait forever.
        tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("woken when the connection's task ended");
        task.await.unwrap();
        assert!(shared.done.load(Ordering::Acquire));
        let Proto::H1(tx, _) = &proto else {
            unreachable!()
        };
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn a_connection_s_task_dropped_before_its_end_wakes_a_waiting_request() {
        // Its runtime shutting down, or hyper panicking in it, drops the task unfinished.
        let (mut proto, shared, task, _theirs) = driven().await;
        let mut sent = Box::pin(until_ended(until_told(shared.clone()), &mut proto));
        assert!(futures_poll_once(sent.as_mut()).await.is_none(), "waiting");
        tokio::task::yield_now().await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // A bound for the test only: without the task's drop it would wait forever.
        tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("woken when the connection's task was dropped");
        assert!(shared.done.load(Ordering::Acquire));
        assert!(
            shared.lock().waker.is_none(),
            "the task's waker is not kept"
        );
    }

    /// Polls `fut` once: its output if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
        poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut fut).poll(cx) {
                Poll::Ready(out) => Some(out),
                Poll::Pending => None,
            })
        })
        .await
    }

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
