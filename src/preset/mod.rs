//! The one-line safe stack: [`Hardened`].
//!
//! [`Hardened::client`] gives a ready client with every layer of this crate in the right order,
//! the defaults below and one shared [`Stats`](crate::Stats) handle, on the crate's
//! [`Transport`](crate::Transport). [`Hardened::layer`] puts the same request-side stack around
//! any other client (hyper-util's legacy one from [`Hardened::legacy_client`], a tonic channel,
//! your own), and [`ServiceBuilderExt`] adds the layers one at a time to a
//! `tower::ServiceBuilder`. One `Hardened` value is one set of limits, shared by every client and
//! layer made from it or from its clones, and one pool, shared by every [`Hardened::client`]
//! (each [`Hardened::client_with`] and `legacy_client*` call makes a pool of its own).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use tower_hardened::Hardened;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let preset = Hardened::new().total(Duration::from_secs(10));
//! let client = preset.client::<Empty<Bytes>>(); // a tower::Service<http::Request<Empty<Bytes>>>
//! let stats = preset.stats_handle(); // every layer of `client` counts here
//! assert_eq!(stats.snapshot().in_flight, 0);
//! # let _ = client; }
//! ```
//!
//! # The stack, outer to inner
//!
//! ```text
//! Telemetry → Deadline → PerHostLimit → ConcurrencyLimit → DrainOnDrop → ResponseBodyLimit
//!   → Replay → ResponseHeaderTimeout → BodyIdleTimeout → RequestWriteTimeout → your client
//! ```
//!
//! Every request goes through these guarantees in this order. The preset runs them all as one
//! fused service, with one future and one body wrapper (cheaper, same rules); with
//! [`Hardened::adaptive`], and through [`ServiceBuilderExt`], each layer runs on its own.
//!
//! Telemetry (one span per request, and with `metrics` the OpenTelemetry series) is outermost,
//! so it sees every outcome, the deadline's included (see [`telemetry`](crate::telemetry)).
//! The per-host limit is static, or adaptive with [`Hardened::adaptive`].
//!
//! `Replay` ([`ReplayLayer`](crate::ReplayLayer)) sits inside the deadline and the limits, so a
//! replay keeps the request's deadline and permits, and outside the phase timeouts, so each
//! attempt gets its own and a timeout is never replayed.
//!
//! [`Hardened::client`] runs it on the crate's [`Transport`](crate::Transport), whose pool bounds
//! are exact (see [`transport`](crate::transport)), over [`HardenedConnector`](crate::HardenedConnector)
//! (connect and TLS-handshake timeouts). [`Hardened::legacy_client`] runs it on hyper-util's
//! legacy client over a bounded pool instead (see [`pool`](crate::pool)); it cannot cap idle
//! connections in total. As a layer, the preset goes directly around the client, with nothing of
//! this crate around it. Why this order: see docs/design.md in the repository.
//!
//! # Defaults
//!
//! | knob | default | from | change with |
//! |---|---|---|---|
//! | total deadline, body included | [30 s](Hardened::DEFAULT_TOTAL) | ours (Envoy: 15 s; Go, OkHttp: none) | [`total`](Hardened::total) |
//! | connect (DNS + TCP) | [10 s](Hardened::DEFAULT_CONNECT) | OkHttp | [`connect`](Hardened::connect) |
//! | TLS handshake | [10 s](Hardened::DEFAULT_TLS_HANDSHAKE) | Go | [`tls_handshake`](Hardened::tls_handshake) |
//! | response headers | [10 s](Hardened::DEFAULT_RESPONSE_HEADERS) | OkHttp | [`response_headers`](Hardened::response_headers) |
//! | gap between body frames | [30 s](Hardened::DEFAULT_BODY_IDLE) | between OkHttp and Envoy | [`body_idle`](Hardened::body_idle) |
//! | request write, and a stalled socket write | [10 s](Hardened::DEFAULT_REQUEST_WRITE) | OkHttp | [`request_write`](Hardened::request_write) |
//! | requests in flight | [256](Hardened::DEFAULT_MAX_IN_FLIGHT) | ours | [`max_in_flight`](Hardened::max_in_flight) |
//! | requests in flight per host | [64](Hardened::DEFAULT_MAX_REQUESTS_PER_HOST) | ours | [`max_requests_per_host`](Hardened::max_requests_per_host) |
//! | waiting requests, per queue | [1024](Hardened::DEFAULT_MAX_WAITING) | Envoy | [`max_waiting`](Hardened::max_waiting) |
//! | wait for a permit or a connection slot | [10 s](Hardened::DEFAULT_ACQUIRE_TIMEOUT) | ours | [`acquire_timeout`](Hardened::acquire_timeout) |
//! | bytes drained from a dropped body | [256 KiB](crate::DrainOnDropLayer::DEFAULT_MAX_DRAIN_BYTES) | Go's server | [`drain_with`](Hardened::drain_with) |
//! | time to drain a dropped body | [100 ms](crate::DrainOnDropLayer::DEFAULT_MAX_DRAIN_TIME) | OkHttp | [`drain_with`](Hardened::drain_with) |
//! | drains at once | [64](crate::DrainOnDropLayer::DEFAULT_MAX_CONCURRENT_DRAINS) | ours | [`drain_with`](Hardened::drain_with) |
//! | held-body report | [60 s](Hardened::DEFAULT_LEAK_THRESHOLD) | ours (twice the deadline) | [`drain_with`](Hardened::drain_with) |
//! | idle timeout, reaped | [50 s](Hardened::DEFAULT_IDLE_TIMEOUT) | below the idle timeouts of [AWS ALB, 60 s](https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#connection-idle-timeout) and [nginx, 75 s](https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout) (Go: 90 s) | [`transport_with`](Hardened::transport_with) |
//! | idle connections in total | [100](Hardened::DEFAULT_MAX_IDLE) | Go `MaxIdleConns` | [`max_idle`](Hardened::max_idle) |
//! | idle connections per host | [16](Hardened::DEFAULT_MAX_IDLE_PER_HOST) | ours | [`transport_with`](Hardened::transport_with) |
//! | connections per host | [128](Hardened::DEFAULT_MAX_CONNS_PER_HOST) | ours | [`transport_with`](Hardened::transport_with) |
//! | connection lifetime | [30 min](crate::PoolBuilder::DEFAULT_MAX_LIFETIME) | HikariCP | [`transport_with`](Hardened::transport_with) |
//! | less a random jitter of up to | [2.5 %](crate::PoolBuilder::DEFAULT_JITTER) | HikariCP | [`transport_with`](Hardened::transport_with) |
//! | response head bytes | [400 KiB](Hardened::DEFAULT_MAX_RESPONSE_HEADER_BYTES) | hyper's read-buffer ceiling | [`max_response_header_bytes`](Hardened::max_response_header_bytes) |
//! | response body bytes | [unlimited](Hardened::DEFAULT_MAX_RESPONSE_BODY) | Go, OkHttp | [`max_response_body`](Hardened::max_response_body) |
//!
//! The legacy client's pool ([`pool_with`](Hardened::pool_with)) has the same defaults, except
//! the total idle cap, which it cannot enforce.
//!
//! Servers with shorter keep-alive timeouts (Apache and Node: 5 s) mostly say so in a
//! `Keep-Alive: timeout=N` header, and the pool retires such a connection before it; what still
//! races is replayed when safe ([`ReplayLayer`](crate::ReplayLayer)).
//!
//! Each knob beside Go's, OkHttp's, HikariCP's and Envoy's, and why ours: see
//! docs/comparisons.md in the repository.
//!
//! # Panics
//!
//! The setters panic on values that cannot work (a zero duration, a zero limit, a head cap below
//! hyper's minimum): at construction, never on a request.

mod body;
mod builder;
mod client;
mod erased;
mod ext;
mod fused;
mod fused_body;
mod future;
mod integrations;
mod layer;
mod request_body;
mod service;
mod stack;

pub use self::body::HardenedBody;
pub use self::builder::Hardened;
pub use self::client::{HardenedClient, HardenedClientBody, HardenedClientFuture};
pub use self::ext::ServiceBuilderExt;
pub use self::future::HardenedFuture;
pub use self::layer::HardenedLayer;
pub use self::request_body::HardenedRequestBody;
pub use self::service::HardenedService;

#[cfg(test)]
mod tests;
