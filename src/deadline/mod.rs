//! One clock for the whole exchange: [`DeadlineLayer`] and [`RequestDeadline`].
//!
//! When a request enters [`DeadlineLayer`], one [`RequestDeadline`] instant is fixed and put in
//! the request's extensions. Everything after that is bounded by it: queue and pool waits inside
//! inner layers, connecting, the response headers, and the **response body** — a body that stalls
//! or never ends fails with [`Phase::Total`](crate::Phase::Total) at the same instant the headers
//! would have. Every inner layer of this crate reads the same instant and stops at the earlier of
//! its own limit and the deadline, reporting whichever fired.
//!
//! A deadline already in the extensions (set from an inbound request's `grpc-timeout`, say) is
//! kept when it is earlier. With [`DeadlineLayer::propagate_grpc_timeout`] the time left is
//! written to the outgoing `grpc-timeout` header for the next hop, and a `grpc-timeout` the
//! caller already set is read as a deadline too (kept when earlier, so the smaller goes out).
//! A [`RequestBudget`] in the extensions gives one request its own total, longer or shorter
//! than the layer's; an earlier deadline of either kind above still wins over it.
//!
//! # Example
//!
//! ```
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{DeadlineLayer, Error, Phase};
//!
//! /// A response body that never sends a byte and never ends.
//! struct Stalled;
//! impl http_body::Body for Stalled {
//!     type Data = bytes::Bytes;
//!     type Error = std::convert::Infallible;
//!     fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>)
//!         -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
//!         Poll::Pending
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(2)))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Stalled))
//!     }));
//!
//! let resp = svc.oneshot(Request::new(())).await?; // headers arrive at once
//! let err = resp.into_body().collect().await.unwrap_err(); // the body is cut at 2 s
//! assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::Total));
//! assert_eq!(err.to_string(), "request deadline of 2s exceeded");
//! # Ok(()) }
//! ```
//!
//! # Differences from tower and tower-http
//!
//! - tower's `Timeout` stops at the response headers: a body that stalls afterwards is not
//!   covered (measured: a 500 ms timeout, a body finished after 2.0 s). tower-http's `TimeoutLayer`
//!   is the same for the body, and its `ResponseBodyTimeoutLayer` is a per-frame idle timer, not a
//!   total.
//! - Inner timeouts in tower and tower-http each have their own clock; here they share one and the
//!   error says which one fired.
//! - tower-http's body wrappers do not forward `size_hint`; [`DeadlineBody`] does.

mod body;
mod budget;
mod future;
mod layer;
mod request_deadline;
mod service;

pub use self::body::DeadlineBody;
pub use self::budget::RequestBudget;
#[allow(unused_imports)]
pub(crate) use self::future::fired;
pub use self::future::DeadlineFuture;
pub use self::layer::DeadlineLayer;
pub use self::request_deadline::RequestDeadline;
pub use self::service::Deadline;

#[cfg(test)]
mod tests;
