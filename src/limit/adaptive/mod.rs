//! Adaptive concurrency limits: [`AdaptiveLimitLayer`], with the algorithms [`Aimd`] and
//! [`Gradient`], whose latency sample runs from admission to the end of the response body.
//!
//! The limit falls when the server's latency grows (it is queueing) or when requests time out,
//! fail or are refused, and grows back while neither happens and the limit is actually used.
//! Admission works as in [`ConcurrencyLimitLayer`](crate::ConcurrencyLimitLayer): the permit
//! is held by the response body, waiters queue (bounded, in order) inside the response future,
//! bounded by the acquire timeout and the request's [`RequestDeadline`](crate::RequestDeadline),
//! and a full queue refuses at once with [`Overloaded`](crate::ErrorKind::Overloaded). A limit
//! that falls never takes back a permit in use: it only admits no one until fewer than the new
//! limit are in flight.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{AdaptiveLimitLayer, DeadlineLayer, Gradient};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let limit = AdaptiveLimitLayer::new(Gradient::new(), 1..=256)
//!     .initial_limit(8)
//!     .acquire_timeout(Duration::from_secs(1))
//!     .per_host();
//! let handle = limit.handle();
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(10)))
//!     .layer(limit)
//!     .service(service_fn(|_req: Request<()>| async {
//!         tokio::time::sleep(Duration::from_millis(20)).await; // the server's latency
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("ok"))))
//!     }));
//!
//! let uri = "http://example.com/";
//! for _ in 0..20 {
//!     let resp = svc.clone().oneshot(Request::get(uri).body(())?).await?;
//!     resp.into_body().collect().await?; // the sample ends with the body
//! }
//! assert_eq!(handle.min_rtt_for(&uri.parse()?), Some(Duration::from_millis(20)));
//! // One request at a time is far below the limit (app-limited): it never grew.
//! assert!(handle.limit_for(&uri.parse()?).unwrap() <= 8);
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! Inside [`DeadlineLayer`](crate::DeadlineLayer), so the deadline bounds the wait; outside the
//! timeouts and the client, so their errors reach it as overload signals. Per host
//! ([`AdaptiveLimitLayer::per_host`]) outside a static global cap
//! ([`ConcurrencyLimitLayer`](crate::ConcurrencyLimitLayer)), so one slow host's limit falls
//! without shrinking the others' share — but note that the global cap's own waits then count in
//! each host's latency, and its refusals as that host's overload signals.
//!
//! # What counts
//!
//! - A **sample** runs from the permit's grant to the end of the response body. A body already
//!   at its end with the headers ends it with them.
//! - **Overload signals**: an error of the inner service (at readiness, in the call, or a body
//!   error) — timeouts of inner layers included, refusals from below (`Overloaded`) included;
//!   a `429`, `503` or `504` status; a request dropped after it was sent and before its response
//!   (a caller's timeout). They never count as fast samples (Netflix concurrency-limits #176)
//!   and a window of them lowers the limit even when their latency is constant (#137).
//! - A body **dropped** before its end is a sample of "at least this long": it counts when it
//!   is longer than the minimum RTT, and is left out when shorter.
//! - Not counted: a request that never reached the inner service (refused by this limiter's
//!   full queue, timed out in it, dropped while waiting).
//!
//! # Panics
//!
//! Constructors and setters panic on settings that cannot work (empty or zero `limits`, an
//! initial limit outside them, zero durations, factors out of range or NaN), with a
//! `tower-hardened: ...` message; never at request time.
//!
//! # Differences from Envoy, Netflix concurrency-limits, tower-resilience-adaptive, tower-acc
//!
//! - The Rust crates measure latency at the response headers: a slow body never lowers their
//!   limit, and their permit ends before the body (as tower's `ConcurrencyLimit` does).
//! - Netflix's `Gradient2` grows to its maximum when timeouts make the RTT constant (#137) and
//!   lets fast drops look like good samples (#176); here both are overload signals.
//! - tower-resilience's Vegas never re-measures its minimum RTT; here it is re-measured on a
//!   jittered interval, and when the limit sits at its minimum.
//! - Envoy's minimum-RTT probe drops the limit to 3 and answers everything else with `503`;
//!   here a probe halves the limit and the rest wait in the bounded queue.
//! - A window whose requests never used half the limit (app-limited) does not grow it: a limit
//!   no one tested says nothing about the server.

mod algorithm;
mod body;
mod control;
mod future;
mod gate;
mod handle;
mod key;
mod layer;
mod service;

pub use self::algorithm::{AdaptiveAlgorithm, Aimd, Gradient};
pub use self::body::AdaptiveLimitBody;
pub use self::future::AdaptiveLimitFuture;
pub use self::handle::AdaptiveLimitHandle;
pub use self::layer::AdaptiveLimitLayer;
pub use self::service::AdaptiveLimit;

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
