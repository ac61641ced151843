//! Bounded pools for hyper-util's legacy client: a per-host connection cap, max lifetime with
//! jitter, idle timeouts that are really reaped, and connection counters.
//!
//! - [`PoolConnectorLayer`] goes around the connector. It caps connections per scheme and
//!   authority (dialing + in use + idle); a dial past the cap waits at most the acquire timeout
//!   ([`Phase::Acquire`](crate::Phase::Acquire)). It tags each connection with a
//!   [`ConnectionInfo`] carrying its retirement time: its max lifetime less a random jitter.
//! - [`RetireLayer`] goes around the client: a connection past its lifetime is poisoned when its
//!   exchange ends (never cut), so the pool never hands it out again.
//! - [`PoolClientBuilder`] builds hyper-util's client with both, the idle reaper's timer set.
//!
//! [`Stats`](crate::Stats) counts connections opened, reused, open now and closed by
//! [`CloseReason`](crate::CloseReason). The setters panic on a zero cap, a zero duration or a
//! negative jitter.
//! - [`Pool`] (with [`PoolBuilder`]) is this crate's own keyed pool, for any connection type:
//!   it owns its idle list, so every bound is exact, a global idle cap included; the
//!   `transport` feature's `Transport` runs hyper's `client::conn` over it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http_body_util::{BodyExt, Empty};
//! use tower::ServiceExt;
//! use tower_hardened::{PoolClientBuilder, Stats};
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
//! let builder = PoolClientBuilder::new()
//!     .idle_timeout(Duration::from_millis(200))
//!     .max_conns_per_host(4)
//!     .max_lifetime(Duration::from_secs(600))
//!     .stats(stats.clone());
//! let client = builder.build_http::<Empty<bytes::Bytes>>();
//!
//! let uri: http::Uri = format!("http://{addr}/").parse()?;
//! let resp = client.clone().oneshot(http::Request::get(uri.clone()).body(Empty::new())?).await?;
//! resp.into_body().collect().await?;
//! assert_eq!(builder.connector_layer().open_connections(&uri), 1);
//!
//! // Idle for longer than the idle timeout plus one reaper period: closed.
//! tokio::time::sleep(Duration::from_millis(1000)).await;
//! assert_eq!(builder.connector_layer().open_connections(&uri), 0);
//! let snap = stats.snapshot();
//! assert_eq!((snap.connections_opened, snap.connections_open), (1, 0));
//! assert_eq!(snap.connections_closed(tower_hardened::CloseReason::Idle), 1);
//! # Ok(()) }
//! ```
//!
//! How this fits hyper-util's private pool, why the cap cannot deadlock, why there is no global
//! idle cap, and which close reason each end counts as: docs/design.md in the repository; the
//! knobs of Go, OkHttp and HikariCP beside ours: docs/comparisons.md.

// Legacy items (hyper-util's legacy client) need the `pool` feature; the keyed pool and the
// jitter it shares with them are compiled with `pool` or `transport`.
#[cfg(feature = "pool")]
mod builder;
#[cfg(feature = "pool")]
mod connector;
#[cfg(feature = "pool")]
mod future;
#[cfg(feature = "pool")]
mod hosts;
#[cfg(feature = "pool")]
mod info;
#[cfg(feature = "pool")]
mod io;
mod jitter;
pub mod keyed;
#[cfg(feature = "pool")]
mod layer;
#[cfg(feature = "pool")]
mod retire;

#[cfg(feature = "pool")]
pub use self::builder::{PoolClient, PoolClientBuilder};
#[cfg(feature = "pool")]
pub use self::connector::PoolConnector;
#[cfg(feature = "pool")]
pub use self::future::PoolConnectFuture;
#[cfg(feature = "pool")]
pub use self::info::ConnectionInfo;
#[cfg(all(feature = "pool", feature = "metrics"))]
pub(crate) use self::info::ConnectionUse;
#[cfg(feature = "pool")]
pub use self::io::PoolIo;
pub use self::keyed::{Checkout, CheckoutFuture, ConnectionWatch, Pool, PoolBuilder, Poolable};
#[cfg(feature = "pool")]
pub use self::layer::PoolConnectorLayer;
#[cfg(feature = "pool")]
pub use self::retire::{Retire, RetireFuture, RetireLayer};

#[cfg(all(test, feature = "pool"))]
mod tests;
