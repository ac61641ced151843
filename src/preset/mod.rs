//! The one-line safe stack: [`Hardened`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let client = tower_hardened::Hardened::new().client::<http_body_util::Full<bytes::Bytes>>();
//! # let _ = client; }
//! ```
//!
//! gives a hyper-util legacy client with every layer of this crate in the right order, every
//! default below, and one shared [`Stats`] handle. Every default can be changed: with a setter
//! of the same name, and for the drain and pool rows through [`Hardened::drain_with`] and
//! [`Hardened::pool_with`] (which keep the defaults you do not set); use [`Hardened::layer`] to
//! put the request-side stack around any other client (a tonic channel, your own stack), or
//! [`ServiceBuilderExt`] to compose by hand.
//!
//! # The stack, outer to inner
//!
//! ```text
//! Deadline → PerHostLimit → ConcurrencyLimit → DrainOnDrop → ResponseBodyLimit
//!   → ResponseHeaderTimeout → BodyIdleTimeout → RequestWriteTimeout
//!   → Retire → hyper-util Client (pool_timer set) → PoolConnector → ConnectTimeout → HttpConnector
//! ```
//!
//! - The deadline is outermost so that queue waits, pool waits, connecting and the body all count.
//! - The limits come next so that their waits happen inside the deadline, and their permits live
//!   in the response body, released when it ends or is dropped. The per-host limit is outside the
//!   global one (DESIGN.md lists them the other way round): a request first waits for its host,
//!   then for a global permit, so requests queued for one slow host never sit on global permits
//!   and starve every other host. Both count into one [`Stats`] without counting a request twice:
//!   `in_flight` is the global limiter's, `waiting` is the sum of both queues.
//! - Drain-on-drop sits inside the limits: a dropped body gives its permit back at once while its
//!   connection is drained in the background (bounded, and limited in number).
//! - The phase timeouts are innermost, around the client itself, so they time the exchange and
//!   not the queues.
//! - On the connector: the per-host connection cap outside the connect timeout, so a wait for a
//!   connection slot is `Acquire` and never blamed on DNS or TCP. For HTTPS, put
//!   [`TlsHandshakeTimeoutLayer`] around your TLS connector and [`Hardened::connect_layer`]
//!   around its TCP connector, and pass it to [`Hardened::client_with`].
//!
//! # Defaults, and where they come from
//!
//! | knob | ours | Go `DefaultTransport` | OkHttp | HikariCP / Envoy | why ours |
//! |---|---|---|---|---|---|
//! | total deadline | 30 s | ∞ (`Client.Timeout`) | ∞ (`callTimeout`) | Envoy route 15 s | a bound must exist; long enough for slow APIs and modest downloads |
//! | connect (DNS + TCP) | 10 s | 30 s | 10 s | Envoy 5 s | OkHttp's: a host that takes 10 s to accept is down |
//! | TLS handshake | 10 s | 10 s | (in connect) | — | Go's |
//! | response headers | 10 s | ∞ | 10 s (`readTimeout`) | — | OkHttp's; a server that has not started answering in 10 s is stuck |
//! | body idle | 30 s | ∞ | 10 s (`readTimeout`) | Envoy stream idle 5 min | between OkHttp and Envoy: streams may pause, stalls must end |
//! | request write | 10 s | ∞ | 10 s (`writeTimeout`) | — | OkHttp's; also bounds a socket write that makes no progress ([`PoolConnectorLayer::write_stall_timeout`](crate::PoolConnectorLayer::write_stall_timeout)), so a peer that never reads cannot pin a connection task |
//! | requests in flight | 256 | ∞ | 64 (`maxRequests`) | HikariCP pool 10 | OkHttp's is tuned for phones; 256 bounds a server's fan-out |
//! | requests per host | 64 | ∞ (`MaxConnsPerHost`) | 5 (`maxRequestsPerHost`) | — | 5 throttles service-to-service traffic; 64 still stops one slow host from taking everything |
//! | waiting requests, per queue (global, each host) | 1024 | — | ∞ | Envoy pending queue 1024 | Envoy's: then fail fast with `Overloaded` |
//! | permit wait (acquire) | 10 s | — | — | HikariCP 30 s | fail a request that cannot start in a third of its deadline |
//! | drain of a dropped body | 256 KiB / 100 ms / 64 at once | — (must read yourself) | ≤ 100 ms | — | see [`DrainOnDropLayer`] |
//! | held-body report | 60 s | — | — | HikariCP leak threshold off (≥ 2 s) | twice the deadline: a body nobody reads for that long is a leak |
//! | idle timeout (reaped) | 90 s | 90 s | 5 min | HikariCP 10 min | Go's |
//! | idle connections per host | 16 | 2 | 5 (in all) | — | Go's 2 causes connection churn under load |
//! | connections per host | 128 | ∞ | — | — | in-flight per host plus idle, with room for background dials |
//! | max connection lifetime | 30 min − ≤ 2.5 % | ∞ | ∞ | HikariCP 30 min − ≤ 2.5 % | HikariCP's: DNS changes and server rotation are picked up |
//! | response header bytes | 400 KiB | 10 MiB (`MaxResponseHeaderBytes`) | — | — | HTTP/1: hyper's own read-buffer ceiling (408 KiB) rounded down — hyper has no separate HTTP/1 head limit, that ceiling is the cap, and a 64 KiB one made 64 KiB bodies 1.21x slower (BENCHMARKS.md); HTTP/2: the same 400 KiB (hyper's client default is 16 KiB), so both protocols accept the same heads |
//! | response body bytes | unlimited | ∞ | ∞ | — | streams are legitimate; set [`Hardened::max_response_body`] when you collect |

mod body;
mod builder;
mod client;
mod ext;
mod future;
mod layer;
mod service;
mod stack;

pub use self::body::HardenedBody;
pub use self::builder::Hardened;
pub use self::client::{HardenedClient, HardenedClientBody, HardenedClientFuture};
pub use self::ext::ServiceBuilderExt;
pub use self::future::HardenedFuture;
pub use self::layer::HardenedLayer;
pub use self::service::HardenedService;

#[cfg(test)]
mod tests;
