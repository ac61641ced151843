//! Safe replay of requests lost to the stale keep-alive race: [`ReplayLayer`].
//!
//! A server (or load balancer) closes a connection that has been idle for its keep-alive timeout;
//! a client that picked that connection from its pool at the same moment has written its request
//! into a closed socket and gets "connection closed before message completed" or "connection
//! reset by peer". [`ReplayLayer`] sends such a request once more when it is safe: the method is
//! idempotent by Go's rule and the body is empty or small enough to keep (see the table on
//! [`ReplayLayer`]); anything else fails with
//! [`ErrorKind::ConnectionClosed`](crate::ErrorKind::ConnectionClosed), saying why it was not
//! retried. Replays are counted in [`StatsSnapshot::replays`](crate::StatsSnapshot::replays).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_hardened::{DeadlineLayer, PoolClientBuilder, ReplayBody, ReplayLayer, ResponseHeaderTimeoutLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let client = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(ReplayLayer::new())
//!     .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
//!     .service(PoolClientBuilder::new().build_http::<ReplayBody<http_body_util::Empty<bytes::Bytes>>>());
//! # let _ = client; }
//! ```
//!
//! # Where it goes
//!
//! Inside the deadline and the limits (a replay keeps the request's deadline and permits),
//! outside the phase timeouts (each attempt gets its own, and a timeout, an error of this crate,
//! is never replayed). The preset puts it between `ResponseBodyLimit` and
//! `ResponseHeaderTimeout`. Over hyper-util's legacy client it needs the client of
//! [`PoolClientBuilder`](crate::PoolClientBuilder) (or [`PoolConnectorLayer`](crate::PoolConnectorLayer)
//! plus [`RetireLayer`](crate::RetireLayer)): their connection tags know whether a connection
//! was reused, whether anything was read since the request's first write, and how long it had
//! been idle. Over the crate's `Transport` (feature `transport`) it works as it is. Over any
//! other client it replays nothing.
//!
//! # The contract with the client under it
//!
//! A failure qualifies when its error chain says "written on a reused connection, closed or
//! reset by the peer before any byte of the response, after the connection was idle for D".
//! On the legacy path that is read from hyper-util's `Error::connect_info()` (the connection's
//! `ConnectionInfo`) and hyper's error (an incomplete message, or a reset). A transport of this
//! crate says it by putting the crate-internal `replay::lost::LostConnection { idle }` in the
//! chain. The replay carries the crate-internal `FreshConnection` request extension: the
//! transport must then send it on a newly dialed connection. The legacy client cannot be told,
//! so before the replay the host's pooled connections idle at least D are retired (poisoned),
//! and the replay takes a less idle one or a new one.

mod body;
mod future;
mod layer;
pub(crate) mod lost;
mod policy;

pub use self::body::ReplayBody;
pub use self::future::ReplayFuture;
pub use self::layer::{Replay, ReplayLayer};
#[cfg(feature = "preset")]
pub(crate) use self::{
    future::{after_error, poll_replay_ready as poll_ready},
    layer::{prepare, Retry, Shared as ReplayShared},
};

#[cfg(test)]
mod tests;
