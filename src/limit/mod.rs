//! Concurrency limits that hold until the response body ends, globally
//! ([`ConcurrencyLimitLayer`]) and per host ([`PerHostLimitLayer`]), with bounded queues.
//!
//! Three things make these limits mean what they say for an HTTP client:
//!
//! 1. **The permit lives in the body.** A request counts as in flight from the moment it gets a
//!    permit until its response body ends, fails or is dropped ([`LimitBody`]). For an HTTP
//!    client, the response headers are not the end of the work: the connection stays busy, the
//!    server keeps streaming, memory keeps filling until the body is done. A limit released at
//!    the headers (as tower's is) lets any number of unfinished downloads pile up behind a limit
//!    of one.
//! 2. **Waiting counts.** The wait for a permit happens inside the response future
//!    ([`LimitFuture`]), not in `poll_ready`, so it is bounded by the request's
//!    [`RequestDeadline`](crate::RequestDeadline) (error phase [`Total`](crate::Phase::Total))
//!    and by an optional `acquire_timeout` (phase [`Acquire`](crate::Phase::Acquire)). Waiters
//!    are served in the order they called. A waiter that is dropped (cancelled, timed out) frees
//!    its place at once and never takes a permit, and a waiter whose permit arrives after its
//!    bound has passed (a busy runtime may fire timers late) hands the permit straight on
//!    instead of starting an exchange that is already too late.
//! 3. **Queues are bounded.** At most `max_waiting` requests wait (default 1024, Envoy's pending
//!    queue); the next one fails at once with an [`Overloaded`](crate::ErrorKind::Overloaded)
//!    error instead of queueing forever. `max_waiting(0)` sheds load as soon as every permit is
//!    taken.
//!
//! [`PerHostLimitLayer`] applies the same rules per scheme + authority. A host's state is
//! created with its first request and kept while the host is idle (so a host used one request
//! at a time does not rebuild it on every request) until idle hosts outnumber both 64 and the
//! hosts in use; then every idle one is removed. Memory follows the hosts in use, not every
//! host ever seen. Counts are readable
//! from [`LimitHandle`] / [`PerHostHandle`] and, for the whole stack, from a shared
//! [`Stats`](crate::Stats) (`in_flight`, `waiting`, `overloads`, acquire timeouts).
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
//! # Order in a stack
//!
//! Put [`PerHostLimitLayer`] **outside** [`ConcurrencyLimitLayer`]: a request then waits for its
//! host first and takes a global permit only when its host has room, so a flood to one slow host
//! cannot hold every global permit while it queues for that host. (The other way round, requests
//! waiting on a busy host sit on global permits that other hosts could use.) Both go inside
//! [`DeadlineLayer`](crate::DeadlineLayer), so the deadline bounds the waits.
//!
//! # Differences from tower, tower-http and tower-resilience
//!
//! - tower's `ConcurrencyLimit` takes the permit in `poll_ready` and releases it when the response
//!   future resolves — at the headers (measured: a limit of 1 let 5 unfinished bodies be in flight
//!   at once). Its wait in `poll_ready` is invisible to any timeout or deadline around `call`, the
//!   queue of waiters is unbounded (tower#793), and a clone that was polled ready but never called
//!   holds a permit. `ConcurrencyLimitLayer` in tower makes a new limit per `layer` call; here one
//!   layer is one limit, like tower's `GlobalConcurrencyLimitLayer` (which otherwise shares every
//!   difference above).
//! - tower's `LoadShed` turns "not ready" into an `Overloaded` error: with `ConcurrencyLimit` it
//!   gives a queue of zero. Here `max_waiting` chooses any queue length, zero included, with the
//!   same typed [`Error`](crate::Error) as the timeouts.
//! - tower-http has no concurrency limit (tower-http PR #447 has asked for a body-held permit); its
//!   `RequestBodyLimit` is about bytes.
//! - tower-resilience's bulkhead waits inside the future, with an optional `max_wait_duration` on
//!   its own clock, but still releases the permit when the inner future resolves (at the headers),
//!   boxes every response future, and its queue is either unbounded or (with `reject_when_full`)
//!   zero. It has no per-host keying.
//! - Neither has per-host limits; OkHttp's `maxRequestsPerHost` (5 by default) and Go's
//!   `MaxConnsPerHost` are the models for [`PerHostLimitLayer`] — but both of those count a
//!   request only until its headers (OkHttp) or count connections, not requests (Go).
//!
//! # Counting
//!
//! [`LimitHandle`] and [`PerHostHandle`] read one limiter's counts. A [`Stats`](crate::Stats)
//! given with `.stats(..)` counts `in_flight`, `waiting`, `overloads` and the acquire timeouts
//! (`timeouts(Phase::Acquire)`, or `Phase::Total` when the deadline cut the wait). Give one
//! `Stats` to one limiter only: two stacked limiters on one handle count each request twice in
//! `in_flight`.
//!
//! # Cost
//!
//! Each `call` clones the inner service (a few reference counts for hyper-util's `Client`). A
//! request that finds a permit free takes it with one atomic operation (the per-host limit also
//! takes its map's lock once) and allocates nothing; a request that has to wait allocates its
//! wait once. `benches/limit.rs` runs 64 tasks through a limit of 8 against an in-memory service:
//! measured as the median of alternating pairs on a loaded 2-core machine, the global limiter
//! takes about 1.2 times as long as tower's `ConcurrencyLimit`, the per-host one (all requests to
//! one host) about 1.6 times — for a permit that covers the body, bounded waits and queues.

mod body;
mod config;
mod future;
mod gate;
mod global;
mod handle;
mod layer;
mod per_host;
mod service;

pub use self::body::LimitBody;
#[cfg(feature = "preset")]
pub(crate) use self::config::check_limit;
pub use self::future::LimitFuture;
pub use self::handle::{LimitHandle, PerHostHandle};
pub use self::layer::{ConcurrencyLimitLayer, PerHostLimitLayer};
pub use self::service::{ConcurrencyLimit, PerHostLimit};

#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod tests;
