//! Requests in the names dashboards already chart: [`TelemetryLayer`].
//!
//! Each request gets one `tracing` span, `http.client.request` at `DEBUG`, from `call` to the
//! end of its response body (fields `http.request.method`, `server.address`, `server.port`,
//! then `http.response.status_code` and, on failure, `error.type`), and a failure is a `DEBUG`
//! event on it. Inner layers poll inside the span, so their events (timeouts at `debug`) and
//! the drain layer's held-body report (`WARN`, with method, URI and age) belong to it. The
//! level is `DEBUG` because a kept span costs: with `tracing-subscriber`'s `fmt` keeping it,
//! about 9,000 instructions per request (`BENCHMARKS.md`); an application that logs at `INFO`
//! pays nothing for it. Keep them with a filter such as `tower_hardened=debug`.
//!
//! With the `metrics` feature it records, through the [`metrics`](https://docs.rs/metrics)
//! facade, the OpenTelemetry HTTP client conventions:
//!
//! | name | kind | attributes | recorded by |
//! |---|---|---|---|
//! | `http.client.request.duration` | histogram, s | `http.request.method`, `server.address`, `server.port`, `http.response.status_code`, `error.type` | this layer, when the body ends, fails or is dropped |
//! | `http.client.active_requests` | gauge | method, address, port | this layer |
//! | `http.client.request.time_in_queue` | histogram, s | method, address, port | this layer, when the pool hands the request a connection: queue, pool and dial waits |
//! | `http.client.open_connections` | gauge | `http.connection.state` (`active`, `idle`), address, port | the pool |
//! | `http.client.connection.duration` | histogram, s | address, port | the pool, when a connection closes |
//! | `tower_hardened.timeouts` | counter | `phase` ([`Phase::as_str`](crate::Phase::as_str)) | every layer given a [`Stats`](crate::Stats) |
//! | `tower_hardened.overloads` | counter | — | the limiters, with `Stats` |
//! | `tower_hardened.drains` | counter | `outcome`: `finished`, `bytes`, `time`, `concurrency`, `error`, `no_runtime` | the drain layer, with `Stats` |
//! | `tower_hardened.leaks` | counter | — | the drain layer's held-body report, with `Stats` |
//! | `tower_hardened.replays` | counter | — | the replay layer, with `Stats` |
//! | `tower_hardened.connections.closed` | counter | `reason`: `idle`, `lifetime`, `cap`, `error`, `other` | the pool, with `Stats` |
//! | `tower_hardened.adaptive.limit` | gauge | — | the adaptive limiters' current limit, summed over hosts, with `Stats` |
//!
//! `error.type` is one of [`ERROR_TYPES`]: the phase of a timeout, the kind of another error
//! of this crate, `cancelled` (the caller dropped the response future), `_OTHER` (any other
//! error, such as a refused connection). A body dropped unread is no error. Attributes are
//! bounded: the host and port of the URI, never its path or query; a method outside the nine
//! standard ones is `_OTHER`. A status of 4xx or 5xx is in `http.response.status_code` only,
//! not in `error.type`, so the set stays fixed. Without the feature, nothing of this is
//! compiled.
//!
//! With hyper-util's legacy pool ([`PoolClientBuilder`](crate::PoolClientBuilder), as in the
//! preset), a connection counts `active` from the moment the client picks it for a request that
//! went through this layer until that request's body ends or is dropped, `idle` otherwise (a
//! body dropped and drained in the background counts idle while it drains); the time in queue
//! ends at that same moment. Without this layer around the client, connections all count idle
//! and no time in queue is recorded: only the requests tell which connection they got.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_hardened::{DeadlineLayer, TelemetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(TelemetryLayer::new())
//!     .layer(DeadlineLayer::new(Duration::from_secs(10)))
//!     .service(service_fn(|_req: Request<()>| async {
//!         // A hyper-util client in real life.
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("ok"))))
//!     }));
//!
//! let req = Request::get("http://example.com:8080/search?q=secret").body(())?;
//! let resp = svc.oneshot(req).await?;
//! resp.into_body().collect().await?; // the span and `http.client.request.duration` end here,
//!                                    // labelled example.com and 8080, never /search or q=
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! Outermost, outside [`DeadlineLayer`](crate::DeadlineLayer) (the preset puts it there). A
//! deadline that passes before the headers is the deadline future's own error: inside it, this
//! layer would only see its future dropped. Outside everything it also times what the caller
//! waits for, queue and pool waits included, and counts requests the limiters refuse.
//!
//! # Differences from tower-http and reqwest
//!
//! - tower-http's `TraceLayer` is a frame to fill in: its default span (`request`, at
//!   `DEBUG`) carries method, URI and version, so the path and query go into every span, and
//!   it has no metrics; its `on_response` latency stops at the headers (`on_eos` is called at
//!   the end of the body, with the time since the headers). Here the names, the bounded
//!   attributes and the duration to the end of the body are fixed.
//! - reqwest has neither spans nor metrics; middleware crates add a span that ends at the
//!   headers. None of them can name the phase that failed.

// One layer, split by role: layer, service, future, body; `exchange` is what one request
// records, `record` the metric names and the recording points other modules call.
mod body;
// The connection side is used by the pool and the transport only.
#[cfg_attr(not(any(feature = "pool", feature = "transport")), allow(dead_code))]
mod exchange;
mod future;
mod layer;
#[cfg(feature = "metrics")]
#[cfg_attr(not(any(feature = "pool", feature = "transport")), allow(dead_code))]
pub(crate) mod record;
mod service;

pub use self::body::TelemetryBody;
#[allow(unused_imports)]
pub(crate) use self::exchange::{ConnMeter, Exchange};
pub use self::future::TelemetryFuture;
pub use self::layer::TelemetryLayer;
pub use self::service::Telemetry;

/// Every value `error.type` takes, on the span and on `http.client.request.duration`: the seven
/// [`Phase::as_str`](crate::Phase::as_str) names (timeouts), the other kinds of
/// [`ErrorKind`](crate::ErrorKind), then `cancelled` and `_OTHER`.
///
/// ```
/// use tower_hardened::{telemetry::ERROR_TYPES, Phase};
///
/// assert!(Phase::ALL.iter().all(|p| ERROR_TYPES.contains(&p.as_str())));
/// assert_eq!(ERROR_TYPES.len(), 12);
/// ```
pub const ERROR_TYPES: [&str; 12] = [
    "connect",
    "tls_handshake",
    "acquire",
    "request_write",
    "response_headers",
    "body_idle",
    "total",
    "overloaded",
    "body_too_large",
    "connection_closed",
    exchange::CANCELLED,
    exchange::OTHER,
];

/// Describes every metric of the crate (unit and help text) to the installed recorder and
/// registers the crate's counters at zero, one series per label value, so a dashboard sees
/// them before the first event. [`TelemetryLayer::new`] calls it; call it again after
/// installing a recorder if the layer was made before.
///
/// ```
/// tower_hardened::telemetry::describe_metrics(); // no recorder installed: does nothing
/// ```
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use record::*;

    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP client requests, to the end of the response body."
    );
    describe_gauge!(
        ACTIVE_REQUESTS,
        "Number of outbound HTTP requests that are currently active on the client."
    );
    describe_gauge!(
        OPEN_CONNECTIONS,
        "Number of outbound HTTP connections that are currently active or idle on the client."
    );
    describe_histogram!(
        CONNECTION_DURATION,
        Unit::Seconds,
        "The duration of the successfully established outbound HTTP connections."
    );
    describe_histogram!(
        TIME_IN_QUEUE,
        Unit::Seconds,
        "The amount of time requests spent on a queue waiting for an available connection."
    );
    describe_counter!(TIMEOUTS, "Timeouts, by the phase that timed out.");
    describe_gauge!(
        ADAPTIVE_LIMIT,
        "The current limit of the adaptive concurrency limiters, summed over every host."
    );
    describe_counter!(
        OVERLOADS,
        "Requests refused at once because a queue was full."
    );
    describe_counter!(
        DRAINS,
        "Dropped response bodies: drained to their end, or why not."
    );
    describe_counter!(
        LEAKS,
        "Response bodies held too long without being read or dropped."
    );
    describe_counter!(
        REPLAYS,
        "Written idempotent requests replayed on a fresh connection."
    );
    describe_counter!(CONNECTIONS_CLOSED, "Pooled connections closed, by reason.");

    for &phase in crate::Phase::ALL {
        metrics::counter!(TIMEOUTS, "phase" => phase.as_str()).increment(0);
    }
    for outcome in DRAIN_OUTCOMES {
        metrics::counter!(DRAINS, "outcome" => outcome).increment(0);
    }
    for &why in crate::CloseReason::ALL {
        metrics::counter!(CONNECTIONS_CLOSED, "reason" => close_reason(why)).increment(0);
    }
    metrics::counter!(OVERLOADS).increment(0);
    metrics::counter!(LEAKS).increment(0);
    metrics::counter!(REPLAYS).increment(0);
}

#[cfg(test)]
mod tests;
#[cfg(feature = "preset")]
pub(crate) use self::exchange::{Cache, Outcome, Recording};
