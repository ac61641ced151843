//! Unit tests under paused time: the connector alone with a fake IO, and hyper-util's real
//! legacy client over in-memory connections to a real hyper server, so every timing is exact.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::time::{advance, Instant, Sleep};
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::stats::{CloseReason, Stats};
use crate::test_util::{assert_clone, assert_send_sync, phase_of};
use crate::{BoxError, Phase};

// ---------------------------------------------------------------------------------------------
// An in-memory transport to a real hyper server, so hyper-util's client runs under paused time.

#[derive(Default, Debug)]
struct ServerCounts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicUsize,
}

struct OpenGuard(Arc<ServerCounts>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, SeqCst);
    }
}

/// A connector whose every "dial" is a duplex pipe with a hyper HTTP/1 server on the far end.
#[derive(Clone, Default)]
struct MemConnector {
    counts: Arc<ServerCounts>,
}

impl MemConnector {
    fn open(&self) -> usize {
        self.counts.open.load(SeqCst)
    }
    fn accepted(&self) -> usize {
        self.counts.accepted.load(SeqCst)
    }
    fn peak(&self) -> usize {
        self.counts.peak.load(SeqCst)
    }
    /// Lets the connection tasks on both ends run (no time passes).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }
}

struct MemIo(TokioIo<DuplexStream>);

impl Read for MemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for MemIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for MemIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Service<Uri> for MemConnector {
    type Response = MemIo;
    type Error = io::Error;
    type Future = std::future::Ready<Result<MemIo, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let c = self.counts.clone();
        c.accepted.fetch_add(1, SeqCst);
        let now = c.open.fetch_add(1, SeqCst) + 1;
        c.peak.fetch_max(now, SeqCst);
        let guard = OpenGuard(c.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let svc = hyper::service::service_fn(move |req| {
                c.requests.fetch_add(1, SeqCst);
                handle(req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), svc)
                .await;
        });
        std::future::ready(Ok(MemIo(TokioIo::new(client))))
    }
}

/// `/ok`; `/hold/MS` answers after MS; `/slow/MS/N` sends N chunks, one every MS.
async fn handle(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let parts: Vec<u64> = req
        .uri()
        .path()
        .split('/')
        .filter_map(|s| s.parse().ok())
        .collect();
    if req.uri().path() == "/close" {
        // The connection ends with this response: hyper's connection task drops the IO in the
        // same poll that hands the response over.
        let mut resp = Response::new(Full::new(Bytes::new()).boxed());
        resp.headers_mut()
            .insert(http::header::CONNECTION, "close".parse().unwrap());
        return Ok(resp);
    }
    let body = if req.uri().path().starts_with("/hold") {
        tokio::time::sleep(Duration::from_millis(parts[0])).await;
        Full::new(Bytes::from("ok")).boxed()
    } else if req.uri().path().starts_with("/slow") {
        SlowBody {
            every: Duration::from_millis(parts[0]),
            left: parts[1],
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(parts[0]))),
        }
        .boxed()
    } else {
        Full::new(Bytes::from("ok")).boxed()
    };
    Ok(Response::new(body))
}

struct SlowBody {
    every: Duration,
    left: u64,
    sleep: Pin<Box<Sleep>>,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.left -= 1;
        let next = Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk")))))
    }
}

type Client = PoolClient<MemConnector, Empty<Bytes>>;

fn uri(path: &str) -> Uri {
    format!("http://mem.test{path}").parse().unwrap()
}

async fn get(client: &Client, path: &str) -> Result<(ConnectionInfo, usize), BoxError> {
    let resp = client
        .clone()
        .oneshot(Request::get(uri(path)).body(Empty::new()).unwrap())
        .await?;
    let info = resp
        .extensions()
        .get::<ConnectionInfo>()
        .expect("tagged")
        .clone();
    let n = resp.into_body().collect().await?.to_bytes().len();
    Ok((info, n))
}

// ---------------------------------------------------------------------------------------------
// The connector alone.

/// A connection that never reads or writes anything.
struct FakeIo;

impl Read for FakeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl Write for FakeIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Connection for FakeIo {
    fn connected(&self) -> Connected {
        Connected::new().proxy(true)
    }
}

fn fake_connector(
    fail: bool,
) -> impl Service<Uri, Response = FakeIo, Error = io::Error, Future = impl Future + Send> + Clone {
    tower::service_fn(move |_: Uri| async move {
        if fail {
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
        } else {
            Ok(FakeIo)
        }
    })
}

fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(f).poll(&mut cx)
}

#[test]
fn public_types_are_send_sync_clone() {
    assert_send_sync::<PoolConnectorLayer>();
    assert_send_sync::<PoolConnector<MemConnector>>();
    assert_send_sync::<PoolConnectFuture<MemConnector, std::future::Ready<Result<MemIo, io::Error>>>>(
    );
    assert_send_sync::<PoolIo<MemIo>>();
    assert_send_sync::<ConnectionInfo>();
    assert_send_sync::<RetireLayer>();
    assert_send_sync::<Retire<Client>>();
    assert_send_sync::<PoolClientBuilder>();
    assert_clone::<PoolConnector<MemConnector>>();
    assert_clone::<Client>();
    assert_clone::<PoolClientBuilder>();
    assert_clone::<ConnectionInfo>();
}

#[tokio::test(start_paused = true)]
async fn a_dial_over_the_cap_fails_at_the_acquire_timeout_not_before() {
    let stats = Stats::new();
    let layer = PoolConnectorLayer::new()
        .max_conns_per_host(2)
        .acquire_timeout(Duration::from_secs(5))
        .stats(stats.clone());
    let mut svc = layer.layer(fake_connector(false));
    let dst = uri("/");
    let a = svc.ready().await.unwrap().call(dst.clone()).await.unwrap();
    let b = svc.ready().await.unwrap().call(dst.clone()).await.unwrap();
    assert_eq!(layer.open_connections(&dst), 2);
    assert_eq!(a.info().id() + 1, b.info().id());

    let mut third = Box::pin(svc.ready().await.unwrap().call(dst.clone()));
    assert!(poll_now(&mut third).is_pending());
    advance(Duration::from_millis(4999)).await;
    assert!(poll_now(&mut third).is_pending(), "1 ms early");
    advance(Duration::from_millis(1)).await;
    let err = match poll_now(&mut third) {
        Poll::Ready(Err(e)) => e,
        other => panic!(
            "expected the acquire timeout, got {:?}",
            other.map(|r| r.is_ok())
        ),
    };
    assert_eq!(phase_of(&err), Some(Phase::Acquire));
    assert_eq!(err.to_string(), "no permit or connection within 5s");
    assert_eq!(stats.snapshot().timeouts(Phase::Acquire), 1);
    assert_eq!(
        layer.open_connections(&dst),
        2,
        "the failed dial holds nothing"
    );
    let snap = stats.snapshot();
    assert_eq!((snap.connections_opened, snap.connections_open), (2, 2));
    drop((a, b));
    assert_eq!(stats.snapshot().connections_open, 0);
    assert!(layer.open_per_host().is_empty(), "host state reclaimed");
}

#[tokio::test(start_paused = true)]
async fn a_closed_connection_lets_a_waiting_dial_through_and_hosts_are_separate() {
    let layer = PoolConnectorLayer::new().max_conns_per_host(1);
    let mut svc = layer.layer(fake_connector(false));
    let a = svc.ready().await.unwrap().call(uri("/")).await.unwrap();
    // Another scheme and authority has its own cap.
    let other = svc
        .ready()
        .await
        .unwrap()
        .call("https://mem.test/".parse().unwrap())
        .await
        .unwrap();
    let mut waiting = Box::pin(svc.ready().await.unwrap().call(uri("/")));
    assert!(poll_now(&mut waiting).is_pending());
    advance(Duration::from_secs(10)).await;
    assert!(poll_now(&mut waiting).is_pending());
    drop(a);
    let b = match poll_now(&mut waiting) {
        Poll::Ready(Ok(io)) => io,
        _ => panic!("the freed permit goes to the waiting dial"),
    };
    // The inner connection's metadata is kept and our tag added.
    let connected = b.connected();
    assert!(connected.is_proxied());
    assert_eq!(ConnectionInfo::of(&connected).unwrap().id(), b.info().id());
    let mut hosts = layer.open_per_host();
    hosts.sort_by_key(|h| h.0.to_string());
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0].2, 1);
    assert_eq!(hosts[1].2, 1);
    drop((b, other));
    assert!(layer.open_per_host().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_dial_gives_its_permit_back() {
    let stats = Stats::new();
    let layer = PoolConnectorLayer::new()
        .max_conns_per_host(1)
        .stats(stats.clone());
    let mut svc = layer.layer(fake_connector(true));
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(uri("/")).await.unwrap_err();
        assert_eq!(err.to_string(), "refused");
    }
    assert!(layer.open_per_host().is_empty());
    assert_eq!(stats.snapshot().connections_opened, 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_cap_connections_are_only_counted() {
    let layer = PoolConnectorLayer::new();
    let mut svc = layer.layer(fake_connector(false));
    let mut all = Vec::new();
    for _ in 0..50 {
        all.push(svc.ready().await.unwrap().call(uri("/")).await.unwrap());
    }
    assert_eq!(layer.open_connections(&uri("/")), 50);
    all.clear();
    assert_eq!(layer.open_connections(&uri("/")), 0);
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_jittered_within_bounds() {
    let life = Duration::from_secs(100);
    let layer = PoolConnectorLayer::new().max_lifetime(life).jitter(0.2);
    let mut svc = layer.layer(fake_connector(false));
    let start = Instant::now();
    let mut retire = Vec::new();
    for _ in 0..200 {
        let io = svc.ready().await.unwrap().call(uri("/")).await.unwrap();
        let at = io.info().retire_at().unwrap() - start;
        assert!(at <= life && at >= Duration::from_secs(80), "{at:?}");
        retire.push(at);
    }
    retire.sort();
    retire.dedup();
    assert!(
        retire.len() > 190,
        "retirements spread: {} distinct",
        retire.len()
    );
    assert!(retire[retire.len() - 1] - retire[0] > Duration::from_secs(15));
}

#[test]
#[should_panic(expected = "max_conns_per_host must be at least 1")]
fn zero_cap_is_rejected() {
    let _ = PoolConnectorLayer::new().max_conns_per_host(0);
}

#[test]
#[should_panic(expected = "max_lifetime must be greater than zero")]
fn zero_lifetime_is_rejected() {
    let _ = PoolConnectorLayer::new().max_lifetime(Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------
// hyper-util's client, end to end, under paused time.

fn client(builder: &PoolClientBuilder, conn: &MemConnector) -> Client {
    builder.build(conn.clone())
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_reaped_between_one_and_two_idle_timeouts() {
    let stats = Stats::new();
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new()
        .idle_timeout(Duration::from_secs(10))
        .stats(stats.clone());
    let client = client(&builder, &conn);
    let (a, b) = tokio::join!(get(&client, "/hold/1"), get(&client, "/hold/1"));
    assert_ne!(a.unwrap().0.id(), b.unwrap().0.id());
    MemConnector::settle().await;
    assert_eq!(conn.open(), 2);
    // The reaper ticks every idle timeout and evicts what has been idle for *more* than it.
    advance(Duration::from_secs(10)).await;
    MemConnector::settle().await;
    assert_eq!(conn.open(), 2, "not before the idle timeout");
    advance(Duration::from_secs(10)).await;
    MemConnector::settle().await;
    assert_eq!(conn.open(), 0, "reaped by the second tick");
    let snap = stats.snapshot();
    assert_eq!(snap.connections_closed(CloseReason::Idle), 2, "{snap:?}");
    assert_eq!((snap.connections_opened, snap.connections_open), (2, 0));
    assert!(builder.connector_layer().open_per_host().is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_the_timer_hyper_util_never_reaps() {
    // The bug the builder fixes (hyper #3640): same settings, no `pool_timer`.
    let conn = MemConnector::default();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .build::<_, Empty<Bytes>>(conn.clone());
    let resp = client.get(uri("/ok")).await.unwrap();
    resp.into_body().collect().await.unwrap();
    MemConnector::settle().await;
    advance(Duration::from_secs(3600)).await;
    MemConnector::settle().await;
    assert_eq!(conn.open(), 1, "still open an hour later");
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_its_lifetime_is_not_reused_and_is_retired_exactly() {
    let stats = Stats::new();
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new()
        .idle_timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(10))
        .jitter(0.0)
        .stats(stats.clone());
    let client = client(&builder, &conn);
    let (first, _) = get(&client, "/ok").await.unwrap();
    advance(Duration::from_millis(9999)).await;
    let (second, _) = get(&client, "/ok").await.unwrap();
    assert_eq!(first.id(), second.id(), "reused before its lifetime");
    assert_eq!(second.requests(), 2);
    assert_eq!(stats.snapshot().connections_reused, 1);
    assert!(!first.is_retired());
    advance(Duration::from_millis(1)).await;
    MemConnector::settle().await;
    assert!(
        first.is_retired(),
        "retired while idle, at its lifetime exactly"
    );
    let (third, _) = get(&client, "/ok").await.unwrap();
    assert_ne!(third.id(), first.id());
    assert_eq!(conn.accepted(), 2);
    MemConnector::settle().await;
    // The poisoned idle connection was dropped by that checkout.
    assert_eq!(conn.open(), 1);
    assert_eq!(
        stats.snapshot().connections_closed(CloseReason::Lifetime),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_in_progress_is_never_cut_by_the_lifetime() {
    let stats = Stats::new();
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new()
        .max_lifetime(Duration::from_secs(2))
        .jitter(0.0)
        .stats(stats.clone());
    let client = client(&builder, &conn);
    let start = Instant::now();
    // Ten chunks, one a second: the body outlives the connection's lifetime fivefold.
    let (info, n) = get(&client, "/slow/1000/10").await.unwrap();
    assert_eq!(n, 50, "every chunk arrived");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert!(info.is_retired());
    MemConnector::settle().await;
    assert_eq!(
        conn.open(),
        0,
        "closed once its exchange ended, not put back"
    );
    let (next, _) = get(&client, "/ok").await.unwrap();
    assert_ne!(next.id(), info.id());
    assert_eq!(
        stats.snapshot().connections_closed(CloseReason::Lifetime),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_never_exceeds_the_cap_and_all_requests_succeed() {
    let stats = Stats::new();
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new()
        .max_conns_per_host(3)
        .max_idle_per_host(3)
        .acquire_timeout(Duration::from_secs(60))
        .stats(stats.clone());
    let client = client(&builder, &conn);
    let start = Instant::now();
    let all = (0..30).map(|_| {
        let client = client.clone();
        async move { get(&client, "/hold/1000").await }
    });
    let results = futures_join_all(all).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(conn.peak(), 3);
    assert_eq!(
        conn.accepted(),
        3,
        "the three connections served everything"
    );
    // 30 one-second requests over 3 connections.
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(stats.snapshot().connections_reused, 27);
}

#[tokio::test(start_paused = true)]
async fn the_acquire_timeout_reaches_the_caller_through_hyper_util() {
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_secs(5));
    let client = client(&builder, &conn);
    let busy = tokio::spawn({
        let client = client.clone();
        async move { get(&client, "/hold/60000").await.map(|r| r.1) }
    });
    MemConnector::settle().await;
    let start = Instant::now();
    let err = get(&client, "/ok").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(phase_of(&err), Some(Phase::Acquire));
    assert_eq!(
        busy.await.unwrap().unwrap(),
        2,
        "the busy request is untouched"
    );
}

/// `join_all` without the futures crate: spawns each on the current runtime.
async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn connection_tags_are_freed_when_the_client_is_dropped() {
    // The retire handle forms a cycle (Connected -> tag -> captured Connected); the IO's drop
    // must break it, or every connection's metadata would leak.
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new().max_lifetime(Duration::from_secs(60));
    let client = client(&builder, &conn);
    let (a, _) = get(&client, "/ok").await.unwrap();
    let (b, _) = get(&client, "/ok").await.unwrap();
    assert_eq!(a.id(), b.id());
    let weak = Arc::downgrade(&a.shared);
    drop((a, b));
    MemConnector::settle().await;
    assert!(weak.upgrade().is_some(), "alive while pooled");
    drop(client);
    MemConnector::settle().await;
    assert_eq!(conn.open(), 0);
    assert!(weak.upgrade().is_none(), "tag freed with the connection");
}

#[tokio::test(start_paused = true)]
async fn the_tag_is_freed_when_the_connection_closed_before_its_response_was_seen() {
    let conn = MemConnector::default();
    let builder = PoolClientBuilder::new().max_lifetime(Duration::from_secs(60));
    let client = client(&builder, &conn);
    let (info, n) = get(&client, "/close").await.unwrap();
    assert_eq!(n, 0);
    let weak = Arc::downgrade(&info.shared);
    drop(info);
    MemConnector::settle().await;
    assert_eq!(conn.open(), 0, "the server closed it");
    drop(client);
    MemConnector::settle().await;
    assert!(
        weak.upgrade().is_none(),
        "the connection's tag outlived it (Connected -> tag -> captured Connected cycle)"
    );
}

// ---------------------------------------------------------------------------------------------
// A request lost in hyper-util's handoff to a connection that ended.

/// hyper-util's real client under `Retire`, except that the response it gets is swallowed and
/// the request then waits forever, as one does that hyper-util handed to a connection in the
/// moment it ended (tokio-rs/tokio#7714). With `redial`, it first dials again, as hyper-util
/// does when it retries a request handed back to it.
#[derive(Clone)]
struct Swallowed {
    client: hyper_util::client::legacy::Client<PoolConnector<MemConnector>, Empty<Bytes>>,
    redial: Option<PoolConnector<MemConnector>>,
}

impl Service<Request<Empty<Bytes>>> for Swallowed {
    type Response = Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Empty<Bytes>>) -> Self::Future {
        let (client, redial) = (self.client.clone(), self.redial.clone());
        Box::pin(async move {
            // Captured and sent; `/close` ends the connection with its response.
            let resp = client.request(req).await.expect("answered");
            drop(resp);
            // Polled a few times with the connection gone (no time passes).
            MemConnector::settle().await;
            let _io = match redial {
                Some(connector) => Some(connector.oneshot(uri("/")).await.expect("dialed")),
                None => None,
            };
            std::future::pending().await
        })
    }
}

fn swallowed(conn: &MemConnector, redial: bool) -> (Retire<Swallowed>, PoolConnectorLayer) {
    let builder = PoolClientBuilder::new();
    let layer = builder.connector_layer().clone();
    let client = Swallowed {
        client: builder.build(conn.clone()).into_inner(),
        redial: redial.then(|| layer.layer(conn.clone())),
    };
    (Retire::new(client), layer)
}

#[tokio::test(start_paused = true)]
async fn a_request_left_waiting_on_a_connection_that_ended_fails_as_lost_after_the_grace() {
    let conn = MemConnector::default();
    let (retire, _layer) = swallowed(&conn, false);
    let started = Instant::now();
    let req = Request::get(uri("/close")).body(Empty::new()).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(60), retire.oneshot(req)).await;
    let err = res.expect("failed, not left waiting").unwrap_err();
    assert_eq!(started.elapsed(), retire::LOST_IN_HANDOFF_AFTER);
    let lost = crate::replay::lost::find::<crate::replay::lost::LostConnection>(&*err)
        .expect("lost on a reused connection, for a replay layer");
    assert!(
        lost.to_string()
            .contains("closed by the peer before the response"),
        "{lost}"
    );
    let text = format!("{:?}", std::error::Error::source(lost));
    assert!(text.contains("LostInHandoff"), "{text}");
    assert_eq!(conn.open(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_hyper_util_dials_for_after_its_connection_ended_is_left_to_it() {
    let conn = MemConnector::default();
    let (retire, _layer) = swallowed(&conn, true);
    let req = Request::get(uri("/close")).body(Empty::new()).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(60), retire.oneshot(req)).await;
    assert!(res.is_err(), "hyper-util retries it: not ours to fail");
    assert_eq!(
        conn.accepted(),
        2,
        "the request's connection, and the redial"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_peer_that_never_carried_a_request_is_closed_by_its_io() {
    // A connection dialed for a checkout that another connection won sits in the pool unused:
    // no request captured it, so no poison pill can retire it; its IO ends it instead.
    let conn = MemConnector::default();
    let stats = Stats::new();
    let connector = PoolConnectorLayer::new()
        .stats(stats.clone())
        .layer(conn.clone());
    let unused = connector.clone().oneshot(uri("/")).await.unwrap();
    let used = connector.clone().oneshot(uri("/")).await.unwrap();
    let (unused_info, used_info) = (unused.info().clone(), used.info().clone());
    let (_tx, task) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(unused)
        .await
        .unwrap();
    let task = tokio::spawn(task);
    let (mut used_tx, used_task) = hyper::client::conn::http1::handshake(used).await.unwrap();
    let used_task = tokio::spawn(used_task);
    let req = Request::get(uri("/ok"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = used_tx.send_request(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    MemConnector::settle().await;
    advance(Duration::from_millis(100)).await;
    assert_eq!(conn.open(), 2);

    // A request lost on a third connection retires the stale peers.
    let lost_on = connector.clone().oneshot(uri("/")).await.unwrap();
    assert_eq!(
        lost_on.info().retire_stale_peers(Duration::from_millis(50)),
        1
    );
    // Its task ends (hyper calls an end of stream before any response an incomplete message).
    let _ = task.await.unwrap();
    MemConnector::settle().await;
    assert!(unused_info.is_gone() && unused_info.is_retired());
    assert!(
        !used_info.is_gone() && !used_info.is_retired(),
        "one that served stays"
    );
    assert_eq!(stats.snapshot().connections_closed(CloseReason::Idle), 1);
    drop((used_tx, lost_on));
    let _ = used_task.await;
}
