//! Tower layers that make any HTTP client leak-proof.
//!
//! A client with no total timeout, no per-phase timeouts, unbounded concurrency, response bodies
//! that are dropped or held unread, and a pool that never evicts piles up tasks, sockets and
//! memory until the process dies. This crate bounds every one of those, composably, for any
//! `tower::Service<http::Request<B>>` whose response is an `http::Response<impl http_body::Body>`:
//! hyper-util's legacy client, tonic channels, your own stacks.
//!
//! | capability | layers | phase in errors |
//! |---|---|---|
//! | one total deadline, body included ([`deadline`]) | [`DeadlineLayer`] | [`Phase::Total`] |
//! | a byte cap on response bodies ([`body_limit`]) | [`ResponseBodyLimitLayer`] | — (`ErrorKind::BodyTooLarge`) |
//! | per-phase timeouts ([`timeout`]) | [`ResponseHeaderTimeoutLayer`], [`BodyIdleTimeoutLayer`], [`RequestWriteTimeoutLayer`] | `ResponseHeaders`, `BodyIdle`, `RequestWrite` |
//! | connector timeouts ([`timeout`]) | [`ConnectTimeoutLayer`], [`TlsHandshakeTimeoutLayer`] | `Connect`, `TlsHandshake` |
//! | concurrency limits held until the body ends, bounded queues ([`limit`]) | [`ConcurrencyLimitLayer`], [`PerHostLimitLayer`] | `Acquire` (`ErrorKind::Overloaded` when the queue is full) |
//! | drain dropped bodies, report held ones ([`drain`]) | [`DrainOnDropLayer`] | — |
//! | bounded pools for hyper-util's client ([`pool`]) | [`PoolClientBuilder`], [`PoolConnectorLayer`], [`RetireLayer`] | `Acquire`, `RequestWrite` (stuck socket writes) |
//! | a keyed pool with every bound exact, idle caps in total and per host ([`pool`]) | [`Pool`], [`PoolBuilder`] | `Acquire` |
//! | our own transport over hyper's `client::conn` and that pool (feature `transport`) | `Transport`, `TransportBuilder` | `Acquire`, `Connect` |
//! | all of it in one line ([`preset`]) | [`Hardened`], [`ServiceBuilderExt`] | all |
//! | shared counters ([`stats`]) | [`Stats`], [`StatsSnapshot`] | — |
//!
//! # The one-line safe default
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! let client = tower_hardened::Hardened::new().client::<http_body_util::Empty<bytes::Bytes>>();
//! # let _ = client; }
//! ```
//!
//! gives a hyper-util client with every layer in the right order (see [`preset`] for the order,
//! every default and where it comes from). Use [`Hardened::layer`] around any other client, or
//! compose the layers by hand.
//!
//! # One clock
//!
//! [`DeadlineLayer`] fixes one [`RequestDeadline`] when a request enters and puts it in the
//! request's extensions; the response body carries it too. Every inner layer stops at the earlier
//! of its own limit and that deadline and reports whichever fired, so a caller always learns the
//! real reason: `no response headers within 5s` or `request deadline of 30s exceeded`.
//!
//! # Errors
//!
//! Layers fail with [`Error`], boxed as [`BoxError`] like tower's own errors. Clients wrap it
//! (hyper-util wraps connector errors, tonic and reqwest wrap further): [`Error::find`] walks any
//! `source()` chain to get it back, and [`Error::phase`] names the [`Phase`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{
//!     BodyIdleTimeoutLayer, DeadlineLayer, Error, Phase, RequestWriteBody, RequestWriteTimeoutLayer,
//!     ResponseHeaderTimeoutLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Stands in for hyper-util's `Client` (see the README and `examples/` for the real one):
//! // this "server" takes a minute to answer.
//! let client = service_fn(|_req: Request<RequestWriteBody<Full<bytes::Bytes>>>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("late"))))
//! });
//!
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(BodyIdleTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(10)))
//!     .service(client);
//!
//! let err = svc.oneshot(Request::new(Full::default())).await.unwrap_err();
//! let err = Error::find(&*err).unwrap();
//! assert_eq!(err.phase(), Some(Phase::ResponseHeaders));
//! assert_eq!(err.to_string(), "no response headers within 10s");
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what | default |
//! |---|---|---|
//! | `timeout` | the [`timeout`] module | yes |
//! | `limit` | concurrency limits | yes |
//! | `drain` | drain-on-drop bodies, held-body reports | yes |
//! | `pool` | connection caps and lifetimes for hyper-util's legacy client | yes |
//! | `transport` | [`Transport`] over hyper's `client::conn` and the keyed [`Pool`], every pool bound exact | no |
//! | `preset` | the one-line safe stack | yes |
//! | `tls` | nothing beyond `timeout` ([`TlsHandshakeTimeoutLayer`] wraps any TLS connector and needs no TLS crate); gates the real-rustls tests | no |
//! | `full` | all of the above | no |
//!
//! The [`deadline`] module, [`Error`] and [`Stats`] are always there.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod body_limit;
mod clock;
pub mod deadline;
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub mod drain;
mod error;
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit;
#[cfg(any(feature = "pool", feature = "transport"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "pool", feature = "transport"))))]
pub mod pool;
#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub mod preset;
pub mod stats;
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout;
#[cfg(feature = "transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
pub mod transport;

#[cfg(test)]
mod test_util;

#[cfg(feature = "limit")]
pub use crate::body_limit::{
    ResponseBodyLimit, ResponseBodyLimitBody, ResponseBodyLimitFuture, ResponseBodyLimitLayer,
};
pub use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestDeadline};
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub use crate::drain::{DrainOnDrop, DrainOnDropBody, DrainOnDropFuture, DrainOnDropLayer};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use crate::limit::{
    ConcurrencyLimit, ConcurrencyLimitLayer, LimitBody, LimitFuture, LimitHandle, PerHostHandle,
    PerHostLimit, PerHostLimitLayer,
};
#[cfg(any(feature = "pool", feature = "transport"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "pool", feature = "transport"))))]
pub use crate::pool::{Checkout, CheckoutFuture, ConnectionWatch, Pool, PoolBuilder, Poolable};
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub use crate::pool::{
    ConnectionInfo, PoolClient, PoolClientBuilder, PoolConnectFuture, PoolConnector,
    PoolConnectorLayer, PoolIo, Retire, RetireFuture, RetireLayer,
};
#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub use crate::preset::{
    Hardened, HardenedClient, HardenedConnector, HardenedLayer, HardenedService, ServiceBuilderExt,
};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
#[cfg(feature = "timeout")]
pub use crate::timeout::{
    BodyIdleTimeout, BodyIdleTimeoutBody, BodyIdleTimeoutFuture, BodyIdleTimeoutLayer,
    RequestWriteBody, RequestWriteTimeout, RequestWriteTimeoutBody, RequestWriteTimeoutFuture,
    RequestWriteTimeoutLayer, ResponseHeaderTimeout, ResponseHeaderTimeoutFuture,
    ResponseHeaderTimeoutLayer,
};
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub use crate::timeout::{
    ConnectTimeout, ConnectTimeoutFuture, ConnectTimeoutLayer, TlsHandshakeTimeout,
    TlsHandshakeTimeoutFuture, TlsHandshakeTimeoutLayer,
};

#[cfg(feature = "transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
pub use crate::transport::{
    ConnectionError, Protocol, Transport, TransportBody, TransportBuilder, TransportFuture,
};

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
