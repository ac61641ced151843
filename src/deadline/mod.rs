//! One clock for the whole exchange, body included: [`DeadlineLayer`] and [`RequestDeadline`].
//!
//! [`DeadlineLayer`] fixes one [`RequestDeadline`] when a request enters and puts it in the
//! request's extensions (an earlier one already there is kept). Every inner layer of this crate
//! stops at the earlier of its own limit and that deadline and reports whichever fired; the
//! response body ([`DeadlineBody`]) fails with [`Phase::Total`](crate::Phase::Total) once the
//! deadline has passed, even if it never sends another byte.
//! [`DeadlineLayer::propagate_grpc_timeout`] sends the time left on as `grpc-timeout`.
//!
//! A deadline already in the extensions (set from an inbound request's `grpc-timeout`, say) is
//! kept when it is earlier. With [`DeadlineLayer::propagate_grpc_timeout`] the time left is
//! written to the outgoing `grpc-timeout` header for the next hop, and a `grpc-timeout` the
//! caller already set is read as a deadline too (kept when earlier, so the smaller goes out).
//! A [`RequestBudget`] in the extensions gives one request its own total, longer or shorter
//! than the layer's; an earlier deadline of either kind above still wins over it.
//!
//! Put it outermost, so that queue and pool waits, connecting and the body all count.
//! [`DeadlineLayer::new`] panics on a zero budget.
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
//! How it compares with tower's and tower-http's timeouts: docs/comparisons.md in the
//! repository.

mod body;
mod budget;
mod future;
mod layer;
mod request_deadline;
mod service;

pub use self::body::DeadlineBody;
pub use self::budget::RequestBudget;
#[cfg(feature = "preset")]
pub(crate) use self::future::hop_error;
pub use self::future::DeadlineFuture;
pub use self::layer::DeadlineLayer;
pub use self::request_deadline::RequestDeadline;
pub use self::service::Deadline;
#[cfg(feature = "preset")]
pub(crate) use self::service::Stamp;
