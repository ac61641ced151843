//! reqwest with the preset's stack: [`Hardened::reqwest`](crate::Hardened::reqwest) wraps a
//! `reqwest::Client` in [`HardenedReqwest`], `reqwest::Request` in and `reqwest::Response` out,
//! so `.json()`, `.text()`, `error_for_status()` and `url()` keep working.
//!
//! Inside, each request is converted to an `http::Request`, goes through the same layers as
//! [`Hardened::layer`](crate::Hardened::layer) (one deadline for headers and body, the global
//! and per-host limits held until the body ends, drain-on-drop, held-body reports, typed
//! phases), and is sent by the client; the response comes back as `http::Response<reqwest::Body>`
//! and is made a `reqwest::Response` again, its body running through the stack's bodies.
//!
//! - A per-request `timeout` (`RequestBuilder::timeout`) is honoured as an earlier deadline
//!   (taken off the request, so that reqwest's own timer does not race it: the error is ours,
//!   [`Phase::Total`](crate::Phase::Total)). Leave `ClientBuilder::timeout` unset: the preset's
//!   total is the total, and reqwest's would race it.
//! - Errors of [`execute`](HardenedReqwest::execute) and [`send`](HardenedReqwest::send) are
//!   [`BoxError`](crate::BoxError)s: a `reqwest::Error` (downcast it) from reqwest, or ours
//!   ([`Error::find`](crate::Error::find) names the phase) from the stack. reqwest has no public
//!   way to make a `reqwest::Error`, so ours cannot be one; use `Error::find(&*e)` and
//!   [`Error::is_timeout`](crate::Error::is_timeout).
//! - Errors that reqwest makes itself while reading the body (`bytes()`, `text()`, `json()`,
//!   `chunk()`) *are* `reqwest::Error`s: for our timeouts (`BodyIdle`, `Total`) their
//!   `is_timeout()` is true (the stack's error goes in as an `io::Error` of kind `TimedOut`,
//!   which reqwest's `is_timeout` looks for), and `Error::find` still finds ours inside.
//! - Connecting is reqwest's: its connector is not reachable from outside. Bound it with
//!   [`ConnectTimeoutLayer`](crate::ConnectTimeoutLayer) in `ClientBuilder::connector_layer`
//!   (it takes reqwest's unnameable request type): a timeout is then a `reqwest::Error` with
//!   `is_connect()` and `is_timeout()` true and [`Phase::Connect`](crate::Phase::Connect) inside.
//!   There it bounds reqwest's whole connector (DNS, TCP, TLS, proxy) as one phase, and the
//!   preset's response-header timeout starts once it is over. Without it, the response-header
//!   timeout counts reqwest's connect too.
//! - reqwest's pool is reqwest's: the preset's pool settings do not apply.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_hardened::{ConnectTimeoutLayer, Error, Hardened, Phase};
//!
//! # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
//! let hardened = Hardened::new().max_requests_per_host(8);
//! let client = reqwest::Client::builder()
//!     .connector_layer(hardened.connect_layer())
//!     .build()?;
//! let client = hardened.reqwest(client);
//!
//! let req = client.client().get("http://127.0.0.1:8080/items").timeout(Duration::from_secs(2));
//! match client.send(req).await {
//!     Ok(resp) => {
//!         let items: serde_json::Value = resp.error_for_status()?.json().await?;
//!         println!("{items}");
//!     }
//!     Err(e) => match Error::find(&*e) {
//!         Some(ours) => println!("{:?}: {ours}", ours.phase()),
//!         None => println!("{e}"),
//!     },
//! }
//! # let _ = ConnectTimeoutLayer::new(Duration::from_secs(1)); let _ = Phase::Connect;
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! `HardenedReqwest → Deadline → PerHostLimit → ConcurrencyLimit → DrainOnDrop →
//! ResponseBodyLimit → ResponseHeaderTimeout → BodyIdleTimeout → RequestWriteTimeout →
//! ReqwestService → reqwest::Client (→ connector_layer(ConnectTimeoutLayer))`.
//!
//! # Panics
//!
//! Never at request time; the preset's setters panic on bad values when they are called.
//!
//! # Differences from reqwest
//!
//! reqwest's `timeout` is one total with no phase, `read_timeout` is per read; neither bounds
//! the wait for a concurrency permit (reqwest has no limits), and a dropped `Response` closes
//! its HTTP/1 connection instead of giving it back.

mod client;
mod inner;

#[cfg(test)]
use self::client::TimeoutAsIo;

pub use self::client::{HardenedReqwest, ReqwestFuture};
pub use self::inner::{ReqwestService, ReqwestServiceFuture};

#[cfg(test)]
mod tests;
