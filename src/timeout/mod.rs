//! Per-phase timeouts, each reported as its own [`Phase`](crate::Phase).
//!
//! | layer | phase | bounds | anchors |
//! |---|---|---|---|
//! | [`ResponseHeaderTimeoutLayer`] | `ResponseHeaders` | request sent → response headers | Go `ResponseHeaderTimeout` |
//! | [`BodyIdleTimeoutLayer`] | `BodyIdle` | gap between two response body frames | OkHttp `readTimeout`, Envoy `stream_idle_timeout` |
//! | [`RequestWriteTimeoutLayer`] | `RequestWrite` | the peer not taking the request body | OkHttp `writeTimeout` |
//! | [`ConnectTimeoutLayer`] (on the connector) | `Connect` | name resolution + TCP connect | Go `Dialer.Timeout` |
//! | [`TlsHandshakeTimeoutLayer`] (on the connector) | `TlsHandshake` | the TLS handshake only | Go `TLSHandshakeTimeout` |
//!
//! Every request-side timer here stops at the earlier of its own limit and the request's
//! [`RequestDeadline`](crate::RequestDeadline) (set by [`DeadlineLayer`](crate::DeadlineLayer)),
//! and the error says which of the two fired: one clock for the whole exchange. (Connectors are
//! called with a `Uri`, not the request, so the connector layers cannot see the deadline; the
//! `DeadlineLayer` above the client bounds connecting against it.) Zero limits are rejected when
//! the layer is built.
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
//! # Differences from tower, tower-http, hyper-util and reqwest
//!
//! - tower's `Timeout` and tower-http's `TimeoutLayer` bound the wait for headers only and report
//!   a generic `Elapsed`; here the error names the phase and the limit.
//! - tower-http's `ResponseBodyTimeoutLayer` is the nearest to [`BodyIdleTimeoutLayer`] but does
//!   not forward `size_hint`, and knows nothing of a request deadline.
//! - No Rust client has a request-write (upload stall) timeout; reqwest's `read_timeout` is per
//!   read, its `timeout` is a total over everything with no phase.
//!
//! # Connector-side timeouts: connect and TLS handshake
//!
//! A client opens a connection with a *connector*: a [`Service<Uri>`](tower_service::Service)
//! whose response is the connection (hyper-util's `HttpConnector`, hyper-rustls'
//! `HttpsConnector`, …). Two layers bound it, each as its own [`Phase`](crate::Phase):
//!
//! - [`ConnectTimeoutLayer`] bounds the call of the TCP connector: name resolution **plus** the
//!   TCP connect, to every address tried → [`Phase::Connect`](crate::Phase::Connect).
//! - [`TlsHandshakeTimeoutLayer`] bounds the TLS handshake only →
//!   [`Phase::TlsHandshake`](crate::Phase::TlsHandshake).
//!
//! Both keep the connection type as it is (hyper-util's legacy client reads its `Connection`
//! info for pooling and for HTTP/2 by ALPN), pass the connector's own errors through unchanged,
//! and return futures that are `Unpin` when the inner one is (hyper-util requires it), so the
//! stack goes straight into `Client::builder(..).build(connector)`.
//!
//! They also bound what no request-side timeout can: when a pooled connection frees up while a
//! request is still connecting, hyper-util's legacy client takes the pooled one and lets the
//! connect go on in a **background task**. Unbounded, a connect to a dead host lives there until
//! the kernel gives up (minutes), and a handshake with a server that never answers lives there
//! forever; with these layers, until their limit.
//!
//! ## Where each layer goes
//!
//! ```text
//! Client::builder(exec).build(
//!     TlsHandshakeTimeout(            // TLS handshake only
//!         HttpsConnector(             // hyper-rustls (or any TLS connector)
//!             ConnectTimeout(         // DNS + TCP
//!                 HttpConnector))))   // enforce_http(false)
//! ```
//!
//! For plain HTTP, `ConnectTimeout(HttpConnector)` alone.
//!
//! ## How the TLS layer knows where TCP ends
//!
//! A TLS connector calls its TCP connector and awaits that future inside its own future
//! (hyper-rustls does; so does any `async` TLS connector written the obvious way). The
//! [`TlsHandshakeTimeoutFuture`] polls its inner future inside a tokio task-local scope
//! (`LocalKey::sync_scope` around each poll, no allocation, no shared state between calls). The
//! [`ConnectTimeoutFuture`] polled somewhere inside reports into that scope: "connecting" on its
//! first poll, "connected at *t*" when the TCP connection is made. The handshake timer is not
//! armed while connecting (the connect phase has its own limit) and fires at *t* + limit. So a
//! slow DNS or TCP step is reported as `Connect`, a stalled handshake as `TlsHandshake`, and
//! neither eats the other's budget.
//!
//! Without a `ConnectTimeout` inside (or with a TLS connector that connects on another task),
//! nothing reports and the TLS limit covers the whole call, connecting included: still a bound,
//! only not split. A `ConnectTimeout` *outside* the TLS connector bounds connect **and**
//! handshake together as `Connect`.
//!
//! ## Example
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
//! ## Differences from hyper-util, reqwest and Go
//!
//! - hyper-util's `HttpConnector::set_connect_timeout` covers the TCP connect only, not name
//!   resolution (a hung resolver hangs the request), and with several addresses it is split
//!   between them (each gets `timeout / addresses`). `ConnectTimeoutLayer` is one bound for the
//!   whole step. Both can be used: the per-address one makes a dead address give way to the next.
//! - `set_happy_eyeballs_timeout` (300 ms by default) is when the fallback address family is
//!   *started* alongside the first; it bounds nothing.
//! - reqwest's `connect_timeout` wraps its whole connector (DNS, TCP, TLS and proxy tunnel) in
//!   one timer and reports a generic timeout: a slow handshake and a dead host look alike.
//!   Here they are two phases with two limits.
//! - Go has `net.Dialer.Timeout` and `Transport.TLSHandshakeTimeout` (10 s by default); these are
//!   their counterparts, and the error says which one fired.
//! - No Rust client has a TLS-handshake-only timeout.
//! - Connectors get a `Uri`, not the request, so these layers do not see the request's
//!   [`RequestDeadline`](crate::RequestDeadline): the `DeadlineLayer` above the client bounds the
//!   whole request, connecting included.

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
