//! A real hyper server on 127.0.0.1 that misbehaves on purpose, path by path, and counts the
//! connections it sees, with the helpers that measure what a client leaves behind (live tokio
//! tasks, resident memory, socket states). tower-hardened's integration tests, examples and
//! benches talk to it; it is a dev-only crate of that workspace (not published) and does not
//! depend on tower-hardened.
//!
//! ```no_run
//! # async fn demo() {
//! use tower_hardened_test_server::TestServer;
//!
//! let server = TestServer::start().await;
//! let uri = server.uri("/stall-headers"); // a server that never answers
//! # let _ = uri;
//! assert_eq!(server.open(), 0);
//! # }
//! ```
//!
//! Paths (numbers in the path, times in milliseconds):
//! - `/ok`                       200 with a 2-byte body
//! - `/bytes/N`                  N bytes, all at once, with a content-length
//! - `/stall-headers`            never answers
//! - `/stall-body`               headers and one chunk, then nothing, forever
//! - `/drip/MS`                  one 16-byte chunk every MS, never ends
//! - `/endless`                  16 KiB chunks as fast as the client reads, never ends
//! - `/slow-chunks/MS/N`         N chunks, one every MS, then the end
//! - `/upload-stall`             never reads the request body, never answers
//! - `/upload-stall/MS`          reads nothing for MS, then reads the body to its end
//! - `/echo`                     reads the whole request body, answers its length
//! - `/reset-headers`            closes the connection without a response
//! - `/reset-body`               headers, one chunk, then the connection is cut
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod body;
pub mod scrape;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Sleep;

/// Connection counts as the server sees them.
#[derive(Default, Debug)]
pub struct Counters {
    /// Connections accepted (for the TLS server: whose handshake is done).
    pub accepted: AtomicUsize,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Most connections open at once.
    pub peak_open: AtomicUsize,
    /// Requests received.
    pub requests: AtomicUsize,
    /// Requests being served now: from arrival until the response body is fully sent or dropped.
    pub active: AtomicUsize,
    /// Most requests served at once.
    pub peak_active: AtomicUsize,
}

/// A running misbehaving server. Lives as long as the runtime that started it.
#[derive(Clone, Debug)]
pub struct TestServer {
    /// Where it listens: 127.0.0.1 and an OS-chosen port.
    pub addr: SocketAddr,
    /// What it has seen so far.
    pub counters: Arc<Counters>,
}

struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    /// Counts a connection accepted and open; dropping the guard counts it closed.
    fn opened(c: &Arc<Counters>) -> OpenGuard {
        c.accepted.fetch_add(1, SeqCst);
        let now = c.open.fetch_add(1, SeqCst) + 1;
        c.peak_open.fetch_max(now, SeqCst);
        OpenGuard(c.clone())
    }
}

/// Serves one connection (HTTP/1 or HTTP/2) with the misbehaving handler, counting requests
/// and the ones being served. Shared by the plain and the TLS server, so both count alike.
async fn serve<I>(io: I, counters: Arc<Counters>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        counters.requests.fetch_add(1, SeqCst);
        track_active(counters.clone(), handle(req))
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, SeqCst);
    }
}

impl TestServer {
    /// Starts the server on 127.0.0.1 with an OS-chosen port, HTTP/1 and HTTP/2 (prior knowledge).
    pub async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let guard = OpenGuard::opened(&c);
                let counters = c.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    serve(stream, counters).await;
                });
            }
        });
        TestServer { addr, counters }
    }

    /// Starts the server on a runtime of its own (one thread, alive until the process ends), so
    /// that the current runtime's live-task count is the client's alone.
    pub fn start_on_own_thread() -> TestServer {
        on_own_thread(TestServer::start)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn uri(&self, path: &str) -> Uri {
        format!("http://{}{}", self.addr, path).parse().unwrap()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counters.open.load(SeqCst)
    }

    /// Most connections open at once.
    pub fn peak_open(&self) -> usize {
        self.counters.peak_open.load(SeqCst)
    }

    /// Requests being served now (response body not yet fully sent or dropped).
    pub fn active(&self) -> usize {
        self.counters.active.load(SeqCst)
    }

    /// Most requests served at once.
    pub fn peak_active(&self) -> usize {
        self.counters.peak_active.load(SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(SeqCst)
    }

    /// Waits (real time, up to `limit`) until the server sees at most `n` open connections.
    /// Returns whether it got there.
    pub async fn wait_open_at_most(&self, n: usize, limit: Duration) -> bool {
        eventually(limit, || self.open() <= n).await
    }
}

/// Polls `cond` every 5 ms for up to `limit` (tokio's clock: real time in these tests); whether
/// it came true.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Counts a request as active from arrival until its response body ends or is dropped (or the
/// handler is dropped first, when the client goes away).
struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

fn track_active(
    counters: Arc<Counters>,
    fut: impl Future<Output = Result<Response<ServerBody>, std::io::Error>>,
) -> impl Future<Output = Result<Response<ServerBody>, std::io::Error>> {
    let now = counters.active.fetch_add(1, SeqCst) + 1;
    counters.peak_active.fetch_max(now, SeqCst);
    let guard = ActiveGuard(counters);
    async move {
        let resp = fut.await?;
        Ok(resp.map(|body| {
            ActiveBody {
                inner: body,
                _guard: guard,
            }
            .boxed()
        }))
    }
}

struct ActiveBody {
    inner: ServerBody,
    _guard: ActiveGuard,
}

impl Body for ActiveBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that can drip, stall, end or fail on a schedule.
#[derive(Debug)]
pub struct ScriptBody {
    chunk: Bytes,
    /// Chunks left to send; `None` is endless.
    left: Option<u64>,
    /// Time between chunks; `None` sends as fast as it is read.
    every: Option<Duration>,
    /// After this many chunks: stall forever (`Stall`) or cut the connection (`Fail`).
    then: Then,
    sent: u64,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What a [`ScriptBody`] does once it has sent its chunks.
#[derive(Clone, Copy, Debug)]
pub enum Then {
    /// Ends after its `left` chunks (never, if endless).
    End,
    /// Stalls forever after this many chunks.
    StallAfter(u64),
    /// Fails (the server cuts the connection) after this many chunks.
    FailAfter(u64),
}

impl ScriptBody {
    /// `chunk` at a time, `left` chunks (`None`: endless), one every `every` (`None`: as fast as
    /// it is read), then `then`.
    pub fn new(chunk: Bytes, left: Option<u64>, every: Option<Duration>, then: Then) -> Self {
        ScriptBody {
            chunk,
            left,
            every,
            then,
            sent: 0,
            sleep: None,
        }
    }
}

impl Body for ScriptBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        match this.then {
            Then::StallAfter(n) if this.sent >= n => return Poll::Pending,
            Then::FailAfter(n) if this.sent >= n => {
                return Poll::Ready(Some(Err(std::io::Error::other("cut on purpose"))))
            }
            _ => {}
        }
        if this.left == Some(0) {
            return Poll::Ready(None);
        }
        if let Some(every) = this.every {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(left) = &mut this.left {
            *left -= 1;
        }
        this.sent += 1;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == Some(0) && matches!(self.then, Then::End)
    }

    fn size_hint(&self) -> SizeHint {
        match (self.left, self.then) {
            (Some(n), Then::End) => SizeHint::with_exact(n * self.chunk.len() as u64),
            _ => SizeHint::default(),
        }
    }
}

type ServerBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> ServerBody {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed()
}

fn script(chunk: usize, left: Option<u64>, every_ms: Option<u64>, then: Then) -> ServerBody {
    ScriptBody::new(
        Bytes::from(vec![b'x'; chunk]),
        left,
        every_ms.map(Duration::from_millis),
        then,
    )
    .boxed()
}

/// `n` bytes of `x`: a slice of one shared buffer up to 1 MiB (no allocation and fill per
/// request, so the server's cost stays small and the same for every client measured against it).
fn xs(n: usize) -> Bytes {
    const SHARED: usize = 1 << 20;
    static XS: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    if n > SHARED {
        return Bytes::from(vec![b'x'; n]);
    }
    XS.get_or_init(|| Bytes::from(vec![b'x'; SHARED]))
        .slice(..n)
}

async fn handle(req: Request<Incoming>) -> Result<Response<ServerBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize| -> u64 { parts.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    let body = match parts[0] {
        "ok" => full("ok"),
        "bytes" => full(xs(num(1) as usize)),
        "upload-stall" if num(1) > 0 => {
            // Stop reading the upload for a while, then read (and drop) whatever comes until the
            // client ends or abandons it: a client that gave up closes the connection, and the
            // server sees it; one that keeps uploading keeps it open.
            tokio::time::sleep(Duration::from_millis(num(1))).await;
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len()),
                    Err(e) => return Err(std::io::Error::other(e)),
                }
            }
            full(n.to_string())
        }
        "stall-headers" | "upload-stall" => {
            // Hold the request (and its unread body) and never answer.
            let _hold = req;
            std::future::pending::<()>().await;
            unreachable!()
        }
        "stall-body" => script(16, None, None, Then::StallAfter(1)),
        "drip" => script(16, None, Some(num(1).max(1)), Then::End),
        "endless" => script(16 * 1024, None, None, Then::End),
        "slow-chunks" => script(16, Some(num(2)), Some(num(1).max(1)), Then::End),
        "echo" => {
            let n = req
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?;
            full(n.to_bytes().len().to_string())
        }
        "reset-headers" => return Err(std::io::Error::other("reset on purpose")),
        "reset-body" => script(16, None, Some(20), Then::FailAfter(1)),
        _ => {
            let mut resp = Response::new(full("not found"));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            return Ok(resp);
        }
    };
    Ok(Response::new(body))
}

/// A TCP listener that accepts connections and never says a word (a TLS server that never
/// answers the ClientHello, a server that never sends headers at the socket level). Counts and
/// holds the accepted sockets until the runtime ends: only `accepted` (and `open`, which never
/// goes down here) mean anything; to see a client give up, look at its socket states
/// ([`tcp_states_to`]).
pub async fn silent_listener() -> (SocketAddr, Arc<Counters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            c.accepted.fetch_add(1, SeqCst);
            c.open.fetch_add(1, SeqCst);
            held.push(s);
        }
    });
    (addr, counters)
}

/// A plain hyper-util legacy client over HTTP/1, the "bare" client of the comparisons.
pub fn bare_client<B>(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A plain hyper-util legacy client over `connector` (empty request bodies).
pub fn client_over<C>(
    connector: C,
) -> hyper_util::client::legacy::Client<C, http_body_util::Empty<Bytes>>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector)
}

/// Waits up to 3 s for the current runtime's live tasks to fall to `n` or fewer; the count then.
pub async fn wait_tasks_at_most(n: usize) -> usize {
    eventually(Duration::from_secs(3), || live_tasks().unwrap() <= n).await;
    live_tasks().unwrap()
}

/// Live tokio tasks of the current runtime (`num_alive_tasks`, stable since tokio 1.39): always
/// `Some` here; callers `expect` it rather than skip a check.
pub fn live_tasks() -> Option<usize> {
    let m = tokio::runtime::Handle::current().metrics();
    Some(m.num_alive_tasks())
}

/// Resident memory of this process in KiB, from /proc (Linux).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A request body that sends `chunk`-byte chunks forever as fast as it is pulled.
pub fn endless_upload(chunk: usize) -> ScriptBody {
    ScriptBody::new(Bytes::from(vec![b'u'; chunk]), None, None, Then::End)
}

/// A TCP listener whose accept queue is full, so that further connects to it hang: created with
/// backlog 0 and filled with connections that are never accepted, until one connect does not
/// finish (checked, not assumed: panics if this kernel answers anyway). Connects to `addr` hang
/// while this value lives.
#[derive(Debug)]
pub struct HangingListener {
    /// Where connects hang.
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<tokio::net::TcpStream>,
}

/// Makes a [`HangingListener`] (see there).
pub async fn hanging_listener() -> HangingListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let attempt = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(300), attempt).await {
            Ok(Ok(s)) => fillers.push(s),
            Ok(Err(e)) => panic!("connect to the backlog-0 listener failed: {e}"),
            // This one hung: the queue is full, later connects hang too.
            Err(_) => {
                return HangingListener {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                }
            }
        }
    }
    panic!("connects to a full accept queue do not hang on this kernel");
}

/// The TCP states (numbers as in /proc/net/tcp: 1 established, 2 SYN sent, 4/5 FIN wait) of
/// this machine's IPv4 sockets whose *remote* end is `addr`: the client side of connections to
/// a local server.
pub fn tcp_states_to(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = addr else {
        panic!("tcp_states_to reads /proc/net/tcp: IPv4 only, got {addr}");
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    // Unreadable means the check cannot be made: fail rather than pass on an empty list.
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp (Linux)");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&want.as_str()))
                .then(|| u8::from_str_radix(f.get(3)?, 16).ok())
                .flatten()
        })
        .collect()
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, made now: a rustls server config
/// with it (ALPN `h2` and `http/1.1`), and a client config that trusts it and nothing else. Ring
/// provider.
pub fn tls_configs() -> (
    Arc<tokio_rustls::rustls::ServerConfig>,
    tokio_rustls::rustls::ClientConfig,
) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), client)
}

impl TestServer {
    /// The same server over TLS (rustls, `config` from [`tls_configs`]): HTTP/1.1 or HTTP/2 by
    /// ALPN. Counts connections once their handshake is done.
    pub async fn start_tls(config: Arc<tokio_rustls::rustls::ServerConfig>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _guard = OpenGuard::opened(&c);
                    serve(tls, c).await;
                });
            }
        });
        TestServer { addr, counters }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn https_uri(&self, path: &str) -> Uri {
        format!("https://{}{}", self.addr, path).parse().unwrap()
    }
}

/// Runs `make` on a tokio runtime of its own, on a thread of its own, and returns its output.
/// The runtime lives until the process ends, serving whatever `make` spawned. A server started
/// this way does not count in the calling runtime's [`live_tasks`], so a test can count its
/// client's tasks alone, without allowing for the server's per-connection tasks.
pub async fn apart<F, Fut, T>(make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_runtime_thread(make, move |out| {
        let _ = tx.send(out);
    });
    rx.await.expect("the server thread started")
}

/// [`apart`] for callers outside any runtime (benches, `main`): blocks until `make` is done.
pub fn on_own_thread<F, Fut, T>(make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_runtime_thread(make, move |out| {
        let _ = tx.send(out);
    });
    rx.recv().expect("the server thread started")
}

/// A thread with a current-thread runtime that runs `make`, hands its output to `done`, and
/// then serves whatever `make` spawned until the process ends.
fn spawn_runtime_thread<F, Fut, T>(make: F, done: impl FnOnce(T) + Send + 'static)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name("test-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                done(make().await);
                std::future::pending::<()>().await
            })
        })
        .expect("server thread");
}

impl TestServer {
    /// [`TestServer::start`] on a runtime and thread of its own (see [`apart`]).
    pub async fn start_apart() -> TestServer {
        apart(TestServer::start).await
    }

    /// [`TestServer::start_tls`] on a runtime and thread of its own (see [`apart`]).
    pub async fn start_tls_apart(config: Arc<tokio_rustls::rustls::ServerConfig>) -> TestServer {
        apart(move || TestServer::start_tls(config)).await
    }
}

/// [`silent_listener`] on a runtime and thread of its own (see [`apart`]).
pub async fn silent_listener_apart() -> (SocketAddr, Arc<Counters>) {
    apart(silent_listener).await
}
