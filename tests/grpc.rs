//! `Hardened::grpc_layer` and `Hardened::grpc_connector` with a real tonic client and a real
//! tonic server over HTTP/2 on loopback. The server implements tonic-health's generated `Health`
//! service (no protoc) and misbehaves on purpose, by the `service` name asked for:
//!
//! - `ok`: `SERVING` at once; `stall`: never answers; `slow/MS`: answers after MS;
//!   `not-found`: the server's own `NotFound` status;
//! - `watch("stall-after-one")`: one update, then nothing, forever; `watch("drip/MS")`: an
//!   update every MS, forever.
//!
//! The server counts connections (accepted, open), calls being served (a call counts until the
//! server drops it: its stream ended or was reset by the client) and the `grpc-timeout` headers
//! it received. It runs on a runtime and thread of its own (`support::apart`), so the test
//! runtime's live tasks are the client's alone. Every test checks that nothing is left: the
//! preset's stats and limiters at zero, no call still served, and (where it matters) the live
//! tasks back to the count before the client existed.
//!
//! Limits are small (a few hundred ms) so the file runs in seconds; bounds on real time are
//! generous (the machine is loaded), exact ones live in the unit tests.
#![cfg(feature = "tonic")]

use tower_hardened_test_server as support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::Stream;
use tonic::transport::Endpoint;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_hardened::{Error, Hardened, HardenedGrpc, Phase, RequestBudget, RequestDeadline};
use tower_layer::Layer;

use support::{apart, eventually, hanging_listener, live_tasks, wait_tasks_at_most};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- the misbehaving server ----

/// What the server saw.
#[derive(Default, Debug)]
struct Seen {
    accepted: AtomicUsize,
    open: AtomicUsize,
    calls: AtomicUsize,
    active: AtomicUsize,
    peak_active: AtomicUsize,
    grpc_timeouts: Mutex<Vec<String>>,
}

/// Counts a call as served from its start until the server drops it.
struct Active(Arc<Seen>);

impl Active {
    fn start(seen: &Arc<Seen>) -> Active {
        seen.calls.fetch_add(1, SeqCst);
        let now = seen.active.fetch_add(1, SeqCst) + 1;
        seen.peak_active.fetch_max(now, SeqCst);
        Active(seen.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

struct Misbehaving(Arc<Seen>);

impl Misbehaving {
    fn record(&self, req: &tonic::Request<HealthCheckRequest>) {
        if let Some(v) = req.metadata().get("grpc-timeout") {
            let v = v.to_str().unwrap().to_owned();
            self.0.grpc_timeouts.lock().unwrap().push(v);
        }
    }
}

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Misbehaving {
    async fn check(
        &self,
        req: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        let _active = Active::start(&self.0);
        self.record(&req);
        let service = req.into_inner().service;
        match service.split('/').collect::<Vec<_>>().as_slice() {
            ["ok"] => {}
            ["stall"] => std::future::pending::<()>().await,
            ["slow", n] => tokio::time::sleep(ms(n.parse().unwrap())).await,
            ["not-found"] => return Err(Status::not_found("no such service here")),
            other => return Err(Status::invalid_argument(format!("{other:?}"))),
        }
        Ok(tonic::Response::new(serving()))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<WatchStream>, Status> {
        self.record(&req);
        let active = Active::start(&self.0);
        let service = req.into_inner().service;
        let every = match service.split('/').collect::<Vec<_>>().as_slice() {
            ["stall-after-one"] => None,
            ["drip", n] => Some(ms(n.parse().unwrap())),
            other => return Err(Status::invalid_argument(format!("{other:?}"))),
        };
        Ok(tonic::Response::new(Box::pin(Updates {
            _active: active,
            every,
            sent: 0,
            sleep: None,
        })))
    }
}

/// The `watch` stream: one update at once, then one every `every` (or none, forever).
struct Updates {
    _active: Active,
    every: Option<Duration>,
    sent: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for Updates {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.sent > 0 {
            let Some(every) = self.every else {
                return Poll::Pending;
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        self.sent += 1;
        Poll::Ready(Some(Ok(serving())))
    }
}

/// A TCP connection that counts itself open until dropped.
struct Counted {
    io: TcpStream,
    seen: Arc<Seen>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.seen.open.fetch_sub(1, SeqCst);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The listener as the stream of connections tonic's server takes.
struct Incoming {
    listener: TcpListener,
    seen: Arc<Seen>,
}

impl Stream for Incoming {
    type Item = std::io::Result<Counted>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.listener.poll_accept(cx) {
            Poll::Ready(Ok((io, _))) => {
                let _ = io.set_nodelay(true);
                self.seen.accepted.fetch_add(1, SeqCst);
                self.seen.open.fetch_add(1, SeqCst);
                Poll::Ready(Some(Ok(Counted {
                    io,
                    seen: self.seen.clone(),
                })))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The misbehaving tonic server, on a runtime and thread of its own.
struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Server {
    async fn start() -> Server {
        apart(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Seen::default());
            let incoming = Incoming {
                listener,
                seen: seen.clone(),
            };
            let svc = HealthServer::new(Misbehaving(seen.clone()));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(incoming),
            );
            Server { addr, seen }
        })
        .await
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn active(&self) -> usize {
        self.seen.active.load(SeqCst)
    }

    fn grpc_timeouts(&self) -> Vec<String> {
        self.seen.grpc_timeouts.lock().unwrap().clone()
    }

    /// Waits up to 3 s for no call to be served any more.
    async fn idle(&self) -> bool {
        eventually(Duration::from_secs(3), || self.active() == 0).await
    }
}

// ---- the client ----

type Channel = HardenedGrpc<tonic::transport::Channel>;

/// The preset with the small limits of this file.
fn preset() -> Hardened {
    Hardened::new()
        .total(ms(3000))
        .connect(ms(300))
        .tls_handshake(ms(300))
        .response_headers(ms(300))
        .body_idle(ms(300))
        .request_write(ms(300))
        .acquire_timeout(ms(2000))
}

fn channel(hardened: &Hardened, uri: &str) -> Channel {
    let channel = Endpoint::from_shared(uri.to_owned())
        .unwrap()
        .connect_with_connector_lazy(hardened.grpc_connector());
    hardened.grpc_layer().layer(channel)
}

fn client(hardened: &Hardened, uri: &str) -> HealthClient<Channel> {
    HealthClient::new(channel(hardened, uri))
}

/// Waits (at most 100 ms) for the channel to be ready: it must be, at once and without error.
async fn ready_at_once(channel: &mut Channel) {
    use tower::ServiceExt;
    let ready = ServiceExt::<http::Request<tonic::body::Body>>::ready(channel);
    tokio::time::timeout(ms(100), ready)
        .await
        .expect("ready at once")
        .expect("ready without an error");
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

/// The status is ours: code, message (our Display) and our error as its source.
fn assert_ours(status: &Status, code: Code, phase: Option<Phase>) -> &Error {
    assert_eq!(status.code(), code, "{status:?}");
    let ours = Error::find(status).unwrap_or_else(|| panic!("our error in {status:?}"));
    assert_eq!(ours.phase(), phase, "{status:?}");
    assert_eq!(status.message(), ours.to_string());
    ours
}

/// Nothing in flight or waiting, in the stats and in both limiters.
fn assert_nothing_held(hardened: &Hardened) {
    let snap = hardened.stats_handle().snapshot();
    assert_eq!(snap.in_flight, 0, "{snap:?}");
    assert_eq!(snap.waiting, 0, "{snap:?}");
    let global = hardened.limit_handle();
    assert_eq!(global.in_flight(), 0);
    assert_eq!(global.waiting(), 0);
    assert_eq!(hardened.per_host_handle().hosts(), 0);
}

fn assert_took(took: Duration, limit: Duration, what: &str) {
    assert!(took >= limit, "{what}: fired early, after {took:?}");
    assert!(
        took < limit + Duration::from_secs(2),
        "{what}: fired late, after {took:?}"
    );
}

// ---- the tests ----

#[tokio::test]
async fn a_unary_call_works_and_a_status_of_the_server_passes_through() {
    let server = Server::start().await;
    let hardened = preset();
    let mut client = client(&hardened, &server.uri());
    let resp = client.check(ask("ok")).await.unwrap().into_inner();
    assert_eq!(resp.status(), ServingStatus::Serving);

    let status = client.check(ask("not-found")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such service here");
    assert!(Error::find(&status).is_none());
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn a_stalled_unary_call_is_deadline_exceeded_at_the_header_limit() {
    let server = Server::start().await;
    let hardened = preset();
    let mut client = client(&hardened, &server.uri());
    client.check(ask("ok")).await.unwrap(); // connected: the clock is the header one alone

    let start = Instant::now();
    let status = client.check(ask("stall")).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "response headers");
    let ours = assert_ours(
        &status,
        Code::DeadlineExceeded,
        Some(Phase::ResponseHeaders),
    );
    assert_eq!(ours.limit(), Some(ms(300)));
    assert_eq!(status.message(), "no response headers within 300ms");

    // The stream was reset: the server dropped the call; nothing is held here.
    assert!(
        server.idle().await,
        "{} calls still served",
        server.active()
    );
    assert_nothing_held(&hardened);
    assert_eq!(
        hardened
            .stats_handle()
            .snapshot()
            .timeouts(Phase::ResponseHeaders),
        1
    );
}

#[tokio::test]
async fn a_watch_that_stalls_mid_stream_is_deadline_exceeded_at_the_body_idle_limit() {
    let server = Server::start().await;
    let hardened = preset();
    let mut client = client(&hardened, &server.uri());

    let mut updates = client
        .watch(ask("stall-after-one"))
        .await
        .unwrap()
        .into_inner();
    let first = updates.message().await.unwrap().expect("one update");
    assert_eq!(first.status(), ServingStatus::Serving);
    assert_eq!(hardened.limit_handle().in_flight(), 1, "held by the stream");

    let start = Instant::now();
    let status = updates.message().await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "body idle");
    assert_ours(&status, Code::DeadlineExceeded, Some(Phase::BodyIdle));
    assert_eq!(status.message(), "no response body data for 300ms");

    drop(updates);
    assert!(
        server.idle().await,
        "{} calls still served",
        server.active()
    );
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn a_watch_is_cut_at_the_total_and_a_request_budget_gives_it_longer() {
    let server = Server::start().await;
    // Updates every 50 ms: never idle; only the total can end the stream.
    let hardened = preset().total(ms(600));
    let mut client = client(&hardened, &server.uri());

    let start = Instant::now();
    let mut updates = client.watch(ask("drip/50")).await.unwrap().into_inner();
    let status = loop {
        match updates.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream never ends by itself"),
            Err(status) => break status,
        }
    };
    assert_took(start.elapsed(), ms(600), "total");
    assert_ours(&status, Code::DeadlineExceeded, Some(Phase::Total));
    assert_eq!(status.message(), "request deadline of 600ms exceeded");
    drop(updates);

    // The same watch with a budget of its own lives past the preset's total.
    let mut req = tonic::Request::new(ask("drip/50"));
    req.extensions_mut()
        .insert(RequestBudget::new(Duration::from_secs(60)));
    let start = Instant::now();
    let mut updates = client.watch(req).await.unwrap().into_inner();
    let mut n = 0;
    while start.elapsed() < ms(1200) {
        updates.message().await.unwrap().expect("an update");
        n += 1;
    }
    assert!(n >= 10, "{n} updates in 1.2 s");
    drop(updates);
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
    let sent = server.grpc_timeouts();
    let budget = RequestDeadline::parse_grpc_timeout(sent.last().unwrap()).unwrap();
    assert!(
        budget > Duration::from_secs(59) && budget <= Duration::from_secs(60),
        "{sent:?}"
    );
}

#[tokio::test]
async fn the_server_receives_a_grpc_timeout_no_larger_than_the_deadline_left() {
    let server = Server::start().await;
    let total = ms(3000);
    let hardened = preset().total(total);
    let mut client = client(&hardened, &server.uri());

    // The preset's own deadline.
    client.check(ask("ok")).await.unwrap();
    // The caller's shorter one (tonic's `set_timeout`) is kept, and is what is sent.
    let mut shorter = tonic::Request::new(ask("ok"));
    shorter.set_timeout(ms(800));
    client.check(shorter).await.unwrap();
    // A longer one is not: the preset's total is sent.
    let mut longer = tonic::Request::new(ask("ok"));
    longer.set_timeout(Duration::from_secs(60));
    client.check(longer).await.unwrap();

    let sent: Vec<Duration> = server
        .grpc_timeouts()
        .iter()
        .map(|v| RequestDeadline::parse_grpc_timeout(v).unwrap_or_else(|| panic!("{v}")))
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    // No larger than what was left when the request went out; not much smaller either (a
    // loaded machine: 1 s of slack).
    for (got, limit) in sent.iter().zip([total, ms(800), total]) {
        assert!(*got <= limit, "sent {got:?}, deadline {limit:?}");
        assert!(*got + Duration::from_secs(1) > limit, "sent {got:?}");
    }

    // A caller's shorter `set_timeout` is also the deadline this side keeps.
    let mut req = tonic::Request::new(ask("stall"));
    req.set_timeout(ms(200));
    let start = Instant::now();
    let status = client.check(req).await.unwrap_err();
    assert_took(start.elapsed(), ms(200), "the caller's grpc-timeout");
    assert_ours(&status, Code::DeadlineExceeded, Some(Phase::Total));
    assert_eq!(status.message(), "request deadline of 200ms exceeded");
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn many_concurrent_calls_share_one_connection_under_both_limits() {
    // Each limit in turn the tighter one: the server never sees more calls at once than it.
    for (global, per_host) in [(6, 4), (3, 8)] {
        let server = Server::start().await;
        let hardened = preset()
            .max_in_flight(global)
            .max_requests_per_host(per_host)
            .max_waiting(64);
        let limit = global.min(per_host);
        let tasks_before = live_tasks().unwrap();
        let client = client(&hardened, &server.uri());

        let calls: Vec<_> = (0..40)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move { client.check(ask("slow/30")).await })
            })
            .collect();
        for call in calls {
            let resp = call.await.unwrap().unwrap().into_inner();
            assert_eq!(resp.status(), ServingStatus::Serving);
        }
        assert_eq!(server.seen.calls.load(SeqCst), 40);
        let peak = server.seen.peak_active.load(SeqCst);
        assert!(
            peak <= limit,
            "{peak} calls at once at the server, limit {limit}"
        );
        assert!(peak >= 2, "the calls were not concurrent at all ({peak})");
        assert_eq!(
            server.seen.accepted.load(SeqCst),
            1,
            "one HTTP/2 connection"
        );
        assert_nothing_held(&hardened);
        let stats = hardened.stats_handle();
        assert_eq!(stats.snapshot().connections_open, 1);

        // The client and the preset gone (the preset's drain layer keeps a held-body sweeper
        // task while it lives), the connection closes and every task of the client ends.
        drop((client, hardened));
        assert!(
            eventually(Duration::from_secs(3), || server.seen.open.load(SeqCst)
                == 0)
            .await,
            "the connection is still open at the server"
        );
        assert_eq!(stats.snapshot().connections_open, 0);
        let left = wait_tasks_at_most(tasks_before).await;
        assert!(
            left <= tasks_before,
            "{left} live tasks, {tasks_before} before"
        );
    }
}

#[tokio::test]
async fn poll_ready_never_fails_and_never_waits() {
    let server = Server::start().await;
    let hardened = preset().max_in_flight(1).max_waiting(0);
    let mut svc = channel(&hardened, &server.uri());
    let mut client = HealthClient::new(svc.clone());
    let stalled = {
        let mut client = client.clone();
        tokio::spawn(async move { client.check(ask("stall")).await })
    };
    assert!(eventually(Duration::from_secs(2), || server.active() == 1).await);

    // Every permit is taken and the queue is zero, yet readiness is immediate and fine: the
    // refusal comes from the call, as ResourceExhausted, not from poll_ready as Unknown.
    ready_at_once(&mut svc).await;
    let status = client.check(ask("ok")).await.unwrap_err();
    assert_ours(&status, Code::ResourceExhausted, Some(Phase::Acquire));

    // Nobody listens at all: still ready; the call fails as Unavailable.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut svc = channel(&preset(), &format!("http://{addr}"));
    ready_at_once(&mut svc).await;
    let mut nobody = HealthClient::new(svc);
    let status = nobody.check(ask("ok")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let status = stalled.await.unwrap().unwrap_err();
    assert_ours(
        &status,
        Code::DeadlineExceeded,
        Some(Phase::ResponseHeaders),
    );
}

// ---- one test per row of the code table ----

#[tokio::test]
async fn code_total_is_deadline_exceeded() {
    let server = Server::start().await;
    let hardened = preset()
        .total(ms(300))
        .response_headers(Duration::from_secs(10));
    let mut client = client(&hardened, &server.uri());
    let start = Instant::now();
    let status = client.check(ask("stall")).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "total");
    assert_ours(&status, Code::DeadlineExceeded, Some(Phase::Total));
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn code_request_write_is_deadline_exceeded() {
    // An HTTP/2 server that never reads a request body, with 64 KiB windows: an upload larger
    // than that stalls once the window is used up.
    let addr = apart(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((io, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req| async move {
                        let _hold = req;
                        std::future::pending::<()>().await;
                        Ok::<http::Response<String>, std::convert::Infallible>(
                            http::Response::default(),
                        )
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .initial_stream_window_size(65_535)
                    .initial_connection_window_size(65_535)
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
                });
            }
        });
        addr
    })
    .await;
    let hardened = preset();
    let mut client = client(&hardened, &format!("http://{addr}"));
    let big = "x".repeat(1 << 20);
    let start = Instant::now();
    let status = client.check(ask(&big)).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "request write");
    assert_ours(&status, Code::DeadlineExceeded, Some(Phase::RequestWrite));
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn code_connect_is_unavailable() {
    let hanging = hanging_listener().await;
    let hardened = preset();
    let mut client = client(&hardened, &format!("http://{}", hanging.addr));
    let start = Instant::now();
    let status = client.check(ask("ok")).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "connect");
    assert_ours(&status, Code::Unavailable, Some(Phase::Connect));
    assert_eq!(
        status.message(),
        "connect (DNS + TCP) not done within 300ms"
    );
    assert_nothing_held(&hardened);
    assert_eq!(
        hardened.stats_handle().snapshot().timeouts(Phase::Connect),
        1
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn code_tls_handshake_is_unavailable() {
    let (addr, _counters) = support::silent_listener_apart().await;
    let hardened = preset();
    let mut client = client(&hardened, &format!("https://{addr}"));
    let start = Instant::now();
    let status = client.check(ask("ok")).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "TLS handshake");
    assert_ours(&status, Code::Unavailable, Some(Phase::TlsHandshake));
    assert_eq!(status.message(), "TLS handshake not done within 300ms");
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn code_overloaded_is_resource_exhausted() {
    let server = Server::start().await;
    let hardened = preset().max_in_flight(1).max_waiting(0);
    let mut client = client(&hardened, &server.uri());
    let mut first = client.clone();
    let stalled = tokio::spawn(async move { first.check(ask("stall")).await });
    assert!(eventually(Duration::from_secs(2), || server.active() == 1).await);

    let start = Instant::now();
    let status = client.check(ask("ok")).await.unwrap_err();
    assert!(start.elapsed() < ms(250), "refused at once");
    let ours = assert_ours(&status, Code::ResourceExhausted, Some(Phase::Acquire));
    assert!(ours.is_overloaded());
    stalled.await.unwrap().unwrap_err();
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn code_acquire_timeout_is_resource_exhausted() {
    let server = Server::start().await;
    let hardened = preset()
        .max_in_flight(1)
        .acquire_timeout(ms(150))
        .response_headers(ms(800));
    let mut client = client(&hardened, &server.uri());
    let mut first = client.clone();
    let stalled = tokio::spawn(async move { first.check(ask("stall")).await });
    assert!(eventually(Duration::from_secs(2), || server.active() == 1).await);

    let start = Instant::now();
    let status = client.check(ask("ok")).await.unwrap_err();
    assert_took(start.elapsed(), ms(150), "acquire");
    let ours = assert_ours(&status, Code::ResourceExhausted, Some(Phase::Acquire));
    assert!(ours.is_timeout());
    assert_eq!(status.message(), "no permit or connection within 150ms");
    stalled.await.unwrap().unwrap_err();
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn code_body_too_large_is_resource_exhausted() {
    let server = Server::start().await;
    // A gRPC message is a 5-byte prefix and the message: SERVING is 7 bytes in all.
    let hardened = preset().max_response_body(4);
    let mut client = client(&hardened, &server.uri());
    let status = client.check(ask("ok")).await.unwrap_err();
    assert_ours(&status, Code::ResourceExhausted, None);
    assert_eq!(status.message(), "response body longer than 4 bytes");
    assert!(server.idle().await);
    assert_nothing_held(&hardened);
}
