use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::pool::Inner;
use super::poolable::Poolable;
use super::state::{Grant, PoolClosed, Returned, TimedOut, WaiterId};
use crate::clock::{Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Phase};
use crate::stats::CloseReason;

/// A connection checked out of a [`Pool`](super::Pool): it dereferences to the connection and
/// goes back to the pool when dropped (to the oldest waiting checkout of its key first, then
/// idle, or closed if it is no longer usable or over an idle cap).
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use tower_hardened::{PoolBuilder, Poolable};
///
/// struct Conn;
/// impl Poolable for Conn {
///     fn is_open(&self) -> bool {
///         true
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let pool = PoolBuilder::new().build(tower::service_fn(|_: u8| async { Ok::<_, Infallible>(Conn) }));
/// let conn = pool.checkout(1).await?;
/// assert!(!conn.is_reused());
/// assert_eq!(conn.idle_for(), None); // a new connection
/// conn.discard(); // it failed: closed, not given back
/// assert_eq!(pool.idle(), 0);
/// # Ok(()) }
/// ```
pub struct Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    conn: Option<T>,
    grant: GrantInfo,
    discard: Option<CloseReason>,
    key: K,
    inner: Arc<Inner<K, T>>,
}

/// What a grant says about the connection, kept by the checkout.
#[derive(Clone, Copy)]
struct GrantInfo {
    meta: super::state::Meta,
    shared: bool,
    idle_for: Option<Duration>,
    held: Option<super::state::HeldKey>,
}

impl<K, T> Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pub(crate) fn new(inner: Arc<Inner<K, T>>, key: K, grant: Grant<T>) -> Self {
        Checkout {
            conn: Some(grant.conn),
            grant: GrantInfo {
                meta: grant.meta,
                shared: grant.shared,
                idle_for: grant.idle_for,
                held: grant.held,
            },
            discard: None,
            key,
            inner,
        }
    }

    /// The key it was checked out for.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// A number unique to the connection within its pool.
    pub fn id(&self) -> u64 {
        self.grant.meta.id
    }

    /// Whether the connection came from the pool (it served an earlier checkout, or it sat
    /// idle: a dial whose checkout was served by another connection first), as opposed to being
    /// dialed for this one. Only such a connection can have been closed by its peer while idle.
    pub fn is_reused(&self) -> bool {
        self.grant.meta.uses > 1 || self.grant.idle_for.is_some()
    }

    /// How long the connection sat idle before this checkout: `None` for a new connection,
    /// zero for one handed straight over by the checkout before (or shared with others).
    pub fn idle_for(&self) -> Option<Duration> {
        self.grant.idle_for
    }

    /// When the connection was made.
    pub fn opened_at(&self) -> Instant {
        self.grant.meta.opened
    }

    /// When it stops being reused (its lifetime with jitter), if a lifetime is set.
    pub fn retire_at(&self) -> Option<Instant> {
        self.grant.meta.retire_at
    }

    /// Whether this checkout shares its connection with others (HTTP/2 streams).
    pub fn is_shared(&self) -> bool {
        self.grant.shared
    }

    /// Closes the connection instead of giving it back: it failed. A shared connection is
    /// handed out no more and closes when its last checkout comes back. Counted as
    /// [`CloseReason::Error`].
    pub fn discard(mut self) {
        self.discard = Some(CloseReason::Error);
    }

    /// Closes the connection instead of giving it back, counted as `reason`.
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    pub(crate) fn discard_as(&mut self, reason: CloseReason) {
        self.discard = Some(reason);
    }
}

impl<K, T> Deref for Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    type Target = T;

    fn deref(&self) -> &T {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl<K, T> DerefMut for Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn deref_mut(&mut self) -> &mut T {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl<K, T> Drop for Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let ret = Returned {
            conn,
            meta: self.grant.meta,
            shared: self.grant.shared,
            discard: self.discard,
            held: self.grant.held,
        };
        let key = &self.key;
        self.inner
            .run(|l, now, fx| l.state.give_back(key, ret, now, fx));
    }
}

impl<K, T> fmt::Debug for Checkout<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkout")
            .field("key", &self.key)
            .field("id", &self.id())
            .field("reused", &self.is_reused())
            .field("idle_for", &self.idle_for())
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

/// The future of [`Pool::checkout`](super::Pool::checkout): a [`Checkout`], or an error naming
/// [`Phase::Acquire`](crate::Phase::Acquire) (timeout or overload), the deadline, or the dial.
///
/// Dropping it while it waits takes it out of the queue; a dial counted only for it is given
/// up.
pub struct CheckoutFuture<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    state: FutState<K, T>,
}

enum FutState<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    Ready(Result<Checkout<K, T>, BoxError>),
    // Boxed: the slow path, so the future stays small on the fast one.
    Waiting(Box<Waiting<K, T>>),
    Done,
}

struct Waiting<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    inner: Arc<Inner<K, T>>,
    key: K,
    id: WaiterId,
    rx: oneshot::Receiver<Result<Grant<T>, BoxError>>,
    sleep: LazySleep,
    /// The timer in force: the acquire timeout or the deadline, whichever is first, then (once
    /// the acquire timeout passed while a dial was counted for this checkout) the deadline.
    bound: Option<Bound>,
    deadline: Option<RequestDeadline>,
    finished: bool,
}

impl<K, T> CheckoutFuture<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    pub(crate) fn ready(checkout: Checkout<K, T>) -> Self {
        CheckoutFuture {
            state: FutState::Ready(Ok(checkout)),
        }
    }

    pub(crate) fn failed(err: BoxError) -> Self {
        CheckoutFuture {
            state: FutState::Ready(Err(err)),
        }
    }

    pub(crate) fn waiting(
        inner: Arc<Inner<K, T>>,
        key: K,
        id: WaiterId,
        rx: oneshot::Receiver<Result<Grant<T>, BoxError>>,
        since: Instant,
        acquire: Duration,
        deadline: Option<RequestDeadline>,
    ) -> Self {
        let bound = Bound::new(since, acquire, Phase::Acquire, deadline.as_ref());
        CheckoutFuture {
            state: FutState::Waiting(Box::new(Waiting {
                inner,
                key,
                id,
                rx,
                sleep: LazySleep::default(),
                bound: Some(bound),
                deadline,
                finished: false,
            })),
        }
    }

    /// Whether it must wait (nothing was usable at once).
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, FutState::Waiting(_))
    }
}

impl<K, T> Waiting<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Checkout<K, T>, BoxError>> {
        loop {
            if let Poll::Ready(res) = Pin::new(&mut self.rx).poll(cx) {
                self.finished = true;
                return Poll::Ready(match res {
                    Ok(Ok(grant)) => Ok(Checkout::new(self.inner.clone(), self.key.clone(), grant)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(PoolClosed.into()),
                });
            }
            let Some(bound) = self.bound else {
                return Poll::Pending;
            };
            if self.sleep.poll_until(bound.at, cx).is_pending() {
                return Poll::Pending;
            }
            let (key, id) = (&self.key, self.id);
            let outcome = self
                .inner
                .run(|l, now, fx| l.state.timed_out(key, id, bound.phase, now, fx));
            match outcome {
                // Sent under the lock: the next poll of the channel has it.
                TimedOut::Served => self.bound = None,
                TimedOut::Covered => {
                    self.bound = self.deadline.map(|d| Bound {
                        at: d.instant(),
                        phase: Phase::Total,
                        limit: d.budget(),
                    });
                }
                TimedOut::Failed => {
                    self.finished = true;
                    let err = bound.error();
                    crate::channels::fired(self.inner.stats(), None, &err);
                    tracing::debug!(key = ?self.key, "{err}");
                    return Poll::Ready(Err(err.into()));
                }
            }
        }
    }
}

impl<K, T> Drop for Waiting<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (key, id) = (&self.key, self.id);
        self.inner
            .run(|l, now, fx| l.state.cancel(key, id, now, fx));
        // Chosen before it could be taken out of the queue: give the connection back.
        self.rx.close();
        if let Ok(Ok(grant)) = self.rx.try_recv() {
            drop(Checkout::new(self.inner.clone(), self.key.clone(), grant));
        }
    }
}

impl<K, T> Future for CheckoutFuture<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    type Output = Result<Checkout<K, T>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let FutState::Waiting(w) = &mut self.state {
            let res = std::task::ready!(w.poll(cx));
            self.state = FutState::Done;
            return Poll::Ready(res);
        }
        match std::mem::replace(&mut self.state, FutState::Done) {
            FutState::Ready(res) => Poll::Ready(res),
            _ => panic!("CheckoutFuture polled after completion"),
        }
    }
}

// Nothing in it is pinned: the connection is only moved, never polled in place.
impl<K, T> Unpin for CheckoutFuture<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
}

impl<K, T> fmt::Debug for CheckoutFuture<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    T: Poolable,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FutState::Ready(_) => "ready",
            FutState::Waiting(_) => "waiting",
            FutState::Done => "done",
        };
        f.debug_struct("CheckoutFuture")
            .field("state", &state)
            .finish()
    }
}
