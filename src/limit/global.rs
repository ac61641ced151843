//! The state of one global limit: a FIFO semaphore and two counts. It knows nothing of tickets
//! and permits; `gate.rs` turns it into them.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};

use super::config::Config;
use super::sem::Sem;

/// The state of one global limit, shared by every service a layer makes.
pub(crate) struct Global {
    pub(crate) config: Config,
    pub(crate) sem: Sem,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
}

impl fmt::Debug for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global")
            .field("limit", &self.config.limit)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .field("max_waiting", &self.config.max_waiting)
            .finish()
    }
}

impl Global {
    pub(crate) fn new(config: Config) -> Global {
        Global {
            sem: Sem::new(config.limit),
            config,
            waiting: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Acquire)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Acquire)
    }

    pub(crate) fn available(&self) -> usize {
        self.sem.available()
    }

    /// A permit if one is free, counted in flight. Released permits go straight to queued
    /// waiters, so this succeeds only when nobody is queued: it never jumps the queue.
    #[inline]
    pub(crate) fn try_enter(&self) -> bool {
        if self.sem.try_acquire().is_err() {
            return false;
        }
        self.in_flight.fetch_add(1, AcqRel);
        true
    }

    /// A place in the queue, counted as waiting; `Err(waiting)` when the queue is full.
    pub(crate) fn try_queue(&self) -> Result<(), usize> {
        let max = self.config.max_waiting;
        self.waiting
            .fetch_update(AcqRel, Acquire, |w| (w < max).then_some(w + 1))
            .map(drop)
    }

    /// A waiter got its permit.
    pub(crate) fn waited_in(&self) {
        self.waiting.fetch_sub(1, AcqRel);
        self.in_flight.fetch_add(1, AcqRel);
    }

    /// A waiter left without a permit (cancelled, timed out).
    pub(crate) fn gave_up(&self) {
        self.waiting.fetch_sub(1, AcqRel);
    }

    /// A permit is being released.
    pub(crate) fn left(&self) {
        self.in_flight.fetch_sub(1, AcqRel);
    }
}
