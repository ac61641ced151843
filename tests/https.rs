//! HTTPS in the one-line preset (feature `rustls`): `Hardened::new().client()` against real
//! rustls servers on loopback with certificates made now (rcgen), through the preset's
//! `HardenedConnector` (hyper-rustls, ring, ALPN h2 and http/1.1).
//!
//! Covered: both protocols chosen by ALPN and plain `http://` from the same client, pooled; a
//! stalled handshake reported as `TlsHandshake` (and a hung TCP connect as `Connect`, not TLS);
//! a certificate from an unknown issuer and one for another name, each a rustls error at once,
//! never a timeout; and after each, nothing left open: the server's open connections, our
//! sockets to a silent server, the stats, and the live tasks of the test's runtime (servers run
//! on their own runtime, `support::apart`).
#![cfg(feature = "rustls")]

use tower_hardened_test_server as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri, Version};
use http_body_util::{BodyExt, Empty};
use tokio_rustls::rustls;
use tower::ServiceExt;
use tower_hardened::{BoxError, Error, Hardened, HardenedClient, Phase};

use support::{
    hanging_listener, live_tasks, silent_listener_apart, tcp_states_to, tls_configs,
    wait_tasks_at_most, TestServer,
};

const ESTABLISHED: u8 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Client = HardenedClient<Empty<Bytes>>;

async fn get(client: &Client, uri: Uri) -> Result<(Version, Bytes), BoxError> {
    let resp = client
        .clone()
        .oneshot(Request::get(uri).body(Empty::new()).unwrap())
        .await?;
    let version = resp.version();
    Ok((version, resp.into_body().collect().await?.to_bytes()))
}

/// The source chain of `err` as one line, for error-text checks.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// A server config like `support::tls_configs`' with only `alpn` offered.
fn offering(server: &Arc<rustls::ServerConfig>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let mut cfg = (**server).clone();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

#[tokio::test]
async fn one_client_serves_https_by_alpn_in_both_protocols_and_plain_http() {
    let (server_cfg, client_cfg) = tls_configs();
    let h2 = TestServer::start_tls_apart(offering(&server_cfg, &[b"h2", b"http/1.1"])).await;
    let h1 = TestServer::start_tls_apart(offering(&server_cfg, &[b"http/1.1"])).await;
    let plain = TestServer::start_apart().await;
    let tasks_before = live_tasks().unwrap();

    let hardened = Hardened::new().tls_config(client_cfg);
    let stats = hardened.stats_handle();
    let client = hardened.client::<Empty<Bytes>>();
    for (server, uri, version) in [
        (&h2, h2.https_uri("/ok"), Version::HTTP_2),
        (&h1, h1.https_uri("/ok"), Version::HTTP_11),
        (&plain, plain.uri("/ok"), Version::HTTP_11),
    ] {
        for _ in 0..3 {
            let (got, body) = get(&client, uri.clone()).await.unwrap();
            assert_eq!(got, version, "{uri}");
            assert_eq!(body, "ok");
        }
        assert_eq!(server.requests(), 3, "{uri}");
        assert_eq!(server.accepted(), 1, "{uri}: pooled, one connection");
    }
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts_total(), 0);
    assert_eq!(snap.connections_open, 3);
    assert_eq!(snap.in_flight, 0);

    drop((client, hardened));
    for server in [&h2, &h1, &plain] {
        assert!(
            server.wait_open_at_most(0, Duration::from_secs(3)).await,
            "{} connections still open at the server",
            server.open()
        );
    }
    assert_eq!(stats.snapshot().connections_open, 0);
    let left = wait_tasks_at_most(tasks_before).await;
    assert!(
        left <= tasks_before,
        "{left} live tasks, {tasks_before} before"
    );
}

#[tokio::test]
async fn a_stalled_handshake_is_tls_handshake_and_leaves_nothing_open() {
    let (addr, counters) = silent_listener_apart().await;
    let tasks_before = live_tasks().unwrap();
    let hardened = Hardened::new()
        .connect(Duration::from_secs(2))
        .tls_handshake(ms(300));
    let stats = hardened.stats_handle();
    let client = hardened.client::<Empty<Bytes>>();

    let start = Instant::now();
    let err = get(&client, format!("https://{addr}/").parse().unwrap())
        .await
        .expect_err("must time out");
    let took = start.elapsed();
    let ours = Error::find(&*err).expect("our error inside hyper-util's");
    assert_eq!(ours.phase(), Some(Phase::TlsHandshake));
    assert_eq!(ours.to_string(), "TLS handshake not done within 300ms");
    assert!(took >= ms(300) && took < Duration::from_secs(2), "{took:?}");
    // TCP connected (the server accepted), and the connect phase did not fire.
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 1);
    assert_eq!(snap.timeouts(Phase::Connect), 0);
    assert_eq!(snap.in_flight, 0);

    // Our side of the connection is closed (the silent server still holds its side).
    let states = tcp_states_to(addr);
    assert!(
        !states.contains(&ESTABLISHED),
        "an established client socket is left: {states:?}"
    );
    drop((client, hardened));
    let left = wait_tasks_at_most(tasks_before).await;
    assert!(
        left <= tasks_before,
        "{left} live tasks, {tasks_before} before"
    );
}

#[tokio::test]
async fn a_hung_tcp_connect_to_an_https_host_is_connect_not_tls() {
    let hanging = hanging_listener().await;
    // The TLS limit is the shorter: it must not run while TCP connects.
    let hardened = Hardened::new().connect(ms(400)).tls_handshake(ms(100));
    let stats = hardened.stats_handle();
    let client = hardened.client::<Empty<Bytes>>();
    let start = Instant::now();
    let err = get(
        &client,
        format!("https://{}/", hanging.addr).parse().unwrap(),
    )
    .await
    .expect_err("must time out");
    assert!(start.elapsed() >= ms(400), "{:?}", start.elapsed());
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::Connect)
    );
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::Connect), 1);
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 0);
}

#[tokio::test]
async fn a_certificate_of_an_unknown_issuer_is_a_clear_error_at_once() {
    // The preset's default roots (webpki-roots) do not know the self-signed test certificate.
    let (server_cfg, _) = tls_configs();
    let server = TestServer::start_tls_apart(server_cfg).await;
    let hardened = Hardened::new();
    let stats = hardened.stats_handle();
    let client = hardened.client::<Empty<Bytes>>();

    let start = Instant::now();
    let err = get(&client, server.https_uri("/ok")).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "failed at once");
    assert!(Error::find(&*err).is_none(), "not one of our timeouts");
    let text = chain(&*err);
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
    assert_eq!(stats.snapshot().timeouts_total(), 0);
    assert_eq!(server.requests(), 0);
    drop((client, hardened));
    assert!(server.wait_open_at_most(0, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_clear_error_at_once() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    // Trusted, but issued for `example.test`, not for 127.0.0.1.
    let made = rcgen::generate_simple_self_signed(vec!["example.test".into()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = TestServer::start_tls_apart(Arc::new(server_cfg)).await;

    let hardened = Hardened::new().tls_config(client_cfg);
    let stats = hardened.stats_handle();
    let client = hardened.client::<Empty<Bytes>>();
    let start = Instant::now();
    let err = get(&client, server.https_uri("/ok")).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "failed at once");
    assert!(Error::find(&*err).is_none(), "not one of our timeouts");
    let text = chain(&*err);
    assert!(
        text.contains("invalid peer certificate: certificate not valid for name"),
        "{text}"
    );
    assert_eq!(stats.snapshot().timeouts_total(), 0);
    drop((client, hardened));
    assert!(server.wait_open_at_most(0, Duration::from_secs(3)).await);
}

#[test]
#[should_panic(expected = "tower-hardened: Hardened::tls_config: leave `alpn_protocols` empty")]
fn a_config_with_alpn_already_set_is_refused_at_construction() {
    let (_, mut client_cfg) = tls_configs();
    client_cfg.alpn_protocols = vec![b"h2".to_vec()];
    let _ = Hardened::new().tls_config(client_cfg);
}

/// The transport of our own runs over the preset's connector too: HTTPS with ALPN choosing
/// HTTP/2 or HTTP/1.1, one pooled connection per server, and nothing left open once it is
/// dropped.
#[cfg(feature = "transport")]
#[tokio::test]
async fn the_transport_runs_over_the_presets_https_connector() {
    let (server_cfg, client_cfg) = tls_configs();
    let h2 = TestServer::start_tls_apart(offering(&server_cfg, &[b"h2", b"http/1.1"])).await;
    let h1 = TestServer::start_tls_apart(offering(&server_cfg, &[b"http/1.1"])).await;
    let hardened = Hardened::new().tls_config(client_cfg);
    let transport = tower_hardened::Transport::builder()
        .build_with_connector::<_, Empty<Bytes>>(hardened.connector());
    for (server, version) in [(&h2, Version::HTTP_2), (&h1, Version::HTTP_11)] {
        for _ in 0..3 {
            let req = Request::get(server.https_uri("/ok"))
                .body(Empty::new())
                .unwrap();
            let resp = transport.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.version(), version, "{}", server.https_uri("/ok"));
            assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        }
        assert_eq!(server.requests(), 3);
        assert_eq!(server.accepted(), 1, "pooled: one connection");
    }
    drop((transport, hardened));
    for server in [&h2, &h1] {
        assert!(
            server.wait_open_at_most(0, Duration::from_secs(3)).await,
            "{} connections still open at the server",
            server.open()
        );
    }
}
