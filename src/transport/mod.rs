//! An HTTP client transport of this crate's own, with every pool bound exact: [`Transport`].
//!
//! It runs hyper's `client::conn` HTTP/1 and HTTP/2 connections over the keyed
//! [`Pool`](crate::Pool), which owns its idle list: Go's `MaxIdleConns` (a cap on idle
//! connections across all hosts), idle caps per host, idle timeout and max lifetime reaped by
//! one task, connections per host, an acquire timeout and a bounded queue, all atomic with
//! checkouts. hyper-util's legacy client cannot give those (see the [`pool`](crate::pool) module).
//!
//! - **Connector**: hyper-util's `HttpConnector` in a [`ConnectTimeout`](crate::ConnectTimeout)
//!   by default, or any `Service<Uri>` yielding IO ([`TransportBuilder::build_with_connector`]).
//! - **Protocol** ([`Protocol`]): HTTP/1 only, HTTP/2 with prior knowledge, or what ALPN
//!   negotiated. HTTP/2 connections are shared up to the peer's stream limit, one per host while
//!   it has room, with keep-alive PINGs (idle ones too) so a half-open connection is closed.
//! - **Checkouts**: an HTTP/1 connection is checked out until the response body ends or is
//!   dropped ([`TransportBody`] holds it); an HTTP/2 stream likewise.
//! - **Stale connections**: one the server closed while idle is never handed out, nor one idle
//!   longer than the server's HTTP/1 `Keep-Alive: timeout=N` allows (N less 1 s, or less half
//!   of N under 2 s; closed as [`CloseReason::Idle`](crate::CloseReason::Idle)). A request
//!   hyper gave back unwritten (its connection was closing) is retried once on a newly dialed
//!   connection; any other failure before the response is a [`ConnectionError`] that says
//!   whether the connection was reused, how long it was idle and whether anything was written.
//!   A request written on a reused HTTP/1 connection that the peer closed or reset before any
//!   byte of the response is also marked so for a [`ReplayLayer`](crate::ReplayLayer) above,
//!   whose replay the transport sends on a connection it dials for it (closing the host's
//!   least recently used idle connection if the host is at `max_conns_per_host`). A request an
//!   HTTP/1 connection ended under while it still waited in hyper's queue (which hyper would
//!   neither write nor fail) is taken back from that queue when the connection's task ends,
//!   not at a timeout, and is one of those given back unwritten.
//! - **Write stalls**: a socket write pending for
//!   [`write_stall_timeout`](TransportBuilder::write_stall_timeout) (30 s) without progress
//!   fails its connection, and the request with an error naming
//!   [`Phase::RequestWrite`](crate::Phase::RequestWrite): a peer that never reads holds no task.
//! - **Phases**: an outer [`ResponseHeaderTimeoutLayer`](crate::ResponseHeaderTimeoutLayer)
//!   starts its clock once the connection is obtained, so a hung dial fails as `Connect`, a full
//!   pool as `Acquire`, never as `ResponseHeaders`.
//! - Dropping the last clone closes every idle connection and ends the pool's tasks (those in
//!   use close when their bodies end).
//!
//! One folder, one service, split by role: `builder.rs`, `service.rs` (the request path),
//! `conn.rs` (connections and their tasks), `io.rs` (their sockets), `body.rs`, `error.rs`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http_body_util::{BodyExt, Empty};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_hardened::{DeadlineLayer, ResponseHeaderTimeoutLayer, Stats, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move { loop {
//! #     let (s, _) = listener.accept().await.unwrap();
//! #     tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
//! #         hyper_util::rt::TokioIo::new(s),
//! #         hyper::service::service_fn(|_| async {
//! #             Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("ok"))))
//! #         })));
//! # } });
//! let stats = Stats::new();
//! let transport = Transport::builder()
//!     .max_idle(100)
//!     .max_conns_per_host(16)
//!     .connect_timeout(Duration::from_secs(5))
//!     .stats(stats.clone())
//!     .build::<Empty<bytes::Bytes>>();
//! let client = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
//!     .service(transport.clone());
//!
//! let uri = format!("http://{addr}/");
//! let resp = client.oneshot(http::Request::get(uri).body(Empty::new())?).await?;
//! resp.into_body().collect().await?;
//! # tokio::task::yield_now().await;
//! assert_eq!(stats.snapshot().connections_idle, 1);
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! Innermost, where hyper-util's `Client` would be: `Deadline → limits → DrainOnDrop →
//! Replay → timeouts → Transport`.
//!
//! # Panics
//!
//! [`TransportBuilder`]'s setters panic on values that cannot work (zero durations or caps),
//! at construction. Requests without an absolute URI fail with an error, and so does a
//! request outside a tokio runtime.
//!
//! # Differences from hyper-util's legacy client, Go and reqwest
//!
//! - hyper-util races a checkout against a dial and finishes losing dials in the background; it
//!   has no global idle cap, no per-host connection cap and no lifetime. Here a dial serves the
//!   first in line, and is given up when nobody waits for it (an HTTP/1 dial to a host with a
//!   connection open after a grace of 1 s: it may serve the next request).
//! - hyper-util retries a request it did not write only on a reused connection, on another
//!   pooled one (as stale, when a server closed many at once); here any such request is
//!   retried once on a new connection, and a failure that is not retried says why in its
//!   error.
//! - Go keeps the same caps but bounds the wait for a connection only by the request's context,
//!   has no lifetime, and its HTTP/2 PINGs are off by default.
//! - Not here (yet): HTTP upgrades and `CONNECT` tunnels, HTTP proxies' `CONNECT`. Replaying
//!   written requests is the [`ReplayLayer`](crate::ReplayLayer)'s, above.

mod body;
mod builder;
mod conn;
mod error;
mod io;
mod service;

pub use self::body::TransportBody;
pub use self::builder::{Protocol, TransportBuilder};
pub use self::error::ConnectionError;
#[cfg(all(test, feature = "preset"))]
pub(crate) use self::service::clock_handed;
#[cfg(feature = "preset")]
pub(crate) use self::service::hand_clock;
pub use self::service::{Transport, TransportFuture};
