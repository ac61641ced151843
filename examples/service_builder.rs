//! Composing the layers by hand in `tower::ServiceBuilder`, in the recommended order, with one
//! shared `Stats` handle.
//!
//! ```text
//! cargo run --example service_builder
//! ```
//!
//! The server it talks to is `tower_hardened_test_server` (this repository's `tests/server/`),
//! a loopback server that misbehaves on purpose; in your code, it is the server you call.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, ConcurrencyLimitLayer, DeadlineLayer, DrainOnDropLayer, Error,
    PerHostLimitLayer, Phase, RequestWriteTimeoutLayer, ResponseHeaderTimeoutLayer,
    ServiceBuilderExt, Stats,
};
use tower_hardened_test_server::TestServer;

#[tokio::main]
async fn main() -> Result<(), tower_hardened::BoxError> {
    let server = TestServer::start().await;
    let stats = Stats::new();

    // Outer to inner. Each layer counts into the same handle.
    let client = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)).stats(stats.clone()))
        .layer(PerHostLimitLayer::new(8).stats(stats.clone()))
        .layer(ConcurrencyLimitLayer::new(32).max_waiting(64))
        .layer(DrainOnDropLayer::new().stats(stats.clone()))
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(1)).stats(stats.clone()))
        .layer(BodyIdleTimeoutLayer::new(Duration::from_millis(300)).stats(stats.clone()))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(1)).stats(stats.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http());

    let get = |path: &str| http::Request::get(server.uri(path)).body(Empty::<Bytes>::new());

    let resp = client.clone().oneshot(get("/slow-chunks/600/2")?).await?;
    let err = resp.into_body().collect().await.unwrap_err();
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::BodyIdle)
    );
    println!("slow chunks: {err}");

    // The same, with the extension trait: one method per layer.
    let short = ServiceBuilder::new()
        .deadline(Duration::from_millis(500))
        .held_concurrency_limit(16)
        .drain_on_drop()
        .response_header_timeout(Duration::from_secs(5))
        .body_idle_timeout(Duration::from_secs(5))
        .request_write_timeout(Duration::from_secs(5))
        .service(Client::builder(TokioExecutor::new()).build_http());
    let resp = short.oneshot(get("/endless")?).await?;
    let err = resp.into_body().collect().await.unwrap_err();
    println!("endless body: {err}");

    println!("timeouts so far: {}", stats.snapshot().timeouts_total());
    Ok(())
}
