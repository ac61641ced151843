//! The stale keep-alive race against loopback servers that close idle connections on a timer:
//! safe replay, the server's `Keep-Alive: timeout` hint, and what is not replayed.
use tower_hardened_test_server as support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_hardened::{Error, ErrorKind, Hardened, Phase, RequestDeadline};

/// How the idle-closing server behaves.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// Closes a connection that has waited this long for its next request (a server's
    /// keep-alive timeout, counted from the end of the last response).
    idle_close: Duration,
    /// Sends `Keep-Alive: timeout=N` with every response.
    hint: Option<u64>,
    /// Reads the whole N-th request of each connection, then closes it without answering.
    close_nth: Option<usize>,
    /// Delays the first response on every connection but the first one accepted.
    slow_new: Option<Duration>,
    /// Reads the whole N-th request of each connection, sends the first bytes of a response
    /// head, then closes.
    partial_nth: Option<usize>,
}

impl Config {
    fn closing_after(idle_close: Duration) -> Config {
        Config {
            idle_close,
            hint: None,
            close_nth: None,
            slow_new: None,
            partial_nth: None,
        }
    }
}

/// What the server saw.
#[derive(Default, Debug)]
struct Seen {
    accepted: AtomicUsize,
    /// Requests read whole (answered or not).
    requests: AtomicUsize,
    /// Requests that arrived on a connection that had served one before.
    reused: AtomicUsize,
    /// The longest a connection had been idle (µs) when a request arrived on it.
    max_reused_idle_us: AtomicU64,
    /// Connections closed by the idle timer.
    idle_closed: AtomicUsize,
}

struct IdleServer {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
}

impl IdleServer {
    /// Starts on a runtime and thread of its own, so its timer does not wait for the client's.
    async fn start(config: Config) -> IdleServer {
        support::apart(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Seen::default());
            let s = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = sock.set_nodelay(true);
                    let n = s.accepted.fetch_add(1, SeqCst);
                    tokio::spawn(serve(sock, config, s.clone(), n == 0));
                }
            });
            IdleServer { addr, seen }
        })
        .await
    }

    fn uri(&self) -> http::Uri {
        format!("http://{}/", self.addr).parse().unwrap()
    }

    fn max_reused_idle(&self) -> Duration {
        Duration::from_micros(self.seen.max_reused_idle_us.load(SeqCst))
    }
}

fn find(buf: &[u8], pat: &[u8]) -> Option<usize> {
    buf.windows(pat.len()).position(|w| w == pat)
}

fn content_length(head: &[u8]) -> usize {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn serve(mut sock: TcpStream, config: Config, seen: Arc<Seen>, first_conn: bool) {
    let mut buf = Vec::new();
    let mut served = 0usize;
    let mut idle_since = Instant::now();
    loop {
        // The next request, within the idle timeout.
        let mut arrived = None;
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 8192];
            let read =
                tokio::time::timeout_at(idle_since + config.idle_close, sock.read(&mut chunk));
            match read.await {
                Err(_) => {
                    seen.idle_closed.fetch_add(1, SeqCst);
                    return; // dropping the socket closes it (a reset if a request is unread)
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => {
                    arrived.get_or_insert_with(Instant::now);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        };
        if served > 0 {
            seen.reused.fetch_add(1, SeqCst);
            let idle = arrived.unwrap_or_else(Instant::now) - idle_since;
            let us = u64::try_from(idle.as_micros()).unwrap();
            seen.max_reused_idle_us.fetch_max(us, SeqCst);
        }
        let len = head_end + content_length(&buf[..head_end]);
        while buf.len() < len {
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..len);
        served += 1;
        seen.requests.fetch_add(1, SeqCst);
        if config.close_nth == Some(served) {
            return; // read it whole, answer nothing
        }
        if config.partial_nth == Some(served) {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-le").await;
            let _ = sock.flush().await;
            return;
        }
        if served == 1 && !first_conn {
            if let Some(d) = config.slow_new {
                tokio::time::sleep(d).await;
            }
        }
        let hint = config
            .hint
            .map(|n| format!("keep-alive: timeout={n}\r\n"))
            .unwrap_or_default();
        let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{hint}\r\nok");
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        idle_since = Instant::now();
    }
}

/// A small seeded generator for the idle gaps (xorshift; only spread matters).
struct Gaps(u64);

impl Gaps {
    fn new() -> Gaps {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("gap seed {seed}");
        Gaps(seed | 1)
    }

    /// Uniform in `[lo, hi]`.
    fn next(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo).mul_f64((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// `callers` tasks in lock step, `rounds` times: each sends a GET and reads the body, then all
/// wait the same gap, drawn anew each round from `T ± jitter` around the server's idle timeout,
/// so that connections are reused right as the server closes them. Returns the failures.
async fn lock_step<S>(
    client: S,
    uri: http::Uri,
    callers: usize,
    rounds: usize,
    around: Duration,
    jitter: Duration,
) -> Vec<String>
where
    S: tower::Service<Request<Empty<Bytes>>> + Clone + Send + 'static,
    S::Response: Send,
    S::Future: Send,
    S::Error: std::fmt::Display + Send,
    S::Response: IntoBody,
{
    let mut gaps = Gaps::new();
    let plan: Vec<Duration> = (0..rounds)
        .map(|_| gaps.next(around - jitter, around + jitter))
        .collect();
    let plan = Arc::new(plan);
    let barrier = Arc::new(tokio::sync::Barrier::new(callers));
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (client, uri, plan, barrier) =
            (client.clone(), uri.clone(), plan.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for (round, gap) in plan.iter().enumerate() {
                barrier.wait().await;
                let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
                // Each failure says which request and how long it took: a phase timeout shows
                // as ~10 s. A client without timeouts (the bare one) is bounded here, so that a
                // request it never answers fails the run instead of hanging it.
                let started = Instant::now();
                let at = format!("caller {caller}, round {round}");
                let res = tokio::time::timeout(NEVER_ANSWERED, client.clone().oneshot(req));
                match res.await {
                    Ok(Ok(resp)) => {
                        if let Err(e) = resp.read_all().await {
                            let took = started.elapsed();
                            failures.push(format!("{at}: body, after {took:?}: {e}"));
                        }
                    }
                    Ok(Err(e)) => {
                        failures.push(format!("{at}: after {:?}: {e}", started.elapsed()))
                    }
                    Err(_) => failures.push(format!("{at}: no answer within {NEVER_ANSWERED:?}")),
                }
                tokio::time::sleep(*gap).await;
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    failures
}

/// Reads a response body to its end, whatever the client.
trait IntoBody {
    fn read_all(self) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

impl<B> IntoBody for http::Response<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display,
{
    async fn read_all(self) -> Result<(), String> {
        self.into_body()
            .collect()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

const IDLE_CLOSE: Duration = Duration::from_millis(150);
/// The gaps' centre: a little under the server's timeout, since a caller's connection also idles
/// while it waits for the others and reads its response.
const AROUND: Duration = Duration::from_millis(148);
const CALLERS: usize = 16;
/// Where `lock_step` gives up on a request: past every timeout of the preset.
const NEVER_ANSWERED: Duration = Duration::from_secs(20);
const ROUNDS: usize = 12;

/// The preset's cases, on the client `Hardened::client()` returns (the crate's transport).
mod on_transport {
    use super::*;

    fn client<B>(preset: &Hardened) -> tower_hardened::HardenedClient<B>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<tower_hardened::BoxError>,
    {
        preset.client()
    }

    include!("keepalive/preset_cases.rs");
}

/// The same cases on `Hardened::legacy_client()` (hyper-util's legacy client).
mod on_legacy {
    use super::*;

    use tower_hardened::{HardenedConnector, HardenedRequestBody, HardenedService, PoolClient};

    fn client<B>(
        preset: &Hardened,
    ) -> HardenedService<PoolClient<HardenedConnector, HardenedRequestBody<B>>>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<tower_hardened::BoxError>,
    {
        preset.legacy_client()
    }

    include!("keepalive/preset_cases.rs");
}

/// The same races against the crate's own transport: `ReplayLayer` over `Transport`, which says
/// "lost with its reused connection" in the error chain and sends a replay on a connection it
/// dials for it.
#[cfg(feature = "transport")]
mod transport {
    use super::*;

    use tower::ServiceBuilder;
    use tower_hardened::{
        CloseReason, ConnectionError, Deadline, DeadlineLayer, Replay, ReplayBody, ReplayLayer,
        ResponseHeaderTimeout, ResponseHeaderTimeoutLayer, Stats, Transport, TransportBuilder,
    };

    type Stack<B> = Deadline<Replay<ResponseHeaderTimeout<Transport<ReplayBody<B>>>>>;

    /// Deadline 30 s → replay → response headers 10 s → the transport.
    fn stack<B>(builder: TransportBuilder, stats: &Stats) -> (Stack<B>, Transport<ReplayBody<B>>)
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<tower_hardened::BoxError>,
    {
        let transport = builder.stats(stats.clone()).build::<ReplayBody<B>>();
        let svc = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(30)))
            .layer(ReplayLayer::new().stats(stats.clone()))
            .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
            .service(transport.clone());
        (svc, transport)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotent_requests_reused_as_the_server_closes_them_never_fail_over_the_transport() {
        let jitter = Duration::from_millis(3);
        let n = CALLERS * ROUNDS;

        let server = IdleServer::start(Config::closing_after(IDLE_CLOSE)).await;
        let bare = Transport::builder().build::<Empty<Bytes>>();
        let bare_failures = lock_step(bare, server.uri(), CALLERS, ROUNDS, AROUND, jitter).await;
        println!(
            "bare transport: {} of {n} failed ({} connections, {} closed idle by the server)",
            bare_failures.len(),
            server.seen.accepted.load(SeqCst),
            server.seen.idle_closed.load(SeqCst),
        );
        for f in bare_failures.iter().take(3) {
            println!("  bare: {f}");
        }

        let server = IdleServer::start(Config::closing_after(IDLE_CLOSE)).await;
        let stats = Stats::new();
        let (client, _transport) = stack::<Empty<Bytes>>(Transport::builder(), &stats);
        let failures = lock_step(client, server.uri(), CALLERS, ROUNDS, AROUND, jitter).await;
        let snap = stats.snapshot();
        println!(
            "replay over the transport: {} of {n} failed, {} replayed ({} connections, {} closed idle by the server)",
            failures.len(),
            snap.replays,
            server.seen.accepted.load(SeqCst),
            server.seen.idle_closed.load(SeqCst),
        );
        assert!(failures.is_empty(), "{failures:#?}");
        let requests = server.seen.requests.load(SeqCst);
        assert!(
            (n..=n + snap.replays as usize).contains(&requests),
            "{requests} requests seen for {n} sent and {} replays",
            snap.replays
        );
        assert!(server.seen.reused.load(SeqCst) > 0);
    }

    /// Two connections idle, then `method` on the most recently used one, which the server
    /// reads whole and closes without answering (its second request). The other connection is
    /// idle as long: a replay must not take it (it would be closed the same way, as the second
    /// request on it), but a new one.
    async fn lost_with_a_peer_idle(
        method: Method,
    ) -> (Result<Bytes, tower_hardened::BoxError>, IdleServer, Stats) {
        let server = IdleServer::start(Config {
            close_nth: Some(2),
            ..Config::closing_after(Duration::from_secs(30))
        })
        .await;
        let stats = Stats::new();
        let (client, transport) = stack::<Full<Bytes>>(Transport::builder(), &stats);
        let send = |m: Method| {
            let req = Request::builder()
                .method(m)
                .uri(server.uri())
                .body(Full::new(Bytes::from("order #1")))
                .unwrap();
            client.clone().oneshot(req)
        };
        // Two at once: two connections, both idle after.
        let (a, b) = tokio::join!(send(method.clone()), send(method.clone()));
        let (a, b) = (a.expect("answered"), b.expect("answered"));
        a.into_body().collect().await.unwrap();
        b.into_body().collect().await.unwrap();
        assert!(
            support::eventually(Duration::from_secs(2), || transport.idle_connections() == 2).await
        );
        assert_eq!(server.seen.accepted.load(SeqCst), 2);
        let res = match send(method).await {
            Ok(resp) => resp.into_body().collect().await.map(|b| b.to_bytes()),
            Err(e) => Err(e),
        };
        (res, server, stats)
    }

    #[tokio::test]
    async fn a_get_lost_with_its_reused_connection_is_replayed_once_on_a_new_connection() {
        let (res, server, stats) = lost_with_a_peer_idle(Method::GET).await;
        assert_eq!(res.expect("the replay is answered"), "ok");
        assert_eq!(stats.snapshot().replays, 1);
        assert_eq!(
            server.seen.accepted.load(SeqCst),
            3,
            "the replay dialed anew instead of taking the other idle connection"
        );
        assert_eq!(
            server.seen.requests.load(SeqCst),
            4,
            "2 answered, 1 lost, its replay"
        );
    }

    #[tokio::test]
    async fn a_post_lost_with_its_reused_connection_is_not_replayed_and_says_why() {
        let (res, server, stats) = lost_with_a_peer_idle(Method::POST).await;
        let err = res.unwrap_err();
        let ours = Error::find(&*err).expect("our error");
        assert_eq!(ours.kind(), ErrorKind::ConnectionClosed, "{err}");
        let text = ours.to_string();
        assert!(
            text.starts_with(
                "connection closed by the peer before the response (a reused connection, idle for"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "not retried because POST is not idempotent (an Idempotency-Key header marks it safe to retry)"
            ),
            "{text}"
        );
        // The transport's own error is still in the chain, with its text.
        let conn = ConnectionError::find(&*err).expect("the transport's error in the chain");
        assert!(conn.is_reused() && !conn.nothing_written());
        assert!(
            conn.to_string()
                .starts_with("reused connection, closed by the peer before the response"),
            "{conn}"
        );
        assert_eq!(stats.snapshot().replays, 0);
        assert_eq!(
            server.seen.requests.load(SeqCst),
            3,
            "the POST was had whole, once"
        );
        assert_eq!(server.seen.accepted.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_got_a_response_byte_before_the_close_is_not_replayed() {
        let server = IdleServer::start(Config {
            partial_nth: Some(2),
            ..Config::closing_after(Duration::from_secs(30))
        })
        .await;
        let stats = Stats::new();
        let (client, _t) = stack::<Empty<Bytes>>(Transport::builder(), &stats);
        let get = || Request::get(server.uri()).body(Empty::new()).unwrap();
        let resp = client.clone().oneshot(get()).await.unwrap();
        resp.into_body().collect().await.unwrap();
        let err = client.clone().oneshot(get()).await.unwrap_err();
        // Not ours (nothing was lost before the response): the transport's error as it is.
        assert!(Error::find(&*err).is_none(), "{err}");
        let conn = ConnectionError::find(&*err).expect("the transport's error");
        assert!(conn.is_reused(), "{conn:?}");
        assert_eq!(stats.snapshot().replays, 0);
        assert_eq!(server.seen.requests.load(SeqCst), 2);
        assert_eq!(server.seen.accepted.load(SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_keep_alive_hint_keeps_idle_connections_from_being_handed_out_too_late() {
        // `timeout=1`: not handed out after 0.5 s idle (1 s less a margin of at most half).
        let server = IdleServer::start(Config {
            hint: Some(1),
            ..Config::closing_after(Duration::from_secs(1))
        })
        .await;
        let retire_at = Duration::from_millis(500);
        let stats = Stats::new();
        let transport = Transport::builder()
            .stats(stats.clone())
            .build::<Empty<Bytes>>();
        // One caller, so that each gap is the idle time of the one connection: three short
        // gaps (reused), three long ones, still under the server's 1 s (each past the hint).
        let gaps = [300, 700, 350, 800, 400, 900];
        for gap in gaps {
            let req = Request::get(server.uri()).body(Empty::new()).unwrap();
            let resp = transport.clone().oneshot(req).await.expect("no failures");
            resp.into_body().collect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(gap)).await;
        }
        let req = Request::get(server.uri()).body(Empty::new()).unwrap();
        let resp = transport.clone().oneshot(req).await.expect("no failures");
        resp.into_body().collect().await.unwrap();
        let max = server.max_reused_idle();
        let snap = stats.snapshot();
        println!(
            "longest idle before a reused request: {max:?}; {} requests, {} reused, {} connections, {} closed idle",
            server.seen.requests.load(SeqCst),
            server.seen.reused.load(SeqCst),
            server.seen.accepted.load(SeqCst),
            snap.connections_closed(CloseReason::Idle),
        );
        // The server's clock starts when it sent the response, the pool's when the body ended.
        assert!(max < retire_at + Duration::from_millis(50), "{max:?}");
        assert_eq!(server.seen.reused.load(SeqCst), 3, "the short gaps reuse");
        assert_eq!(
            server.seen.accepted.load(SeqCst),
            4,
            "each long gap dials anew"
        );
        assert_eq!(
            snap.connections_closed(CloseReason::Idle),
            3,
            "the pool closed each hinted connection as idle"
        );
        assert_eq!(
            server.seen.idle_closed.load(SeqCst),
            0,
            "none lasted until the server's timer"
        );
    }

    #[tokio::test]
    async fn a_replay_over_the_transport_that_would_run_past_the_deadline_fails_as_total() {
        let server = IdleServer::start(Config {
            close_nth: Some(2),
            slow_new: Some(Duration::from_secs(5)),
            ..Config::closing_after(Duration::from_secs(30))
        })
        .await;
        let stats = Stats::new();
        let (client, _t) = stack::<Empty<Bytes>>(Transport::builder(), &stats);
        let get = || Request::get(server.uri()).body(Empty::new()).unwrap();
        let resp = client.clone().oneshot(get()).await.unwrap();
        resp.into_body().collect().await.unwrap();

        let mut req = get();
        req.extensions_mut()
            .insert(RequestDeadline::after(Duration::from_millis(600)));
        let started = Instant::now();
        let err = client.oneshot(req).await.unwrap_err();
        let took = started.elapsed();
        let ours = Error::find(&*err).expect("our error");
        assert_eq!(ours.phase(), Some(Phase::Total), "{err}");
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let snap = stats.snapshot();
        assert_eq!(snap.replays, 1);
        assert_eq!(
            server.seen.accepted.load(SeqCst),
            2,
            "the replay dialed anew"
        );
    }
}
