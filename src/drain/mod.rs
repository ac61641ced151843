//! Dropped bodies give their connection back: [`DrainOnDropLayer`]; held bodies are reported.
//!
//! Dropping an HTTP/1 response body before its end makes hyper close its connection. This layer
//! wraps each response body in a [`DrainOnDropBody`]: dropped early, the rest is read and thrown
//! away by a background task, so the connection goes back to the pool. Each drain is bounded in
//! bytes, time and number ([`max_drain_bytes`](DrainOnDropLayer::max_drain_bytes),
//! [`max_drain_time`](DrainOnDropLayer::max_drain_time),
//! [`max_concurrent_drains`](DrainOnDropLayer::max_concurrent_drains)); past a bound the body is
//! simply dropped. HTTP/2 bodies are not drained (a stream reset costs nothing). With
//! [`leak_threshold`](DrainOnDropLayer::leak_threshold) set, a body neither finished nor dropped
//! that long after its headers is reported once: a `tracing` warning and
//! [`StatsSnapshot::leaks`](crate::StatsSnapshot::leaks).
//!
//! Put it inside the concurrency limits (a drain never holds a request permit) and outside the
//! body timeouts. The inner body must be `Send + 'static`. `max_drain_time` and `leak_threshold`
//! panic on a zero duration.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{DrainOnDropLayer, Stats};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
//! let stats = Stats::new();
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         DrainOnDropLayer::new()
//!             .leak_threshold(Duration::from_secs(30))
//!             .stats(stats.clone()),
//!     )
//!     .service(service_fn(|_req: Request<()>| async {
//!         // A hyper-util `Client` in real life.
//!         let body = Full::new(bytes::Bytes::from(vec![b'x'; 64 * 1024]));
//!         Ok::<_, std::convert::Infallible>(Response::new(body))
//!     }));
//!
//! let resp = svc.oneshot(Request::new(())).await?;
//! assert!(resp.status().is_success());
//! drop(resp); // unread: read to its end in the background, the connection is kept
//! # tokio::task::yield_now().await;
//! # assert_eq!(stats.snapshot().drains_finished, 1);
//! # Ok(()) }
//! ```
//!
//! What hyper does on drop, how drains and held-body reports work, how they are counted and what
//! they cost: docs/design.md in the repository; beside tower-http, Go and OkHttp:
//! docs/comparisons.md.

mod body;
mod drainer;
mod future;
mod layer;
mod leak;
mod service;

pub use self::body::DrainOnDropBody;
pub use self::future::DrainOnDropFuture;
pub use self::layer::DrainOnDropLayer;
pub use self::service::DrainOnDrop;

#[cfg(test)]
mod tests;
#[cfg(feature = "preset")]
pub(crate) use self::{
    drainer::{DrainFn, Shared as DrainShared},
    leak::LeakKey,
};
