//! Per-phase timeouts, each reported as its own [`Phase`](crate::Phase).
//!
//! | layer | phase | bounds | anchors |
//! |---|---|---|---|
//! | [`ResponseHeaderTimeoutLayer`] | `ResponseHeaders` | request sent → response headers | Go `ResponseHeaderTimeout` |
//! | [`BodyIdleTimeoutLayer`] | `BodyIdle` | gap between two response body frames | OkHttp `readTimeout`, Envoy `stream_idle_timeout` |
//! | [`RequestWriteTimeoutLayer`] | `RequestWrite` | the peer not taking the request body | OkHttp `writeTimeout` |
//!
//! Every timer here stops at the earlier of its own limit and the request's
//! [`RequestDeadline`](crate::RequestDeadline) (set by [`DeadlineLayer`](crate::DeadlineLayer)),
//! and the error says which of the two fired: one clock for the whole exchange. Zero limits are
//! rejected when the layer is built.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{
//!     BodyIdleTimeoutLayer, DeadlineLayer, RequestWriteTimeoutLayer, ResponseHeaderTimeoutLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let client = service_fn(|_req: Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hello"))))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(BodyIdleTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(10)))
//!     .service(client);
//! let resp = svc.oneshot(Request::new(Full::new(bytes::Bytes::from("up")))).await?;
//! assert_eq!(resp.into_body().collect().await?.to_bytes(), "hello");
//! # Ok(()) }
//! ```
//!
//! # Differences from tower, tower-http, hyper-util and reqwest
//!
//! - tower's `Timeout` and tower-http's `TimeoutLayer` bound the wait for headers only and report
//!   a generic `Elapsed`; here the error names the phase and the limit.
//! - tower-http's `ResponseBodyTimeoutLayer` is the nearest to [`BodyIdleTimeoutLayer`] but does
//!   not forward `size_hint`, and knows nothing of a request deadline.
//! - No Rust client has a request-write (upload stall) timeout; reqwest's `read_timeout` is per
//!   read, its `timeout` is a total over everything with no phase.

mod body_idle;
mod request_write;
mod response_headers;

pub use self::body_idle::{
    BodyIdleTimeout, BodyIdleTimeoutBody, BodyIdleTimeoutFuture, BodyIdleTimeoutLayer,
};
pub use self::request_write::{
    RequestWriteBody, RequestWriteTimeout, RequestWriteTimeoutBody, RequestWriteTimeoutFuture,
    RequestWriteTimeoutLayer,
};
pub use self::response_headers::{
    ResponseHeaderTimeout, ResponseHeaderTimeoutFuture, ResponseHeaderTimeoutLayer,
};

#[cfg(test)]
mod tests;
