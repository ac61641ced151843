//! Connector-side misbehaviours: a TCP connect that hangs, a TLS handshake that stalls.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_hardened::Hardened;
use tower_layer::Layer;

use crate::{exchange, Probe, Row};
use tower_hardened_test_server::{hanging_listener, silent_listener, tls_configs};

/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);

fn http() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http
}

fn https<C>(tls: &tokio_rustls::rustls::ClientConfig, tcp: C) -> hyper_rustls::HttpsConnector<C> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .wrap_connector(tcp)
}

fn preset() -> Hardened {
    Hardened::new()
        .connect(Duration::from_secs(1))
        .tls_handshake(Duration::from_secs(1))
}

fn get(uri: &Uri) -> Request<Empty<Bytes>> {
    Request::get(uri.clone()).body(Empty::new()).unwrap()
}

pub async fn rows() -> Vec<Row> {
    let mut rows = Vec::new();

    // A listener whose accept queue is full: the SYN is dropped, connect() hangs.
    let hanging = hanging_listener().await;
    let uri: Uri = format!("http://{}/", hanging.addr).parse().unwrap();
    let mut bare = Row::new("hanging connect", "bare");
    let probe = Probe::start();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(http());
    exchange(client, get(&uri), PATIENCE, &mut bare).await;
    probe.finish(&mut bare, None).await;
    rows.push(bare);
    let mut hardened = Row::new("hanging connect", "hardened");
    let probe = Probe::start();
    exchange(
        preset().client::<Empty<Bytes>>(),
        get(&uri),
        PATIENCE,
        &mut hardened,
    )
    .await;
    probe.finish(&mut hardened, None).await;
    rows.push(hardened);

    // A listener that accepts and never answers the ClientHello.
    let (addr, counters) = silent_listener().await;
    let uri: Uri = format!("https://{addr}/").parse().unwrap();
    let (_, tls) = tls_configs();
    let mut bare = Row::new("stalled TLS handshake", "bare");
    let before = counters.accepted.load(SeqCst);
    let probe = Probe::start();
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(https(&tls, http()));
    exchange(client, get(&uri), PATIENCE, &mut bare).await;
    probe.finish(&mut bare, None).await;
    bare.opened = Some(counters.accepted.load(SeqCst) - before);
    rows.push(bare);

    let mut hardened = Row::new("stalled TLS handshake", "hardened");
    let before = counters.accepted.load(SeqCst);
    let probe = Probe::start();
    // TlsHandshakeTimeout(HttpsConnector(ConnectTimeout(HttpConnector))), then the preset.
    let p = preset();
    let connector = p
        .tls_layer()
        .layer(https(&tls, p.connect_layer().layer(http())));
    let client = p.client_with::<_, Empty<Bytes>>(connector);
    exchange(client, get(&uri), PATIENCE, &mut hardened).await;
    probe.finish(&mut hardened, None).await;
    hardened.opened = Some(counters.accepted.load(SeqCst) - before);
    rows.push(hardened);

    rows
}
