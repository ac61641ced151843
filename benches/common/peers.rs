//! What users would pick instead of this crate, configured as close to the preset's defaults as
//! each allows. Shared by `benches/stack.rs` and `examples/overhead.rs` (by `#[path]`).
//!
//! - [`reqwest`]: reqwest 0.12 with `timeout` (the preset's total, 30 s), `connect_timeout`
//!   (10 s), `read_timeout` (the gap between reads, the preset's body idle, 30 s), and its pool
//!   with the preset's idle settings (16 idle per host, 90 s). reqwest has no bound on requests
//!   or connections in flight, no response-header timeout, and no drain of a dropped body. Its
//!   `tower::Service` is wrapped here so that it takes and gives `http` types, as the benches'
//!   load does; the wrapper's box is one allocation per request.
//! - [`tower_stack`]: `tower::timeout` (30 s, headers only) + `tower::limit::ConcurrencyLimit`
//!   (256, released at the headers) + `tower_http::timeout::ResponseBodyTimeout` (30 s per
//!   frame) around a bare hyper-util client. It holds no permit past the headers, drains nothing
//!   and bounds neither the body as a whole nor the connections.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;

/// reqwest 0.12, as a `tower::Service` of `http` requests.
#[derive(Clone)]
pub struct Reqwest(pub reqwest::Client);

/// reqwest with the preset's settings, as far as it has them.
pub fn reqwest() -> Reqwest {
    Reqwest(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .pool_idle_timeout(Duration::from_secs(90))
            .no_proxy()
            .build()
            .expect("reqwest client"),
    )
}

type ReqwestFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<reqwest::Body>, reqwest::Error>> + Send>>;

impl tower::Service<http::Request<Empty<Bytes>>> for Reqwest {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Empty<Bytes>>) -> Self::Future {
        let req = reqwest::Request::try_from(req.map(|_| reqwest::Body::from(Bytes::new())));
        let client = self.0.clone();
        Box::pin(async move { Ok(client.execute(req?).await?.into()) })
    }
}

/// The tower + tower-http stack around `inner`.
pub type TowerStack<S> = tower::timeout::Timeout<
    tower::limit::ConcurrencyLimit<tower_http::timeout::ResponseBodyTimeout<S>>,
>;

/// `tower::timeout` + `tower::limit::ConcurrencyLimit` + `tower_http`'s `ResponseBodyTimeout`
/// around `inner`, with the preset's total (30 s), global limit (256) and body idle (30 s).
pub fn tower_stack<S>(inner: S) -> TowerStack<S> {
    tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .concurrency_limit(256)
        .layer(tower_http::timeout::ResponseBodyTimeoutLayer::new(
            Duration::from_secs(30),
        ))
        .service(inner)
}
