//! Bounded pools for hyper-util's legacy client: a per-host connection cap, max lifetime with
//! jitter, idle timeouts that are really reaped, and connection counters.
//!
//! hyper-util's legacy `Client` has `pool_idle_timeout` (silently never reaped unless
//! `pool_timer` is also set, hyper #3640), `pool_max_idle_per_host`, and nothing else: no
//! per-host connection cap (reqwest #1517), no global idle cap (hyper #2236), no max lifetime
//! (reqwest #3033). Its pool is private; this module works through the hooks it offers.
//!
//! - [`PoolConnectorLayer`] goes around the connector. It caps connections per scheme and
//!   authority (dialing + in use + idle, Go's `MaxConnsPerHost`): a dial beyond the cap waits
//!   for one to close, bounded by an acquire timeout that fails with
//!   [`Phase::Acquire`](crate::Phase::Acquire). The permit lives inside the connection's IO
//!   ([`PoolIo`]) and goes back exactly when hyper-util drops the connection. Each connection is
//!   tagged with a [`ConnectionInfo`] (through `Connected::extra`) carrying its retirement
//!   time: its max lifetime minus a random jitter (HikariCP's scheme).
//! - [`RetireLayer`] goes around the client. It captures the connection each request used
//!   (`capture_connection`) and, once that connection is past its lifetime, calls hyper-util's
//!   `Connected::poison()` on it: the pool never hands it out again, the request in progress
//!   is never cut. The connection's own timer poisons it at the due time even while idle.
//! - [`PoolClientBuilder`] builds the client with both, the idle reaper's timer always set,
//!   and documented defaults.
//! - [`Pool`] (with [`PoolBuilder`]) is this crate's own keyed pool, for any connection type:
//!   it owns its idle list, so every bound is exact, a global idle cap included; the
//!   `transport` feature's `Transport` runs hyper's `client::conn` over it.
//! - [`Stats`](crate::Stats) counts connections opened, reused, closed by
//!   [`CloseReason`](crate::CloseReason) and open now; [`PoolConnectorLayer::open_per_host`]
//!   gives the open count per host.
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
//! # Knobs of other clients and pools, and ours
//!
//! | knob | Go `http.Transport` | OkHttp | HikariCP | here |
//! |---|---|---|---|---|
//! | idle timeout | `IdleConnTimeout` 90 s | `ConnectionPool` keep-alive 5 min | `idleTimeout` 10 min | [`PoolClientBuilder::idle_timeout`] 90 s, reaped by a timer |
//! | idle connections per host | `MaxIdleConnsPerHost` 2 | — | — | [`PoolClientBuilder::max_idle_per_host`] 5 |
//! | idle connections in total | `MaxIdleConns` 100 | `maxIdleConnections` 5 | `minimumIdle` | not offered for hyper-util's client (see below) |
//! | connections per host | `MaxConnsPerHost` ∞ | `maxRequestsPerHost` 5 (requests, not connections) | `maximumPoolSize` 10 | [`PoolConnectorLayer::max_conns_per_host`] (none by default) |
//! | wait for a connection | none (waits forever) | none | `connectionTimeout` 30 s | [`PoolConnectorLayer::acquire_timeout`] 30 s, [`Phase::Acquire`](crate::Phase::Acquire) |
//! | max lifetime | none | none | `maxLifetime` 30 min − ≤ 2.5 % | [`PoolConnectorLayer::max_lifetime`] + [`jitter`](PoolConnectorLayer::jitter), 30 min − ≤ 2.5 % in the builder |
//! | in-use connection past its lifetime | — | — | retired when returned | retired when its exchange ends (poisoned, never cut) |
//! | requests in flight | — | `maxRequests` 64 | — | the `limit` module |
//!
//! # How it fits hyper-util's pool, and why the cap cannot deadlock
//!
//! For each request the legacy client races a checkout of an idle connection against a new
//! dial (`Client::one_connection_for`). With a cap, the dial may wait for a permit while the
//! checkout waits for an idle connection; whichever comes first serves the request. A
//! connection that finishes its exchange goes to the oldest waiting checkout of the same
//! pool key before it would become idle, so requests never wait on a permit held by an idle
//! connection they could use. This holds because the cap is keyed exactly as hyper-util's
//! pool is: by scheme and authority. (A cap keyed by host name alone would let idle `https`
//! connections hold the permits an `http` request to the same host waits for, until they are
//! reaped.) Connections the pool considers dead or poisoned are dropped at checkout, which
//! ends their connection task and frees their permits.
//!
//! One cost remains: when a checkout wins the race after the dial started, hyper-util keeps
//! the dial running in the background to fill the pool, and nothing tells the connector that
//! nobody waits for it any more. Under a cap such a dial keeps waiting for a permit until the
//! acquire timeout; if a connection closes meanwhile, it dials a fresh connection that goes
//! to the pool idle. The count never exceeds the cap, but after a burst of N requests over a
//! cap of C, up to N − C such background tasks (a semaphore waiter each, no socket) live for
//! up to the acquire timeout (measured: 200 requests, cap 10, 30 s timeout: about 190 extra
//! live tasks 1.5 s later; with a 1 s timeout, none). Keep the acquire timeout well below the
//! idle timeout, or a lingering dial may reopen a connection the reaper just closed.
//!
//! # Why there is no global idle cap (Go's `MaxIdleConns`) for hyper-util's client
//!
//! A global idle cap needs to know which connections are idle and to close one of them
//! atomically with respect to checkouts. From outside hyper-util's private pool neither is
//! possible soundly:
//!
//! - Idleness is only observable indirectly (a response body ended and the connection went
//!   back... or was dropped instead because of `pool_max_idle_per_host`, or was not reusable);
//!   the pool's idle list and its mutex are private.
//! - Closing from outside can only be done by poisoning (which does not close anything: the
//!   connection stays in the idle list until the next checkout or reaper tick) or by failing
//!   the IO. Failing the IO races with a checkout that took the connection under the pool's
//!   lock an instant before: the request written on it would fail, and a non-idempotent request
//!   cannot be retried.
//!
//! So a cap enforced from outside would either not bound the number of open idle sockets or
//! could break requests. The sound alternatives are `pool_max_idle_per_host` times the number
//! of hosts, a short idle timeout (now really reaped), and, for a true global bound, this
//! crate's keyed pool over hyper's `client::conn`, which owns its idle list.
//!
//! # What the close reasons mean
//!
//! [`CloseReason::Lifetime`](crate::CloseReason::Lifetime): retired for age.
//! [`CloseReason::Error`](crate::CloseReason::Error): an IO error was seen.
//! [`CloseReason::Idle`](crate::CloseReason::Idle): no IO for at least the idle timeout when it
//! closed (the reaper). [`CloseReason::Other`](crate::CloseReason::Other): everything else —
//! the peer closed it cleanly, the client was dropped, the connection was not reusable, or the
//! pool dropped it for `pool_max_idle_per_host` (hyper-util gives no signal to tell that
//! apart, so [`CloseReason::Cap`](crate::CloseReason::Cap) is not counted here).
//!
//! # Differences from hyper-util, reqwest and Go
//!
//! - hyper-util and reqwest have no per-host connection cap and no max lifetime; hyper-util
//!   only reaps idle connections when a timer is set, which [`PoolClientBuilder`] always does.
//! - Go's `MaxConnsPerHost` waits for a connection without bound (only the request context
//!   ends it); here the wait has its own timeout and names its phase.
//! - Unlike a `tower::limit` around the client, the cap counts connections, not requests: a
//!   burst of 200 requests over 10 kept-alive connections is served, not refused.

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
#[cfg(feature = "pool")]
pub use self::io::PoolIo;
pub use self::keyed::{Checkout, CheckoutFuture, ConnectionWatch, Pool, PoolBuilder, Poolable};
#[cfg(feature = "pool")]
pub use self::layer::PoolConnectorLayer;
#[cfg(feature = "pool")]
pub use self::retire::{Retire, RetireFuture, RetireLayer};

#[cfg(all(test, feature = "pool"))]
mod tests;
