//! Wrapping hyper-util's legacy client: the one-line preset, and the same stack around a client
//! you already have.
//!
//! ```text
//! cargo run --example hyper_util_client
//! ```
//!
//! The server it talks to is `tower_hardened_test_server` (this repository's `tests/server/`),
//! a loopback server that misbehaves on purpose; in your code, it is the server you call.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::{Layer, ServiceExt};
use tower_hardened::{Error, Hardened};
use tower_hardened_test_server::TestServer;

#[tokio::main]
async fn main() -> Result<(), tower_hardened::BoxError> {
    let server = TestServer::start().await;

    // 1. One line: a ready client with every layer and safe pool settings.
    let preset = Hardened::new().response_headers(Duration::from_millis(500));
    let stats = preset.stats_handle();
    let client = preset.client::<Empty<Bytes>>();

    let resp = client
        .clone()
        .oneshot(http::Request::get(server.uri("/bytes/1000")).body(Empty::new())?)
        .await?;
    let body = resp.into_body().collect().await?.to_bytes();
    println!("preset client: {} bytes", body.len());

    let err = client
        .oneshot(http::Request::get(server.uri("/stall-headers")).body(Empty::new())?)
        .await
        .unwrap_err();
    let found = Error::find(&*err).expect("our error, through hyper-util's wrapping");
    println!(
        "preset client, stalled server: {found} (phase {:?})",
        found.phase()
    );

    // 2. Your own hyper-util client (your connector, your pool settings): put the request-side
    //    stack around it. Set `pool_timer`, or hyper-util never reaps idle connections.
    let mine: Client<_, tower_hardened::HardenedRequestBody<Empty<Bytes>>> =
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
    let hardened = preset.layer().layer(mine);
    let resp = hardened
        .oneshot(http::Request::get(server.uri("/ok")).body(Empty::new())?)
        .await?;
    println!("your client, hardened: {}", resp.status());
    // The concurrency permit lives in the body: in flight until the body ends or is dropped.
    assert_eq!(stats.snapshot().in_flight, 1);
    drop(resp);
    assert_eq!(stats.snapshot().in_flight, 0);

    println!("{:#?}", stats.snapshot());
    Ok(())
}
