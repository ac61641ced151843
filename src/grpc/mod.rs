//! gRPC that speaks gRPC: [`Hardened::grpc_layer`](crate::Hardened::grpc_layer) puts the
//! preset's request-side stack around a tonic `Channel` (or any gRPC service) and turns every
//! error, of the call and of the streamed response body alike, into the [`tonic::Status`] tonic
//! passes through unchanged; [`Hardened::grpc_connector`](crate::Hardened::grpc_connector) bounds
//! the channel's connects.
//!
//! | our error | `tonic::Code` |
//! |---|---|
//! | timeout of `Total`, `ResponseHeaders`, `BodyIdle`, `RequestWrite` | `DeadlineExceeded` |
//! | timeout of `Connect`, `TlsHandshake` | `Unavailable` |
//! | connection closed by the peer before the response, not replayed (`ConnectionClosed`) | `Unavailable` |
//! | `Overloaded` (a full queue), a timeout of `Acquire`, `BodyTooLarge` (a byte cap) | `ResourceExhausted` |
//! | anything else (a status from the server, a reset stream, ...) | tonic's own mapping |
//!
//! The message is our `Display` (`no response headers within 10s`), the status' `source()` keeps
//! the error ([`Error::find`](crate::Error::find) on the status finds ours). Nothing fails in
//! `poll_ready` (tonic would turn that into `Unknown`): the limits wait, and drive the channel's
//! readiness, inside the call.
//!
//! # Deadlines
//!
//! The time left of the request's one deadline is sent as `grpc-timeout` (gRPC's wire format,
//! `29998m`), so the server stops when the client gives up. A `grpc-timeout` you set yourself
//! (tonic's `Request::set_timeout`) is read as the request's deadline when it is earlier than the
//! preset's total, and then it is what is sent: the smaller always goes out. To give one call a
//! total of its own, longer (a `watch` stream that lives for hours) or shorter, insert a
//! [`RequestBudget`](crate::RequestBudget) in its extensions; an earlier deadline (one set with
//! `set_timeout`, or a [`RequestDeadline`](crate::RequestDeadline) taken from an inbound call) is
//! still kept over it. The body-idle limit still applies to a stream: for one that may be silent
//! for long, use a clone of the preset with a longer `body_idle` (a clone shares the limits and
//! stats) and, with held-body reports on, a longer `leak_threshold`.
//!
//! tonic's own `Endpoint::timeout` covers the response headers only and answers `Cancelled`;
//! leave it unset.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tonic::transport::Endpoint;
//! use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
//! use tower_hardened::{Hardened, RequestBudget};
//! use tower_layer::Layer;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hardened = Hardened::new().total(Duration::from_secs(5));
//! let channel = Endpoint::from_static("http://127.0.0.1:50051")
//!     .connect_with_connector_lazy(hardened.grpc_connector());
//! let mut client = HealthClient::new(hardened.grpc_layer().layer(channel));
//!
//! match client.check(HealthCheckRequest { service: String::new() }).await {
//!     Ok(resp) => println!("{:?}", resp.into_inner().status()),
//!     Err(status) => println!("{:?}: {}", status.code(), status.message()),
//! }
//!
//! // A watch lives longer than the preset's total.
//! let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
//! req.extensions_mut().insert(RequestBudget::new(Duration::from_secs(3600)));
//! let mut updates = client.watch(req).await?.into_inner();
//! while let Some(update) = updates.message().await? {
//!     println!("{:?}", update.status());
//! }
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! Around the channel: `Grpc → Telemetry → Deadline → PerHostLimit → ConcurrencyLimit →
//! DrainOnDrop → ResponseBodyLimit → Replay → ResponseHeaderTimeout → BodyIdleTimeout →
//! RequestWriteTimeout → BoxRequestBody → Channel` (the preset's order), and under the channel `PoolConnector → HardenedConnector`. Many
//! calls share one HTTP/2 connection; the limits count calls (streams), the pool's cap counts
//! connections.
//!
//! # Panics
//!
//! Never at request time; the preset's setters panic on bad values when they are called.
//!
//! # With TLS
//!
//! With the `rustls` feature, [`Hardened::grpc_connector`](crate::Hardened::grpc_connector) does
//! TLS itself for `https://` endpoints (ALPN `h2` only) with its own handshake timeout: do not
//! set tonic's `Endpoint::tls_config` as well, or TLS would run over TLS. It does not combine
//! with tonic's own TLS: with tonic's TLS features on in your build, tonic refuses `https://`
//! endpoints that have no `tls_config` ("Connecting to HTTPS without TLS enabled").

mod body;
mod future;
mod layer;
mod service;
mod status;

pub use self::body::GrpcBody;
pub use self::future::GrpcFuture;
pub use self::layer::{GrpcLayer, HardenedGrpc};
pub use self::service::{BoxRequestBody, Grpc};
pub use self::status::{code_of, status_of};

/// The connector of [`Hardened::grpc_connector`](crate::Hardened::grpc_connector), for tonic's
/// `Endpoint::connect_with_connector`: the per-host connection cap around the preset's
/// connector.
pub type GrpcConnector = crate::pool::PoolConnector<crate::https::HardenedConnector>;

#[cfg(test)]
mod tests;
