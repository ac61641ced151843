use std::fmt;
use std::sync::Arc;

/// A connection the keyed [`Pool`](super::Pool) can hold: exclusive (one checkout at a time,
/// like HTTP/1) or shared (several at once, like HTTP/2 streams).
///
/// The pool calls these under its lock, so they must be cheap and must not call back into the
/// pool.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use tower_hardened::Poolable;
///
/// /// An exclusive connection whose peer may hang up.
/// struct Conn {
///     open: Arc<AtomicBool>,
/// }
///
/// impl Poolable for Conn {
///     fn is_open(&self) -> bool {
///         self.open.load(Ordering::Relaxed)
///     }
/// }
///
/// let conn = Conn { open: Arc::new(AtomicBool::new(true)) };
/// assert!(conn.is_open());
/// assert_eq!(conn.capacity(), 1); // exclusive by default
/// ```
pub trait Poolable: Send + Sized + 'static {
    /// Whether it can still carry requests. A connection that says no is never handed out: it
    /// is closed at checkout, at return or by the reaper, whichever sees it first.
    fn is_open(&self) -> bool;

    /// How many checkouts it can carry at once: 1 (the default) for an exclusive connection, the
    /// peer's stream limit for a shared one. May change over its life (tell the pool with
    /// [`ConnectionWatch::capacity_changed`]).
    fn capacity(&self) -> usize {
        1
    }

    /// A second handle on a shared connection, for one more checkout. Called only when
    /// [`capacity`](Self::capacity) is above 1; `None` (the default) makes the connection
    /// exclusive.
    fn share(&self) -> Option<Self> {
        None
    }

    /// How long it may sit idle, when it knows better than the pool (a server's `Keep-Alive:
    /// timeout=N` hint, less a margin): the earlier of this and the pool's
    /// [`idle_timeout`](super::PoolBuilder::idle_timeout) applies. Once idle that long it is
    /// never handed out, and it is closed, counted as
    /// [`CloseReason::Idle`](crate::CloseReason::Idle). Read when it goes idle and at each
    /// checkout, so it may change over its life. `None` (the default): the pool's alone.
    fn idle_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// Called once, when the pool takes the new connection in: keep `watch` and call it when the
    /// connection closes or its capacity changes, so the pool acts at once instead of at the
    /// next checkout. The default ignores it.
    fn watch(&mut self, watch: ConnectionWatch) {
        let _ = watch;
    }
}

/// What a connection tells its [`Pool`](super::Pool) about itself: given to
/// [`Poolable::watch`].
///
/// It holds no strong reference to the pool: calls after the pool is gone do nothing.
///
/// # Example
///
/// ```
/// use std::sync::OnceLock;
/// use tower_hardened::{ConnectionWatch, Poolable};
///
/// struct Conn {
///     watch: OnceLock<ConnectionWatch>,
/// }
///
/// impl Poolable for Conn {
///     fn is_open(&self) -> bool {
///         true
///     }
///     fn watch(&mut self, watch: ConnectionWatch) {
///         let _ = self.watch.set(watch);
///     }
/// }
///
/// // Later, in the task that drives the connection, when it ends:
/// # let conn = Conn { watch: OnceLock::new() };
/// if let Some(watch) = conn.watch.get() {
///     watch.closed();
/// }
/// ```
#[derive(Clone)]
pub struct ConnectionWatch {
    pub(crate) notify: Arc<dyn Fn(Event) + Send + Sync>,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Closed,
    CapacityChanged,
}

impl ConnectionWatch {
    /// The connection closed (the peer hung up, it failed, its task ended): if idle, the pool
    /// drops it now (counted as [`CloseReason::Error`](crate::CloseReason::Error)); if in use,
    /// it is not handed out again.
    pub fn closed(&self) {
        (self.notify)(Event::Closed)
    }

    /// Its [`capacity`](Poolable::capacity) changed: the pool hands any new room to waiting
    /// checkouts.
    pub fn capacity_changed(&self) {
        (self.notify)(Event::CapacityChanged)
    }
}

impl fmt::Debug for ConnectionWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionWatch").finish_non_exhaustive()
    }
}
