//! `TlsHandshakeTimeoutLayer` and `ConnectTimeoutLayer` around a real rustls connector
//! (hyper-rustls, ring), through hyper-util's legacy client:
//! `TlsHandshakeTimeout(HttpsConnector(ConnectTimeout(HttpConnector)))`.
#![cfg(feature = "timeout")]

use tower_hardened_test_server as support;

use std::time::{Duration, Instant};

use http::{Uri, Version};
use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::rustls::ClientConfig;
use tower_hardened::{
    ConnectTimeout, ConnectTimeoutLayer, Error, Phase, Stats, TlsHandshakeTimeout,
    TlsHandshakeTimeoutLayer,
};
use tower_layer::Layer;

use support::{
    client_over, hanging_listener, live_tasks, silent_listener, tcp_states_to, tls_configs,
    wait_tasks_at_most, TestServer,
};

const ESTABLISHED: u8 = 1;

type Stack = TlsHandshakeTimeout<HttpsConnector<ConnectTimeout<HttpConnector>>>;

fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http
}

fn https<C>(cfg: ClientConfig, h2: bool, tcp: C) -> HttpsConnector<C> {
    let b = HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1();
    if h2 {
        b.enable_http2().wrap_connector(tcp)
    } else {
        b.wrap_connector(tcp)
    }
}

/// The recommended stack.
fn stack(cfg: ClientConfig, h2: bool, connect: Duration, tls: Duration, stats: &Stats) -> Stack {
    let tcp = ConnectTimeoutLayer::new(connect)
        .stats(stats.clone())
        .layer(tcp());
    TlsHandshakeTimeoutLayer::new(tls)
        .stats(stats.clone())
        .layer(https(cfg, h2, tcp))
}

#[tokio::test]
async fn full_stack_completes_requests_over_real_tls_with_alpn_and_pooling() {
    let (server_cfg, client_cfg) = tls_configs();
    for (h2, version) in [(false, Version::HTTP_11), (true, Version::HTTP_2)] {
        let server = TestServer::start_tls(server_cfg.clone()).await;
        let stats = Stats::new();
        let hardened = client_over(stack(
            client_cfg.clone(),
            h2,
            Duration::from_secs(5),
            Duration::from_secs(5),
            &stats,
        ));
        for _ in 0..3 {
            let resp = hardened.get(server.https_uri("/ok")).await.unwrap();
            // HTTP/2 is chosen from the `Connected` info (ALPN) of the connection: it went
            // through both layers intact.
            assert_eq!(resp.version(), version);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "ok");
        }
        assert_eq!(server.requests(), 3);
        assert_eq!(
            server.accepted(),
            1,
            "pooled: one TLS connection ({version:?})"
        );
        assert_eq!(stats.snapshot().timeouts_total(), 0);
        drop(hardened);
        assert!(
            server.wait_open_at_most(0, Duration::from_secs(3)).await,
            "{} connections still open at the server ({version:?})",
            server.open()
        );
    }
}

#[tokio::test]
async fn a_silent_server_is_a_tls_handshake_timeout_after_a_good_connect() {
    let (addr, counters) = silent_listener().await;
    let uri: Uri = format!("https://{addr}/").parse().unwrap();
    let (_, client_cfg) = tls_configs();
    let baseline = live_tasks().unwrap();

    // The bare TLS client waits for the ServerHello forever.
    let bare = client_over(https(client_cfg.clone(), false, tcp()));
    let waited = tokio::time::timeout(Duration::from_secs(1), bare.get(uri.clone())).await;
    assert!(waited.is_err(), "the bare client was expected to hang");
    drop(bare);
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let stats = Stats::new();
    let limit = Duration::from_millis(300);
    let hardened = client_over(stack(
        client_cfg,
        false,
        Duration::from_secs(2),
        limit,
        &stats,
    ));
    let start = Instant::now();
    let err = hardened.get(uri).await.expect_err("must time out");
    let took = start.elapsed();
    let found = Error::find(&err).expect("our error inside hyper-util's");
    assert_eq!(found.phase(), Some(Phase::TlsHandshake));
    assert_eq!(found.limit(), Some(limit));
    assert!(took >= limit, "fired early: {took:?}");
    assert!(took < Duration::from_secs(2), "fired late: {took:?}");
    // The connect step succeeded: the server accepted a second connection, and the connect
    // phase did not fire.
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 1);
    assert_eq!(snap.timeouts(Phase::Connect), 0);

    // Our side of both connections is closed (the silent server still holds its side).
    let states = tcp_states_to(addr);
    assert!(
        !states.contains(&ESTABLISHED),
        "an established client socket is left: {states:?}"
    );
    drop(hardened);
    let left = wait_tasks_at_most(baseline).await;
    assert!(left <= baseline, "{left} live tasks, {baseline} before");
}

#[tokio::test]
async fn a_hanging_tcp_connect_is_not_blamed_on_tls() {
    let hanging = hanging_listener().await;
    let uri: Uri = format!("https://{}/", hanging.addr).parse().unwrap();
    let (_, client_cfg) = tls_configs();
    let stats = Stats::new();
    // The TLS limit is shorter than the connect limit: it must not fire while connecting.
    let connect = Duration::from_millis(500);
    let hardened = client_over(stack(
        client_cfg,
        false,
        connect,
        Duration::from_millis(100),
        &stats,
    ));
    let start = Instant::now();
    let err = hardened.get(uri).await.expect_err("must time out");
    let took = start.elapsed();
    assert_eq!(
        Error::find(&err).and_then(Error::phase),
        Some(Phase::Connect)
    );
    assert!(took >= connect, "fired early: {took:?}");
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::Connect), 1);
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 0);
}

#[tokio::test]
async fn without_connect_timeout_inside_the_tls_limit_bounds_the_whole_call() {
    let hanging = hanging_listener().await;
    let uri: Uri = format!("https://{}/", hanging.addr).parse().unwrap();
    let (_, client_cfg) = tls_configs();
    let limit = Duration::from_millis(300);
    let connector = TlsHandshakeTimeoutLayer::new(limit).layer(https(client_cfg, false, tcp()));
    let start = Instant::now();
    let err = client_over(connector)
        .get(uri)
        .await
        .expect_err("must time out");
    let took = start.elapsed();
    assert_eq!(
        Error::find(&err).and_then(Error::phase),
        Some(Phase::TlsHandshake)
    );
    assert!(took >= limit && took < Duration::from_secs(3), "{took:?}");
}
