//! Concurrency limits held until the response body ends, globally
//! ([`ConcurrencyLimitLayer`]) and per host ([`PerHostLimitLayer`]), with bounded queues.
//!
//! A request counts from the moment it gets a permit until its response body ends, fails or is
//! dropped ([`LimitBody`]), not only until its headers. It waits for the permit inside the
//! response future ([`LimitFuture`]), in arrival order, bounded by the request's deadline and by
//! an optional acquire timeout ([`Phase::Acquire`](crate::Phase::Acquire)); when `max_waiting`
//! requests already wait, the next one fails at once with
//! [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded). One layer is one limit, shared by
//! every service it makes; [`LimitHandle`] and [`PerHostHandle`] read its counts. Give one
//! [`Stats`](crate::Stats) to one limiter only, or each request counts twice in `in_flight`.
//!
//! Put both inside [`DeadlineLayer`](crate::DeadlineLayer), so the deadline bounds the waits, and
//! the per-host limit outside the global one, so requests queued for one slow host hold no global
//! permit. `new` panics on a zero limit, `acquire_timeout` on a zero duration.
//!
//! # Example
//!
//! ```
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//! use std::time::Duration;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{ConcurrencyLimitLayer, DeadlineLayer, Error, Phase};
//!
//! /// A download that never finishes.
//! struct Slow;
//! impl http_body::Body for Slow {
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
//! let limit = ConcurrencyLimitLayer::new(1).max_waiting(8);
//! let handle = limit.handle();
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(1)))
//!     .layer(limit)
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Slow))
//!     }));
//!
//! // The first response's headers are here, but its body is still being read: in flight.
//! let first = svc.clone().oneshot(Request::new(())).await?;
//! assert_eq!(handle.in_flight(), 1);
//!
//! // So the second waits — and its wait is bounded by its deadline.
//! let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
//! assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::Total));
//! assert_eq!(handle.waiting(), 0);
//!
//! // Dropping the first body gives the permit back.
//! drop(first);
//! assert_eq!(handle.in_flight(), 0);
//! # Ok(()) }
//! ```
//!
//! Why the permit lives in the body, how waits and queues behave, what is counted and what it
//! costs: docs/design.md in the repository; beside tower, tower-http, tower-resilience, OkHttp and
//! Go: docs/comparisons.md.

pub mod adaptive;
mod body;
mod config;
mod future;
mod gate;
mod global;
mod handle;
mod layer;
mod per_host;
mod sem;
mod service;

pub use self::adaptive::{
    AdaptiveAlgorithm, AdaptiveLimit, AdaptiveLimitBody, AdaptiveLimitFuture, AdaptiveLimitHandle,
    AdaptiveLimitLayer, Aimd, Gradient,
};
pub use self::body::LimitBody;
#[cfg(feature = "preset")]
pub(crate) use self::config::check_limit;
pub use self::future::LimitFuture;
pub use self::handle::{LimitHandle, PerHostHandle};
pub use self::layer::{ConcurrencyLimitLayer, PerHostLimitLayer};
pub use self::service::{ConcurrencyLimit, PerHostLimit};

#[cfg(test)]
pub(crate) use sem::{hooks, Point};
#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod sem_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod thread_tests;
#[cfg(feature = "preset")]
pub(crate) use self::gate::{AcquireFuture, Admission, Admit, Permit, Ticket};
#[cfg(feature = "preset")]
pub(crate) use self::{config::wait_bound, future::give_up};
