//! A generic keyed pool that owns its idle list, so that every bound is exact: [`Pool`].
//!
//! The connections are made by a connector you give it (any `Service<K>`), for any key type,
//! HTTP or not, exclusive (one checkout at a time) or shared (up to their [`Poolable::capacity`],
//! like HTTP/2 streams). Every bound is enforced under the pool's one lock, atomically with
//! checkouts: idle connections in total (Go's `MaxIdleConns`, least recently used closed first)
//! and per key; an idle timeout and a max lifetime with jitter, reaped by one background task;
//! connections per key (dialing + in use + idle), an acquire timeout and a bounded queue of
//! waiting checkouts. A connection that comes back goes to the oldest waiting checkout of its
//! key before it idles; a dial nobody waits for any more is given up (at once, or for HTTP/1
//! after a grace of 1 s while its key has a connection open, so that a dial about done serves
//! the next checkout instead of being thrown away). The transport
//! (feature `transport`) is built on it.
//!
//! One folder, one type, split by role: `builder.rs` (the settings), `state.rs` (the state
//! machine, with the time passed in), `pool.rs` (the lock, the dial tasks and the reaper),
//! `checkout.rs` (the checkout and its future), `poolable.rs` (what a connection must say).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use tower_hardened::{ErrorKind, Error, Phase, PoolBuilder, Poolable};
//!
//! struct Conn;
//! impl Poolable for Conn {
//!     fn is_open(&self) -> bool {
//!         true
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_hardened::BoxError> {
//! let pool = PoolBuilder::new()
//!     .max_conns_per_host(1)
//!     .acquire_timeout(Duration::from_secs(1))
//!     .build(tower::service_fn(|_host: &'static str| async { Ok::<_, Infallible>(Conn) }));
//!
//! let held = pool.checkout("a").await?;
//! // The only connection "a" may have is in use: the next checkout waits, then gives up.
//! let err = pool.checkout("a").await.unwrap_err();
//! assert_eq!(Error::find(&*err).unwrap().phase(), Some(Phase::Acquire));
//! drop(held);
//! let again = pool.checkout("a").await?; // the one that came back
//! assert!(again.is_reused());
//! # Ok(()) }
//! ```
//!
//! # How the bounds are kept
//!
//! - **Idle caps**: a connection going idle past `max_idle_per_host` or `max_idle` closes the
//!   least recently used idle connection (of the key, or of the whole pool: one ordered index
//!   over every idle connection). Checkouts take the most recently used one, so the others age
//!   out.
//! - **Idle timeout and lifetime**: one reaper task per pool sleeps until the next connection is
//!   due and closes it then (no timer per connection); it holds a `Weak` and ends with the pool.
//!   A connection may also say how long it may idle ([`Poolable::idle_timeout`], a server's
//!   keep-alive hint): the earlier limit applies. A checkout never gets an expired or closed
//!   connection, nor one idle past its own limit (all checked under the lock); one in use is
//!   never cut.
//! - **Connections per key**: dials are counted with connections in use and idle. A checkout
//!   that finds nothing usable waits in its key's queue; a dial is started for it only if no dial
//!   in flight is counted for it yet and there is room. Each dial runs on a task of its own;
//!   when it is done its connection goes to the oldest waiter, so a dial serves whoever is first
//!   in line; when the waiters it was counted for are gone (served by connections that came
//!   back, timed out, dropped), it is given up: at once, or, for an exclusive connection to a key
//!   with one open, after a grace of 1 s in which it may still finish and serve the next
//!   checkout. Nothing is left running after a burst. A dial whose task ends without a result
//!   (a connector that panics, a runtime shut down) fails its checkouts at once and frees its
//!   slot.
//! - **Acquire timeout**: bounds the wait of a checkout no dial is counted for (waiting for room);
//!   one whose dial is in flight waits for that dial, bounded by the connector's own timeout
//!   ([`ConnectTimeoutLayer`](crate::ConnectTimeoutLayer)), so a dead host reports `Connect`
//!   and a full pool `Acquire`.
//!
//! # Panics
//!
//! [`PoolBuilder`]'s setters panic on bad values (see there). A checkout outside a tokio
//! runtime fails (it cannot dial) rather than panic.
//!
//! # Differences from hyper-util, Go and HikariCP
//!
//! - hyper-util's legacy pool has `pool_max_idle_per_host` and an idle timeout (reaped only when
//!   a timer is set), nothing else; it races a checkout against a dial and keeps the losing dial
//!   running in the background. hyper's new `client::pool` modules have no eviction, caps or
//!   lifetime.
//! - Go's `Transport` has the idle caps and `MaxConnsPerHost`, but its wait for a connection is
//!   bounded only by the request's context, and it has no max lifetime; Go closes the *returned*
//!   connection when a host's idle list is full, this pool its least recently used one.
//! - HikariCP has the lifetime with jitter, the acquire timeout and leak detection, for one
//!   database; this pool keeps them per key, for any number of keys.

mod builder;
mod checkout;
mod pool;
mod poolable;
mod state;

pub use self::builder::PoolBuilder;
pub use self::checkout::{Checkout, CheckoutFuture};
pub use self::pool::Pool;
pub use self::poolable::{ConnectionWatch, Poolable};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
