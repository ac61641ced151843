//! Connector-side misbehaviours: a TCP connect that hangs, a TLS handshake that stalls.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_hardened::{ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};
use tower_layer::Layer;

use crate::support::{hanging_listener, live_tasks, silent_listener, tls_configs};
use crate::{describe, Row};

/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);

/// Sends one GET through a client built on `connector`, giving up after `PATIENCE`; then drops
/// the client and counts the tasks left beyond `baseline`.
async fn run<C>(connector: C, uri: Uri, baseline: usize, row: &mut Row)
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let start = Instant::now();
    match tokio::time::timeout(PATIENCE, client.get(uri)).await {
        Err(_) => row.outcome = format!("still waiting after {PATIENCE:?}"),
        Ok(Ok(resp)) => row.outcome = format!("ok, {}", resp.status()),
        Ok(Err(e)) => {
            let (text, phase) = describe(&e);
            row.outcome = text;
            row.phase = phase;
        }
    }
    row.time = Some(start.elapsed());
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    row.tasks_left = live_tasks().map(|n| n as i64 - baseline as i64);
}

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

pub async fn rows() -> Vec<Row> {
    let mut rows = Vec::new();

    // A listener whose accept queue is full: the SYN is dropped, connect() hangs.
    let hanging = hanging_listener().await;
    let uri: Uri = format!("http://{}/", hanging.addr).parse().unwrap();
    let baseline = live_tasks().unwrap_or(0);
    let mut bare = Row::new("hanging connect", "bare");
    run(HttpConnector::new(), uri.clone(), baseline, &mut bare).await;
    rows.push(bare);
    let mut hardened = Row::new("hanging connect", "hardened");
    let connector = ConnectTimeoutLayer::new(Duration::from_secs(1)).layer(HttpConnector::new());
    run(connector, uri, baseline, &mut hardened).await;
    rows.push(hardened);

    // A listener that accepts and never answers the ClientHello.
    let (addr, counters) = silent_listener().await;
    let uri: Uri = format!("https://{addr}/").parse().unwrap();
    let (_, tls) = tls_configs();
    let baseline = live_tasks().unwrap_or(0);
    let mut bare = Row::new("stalled TLS handshake", "bare");
    let before = counters.accepted.load(SeqCst);
    run(https(&tls, http()), uri.clone(), baseline, &mut bare).await;
    bare.opened = Some(counters.accepted.load(SeqCst) - before);
    rows.push(bare);

    let mut hardened = Row::new("stalled TLS handshake", "hardened");
    let before = counters.accepted.load(SeqCst);
    // TlsHandshakeTimeout(HttpsConnector(ConnectTimeout(HttpConnector))).
    let tcp = ConnectTimeoutLayer::new(Duration::from_secs(1)).layer(http());
    let connector = TlsHandshakeTimeoutLayer::new(Duration::from_secs(1)).layer(https(&tls, tcp));
    run(connector, uri, baseline, &mut hardened).await;
    hardened.opened = Some(counters.accepted.load(SeqCst) - before);
    rows.push(hardened);

    rows
}
