//! `ConnectTimeoutLayer` on a real hyper-util `HttpConnector`, through hyper-util's legacy
//! client, against a TCP connect that really hangs and a name resolution that really hangs.
#![cfg(feature = "timeout")]

use tower_hardened_test_server as support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::client::legacy::Client;
use tower_hardened::{ConnectTimeoutLayer, Error, Phase, Stats};
use tower_layer::Layer;

use support::{
    client_over, hanging_listener, live_tasks, tcp_states_to, wait_tasks_at_most, TestServer,
};

const SYN_SENT: u8 = 2;

#[tokio::test]
async fn a_hanging_tcp_connect_is_a_connect_timeout() {
    let hanging = hanging_listener().await;
    let uri: Uri = format!("http://{}/", hanging.addr).parse().unwrap();
    let baseline = live_tasks().unwrap();

    // The bare client really hangs on it (the kernel drops the SYNs; it would give up after
    // minutes of retries).
    let bare = client_over(HttpConnector::new());
    let waited = tokio::time::timeout(Duration::from_secs(1), bare.get(uri.clone())).await;
    assert!(waited.is_err(), "the bare client was expected to hang");
    drop(bare);

    let stats = Stats::new();
    let limit = Duration::from_millis(300);
    let hardened = client_over(
        ConnectTimeoutLayer::new(limit)
            .stats(stats.clone())
            .layer(HttpConnector::new()),
    );
    let start = Instant::now();
    let err = hardened.get(uri).await.expect_err("must time out");
    let took = start.elapsed();
    let found = Error::find(&err).expect("our error inside hyper-util's");
    assert_eq!(found.phase(), Some(Phase::Connect));
    assert_eq!(found.limit(), Some(limit));
    assert!(took >= limit, "fired early: {took:?}");
    assert!(took < Duration::from_secs(3), "fired late: {took:?}");
    assert_eq!(stats.snapshot().timeouts(Phase::Connect), 1);

    // The half-open socket was closed, not left retrying SYNs in the background.
    let states = tcp_states_to(hanging.addr);
    assert!(
        !states.contains(&SYN_SENT),
        "a SYN_SENT socket is left: {states:?}"
    );
    drop(hardened);
    let left = wait_tasks_at_most(baseline).await;
    assert!(left <= baseline, "{left} live tasks, {baseline} before");
}

/// A resolver that never answers, as a hung DNS server does.
#[derive(Clone)]
struct HungResolver;

impl tower_service::Service<Name> for HungResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::pending()
    }
}

#[tokio::test]
async fn name_resolution_is_covered_where_set_connect_timeout_is_not() {
    let uri: Uri = "http://hung-dns.test:80/".parse().unwrap();

    // hyper-util's own connect timeout covers TCP only: a hung resolver still hangs.
    let mut own = HttpConnector::new_with_resolver(HungResolver);
    own.set_connect_timeout(Some(Duration::from_millis(200)));
    let waited =
        tokio::time::timeout(Duration::from_secs(1), client_over(own).get(uri.clone())).await;
    assert!(
        waited.is_err(),
        "set_connect_timeout was expected not to cover DNS"
    );

    let hardened = client_over(
        ConnectTimeoutLayer::new(Duration::from_millis(200))
            .layer(HttpConnector::new_with_resolver(HungResolver)),
    );
    let start = Instant::now();
    let err = hardened.get(uri).await.expect_err("must time out");
    assert_eq!(
        Error::find(&err).and_then(Error::phase),
        Some(Phase::Connect)
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_info_and_pooling_survive_the_layer() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let hardened = client_over(
        ConnectTimeoutLayer::new(Duration::from_secs(5))
            .stats(stats.clone())
            .layer(HttpConnector::new()),
    );
    for _ in 0..3 {
        let resp = hardened.get(server.uri("/ok")).await.unwrap();
        // `Connected` info from HttpConnector reaches the response: the connection type and its
        // `Connection` impl went through untouched.
        let info = resp.extensions().get::<HttpInfo>().expect("HttpInfo");
        assert_eq!(info.remote_addr(), server.addr);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
    }
    // Pooled: one connection for three requests.
    assert_eq!(server.requests(), 3);
    assert_eq!(server.accepted(), 1);
    assert_eq!(stats.snapshot().timeouts_total(), 0);

    drop(hardened);
    assert!(
        server.wait_open_at_most(0, Duration::from_secs(3)).await,
        "{} connections still open at the server",
        server.open()
    );
}

#[tokio::test]
async fn refused_connections_keep_hyper_utils_error() {
    // A port with nothing listening: the connector's own error comes through, not ours.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hardened =
        client_over(ConnectTimeoutLayer::new(Duration::from_secs(5)).layer(HttpConnector::new()));
    let err = hardened
        .get(format!("http://{addr}/").parse().unwrap())
        .await
        .expect_err("refused");
    assert!(err.is_connect());
    assert!(Error::find(&err).is_none(), "{err:?}");
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut refused = false;
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        src = e.source();
    }
    assert!(refused, "the io::Error cause is kept: {err:?}");
}

/// A connector whose first call goes to `first` and every later one to `later` (a hanging
/// listener), counting its connect futures still alive.
#[derive(Clone)]
struct LaterCallsHang {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    alive: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    later: Uri,
    http: HttpConnector,
}

struct AliveGuard(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    hyper_util::rt::TokioIo<tokio::net::TcpStream>,
                    tower_hardened::BoxError,
                >,
            > + Send,
    >,
>;

impl tower_service::Service<Uri> for LaterCallsHang {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = tower_hardened::BoxError;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        use std::sync::atomic::Ordering::SeqCst;
        let dst = if self.calls.fetch_add(1, SeqCst) == 0 {
            dst
        } else {
            self.later.clone()
        };
        self.alive.fetch_add(1, SeqCst);
        let guard = AliveGuard(self.alive.clone());
        let fut = self.http.call(dst);
        Box::pin(async move {
            let _guard = guard;
            fut.await.map_err(Into::into)
        })
    }
}

/// hyper-util moves a connect to a background task when a pooled connection frees up first.
/// A connect that hangs there lives on after the request is long done: bare, until the kernel
/// gives up (minutes); with `ConnectTimeout`, until its limit.
#[tokio::test]
async fn a_connect_left_in_the_background_by_hyper_util_is_bounded_too() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    let server = TestServer::start().await;
    let hanging = hanging_listener().await;
    let later: Uri = format!("http://{}/", hanging.addr).parse().unwrap();

    for hardened in [false, true] {
        let alive = Arc::new(AtomicUsize::new(0));
        let connector = LaterCallsHang {
            calls: Arc::new(AtomicUsize::new(0)),
            alive: alive.clone(),
            later: later.clone(),
            http: HttpConnector::new(),
        };
        let stats = Stats::new();
        // Longer than request 1's drip, so that request 2 gets the pooled connection first.
        let limit = Duration::from_secs(1);
        if hardened {
            let layered = ConnectTimeoutLayer::new(limit)
                .stats(stats.clone())
                .layer(connector);
            leave_a_connect_behind(client_over(layered), &server, &alive).await;
        } else {
            leave_a_connect_behind(client_over(connector), &server, &alive).await;
        }
        tokio::time::sleep(limit + Duration::from_millis(500)).await;
        if hardened {
            assert_eq!(alive.load(SeqCst), 0, "the background connect was bounded");
            assert_eq!(stats.snapshot().timeouts(Phase::Connect), 1);
        } else {
            assert_eq!(
                alive.load(SeqCst),
                1,
                "bare: the background connect still hangs"
            );
        }
    }
}

/// Makes hyper-util move a connect to the background: request 1 holds the only connection while
/// its body drips; request 2 starts a connect (that hangs) and waits for a pooled connection at
/// the same time; request 1 ends and request 2 takes its connection.
async fn leave_a_connect_behind<C>(
    client: Client<C, Empty<Bytes>>,
    server: &TestServer,
    alive: &std::sync::atomic::AtomicUsize,
) where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    use std::sync::atomic::Ordering::SeqCst;
    let accepted = server.accepted();
    let first = client.get(server.uri("/slow-chunks/300/1")).await.unwrap();
    let second = tokio::spawn(client.get(server.uri("/ok")));
    // Wait (bounded) until request 2's connect has started, rather than for a fixed time.
    support::eventually(Duration::from_secs(2), || alive.load(SeqCst) > 0).await;
    assert_eq!(alive.load(SeqCst), 1, "request 2 is connecting");
    first.into_body().collect().await.unwrap();
    let resp = second.await.unwrap().unwrap();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(
        server.accepted() - accepted,
        1,
        "request 2 reused request 1's connection"
    );
}
