//! The FIFO semaphore of both limiters: free permits in one atomic word, so a request that finds
//! a permit free, and a release that nobody waits for, each cost one compare-and-swap; a queue of
//! waiters behind a mutex, used only when a request must wait.
//!
//! As tokio's semaphore, it is fair: a released permit goes straight to the first waiter, and a
//! new arrival takes a free permit only when nobody waits, so it never jumps the queue. The word
//! holds the free permits and a `QUEUED` flag, with one invariant: `QUEUED` is set exactly while
//! the queue has a waiter, and then no permit is free. It holds because
//! - a waiter sets `QUEUED` with a compare-and-swap that fails if a permit became free meanwhile
//!   (it then takes that permit instead), and only under the queue's lock;
//! - a release adds its permit to the word with a compare-and-swap that fails if `QUEUED` was set
//!   meanwhile; it then takes the lock (after the waiter that set the flag has queued and let go
//!   of it) and hands the permit to the first waiter;
//! - `QUEUED` is cleared only under the lock, when the last waiter leaves the queue.
//!
//! So a waiter that queues while a permit is released is never lost: either the release comes
//! first and the waiter takes its permit, or the waiter comes first and the release hands the
//! permit to it. A per-host entry's semaphore can also be `CLOSED`, once, when it is idle (every
//! permit free, nobody waiting) and taken out of its map: nothing can be acquired from it after
//! that, so an entry seen idle and closed has no user and none can appear.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Waiters are queued and none of the permits is free.
const QUEUED: usize = 1;
/// Taken out of its map while idle: never acquired again.
const CLOSED: usize = 2;
/// One free permit.
const ONE: usize = 4;

/// The most permits a semaphore can hold (more than tokio's, which `check_limit` holds to).
const MAX_PERMITS: usize = usize::MAX / ONE;

/// Why a permit was not taken at once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// None is free (or waiters are queued).
    Full,
    /// The semaphore is closed.
    Closed,
}

/// What [`Sem::acquire_or_queue`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// A permit was free after all: taken (`true` if the semaphore was idle before).
    Got(bool),
    /// Queued with this id: poll [`Sem::poll_acquire`] with it, or [`Sem::cancel`] it.
    Waiting(u64),
    /// The semaphore is closed: nothing was taken or queued.
    Closed,
}

/// A FIFO semaphore (see the module docs).
pub(crate) struct Sem {
    /// Free permits times [`ONE`], plus [`QUEUED`] and [`CLOSED`].
    state: AtomicUsize,
    /// The word when idle: every permit free, nobody waiting, not closed.
    idle: usize,
    queue: Mutex<Queue>,
}

/// The waiters, in arrival order (their ids ascending). A waiter that left is left in place,
/// marked, until it reaches the front or the marked ones outnumber the others.
#[derive(Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
    /// Waiters still waiting (not marked as left).
    live: usize,
}

struct Waiter {
    id: u64,
    /// `None` until the waiter is first polled.
    waker: Option<Waker>,
    left: bool,
}

impl Queue {
    fn find(&self, id: u64) -> Option<usize> {
        self.waiters.binary_search_by_key(&id, |w| w.id).ok()
    }
}

impl Sem {
    pub(crate) fn new(permits: usize) -> Sem {
        assert!(permits <= MAX_PERMITS, "tower-hardened: too many permits");
        Sem {
            state: AtomicUsize::new(permits * ONE),
            idle: permits * ONE,
            queue: Mutex::new(Queue::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held; a release path must never panic.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Permits free now.
    pub(crate) fn available(&self) -> usize {
        self.state.load(Acquire) / ONE
    }

    /// Takes a free permit if there is one and nobody waits; `Ok(true)` if the semaphore was
    /// idle before.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Result<bool, Busy> {
        let mut s = self.state.load(Acquire);
        loop {
            if s & CLOSED != 0 {
                return Err(Busy::Closed);
            }
            // `QUEUED` implies no permit free: one check covers both.
            if s < ONE {
                return Err(Busy::Full);
            }
            hook(Point::Acquire);
            match self.state.compare_exchange(s, s - ONE, AcqRel, Acquire) {
                Ok(_) => return Ok(s == self.idle),
                Err(now) => s = now,
            }
        }
    }

    /// Takes a free permit, or queues: in arrival order, from this call on (no poll needed to
    /// hold the place).
    pub(crate) fn acquire_or_queue(&self) -> Queued {
        let mut q = self.lock();
        let mut s = self.state.load(Acquire);
        loop {
            if s & CLOSED != 0 {
                return Queued::Closed;
            }
            if s >= ONE {
                // A permit is free, so nobody waits: take it.
                match self.state.compare_exchange(s, s - ONE, AcqRel, Acquire) {
                    Ok(_) => return Queued::Got(s == self.idle),
                    Err(now) => s = now,
                }
                continue;
            }
            if s & QUEUED != 0 {
                break;
            }
            hook(Point::Queue);
            // Fails if a release added a permit meanwhile: then that permit is taken above.
            match self.state.compare_exchange(s, s | QUEUED, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let id = q.next_id;
        q.next_id += 1;
        q.waiters.push_back(Waiter {
            id,
            waker: None,
            left: false,
        });
        q.live += 1;
        Queued::Waiting(id)
    }

    /// Whether the waiter `id` has its permit; if not, it is woken when it gets one.
    pub(crate) fn poll_acquire(&self, id: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        let Some(i) = q.find(id) else {
            // Only a hand-off takes a waiter out of the queue while it is waiting.
            return Poll::Ready(());
        };
        let old = match &mut q.waiters[i].waker {
            Some(w) if w.will_wake(cx.waker()) => None,
            slot => slot.replace(cx.waker().clone()),
        };
        drop(q);
        // A waker's drop may run any code (even one on this semaphore): not under the lock.
        drop(old);
        Poll::Pending
    }

    /// The waiter `id` leaves. `true` if it had been handed a permit meanwhile: the caller owns
    /// that permit and must [`release`](Sem::release) it.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut q = self.lock();
        let Some(i) = q.find(id) else {
            return true;
        };
        q.live -= 1;
        let w = &mut q.waiters[i];
        w.left = true;
        let waker = w.waker.take();
        if q.live == 0 {
            q.waiters.clear();
            // No permit is free (waiters were queued): the releases to come add them.
            self.state.fetch_and(!QUEUED, AcqRel);
        } else if q.waiters.len() > 2 * q.live + 8 {
            // The queue's length follows the waiters, not the cancellations.
            q.waiters.retain(|w| !w.left);
        }
        drop(q);
        // Not under the lock (see `poll_acquire`).
        drop(waker);
        false
    }

    /// Gives a permit back: to the first waiter if any, otherwise to the free ones. `true` if
    /// that made the semaphore idle.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            if s & QUEUED != 0 {
                return self.hand_off();
            }
            hook(Point::Release);
            // Fails if a waiter set `QUEUED` meanwhile: then it gets this permit.
            match self.state.compare_exchange(s, s + ONE, AcqRel, Acquire) {
                Ok(_) => return s + ONE == self.idle,
                Err(now) => s = now,
            }
        }
    }

    #[cold]
    fn hand_off(&self) -> bool {
        let mut q = self.lock();
        let waker = loop {
            match q.waiters.pop_front() {
                Some(w) if w.left => continue,
                Some(w) => {
                    q.live -= 1;
                    break Some(w.waker);
                }
                None => break None,
            }
        };
        if q.live == 0 {
            q.waiters.clear();
            self.state.fetch_and(!QUEUED, AcqRel);
        }
        let Some(waker) = waker else {
            // The last waiter left between our look at the word and the lock: the permit is
            // free. No waiter can queue while we hold the lock, so nothing else changes `QUEUED`.
            let prev = self.state.fetch_add(ONE, AcqRel);
            return prev + ONE == self.idle;
        };
        drop(q);
        // A waiter not yet polled finds its permit when it is.
        if let Some(waker) = waker {
            waker.wake();
        }
        false
    }

    /// Closes the semaphore if it is idle; `true` if it did (then it stays closed).
    pub(crate) fn close_if_idle(&self) -> bool {
        hook(Point::Close);
        self.state
            .compare_exchange(self.idle, self.idle | CLOSED, AcqRel, Acquire)
            .is_ok()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    /// Entries in the queue, marked ones included (tests only).
    #[cfg(test)]
    pub(crate) fn queue_len(&self) -> usize {
        self.lock().waiters.len()
    }
}

/// A place in the code where a test can make another thread's step happen (see `hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// `try_acquire`: a permit seen free, before taking it.
    Acquire,
    /// `acquire_or_queue`: no permit seen free, before marking the queue as used.
    Queue,
    /// `release`: nobody seen waiting, before adding the permit.
    Release,
    /// `close_if_idle`: before closing.
    Close,
}

#[cfg(not(test))]
#[inline(always)]
fn hook(_: Point) {}

#[cfg(test)]
use self::hooks::run as hook;

/// Test-only: runs a closure, once, when this thread next reaches a [`Point`], so a test can put
/// another party's step exactly into a race window (the closure runs on this thread, which
/// holds whatever the code holds there).
#[cfg(test)]
pub(crate) mod hooks {
    use std::cell::RefCell;

    use super::Point;

    type Hook = (Point, Box<dyn FnOnce()>);

    thread_local! {
        static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Runs `f` the next time this thread reaches `at`.
    pub(crate) fn at(at: Point, f: impl FnOnce() + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some((at, Box::new(f))));
    }

    /// Whether the hook set with [`at`] has run.
    pub(crate) fn ran() -> bool {
        HOOK.with(|h| h.borrow().is_none())
    }

    pub(super) fn run(point: Point) {
        let f = HOOK.with(|h| {
            let mut h = h.borrow_mut();
            match h.take() {
                Some((at, f)) if at == point => Some(f),
                other => {
                    *h = other;
                    None
                }
            }
        });
        if let Some(f) = f {
            f();
        }
    }
}
