//! Admission for an adaptive limit: a FIFO semaphore whose size follows the controller.
//!
//! The semaphore holds `limit + debt` permits, counting the ones in use. A lower limit takes
//! what it can from the free permits at once (`forget_permits`) and records the rest as debt,
//! paid by permits as they come back (forgotten instead of released); a higher limit pays the
//! debt first, then adds permits. So a permit in use is never taken back, and one is free only
//! when fewer than `limit` are in use: while the debt is not zero, no permit is free. Every
//! change of the limit or the debt happens under the limiter's lock, as does every sample.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::control::{Controller, Outcome, Settings};
use super::key::HostKey;
use crate::error::{Error, Phase};
use crate::stats::Stats;

/// The wait for one permit (tokio's `acquire_owned` future cannot be named). Made only when a
/// request has to wait.
pub(crate) type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// Everything a layer was configured with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) settings: Settings,
    pub(crate) max_waiting: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) stats: Option<Stats>,
    pub(crate) per_host: bool,
    /// Whether `in_flight` is counted in `stats` (the preset stacks this limiter over its
    /// global one on one handle, and lets only the global one count it).
    pub(crate) count_in_flight: bool,
}

/// What a request gets when it arrives.
pub(crate) enum Admission {
    /// A permit was free: go.
    Now(Permit),
    /// In the queue (already registered with the semaphore, so in arrival order).
    Wait(Ticket, AcquireFuture),
    /// The queue was full.
    Refused(Error),
}

struct State {
    ctl: Controller,
    /// The limit the semaphore was last sized for.
    applied: usize,
    /// Permits still to be forgotten as they come back.
    debt: usize,
}

/// One adaptive limit: the whole layer's, or one host's.
pub(crate) struct Limiter {
    config: Arc<Config>,
    key: Option<HostKey>,
    sem: Arc<Semaphore>,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
    limit: AtomicUsize,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("key", &self.key)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A different jitter and sampling sequence for every limiter.
fn seed() -> u64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNT.fetch_add(1, AcqRel))
}

impl Limiter {
    pub(crate) fn new(config: Arc<Config>, key: Option<HostKey>) -> Limiter {
        Limiter::with_seed(config, key, seed())
    }

    pub(crate) fn with_seed(config: Arc<Config>, key: Option<HostKey>, seed: u64) -> Limiter {
        let ctl = Controller::new(config.settings.clone(), seed);
        let limit = ctl.limit();
        if let Some(stats) = &config.stats {
            stats.adaptive_limit_add(limit as i64);
        }
        Limiter {
            config,
            key,
            sem: Arc::new(Semaphore::new(limit)),
            state: Mutex::new(State {
                ctl,
                applied: limit,
                debt: 0,
            }),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a release path must never panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Acquire)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Acquire)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Acquire)
    }

    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        self.lock().ctl.min_rtt()
    }

    #[cfg(test)]
    pub(crate) fn with_controller<T>(&self, f: impl FnOnce(&Controller) -> T) -> T {
        f(&self.lock().ctl)
    }

    /// Permits in use by the semaphore's count (admitted, or handed to a waiter not yet
    /// polled), the debt, and the permits free.
    #[cfg(test)]
    pub(crate) fn semaphore_counts(&self) -> (usize, usize, usize) {
        let st = self.lock();
        let free = self.sem.available_permits();
        (st.applied + st.debt - free, st.debt, free)
    }

    /// Sizes the semaphore for the controller's limit.
    fn apply(&self, st: &mut State) {
        let (old, new) = (st.applied, st.ctl.limit());
        if new > old {
            let up = new - old;
            let paid = up.min(st.debt);
            st.debt -= paid;
            self.sem.add_permits(up - paid);
        } else if new < old {
            let down = old - new;
            let taken = self.sem.forget_permits(down);
            st.debt += down - taken;
        } else {
            return;
        }
        st.applied = new;
        self.limit.store(new, Release);
        if let Some(stats) = &self.config.stats {
            stats.adaptive_limit_add(new as i64 - old as i64);
        }
        tracing::debug!(key = ?self.key.as_ref().map(ToString::to_string), old, new, "adaptive limit changed");
    }

    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let now = Instant::now();
        let mut st = self.lock();
        st.ctl.tick(now);
        self.apply(&mut st);
        // tokio hands released permits straight to queued waiters, so `try_acquire` succeeds
        // only when nobody is queued: the fast path never jumps the queue.
        if let Ok(permit) = self.sem.clone().try_acquire_owned() {
            let n = self.in_flight.fetch_add(1, AcqRel) + 1;
            let era = st.ctl.admitted(now, n);
            drop(st);
            if let Some(stats) = self
                .config
                .stats
                .as_ref()
                .filter(|_| self.config.count_in_flight)
            {
                stats.in_flight_add(1);
            }
            return Admission::Now(Permit::new(self.clone(), permit, now, era));
        }
        // Raised only under the lock, so it never passes the bound.
        let waiting = self.waiting.load(Acquire);
        if waiting >= self.config.max_waiting {
            drop(st);
            return Admission::Refused(self.refuse(waiting));
        }
        self.waiting.fetch_add(1, AcqRel);
        drop(st);
        if let Some(stats) = &self.config.stats {
            stats.waiting_add(1);
        }
        let ticket = Ticket {
            limiter: Some(self.clone()),
        };
        let mut acquire: AcquireFuture = Box::pin(self.sem.clone().acquire_owned());
        // Registers with the semaphore now, so waiters are served in the order they called.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match acquire.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Admission::Now(ticket.admit(permit)),
            Poll::Ready(Err(_)) => unreachable!("the adaptive limiter's semaphore is never closed"),
            Poll::Pending => Admission::Wait(ticket, acquire),
        }
    }

    fn refuse(&self, waiting: usize) -> Error {
        if let Some(stats) = &self.config.stats {
            stats.overload();
        }
        let err = Error::overloaded(Phase::Acquire, waiting);
        tracing::debug!(key = ?self.key.as_ref().map(ToString::to_string), limit = self.limit(), "{err}");
        err
    }

    /// Gives a semaphore permit back, or forgets it to pay the debt. Under the lock.
    fn give_back(&self, st: &mut State, permit: OwnedSemaphorePermit) {
        if st.debt > 0 {
            st.debt -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(stats) = &self.config.stats {
            let applied = self.state.get_mut().map_or(0, |st| st.applied);
            stats.adaptive_limit_add(-(applied as i64));
        }
    }
}

/// A place in the queue. Dropped without [`Ticket::admit`], it gives the place back.
pub(crate) struct Ticket {
    limiter: Option<Arc<Limiter>>,
}

impl Ticket {
    pub(crate) fn limiter(&self) -> &Limiter {
        self.limiter.as_ref().expect("ticket in use")
    }

    /// Turns the place in the queue into a place in flight.
    pub(crate) fn admit(mut self, permit: OwnedSemaphorePermit) -> Permit {
        let limiter = self.limiter.take().expect("a ticket is admitted once");
        let now = Instant::now();
        let mut st = limiter.lock();
        limiter.waiting.fetch_sub(1, AcqRel);
        let n = limiter.in_flight.fetch_add(1, AcqRel) + 1;
        let era = st.ctl.admitted(now, n);
        drop(st);
        if let Some(stats) = &limiter.config.stats {
            stats.waiting_add(-1);
            if limiter.config.count_in_flight {
                stats.in_flight_add(1);
            }
        }
        Permit::new(limiter, permit, now, era)
    }

    /// Leaves the queue with a permit that came too late: it goes back unused.
    pub(crate) fn decline(mut self, permit: OwnedSemaphorePermit) {
        let limiter = self.limiter.take().expect("a ticket is declined once");
        let mut st = limiter.lock();
        limiter.waiting.fetch_sub(1, AcqRel);
        limiter.give_back(&mut st, permit);
        drop(st);
        if let Some(stats) = &limiter.config.stats {
            stats.waiting_add(-1);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            limiter.waiting.fetch_sub(1, AcqRel);
            if let Some(stats) = &limiter.config.stats {
                stats.waiting_add(-1);
            }
        }
    }
}

/// A place in flight, and the start of its latency sample. Released on drop, with what the
/// drop means at that point (see [`Permit::sent`], [`Permit::answered`]).
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    permit: Option<OwnedSemaphorePermit>,
    admitted: Instant,
    era: u64,
    on_drop: Outcome,
    /// The response's status was an overload signal: that is the outcome, whatever the body.
    overloaded: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("key", &self.limiter.key)
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

impl Permit {
    fn new(limiter: Arc<Limiter>, permit: OwnedSemaphorePermit, now: Instant, era: u64) -> Permit {
        Permit {
            limiter,
            permit: Some(permit),
            admitted: now,
            era,
            // Not sent yet: dropped now, the server never saw it.
            on_drop: Outcome::Ignored,
            overloaded: false,
        }
    }

    /// The request is on its way: dropped before its response, the caller gave up on it.
    pub(crate) fn sent(&mut self) {
        self.on_drop = Outcome::Overload;
    }

    /// The response headers are here; `overloaded` if their status says so.
    pub(crate) fn answered(&mut self, overloaded: bool) {
        self.overloaded = overloaded;
        self.on_drop = if overloaded {
            Outcome::Overload
        } else {
            Outcome::Dropped
        };
    }

    /// The exchange is over: it ended well (`ok`) or failed.
    pub(crate) fn finish(mut self, ok: bool) {
        let outcome = if ok && !self.overloaded {
            Outcome::Success
        } else {
            Outcome::Overload
        };
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let limiter = &*self.limiter;
        let now = Instant::now();
        let rtt = now.saturating_duration_since(self.admitted);
        let mut st = limiter.lock();
        let n = limiter.in_flight.fetch_sub(1, AcqRel) - 1;
        st.ctl.sample(now, self.era, rtt, outcome, n);
        limiter.apply(&mut st);
        limiter.give_back(&mut st, permit);
        drop(st);
        if let Some(stats) = limiter
            .config
            .stats
            .as_ref()
            .filter(|_| limiter.config.count_in_flight)
        {
            stats.in_flight_add(-1);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release(self.on_drop);
    }
}

/// Below this many hosts the map is never pruned.
const MIN_HOSTS: usize = 64;

struct Map {
    hosts: HashMap<HostKey, Arc<Limiter>>,
    /// Prune hosts with nothing in flight or waiting once the map is larger than this.
    prune_at: usize,
}

/// One adaptive limit per host. A host's limit is kept while idle (what it learned stays) until
/// the map grows past twice its size after the last pruning (and at least [`MIN_HOSTS`]); then
/// every host with nothing in flight or waiting is removed.
pub(crate) struct Hosts {
    config: Arc<Config>,
    map: Mutex<Map>,
}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hosts")
            .field("hosts", &self.lock().hosts.len())
            .finish_non_exhaustive()
    }
}

impl Hosts {
    pub(crate) fn new(config: Arc<Config>) -> Hosts {
        Hosts {
            config,
            map: Mutex::new(Map {
                hosts: HashMap::new(),
                prune_at: MIN_HOSTS,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn admit(&self, key: HostKey) -> Admission {
        let limiter = {
            let mut map = self.lock();
            match map.hosts.get(&key) {
                Some(l) => l.clone(),
                None => {
                    if map.hosts.len() >= map.prune_at {
                        // Only the map holds an entry with nothing in flight or waiting, and
                        // nobody can take it from the map while the lock is held.
                        map.hosts.retain(|_, l| Arc::strong_count(l) > 1);
                        map.prune_at = MIN_HOSTS.max(2 * map.hosts.len());
                    }
                    let l = Arc::new(Limiter::new(self.config.clone(), Some(key.clone())));
                    map.hosts.insert(key, l.clone());
                    l
                }
            }
        };
        limiter.admit()
    }

    /// Every host's limiter now.
    pub(crate) fn each(&self) -> Vec<Arc<Limiter>> {
        self.lock().hosts.values().cloned().collect()
    }

    pub(crate) fn get(&self, key: &HostKey) -> Option<Arc<Limiter>> {
        self.lock().hosts.get(key).cloned()
    }
}
