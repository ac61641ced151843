//! Dropped bodies give their connection back: [`DrainOnDropLayer`]; held bodies are reported.
//!
//! Rust's answer to Go's `resp.Body.Close()` lesson. Dropping a response body before its end is
//! the normal thing to do in Rust (an early `return`, a `?`, reading only the headers), and with
//! hyper it closes the HTTP/1 connection: measured with hyper-util 0.1.21 on loopback, dropping
//! 64 KiB bodies unread costs one new TCP connection per request (46,255 requests, 46,255
//! connections, 9.3k req/s) where reading them to the end reuses 13 connections at 26k req/s.
//!
//! [`DrainOnDropLayer`] wraps each response body in a [`DrainOnDropBody`]. When one is dropped
//! before its end, a background task reads the rest and throws it away, so hyper sees the end of
//! the body and puts the connection back in the pool. Each drain is bounded:
//!
//! - in **bytes** ([`max_drain_bytes`](DrainOnDropLayer::max_drain_bytes), 256 KiB): skipped at
//!   once when the size hint already says the body is longer, given up past the cap;
//! - in **time** ([`max_drain_time`](DrainOnDropLayer::max_drain_time), 100 ms after the drop);
//! - in **number** ([`max_concurrent_drains`](DrainOnDropLayer::max_concurrent_drains), 64): a
//!   drop while the cap is reached is a plain drop — never queued, so a burst of drops cannot
//!   spawn unbounded tasks.
//!
//! Past any bound the body is simply dropped and the connection closes, as without the layer.
//! Not drained either: HTTP/2 and later responses (a stream reset costs nothing, see below),
//! bodies that already ended, bodies that failed, and drops outside a tokio runtime (counted as
//! [`DrainAbandon::NoRuntime`](crate::DrainAbandon::NoRuntime)). The defaults and where they come
//! from are in the table on [`DrainOnDropLayer`].
//!
//! # Held bodies (leak detection)
//!
//! The opposite mistake is holding a body unread: in a struct, in a stuck task, across a slow
//! `await`. The connection stays checked out and nothing in Rust tells you (OkHttp logs "A
//! connection was leaked", HikariCP has `leakDetectionThreshold`). With
//! [`leak_threshold`](DrainOnDropLayer::leak_threshold) set, a body neither finished nor dropped
//! that long after its headers is reported once: a `tracing::warn!` with the method, URI (userinfo and
//! query left out: they may carry secrets) and age, and [`StatsSnapshot::leaks`](crate::StatsSnapshot::leaks). It is a wall-clock watchdog:
//! it fires even when nobody polls the body. There is no task or timer per request: bodies are
//! registered in a slab under one mutex (one lock on the response, one when the body ends or is
//! dropped) and one sweeper task per layer, holding a `Weak`, sleeps until the earliest body is
//! due. Off by default, like HikariCP: only you know how long a legitimate stream lives.
//!
//! # Counters
//!
//! With [`DrainOnDropLayer::stats`]: [`drains_started`](crate::StatsSnapshot::drains_started),
//! [`drains_finished`](crate::StatsSnapshot::drains_finished) (the connection went back),
//! [`drains_abandoned(reason)`](crate::StatsSnapshot::drains_abandoned) and
//! [`leaks`](crate::StatsSnapshot::leaks). Every started drain ends as exactly one of finished
//! or abandoned (`Bytes`, `Time`, `Error`, or `NoRuntime` if the runtime shut down under it);
//! drops abandoned before starting (`Bytes` by size hint, `Concurrency`, `NoRuntime`) are counted
//! in `drains_abandoned` only.
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
//! # Cost, measured
//!
//! `benches/drain.rs` (`cargo bench --bench drain -- --warm-up-time 1 --measurement-time 3`),
//! 8 concurrent callers dropping 64 KiB bodies unread on loopback, hyper-util 0.1.21, on a
//! shared 2-core machine: with the layer's defaults **3.1x to 4.4x** the throughput of the bare
//! client in the same run (two runs), and **1 connection per 1,000 requests instead of 1,000**.
//! When bodies are read to their end the layer has nothing to do; its cost there (one boxed body
//! per response, plus one registry insert and remove with leak detection on) was below the
//! run-to-run noise of that machine.
//!
//! # What hyper does on drop (1.12, read from its source)
//!
//! - **HTTP/1** (`hyper/src/proto/h1/dispatch.rs`, `Dispatcher::poll_read`): when the body
//!   receiver is gone, the dispatcher calls `Conn::poll_drain_or_close_read`
//!   (`src/proto/h1/conn.rs`), which makes **one** `poll_read_body` — what is already buffered
//!   plus at most one non-blocking read — and, unless that reached the end of the body, calls
//!   `close_read()`, which disables keep-alive: the connection is closed, not pooled. (If the
//!   receiver goes away while a chunk is being handed over, `try_send_data` fails and it closes
//!   the same way.) Only a body that fits in what already arrived survives a drop; 64 KiB does
//!   not.
//! - **HTTP/2**: the body owns an h2 `RecvStream`; dropping it clears its buffered data
//!   (`h2/src/share.rs`) and, with the last reference, `maybe_cancel`
//!   (`h2/src/proto/streams/streams.rs`) sends `RST_STREAM(CANCEL)`. The connection stays up and
//!   shared; there is nothing to save by draining, so this layer does not (it decides by
//!   [`Response::version`](http::Response::version)).
//!
//! # Differences from tower-http, hyper-util, reqwest, Go and OkHttp
//!
//! - tower-http's `OnEarlyDropLayer` (0.6.9+) only *observes*: it calls a callback when a
//!   response future or body is dropped before its end (marking a body done at construction
//!   when `is_end_stream()`, as this layer does). It does not read the rest, so the connection is
//!   still closed, and it cannot see a body that is held and never dropped.
//! - hyper, hyper-util and reqwest drop and close (above); nothing reports held bodies.
//! - Go never drains on `Close()`: a client that closes an unread body loses the connection too
//!   (the advice is `io.Copy(io.Discard, resp.Body)` by hand). Its server drains up to 256 KiB of
//!   an unread request body, the cap used here.
//! - OkHttp discards the rest of a closed body for up to 100 ms, on the caller's thread. Here the
//!   caller never waits: the drain is in the background, and capped in number as well.
//! - [`DrainOnDropBody`] forwards `size_hint` and `is_end_stream`; tower-http's body wrappers do
//!   not all do so.
//!
//! # Where to put it
//!
//! Below the concurrency limits (so a drain never holds a request permit: the permit goes when
//! the caller drops the body) and above the body timeouts (a drained body that stalls is cut by
//! its own time cap, or earlier by an inner timeout, counted as
//! [`DrainAbandon::Error`](crate::DrainAbandon::Error)). The inner body must be `Send + 'static`
//! to be drained on a task.

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
