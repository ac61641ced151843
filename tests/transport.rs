//! The transport against real loopback servers that misbehave on purpose, counted by the servers
//! themselves: the header clock, the global idle cap over many hosts, servers that close idle
//! connections, bursts over a per-host cap, drops, retries, and HTTP/2 multiplexing and faults.
use tower_hardened_test_server as support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, BoxError, CloseReason, ConnectionError, DeadlineLayer, Error, Phase,
    Protocol, ResponseHeaderTimeoutLayer, Stats, Transport, TransportBuilder,
};

use support::TestServer;

type Plain = Transport<Empty<Bytes>>;

fn get(uri: Uri) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

/// GET `uri` through `svc`, body read to its end: its length, or the error's phase and text.
async fn fetch<S, B>(svc: S, uri: Uri) -> Result<usize, (Option<Phase>, String)>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>, Error = BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let fail = |e: BoxError| (Error::find(&*e).and_then(Error::phase), e.to_string());
    let resp = svc.oneshot(get(uri)).await.map_err(fail)?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(body.to_bytes().len())
}

async fn eventually(limit: Duration, cond: impl FnMut() -> bool) -> bool {
    support::eventually(limit, cond).await
}

// ---------------------------------------------------------------------------------------------
// HTTP/1

#[tokio::test]
async fn sequential_requests_reuse_one_connection_and_counts_balance() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let transport: Plain = Transport::builder().stats(stats.clone()).build();
    for _ in 0..20 {
        assert_eq!(
            fetch(transport.clone(), server.uri("/bytes/1000")).await,
            Ok(1000)
        );
    }
    assert_eq!(server.accepted(), 1, "one connection, reused");
    assert!(eventually(Duration::from_secs(2), || transport.idle_connections() == 1).await);
    let snap = stats.snapshot();
    assert_eq!(
        (
            snap.connections_opened,
            snap.connections_reused,
            snap.connections_idle
        ),
        (1, 19, 1)
    );
    let resp = transport
        .clone()
        .oneshot(get(server.uri("/ok")))
        .await
        .unwrap();
    assert_eq!(
        resp.version(),
        Version::HTTP_11,
        "ALPN mode on plain TCP is HTTP/1.1"
    );
    drop(resp);
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn clone<T: Clone>() {}
    send_sync::<Plain>();
    clone::<Plain>();
    send_sync::<TransportBuilder>();
    clone::<TransportBuilder>();
    send::<tower_hardened::TransportFuture<Empty<Bytes>>>();
    send::<tower_hardened::TransportBody<Empty<Bytes>>>();
    send_sync::<ConnectionError>();
}

#[tokio::test]
async fn the_response_body_forwards_its_hints_and_ends_at_once_when_empty() {
    use http_body::Body as _;
    let server = TestServer::start().await;
    let transport: Plain = Transport::builder().max_conns_per_host(1).build();
    let resp = transport
        .clone()
        .oneshot(get(server.uri("/bytes/1000")))
        .await
        .unwrap();
    let body = resp.into_body();
    assert_eq!(body.size_hint().exact(), Some(1000));
    assert!(!body.is_end_stream());
    assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
    // A HEAD response has no body: ended from the start, its connection back at once.
    let head = Request::head(server.uri("/ok")).body(Empty::new()).unwrap();
    let resp = transport.clone().oneshot(head).await.unwrap();
    assert!(resp.body().is_end_stream());
    assert_eq!(resp.body().size_hint().exact(), Some(0));
    // Held, not read: with a cap of one, the next request still gets the connection.
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        fetch(transport.clone(), server.uri("/ok")),
    );
    assert_eq!(next.await.unwrap(), Ok(2));
    drop(resp);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn an_http1_checkout_lasts_until_the_body_ends() {
    let server = TestServer::start().await;
    let transport: Plain = Transport::builder()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_millis(300))
        .build();
    let held = transport
        .clone()
        .oneshot(get(server.uri("/slow-chunks/100/3")))
        .await
        .unwrap();
    // Its body is not read: the only connection stays checked out.
    let (phase, _) = fetch(transport.clone(), server.uri("/ok"))
        .await
        .unwrap_err();
    assert_eq!(phase, Some(Phase::Acquire));
    // Read to its end: the connection comes back and serves the next request.
    let waiting = tokio::spawn(fetch(transport.clone(), server.uri("/ok")));
    held.into_body().collect().await.unwrap();
    assert_eq!(waiting.await.unwrap(), Ok(2));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn drain_on_drop_above_gives_dropped_bodies_connections_back() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let transport: Plain = Transport::builder().stats(stats.clone()).build();
    let client = ServiceBuilder::new()
        .layer(tower_hardened::DrainOnDropLayer::new().stats(stats.clone()))
        .service(transport.clone());
    for _ in 0..20 {
        let resp = client
            .clone()
            .oneshot(get(server.uri("/bytes/65536")))
            .await
            .unwrap();
        drop(resp); // unread: drained in the background, the connection goes back
        assert!(eventually(Duration::from_secs(2), || transport.idle_connections() == 1).await);
    }
    assert_eq!(
        server.accepted(),
        1,
        "one connection for twenty dropped bodies"
    );
    let snap = stats.snapshot();
    assert_eq!((snap.drains_started, snap.drains_finished), (20, 20));
    assert_eq!(snap.connections_reused, 19);
}

#[tokio::test]
async fn the_header_clock_starts_once_the_connection_is_obtained() {
    let second = Duration::from_secs(1);
    let server = TestServer::start().await;
    let stack = |t: Plain| {
        ServiceBuilder::new()
            .layer(ResponseHeaderTimeoutLayer::new(second))
            .service(t)
    };
    let transport: Plain = Transport::builder()
        .connect_timeout(second)
        .acquire_timeout(second)
        .max_conns_per_host(1)
        .build();

    // A dial that hangs: Connect, after the connect timeout.
    let hanging = support::hanging_listener().await;
    let start = Instant::now();
    let uri: Uri = format!("http://{}/", hanging.addr).parse().unwrap();
    let (phase, text) = fetch(stack(transport.clone()), uri).await.unwrap_err();
    assert_eq!(phase, Some(Phase::Connect), "{text}");
    assert!(start.elapsed() >= second && start.elapsed() < second * 3);

    // A full pool: Acquire, after the acquire timeout.
    let held = transport
        .clone()
        .oneshot(get(server.uri("/stall-body")))
        .await
        .unwrap();
    let start = Instant::now();
    let (phase, text) = fetch(stack(transport.clone()), server.uri("/ok"))
        .await
        .unwrap_err();
    assert_eq!(phase, Some(Phase::Acquire), "{text}");
    assert!(start.elapsed() >= second && start.elapsed() < second * 3);
    drop(held);

    // And the clock does run once the request is on its way.
    let (phase, _) = fetch(stack(transport.clone()), server.uri("/stall-headers"))
        .await
        .unwrap_err();
    assert_eq!(phase, Some(Phase::ResponseHeaders));
}

/// Starts `n` test servers on a runtime of their own.
async fn servers(n: usize) -> Vec<TestServer> {
    support::apart(move || async move {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(TestServer::start().await);
        }
        v
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hosts_then_idle_keep_at_most_max_idle_open_by_the_servers_count() {
    let servers = servers(12).await;
    let stats = Stats::new();
    let transport: Plain = Transport::builder()
        .max_idle(5)
        .max_idle_per_host(3)
        .stats(stats.clone())
        .build();
    // Three requests at once to each server: up to three connections each, 36 in all.
    let mut tasks = Vec::new();
    for s in &servers {
        for _ in 0..3 {
            let (t, uri) = (transport.clone(), s.uri("/slow-chunks/20/3"));
            tasks.push(tokio::spawn(fetch(t, uri)));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(48));
    }
    let accepted: usize = servers.iter().map(TestServer::accepted).sum();
    assert!(
        accepted > 5,
        "the test needs more connections than the cap: {accepted}"
    );
    let open = || servers.iter().map(TestServer::open).sum::<usize>();
    assert!(
        eventually(Duration::from_secs(3), || open() <= 5).await,
        "servers still see {} connections open",
        open()
    );
    // And it stays so: nothing reopens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(open() <= 5);
    assert_eq!(transport.idle_connections(), open());
    let snap = stats.snapshot();
    assert_eq!(snap.connections_idle as usize, open());
    assert_eq!(
        snap.connections_closed(CloseReason::Cap) as usize,
        accepted - open(),
        "every connection over the cap was closed as Cap"
    );
}

/// A server that closes every idle keep-alive connection after `idle` (hyper's header-read
/// timeout, as a server's keep-alive timeout does), counting connections and requests.
async fn idle_closing_server(idle: Duration) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            a.fetch_add(1, SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    r.fetch_add(1, SeqCst);
                    async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(idle)
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, accepted, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_idle_connections_after_1s_causes_no_errors() {
    let (addr, accepted, requests) = idle_closing_server(Duration::from_secs(1)).await;
    let stats = Stats::new();
    let transport: Plain = Transport::builder().stats(stats.clone()).build();
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let burst = |n: usize| {
        let (t, uri) = (transport.clone(), uri.clone());
        async move {
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(fetch(t.clone(), uri.clone())))
                .collect();
            let mut failures = Vec::new();
            for task in tasks {
                if let Err(e) = task.await.unwrap() {
                    failures.push(e);
                }
            }
            failures
        }
    };
    assert!(burst(8).await.is_empty());
    let first = accepted.load(SeqCst);
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let failures = burst(8).await;
        assert!(failures.is_empty(), "round {round}: {failures:?}");
    }
    assert_eq!(requests.load(SeqCst), 32);
    assert!(accepted.load(SeqCst) > first, "the server did close them");
    assert!(stats.snapshot().connections_closed(CloseReason::Error) > 0);
}

#[tokio::test]
async fn a_burst_over_a_per_host_cap_leaves_no_lingering_tasks() {
    let server = TestServer::start_apart().await;
    let base = support::live_tasks().unwrap();
    let transport: Plain = Transport::builder().max_conns_per_host(4).build();
    let tasks: Vec<_> = (0..200)
        .map(|_| tokio::spawn(fetch(transport.clone(), server.uri("/bytes/100"))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(100));
    }
    assert_eq!(server.accepted(), 4, "never more connections than the cap");
    // Left: one task per idle connection and the pool's reaper. No dial of the burst.
    let left = support::wait_tasks_at_most(base + 5).await;
    assert_eq!(left, base + 5);
    assert_eq!(transport.idle_connections(), 4);
    drop(transport);
    assert_eq!(support::wait_tasks_at_most(base).await, base);
}

#[tokio::test]
async fn requests_that_give_up_leave_no_dial_behind() {
    // Connects to this listener hang: each request's dial would run until the connect timeout
    // (10 s) if nothing aborted it once its request gave up.
    let hanging = support::hanging_listener().await;
    let base = support::live_tasks().unwrap();
    let transport: Plain = Transport::builder().build();
    let client = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(200)))
        .service(transport.clone());
    let uri: Uri = format!("http://{}/", hanging.addr).parse().unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(fetch(client.clone(), uri.clone())))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err().0, Some(Phase::Total));
    }
    assert_eq!(
        transport.open_connections(&uri),
        0,
        "no dial counted any more"
    );
    assert_eq!(
        support::wait_tasks_at_most(base).await,
        base,
        "no dial task left"
    );
}

#[tokio::test]
async fn dropping_the_transport_closes_everything_and_ends_every_task() {
    let servers = servers(3).await;
    let base = support::live_tasks().unwrap();
    let stats = Stats::new();
    let transport: Plain = Transport::builder().stats(stats.clone()).build();
    for s in &servers {
        let tasks: Vec<_> = (0..3)
            .map(|_| tokio::spawn(fetch(transport.clone(), s.uri("/slow-chunks/10/2"))))
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
    }
    let open = || servers.iter().map(TestServer::open).sum::<usize>();
    assert!(open() >= 3);
    // A body still held when the transport goes: its connection closes when it is dropped.
    let held = transport
        .clone()
        .oneshot(get(servers[0].uri("/stall-body")))
        .await
        .unwrap();
    drop(transport);
    assert!(
        eventually(Duration::from_secs(3), || open() == 1).await,
        "{} open",
        open()
    );
    drop(held);
    assert!(
        eventually(Duration::from_secs(3), || open() == 0).await,
        "{} open",
        open()
    );
    assert_eq!(support::wait_tasks_at_most(base).await, base);
    let snap = stats.snapshot();
    assert_eq!((snap.connections_open, snap.connections_idle), (0, 0));
    assert_eq!(
        snap.connections_opened,
        snap.connections_closed(CloseReason::Other) + snap.connections_closed(CloseReason::Error)
    );
}

#[tokio::test]
async fn a_reused_connection_closed_before_the_response_says_so() {
    let server = TestServer::start().await;
    let transport: Plain = Transport::builder().build();
    assert_eq!(fetch(transport.clone(), server.uri("/ok")).await, Ok(2));
    tokio::task::yield_now().await;
    // The server reads the request and closes the connection without answering.
    let err = transport
        .clone()
        .oneshot(get(server.uri("/reset-headers")))
        .await
        .unwrap_err();
    let conn = ConnectionError::find(&*err).expect("a ConnectionError");
    assert!(conn.is_reused());
    assert!(conn.idle_for().is_some());
    assert!(!conn.nothing_written(), "the request was written");
    assert!(!conn.retried());
    assert!(conn.is_closed_by_peer(), "{conn:?}");
    assert!(
        err.to_string()
            .starts_with("reused connection, closed by the peer before the response"),
        "{err}"
    );
    // On a connection made for the request, it says that instead.
    let err = transport
        .clone()
        .oneshot(get(server.uri("/reset-headers")))
        .await
        .unwrap_err();
    let conn = ConnectionError::find(&*err).unwrap();
    assert!(!conn.is_reused() && conn.idle_for().is_none());
    assert!(
        err.to_string()
            .starts_with("new connection, closed by the peer"),
        "{err}"
    );
}

/// A connector whose connections the test can kill from outside without waking them: reads then
/// see the end of the stream and writes fail, as when a server closed an idle connection and
/// the client has not looked yet.
#[derive(Clone, Default)]
struct Killable {
    kills: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    dials: Arc<AtomicUsize>,
    /// Milliseconds each dial waits before connecting.
    slow_ms: Arc<AtomicUsize>,
}

impl Killable {
    fn kill_all(&self) {
        for k in self.kills.lock().unwrap().iter() {
            k.store(true, SeqCst);
        }
    }
}

struct KillableIo {
    inner: TokioIo<TcpStream>,
    dead: Arc<AtomicBool>,
}

impl Service<Uri> for Killable {
    type Response = KillableIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<KillableIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            this.dials.fetch_add(1, SeqCst);
            let slow = this.slow_ms.load(SeqCst) as u64;
            tokio::time::sleep(Duration::from_millis(slow)).await;
            let stream = TcpStream::connect(uri.authority().unwrap().as_str()).await?;
            let dead = Arc::new(AtomicBool::new(false));
            this.kills.lock().unwrap().push(dead.clone());
            Ok(KillableIo {
                inner: TokioIo::new(stream),
                dead,
            })
        })
    }
}

impl hyper::rt::Read for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.dead.load(SeqCst) {
            return Poll::Ready(Ok(())); // end of stream
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.dead.load(SeqCst) {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connection for KillableIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[tokio::test]
async fn a_request_never_written_is_retried_once_on_another_connection() {
    let server = TestServer::start().await;
    let connector = Killable::default();
    let stats = Stats::new();
    let transport: Plain = Transport::builder()
        .stats(stats.clone())
        .build_with_connector(connector.clone());
    for method in [http::Method::GET, http::Method::POST] {
        assert_eq!(fetch(transport.clone(), server.uri("/ok")).await, Ok(2));
        tokio::task::yield_now().await;
        assert_eq!(transport.idle_connections(), 1);
        // The idle connection dies without its task noticing: the pool still hands it out,
        // hyper gives the request back unwritten, and it goes out on a new connection.
        connector.kill_all();
        let before = connector.dials.load(SeqCst);
        let req = Request::builder()
            .method(method.clone())
            .uri(server.uri("/ok"))
            .body(Empty::new())
            .unwrap();
        let resp = transport.clone().oneshot(req).await;
        let resp = resp.unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(connector.dials.load(SeqCst), before + 1, "{method}");
    }
    assert_eq!(server.requests(), 4, "each request reached the server once");
    assert!(stats.snapshot().connections_closed(CloseReason::Error) >= 2);
}

#[tokio::test]
async fn a_retried_request_waits_for_its_new_connection_outside_the_header_clock() {
    let server = TestServer::start().await;
    let connector = Killable::default();
    let transport: Plain = Transport::builder().build_with_connector(connector.clone());
    let client = ServiceBuilder::new()
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_millis(300)))
        .service(transport.clone());
    assert_eq!(fetch(client.clone(), server.uri("/ok")).await, Ok(2));
    tokio::task::yield_now().await;
    // The idle connection dies unnoticed; the retry's dial takes longer than the header
    // timeout, which must not count it.
    connector.kill_all();
    connector.slow_ms.store(600, SeqCst);
    let start = Instant::now();
    assert_eq!(fetch(client.clone(), server.uri("/ok")).await, Ok(2));
    assert!(start.elapsed() >= Duration::from_millis(600));
    assert_eq!(connector.dials.load(SeqCst), 2);
}

#[tokio::test]
async fn a_server_closing_an_idle_connection_is_seen_before_the_next_checkout() {
    let stats = Stats::new();
    let transport: Plain = Transport::builder().stats(stats.clone()).build();
    // The server closes the connection 200 ms into its idleness: the pool drops it then.
    let (addr, _, _) = idle_closing_server(Duration::from_millis(200)).await;
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    assert_eq!(fetch(transport.clone(), uri.clone()).await, Ok(2));
    assert!(eventually(Duration::from_secs(2), || transport.idle_connections() == 0).await);
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Error), 1);
    assert_eq!(fetch(transport.clone(), uri).await, Ok(2));
}

// ---------------------------------------------------------------------------------------------
// HTTP/2

fn h2(stats: &Stats) -> TransportBuilder {
    Transport::builder()
        .protocol(Protocol::Http2)
        .stats(stats.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexes_concurrent_requests_on_one_connection() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let transport: Plain = h2(&stats).build();
    let tasks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(fetch(transport.clone(), server.uri("/slow-chunks/20/3"))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(48));
    }
    assert_eq!(server.accepted(), 1, "one connection for every stream");
    assert!(server.peak_active() > 1, "streams ran at the same time");
    let resp = transport
        .clone()
        .oneshot(get(server.uri("/ok")))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    drop(resp);
    assert!(eventually(Duration::from_secs(2), || transport.idle_connections() == 1).await);
    assert_eq!(stats.snapshot().connections_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http2_stream_fails_by_its_own_phase_while_the_others_go_on() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let transport: Plain = h2(&stats).build();
    let client = ServiceBuilder::new()
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_millis(500)))
        .layer(BodyIdleTimeoutLayer::new(Duration::from_millis(500)))
        .service(transport.clone());
    let stalled_headers = tokio::spawn(fetch(client.clone(), server.uri("/stall-headers")));
    let stalled_body = tokio::spawn(fetch(client.clone(), server.uri("/stall-body")));
    let start = Instant::now();
    let mut ok = 0;
    while start.elapsed() < Duration::from_millis(400) {
        assert_eq!(fetch(client.clone(), server.uri("/ok")).await, Ok(2));
        ok += 1;
    }
    assert!(ok > 10, "the other streams kept going ({ok})");
    assert_eq!(
        stalled_headers.await.unwrap().unwrap_err().0,
        Some(Phase::ResponseHeaders)
    );
    assert_eq!(
        stalled_body.await.unwrap().unwrap_err().0,
        Some(Phase::BodyIdle)
    );
    assert_eq!(fetch(client, server.uri("/ok")).await, Ok(2));
    assert_eq!(
        server.accepted(),
        1,
        "all on one connection, which survived"
    );
}

/// An HTTP/2 server (prior knowledge) with its own settings, counting connections, requests and
/// streams served at once; `goaway_after` requests on a connection, it sends GOAWAY (a graceful
/// shutdown: streams in flight finish, no new ones).
#[derive(Clone, Default)]
struct H2Counts {
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn h2_server(
    max_streams: Option<u32>,
    goaway_after: Option<usize>,
    work: Duration,
) -> (SocketAddr, H2Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = H2Counts::default();
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.accepted.fetch_add(1, SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let on_conn = Arc::new(AtomicUsize::new(0));
                let shutdown = Arc::new(tokio::sync::Notify::new());
                let (c2, on, sd) = (c.clone(), on_conn.clone(), shutdown.clone());
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let c = c2.clone();
                    let n = on.fetch_add(1, SeqCst) + 1;
                    if goaway_after == Some(n) {
                        sd.notify_one();
                    }
                    async move {
                        c.requests.fetch_add(1, SeqCst);
                        let now = c.active.fetch_add(1, SeqCst) + 1;
                        c.peak.fetch_max(now, SeqCst);
                        tokio::time::sleep(work).await;
                        c.active.fetch_sub(1, SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                if let Some(n) = max_streams {
                    builder.max_concurrent_streams(n);
                }
                let conn = builder.serve_connection(TokioIo::new(s), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = shutdown.notified() => conn.as_mut().graceful_shutdown(),
                }
                let _ = conn.await;
            });
        }
    });
    (addr, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_peers_stream_limit_requests_wait_inside_the_deadline_without_errors() {
    let (addr, counts) = h2_server(Some(2), None, Duration::from_millis(200)).await;
    let stats = Stats::new();
    let transport: Plain = h2(&stats).max_conns_per_host(1).build();
    // Each request takes 200 ms: 20 over a limit of 2 take two seconds. A header timeout of 1 s
    // shows where they wait: in the pool (bounded by the deadline, not counted as
    // ResponseHeaders), never in a queue inside the connection, where the header clock runs
    // (the later ones would wait there up to 1.8 s). The 800 ms of slack is for a loaded
    // machine: at 100 ms and 400 ms it failed about 1 run in 3 while other builds ran.
    let client = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(1)))
        .service(transport.clone());
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    // Learn the limit first (the peer's SETTINGS), then a burst well over it.
    assert_eq!(fetch(client.clone(), uri.clone()).await, Ok(2));
    let tasks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(fetch(client.clone(), uri.clone())))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(2), "no protocol error, no timeout");
    }
    assert_eq!(counts.accepted.load(SeqCst), 1);
    assert!(
        counts.peak.load(SeqCst) <= 2,
        "peak {}",
        counts.peak.load(SeqCst)
    );
    assert_eq!(counts.requests.load(SeqCst), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_mid_traffic_sends_new_requests_to_a_new_connection() {
    let (addr, counts) = h2_server(None, Some(10), Duration::from_millis(50)).await;
    let stats = Stats::new();
    let transport: Plain = h2(&stats).build();
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let mut failures = Vec::new();
    for _ in 0..6 {
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(fetch(transport.clone(), uri.clone())))
            .collect();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                failures.push(e);
            }
        }
    }
    assert!(
        counts.accepted.load(SeqCst) >= 2,
        "a new connection after the GOAWAY"
    );
    // Streams the server had not taken before its GOAWAY are refused: those fail, typed by
    // hyper, never hang; everything after goes to the new connections.
    for (phase, text) in &failures {
        assert_eq!(*phase, None);
        assert!(!text.is_empty());
    }
    assert!(failures.len() <= 8, "{failures:?}");
    assert_eq!(fetch(transport.clone(), uri).await, Ok(2));
}

/// A TCP proxy that forwards until told to freeze: then the connections it holds stop
/// forwarding in both directions, without closing (a half-open peer). New connections forward.
#[derive(Clone, Default)]
struct FreezingProxy {
    frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl FreezingProxy {
    async fn start(upstream: SocketAddr) -> (SocketAddr, FreezingProxy) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = FreezingProxy::default();
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.unwrap();
                let flag = Arc::new(AtomicBool::new(false));
                p.frozen.lock().unwrap().push(flag.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, flag.clone()));
                tokio::spawn(pump(sr, cw, flag));
            }
        });
        (addr, proxy)
    }

    fn freeze(&self) {
        for f in self.frozen.lock().unwrap().iter() {
            f.store(true, SeqCst);
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(SeqCst) {
            // Hold both sockets open, forward nothing more.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pings_close_a_half_open_connection_instead_of_stalling_its_streams() {
    let server = TestServer::start().await;
    let (addr, proxy) = FreezingProxy::start(server.addr).await;
    let stats = Stats::new();
    let transport: Plain = h2(&stats)
        .http2_keep_alive_interval(Duration::from_millis(200))
        .http2_keep_alive_timeout(Duration::from_millis(300))
        .build();
    let client = ServiceBuilder::new()
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
        .service(transport.clone());
    let uri = |p: &str| -> Uri { format!("http://{addr}{p}").parse().unwrap() };
    assert_eq!(fetch(client.clone(), uri("/ok")).await, Ok(2));
    proxy.freeze();
    // A request on the frozen connection: the PING goes unanswered, the connection is closed
    // and the stream fails, long before the 10 s header timeout.
    let start = Instant::now();
    let (phase, text) = fetch(client.clone(), uri("/ok")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(phase, None, "a connection error, not a timeout: {text}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {text}");
    assert!(
        eventually(Duration::from_secs(2), || transport
            .open_connections(&uri("/"))
            == 0)
        .await
    );
    // The next request gets a new connection through the proxy.
    assert_eq!(fetch(client.clone(), uri("/ok")).await, Ok(2));
    // An idle connection behind a frozen proxy is found out as well.
    proxy.freeze();
    let closed = stats.snapshot().connections_closed(CloseReason::Error);
    assert!(
        eventually(Duration::from_secs(3), || {
            stats.snapshot().connections_closed(CloseReason::Error) > closed
        })
        .await,
        "the idle half-open connection was not closed"
    );
    assert_eq!(transport.idle_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_mode_speaks_what_tls_negotiated() {
    let (server_cfg, client_cfg) = support::tls_configs();
    for (h2, want) in [(true, Version::HTTP_2), (false, Version::HTTP_11)] {
        let server = TestServer::start_tls(server_cfg.clone()).await;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_cfg.clone())
            .https_only()
            .enable_http1();
        let connector = if h2 {
            b.enable_http2().wrap_connector(tcp)
        } else {
            b.wrap_connector(tcp)
        };
        let transport: Plain = Transport::builder().build_with_connector(connector);
        let burst = || {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (t, uri) = (transport.clone(), server.https_uri("/slow-chunks/20/2"));
                    tokio::spawn(async move {
                        let resp = t.oneshot(get(uri)).await.unwrap();
                        let v = resp.version();
                        resp.into_body().collect().await.unwrap();
                        v
                    })
                })
                .collect::<Vec<_>>();
            async move {
                for t in tasks {
                    assert_eq!(t.await.unwrap(), want);
                }
            }
        };
        burst().await;
        let after_first = server.accepted();
        assert!((1..=8).contains(&after_first));
        burst().await;
        assert_eq!(server.accepted(), after_first, "the second burst reuses");
    }
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_at_construction() {
    let cases: Vec<(&str, fn())> = vec![
        ("max_conns_per_host must be at least 1", || {
            drop(Transport::builder().max_conns_per_host(0))
        }),
        ("connect_timeout must be greater than zero", || {
            drop(Transport::builder().connect_timeout(Duration::ZERO))
        }),
        ("http2_keep_alive_timeout must be greater than zero", || {
            drop(Transport::builder().http2_keep_alive_timeout(Duration::ZERO))
        }),
        ("max_waiters_per_host must be at least 1", || {
            drop(Transport::builder().max_waiters_per_host(0))
        }),
    ];
    for (want, f) in cases {
        let err = std::panic::catch_unwind(f).unwrap_err();
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(msg.starts_with("tower-hardened: "), "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
    // An https URI on the default (plain) connector fails the request, it does not hang.
    let transport: Plain = Transport::builder().build();
    let err = transport
        .oneshot(get("https://127.0.0.1:1/".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    let _ = HttpConnector::new();
}

// ---------------------------------------------------------------------------------------------
// Write stalls

#[tokio::test]
async fn a_peer_that_never_reads_fails_the_upload_as_request_write_and_frees_its_connection() {
    // Accepts, never reads; once told, reads what is left to learn whether the client closed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tell, told) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        told.await.unwrap();
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut sink))
            .await
            .map(|r| r.is_ok())
    });
    let stats = Stats::new();
    let limit = Duration::from_millis(400);
    let transport = Transport::builder()
        .write_stall_timeout(limit)
        .stats(stats.clone())
        .build::<Full<Bytes>>();
    let uri: Uri = format!("http://{addr}/upload").parse().unwrap();
    // Far more than the kernel's socket buffers on both sides hold.
    let body = Full::new(Bytes::from(vec![0u8; 64 << 20]));
    let start = Instant::now();
    let sent = transport
        .clone()
        .oneshot(Request::post(uri.clone()).body(body).unwrap());
    let err = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .expect("the stalled upload fails, it does not hang")
        .unwrap_err();
    let took = start.elapsed();
    let ours = Error::find(&*err).expect("a typed error");
    assert_eq!(ours.phase(), Some(Phase::RequestWrite), "{err}");
    assert!(ConnectionError::find(&*err).is_some(), "{err}");
    assert!(took >= limit && took < limit * 5, "{took:?}");
    // The connection is gone: not in the pool, counted closed, and the server sees its end.
    assert!(
        eventually(Duration::from_secs(2), || transport.open_connections(&uri)
            == 0)
        .await
    );
    assert!(
        eventually(Duration::from_secs(2), || stats.snapshot().connections_open
            == 0)
        .await
    );
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Error), 1);
    tell.send(()).unwrap();
    assert_eq!(
        server.await.unwrap(),
        Ok(true),
        "the server read to the end of the stream: the client closed it"
    );
}

#[test]
fn a_zero_write_stall_timeout_is_refused_at_construction() {
    let err =
        std::panic::catch_unwind(|| drop(Transport::builder().write_stall_timeout(Duration::ZERO)))
            .unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(
        msg.starts_with("tower-hardened: write_stall_timeout must be greater than zero"),
        "{msg}"
    );
}
