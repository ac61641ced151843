//! Per-phase timeouts, each reported as its own [`Phase`](crate::Phase).
//!
//! | layer | phase | bounds |
//! |---|---|---|
//! | [`ResponseHeaderTimeoutLayer`] | `ResponseHeaders` | request sent → response headers |
//! | [`BodyIdleTimeoutLayer`] | `BodyIdle` | gap between two response body frames |
//! | [`RequestWriteTimeoutLayer`] | `RequestWrite` | the peer not taking the request body |
//! | [`ConnectTimeoutLayer`] (on the connector) | `Connect` | name resolution + TCP connect |
//! | [`TlsHandshakeTimeoutLayer`] (on the connector) | `TlsHandshake` | the TLS handshake only |
//!
//! The request-side layers go around the client, inside the limits, so they time the exchange
//! and not the queues; each stops at the earlier of its own limit and the request's
//! [`RequestDeadline`](crate::RequestDeadline) and reports whichever fired. The connector layers
//! wrap the connector: [`ConnectTimeoutLayer`] around the TCP connector,
//! [`TlsHandshakeTimeoutLayer`] around the TLS connector that wraps it (second example), which
//! then times the handshake alone. Each layer's `new` panics on a zero limit.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{
//!     BodyIdleTimeoutLayer, DeadlineLayer, RequestWriteTimeoutLayer, ResponseHeaderTimeoutLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let client = service_fn(|_req: Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hello"))))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(BodyIdleTimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(10)))
//!     .service(client);
//! let resp = svc.oneshot(Request::new(Full::new(bytes::Bytes::from("up")))).await?;
//! assert_eq!(resp.into_body().collect().await?.to_bytes(), "hello");
//! # Ok(()) }
//! ```
//!
//! On the connector, for HTTPS:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use hyper_util::client::legacy::{connect::HttpConnector, Client};
//! use hyper_util::rt::TokioExecutor;
//! use tower_hardened::{ConnectTimeoutLayer, Stats, TlsHandshakeTimeoutLayer};
//! use tower_layer::Layer;
//! # use tokio_rustls::rustls;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
//! #     rustls::crypto::ring::default_provider(),
//! # )).with_safe_default_protocol_versions().unwrap()
//! # .with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth();
//! let stats = Stats::new();
//! let mut http = HttpConnector::new();
//! http.enforce_http(false);
//! let tcp = ConnectTimeoutLayer::new(Duration::from_secs(5))
//!     .stats(stats.clone())
//!     .layer(http);
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_tls_config(tls) // a rustls::ClientConfig
//!     .https_or_http()
//!     .enable_http1()
//!     .wrap_connector(tcp);
//! let connector = TlsHandshakeTimeoutLayer::new(Duration::from_secs(10))
//!     .stats(stats.clone())
//!     .layer(https);
//! let client: Client<_, String> = Client::builder(TokioExecutor::new()).build(connector);
//! // A dead host fails with `Phase::Connect` after 5 s, a server that never finishes the
//! // handshake with `Phase::TlsHandshake` 10 s after TCP connected; find either with
//! // `tower_hardened::Error::find(&err)`.
//! # let _ = client;
//! # }
//! ```
//!
//! How the TLS layer knows where TCP ends, and why the connector layers matter even under a
//! deadline: docs/design.md in the repository; the knobs of Go, OkHttp, Envoy, hyper-util and
//! reqwest beside these: docs/comparisons.md.

mod body_idle;
mod connect;
mod request_write;
mod response_headers;
mod tls;

pub use self::body_idle::{
    BodyIdleTimeout, BodyIdleTimeoutBody, BodyIdleTimeoutFuture, BodyIdleTimeoutLayer,
};
pub use self::connect::{ConnectTimeout, ConnectTimeoutFuture, ConnectTimeoutLayer};
pub use self::request_write::{
    RequestWriteBody, RequestWriteTimeout, RequestWriteTimeoutBody, RequestWriteTimeoutFuture,
    RequestWriteTimeoutLayer,
};
pub use self::response_headers::{
    ResponseHeaderTimeout, ResponseHeaderTimeoutFuture, ResponseHeaderTimeoutLayer,
};
pub use self::tls::{TlsHandshakeTimeout, TlsHandshakeTimeoutFuture, TlsHandshakeTimeoutLayer};
#[cfg(feature = "preset")]
pub(crate) use self::{
    request_write::{watch_upload, UploadWatch},
    response_headers::HeaderTimer,
};
