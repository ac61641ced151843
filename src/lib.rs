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
//! | send a request lost to a stale keep-alive connection once more, when safe ([`replay`]) | [`ReplayLayer`] | — (`ErrorKind::ConnectionClosed` when not replayed) |
//! | a keyed pool with every bound exact, idle caps in total and per host ([`pool`]) | [`Pool`], [`PoolBuilder`] | `Acquire` |
//! | our own transport over hyper's `client::conn` and that pool (feature `transport`) | `Transport`, `TransportBuilder` | `Acquire`, `Connect`, `RequestWrite` (stuck socket writes) |
//! | all of it in one line ([`preset`]), `https://` too with `rustls` ([`https`]) | [`Hardened`], [`ServiceBuilderExt`], [`HardenedConnector`] | all |
//! | gRPC status codes and `grpc-timeout` for tonic, feature `tonic` ([`grpc`]) | [`Hardened::grpc_layer`], [`Hardened::grpc_connector`] | all, as `tonic::Status` |
//! | the stack around a `reqwest::Client`, feature `reqwest` ([`reqwest`](mod@crate::reqwest)) | [`Hardened::reqwest`] | all |
//! | shared counters ([`stats`]) | [`Stats`], [`StatsSnapshot`] | — |
//! | one span per request, OpenTelemetry metrics ([`telemetry`]) | [`TelemetryLayer`] | — (`error.type`) |
//!
//! The one-line safe default is `Hardened::new().client::<B>()`: every layer in the right order
//! on the crate's own transport, every default documented in [`preset`]. [`Hardened::layer`] puts
//! the same stack around any other client.
//!
//! One clock: [`DeadlineLayer`] fixes one [`RequestDeadline`] when a request enters, and every
//! inner layer stops at the earlier of its own limit and that deadline, saying which fired. Layers
//! fail with [`Error`], boxed as [`BoxError`] like tower's own errors; clients wrap it further,
//! and [`Error::find`] walks any `source()` chain to get it back, [`Error::phase`] names the
//! [`Phase`]. Bad configuration panics when a layer is built, never on a request.
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
//! | `transport` | [`Transport`] over hyper's `client::conn` and the keyed [`Pool`], every pool bound exact | yes (the preset runs on it) |
//! | `preset` | the one-line safe stack | yes |
//! | `rustls` | `https://` in the preset ([`https`]): rustls, ring, webpki roots, ALPN h2 and http/1.1, [`Hardened::tls_config`] | no |
//! | `tonic` | gRPC ([`grpc`]): `tonic::Status` codes, `grpc-timeout`, [`Hardened::grpc_layer`], [`Hardened::grpc_connector`] (Rust 1.88, as tonic 0.14.6+) | no |
//! | `reqwest` | the reqwest 0.12 adapter ([`reqwest`](mod@crate::reqwest)), [`Hardened::reqwest`] | no |
//! | `metrics` | OpenTelemetry-named metrics through the `metrics` facade ([`telemetry`]) | no |
//! | `full` | all of the above | no |
//!
//! The [`deadline`] and [`telemetry`] modules, [`Error`] and [`Stats`] are always there. Design
//! notes and comparisons with tower, tower-http, hyper-util, reqwest, Go and OkHttp are in
//! `docs/` in the repository.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod body_limit;
mod channels;
mod clock;
pub mod deadline;
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub mod drain;
mod error;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod grpc;
#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub mod https;
#[cfg(any(feature = "pool", feature = "transport"))]
mod io_watch;
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit;
#[cfg(any(feature = "pool", feature = "transport"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "pool", feature = "transport"))))]
pub mod pool;
#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub mod preset;
pub mod replay;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
pub mod stats;
pub mod telemetry;
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout;
#[cfg(feature = "transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
pub mod transport;

#[cfg(all(test, any(feature = "limit", feature = "drain", feature = "pool")))]
mod test_util;

#[cfg(feature = "limit")]
pub use crate::body_limit::{
    ResponseBodyLimit, ResponseBodyLimitBody, ResponseBodyLimitFuture, ResponseBodyLimitLayer,
};
pub use crate::deadline::{
    Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestBudget, RequestDeadline,
};
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub use crate::drain::{DrainOnDrop, DrainOnDropBody, DrainOnDropFuture, DrainOnDropLayer};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use crate::grpc::{
    BoxRequestBody, Grpc, GrpcBody, GrpcConnector, GrpcFuture, GrpcLayer, HardenedGrpc,
};
#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub use crate::https::{HardenedConnectFuture, HardenedConnector, HardenedIo};
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use crate::limit::{
    AdaptiveAlgorithm, AdaptiveLimit, AdaptiveLimitBody, AdaptiveLimitFuture, AdaptiveLimitHandle,
    AdaptiveLimitLayer, Aimd, Gradient,
};
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
    Hardened, HardenedBody, HardenedClient, HardenedClientBody, HardenedClientFuture,
    HardenedFuture, HardenedLayer, HardenedRequestBody, HardenedService, ServiceBuilderExt,
};
pub use crate::replay::{Replay, ReplayBody, ReplayFuture, ReplayLayer};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use crate::reqwest::{HardenedReqwest, ReqwestFuture, ReqwestService, ReqwestServiceFuture};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
pub use crate::telemetry::{Telemetry, TelemetryBody, TelemetryFuture, TelemetryLayer};
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
