//! The pool's state machine: every decision, made under the pool's one lock, with the time
//! passed in. It owns the idle lists, the waiters and the dial bookkeeping of every key, and
//! says what to do outside the lock in an [`Effects`] list: hand a connection or an error to a
//! waiter, close connections, start or abort dials. It spawns, sleeps and counts nothing
//! itself, so the property test can drive it directly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::poolable::{Event, Poolable};
use crate::clock;
use crate::error::{BoxError, Error, Phase};
use crate::pool::jitter;

/// How long a dial nobody waits for any more keeps going before it is given up (its task
/// aborted, its socket closed): long enough for a connect on a LAN or loopback to finish and
/// serve the next checkout instead (8 callers dropping 64 KiB bodies unread dialed 261 times
/// per 1,000 requests when such dials were aborted at once, and their servers accepted each),
/// short enough that a burst leaves no dial behind for long (a hung connect is given up after
/// this, not after the connect timeout).
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(1);
use crate::stats::CloseReason;

pub(crate) type ConnId = u64;
pub(crate) type DialId = u64;
pub(crate) type WaiterId = u64;

/// The bounds, fixed at construction (checked there).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_idle: usize,
    pub(crate) max_idle_per_host: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) max_conns_per_host: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) max_waiters_per_host: usize,
    pub(crate) held_threshold: Option<Duration>,
    pub(crate) expected_capacity: usize,
}

/// What the pool knows of a connection besides the connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) id: ConnId,
    pub(crate) opened: Instant,
    pub(crate) retire_at: Option<Instant>,
    /// Checkouts it has served, this one included.
    pub(crate) uses: u64,
}

impl Meta {
    fn expired(&self, now: Instant) -> bool {
        self.retire_at.is_some_and(|t| now >= t)
    }
}

struct Conn<T> {
    value: T,
    meta: Meta,
}

struct IdleConn<T> {
    conn: Conn<T>,
    since: Instant,
    seq: u64,
}

impl<T: Poolable> IdleConn<T> {
    /// When it is due for closing by idleness: the pool's idle timeout or the connection's own
    /// ([`Poolable::idle_timeout`]), whichever is first.
    fn idle_due(&self, pool: Option<Duration>) -> Option<Instant> {
        let own = self.conn.value.idle_timeout();
        let limit = match (pool, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limit.map(|t| clock::add(self.since, t))
    }
}

/// A shared connection with at least one checkout out (with none it is idle or closed).
struct SharedConn<T> {
    conn: Conn<T>,
    out: usize,
    /// Not handed out again (closed by the peer, past its lifetime, failed); closed when the
    /// last checkout comes back.
    draining: bool,
}

struct Waiter<S> {
    id: WaiterId,
    notify: S,
    /// Its acquire timeout passed while a dial was counted for it: it fails as soon as it is
    /// no longer covered by one.
    expired: bool,
}

/// A checkout that must get a newly dialed connection ([`State::enqueue_fresh`]): never an
/// idle one, never one handed over or shared. Each has a dial of its own once there is room.
struct FreshWaiter<S> {
    id: WaiterId,
    notify: S,
    dial: Option<DialId>,
}

struct Host<T, S> {
    /// Least recently used at the front.
    idle: VecDeque<IdleConn<T>>,
    shared: Vec<SharedConn<T>>,
    exclusive_out: usize,
    /// In start order.
    dials: Vec<DialId>,
    /// The dials of `dials` nobody waits for any more, and when each is given up: a dial about
    /// done costs less finished and idle (it serves the next checkout) than thrown away with
    /// its socket, so it keeps going for [`ORPHAN_GRACE`]. Still counted toward
    /// `max_conns_per_host`, and covering the next waiters.
    orphans: Vec<(DialId, Instant)>,
    waiters: VecDeque<Waiter<S>>,
    /// Checkouts that want a new connection, in arrival order; their dials are theirs alone
    /// (not in `dials`), and count toward `max_conns_per_host` like any other.
    fresh: VecDeque<FreshWaiter<S>>,
    /// How many waiters one dial in flight is counted to serve: the capacity of the key's last
    /// connection, or the configured expectation before the first.
    expect: usize,
}

/// A connection handed to a checkout.
pub(crate) struct Grant<T> {
    pub(crate) conn: T,
    pub(crate) meta: Meta,
    pub(crate) shared: bool,
    /// How long it was idle before this checkout; `None` for a new connection.
    pub(crate) idle_for: Option<Duration>,
    pub(crate) held: Option<HeldKey>,
}

/// A checkout coming back.
pub(crate) struct Returned<T> {
    pub(crate) conn: T,
    pub(crate) meta: Meta,
    pub(crate) shared: bool,
    /// Close it instead of keeping it, for this reason.
    pub(crate) discard: Option<CloseReason>,
    pub(crate) held: Option<HeldKey>,
}

/// A checkout's place in the held-checkout registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeldKey(usize);

struct HeldEntry<K> {
    key: K,
    since: Instant,
    reported: bool,
}

/// What a waiter's acquire timer firing comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimedOut {
    /// It is no longer waiting: its connection or error is on its way (already sent).
    Served,
    /// A dial in flight is counted for it: it keeps waiting for that, and fails at once if
    /// it stops being counted.
    Covered,
    /// Removed from the queue: it fails now.
    Failed,
}

/// What to do after the lock is released (or, for `notify`, while it is still held).
pub(crate) struct Effects<K, T, S> {
    pub(crate) notify: Vec<(S, Result<Grant<T>, BoxError>)>,
    pub(crate) close: Vec<(T, CloseReason)>,
    /// Dropped without a close being counted: returned shares of a connection still open,
    /// and dials that finished after being given up (never counted as opened).
    pub(crate) drop: Vec<T>,
    pub(crate) dial: Vec<(K, DialId)>,
    pub(crate) abort: Vec<DialId>,
    pub(crate) opened: u64,
    pub(crate) reused: u64,
    pub(crate) idle_delta: i64,
    pub(crate) acquire_timeouts: u64,
    /// The earliest instant a connection that went idle here is due for the reaper.
    pub(crate) due: Option<Instant>,
    pub(crate) held_reports: Vec<(K, Duration)>,
}

impl<K, T, S> Default for Effects<K, T, S> {
    fn default() -> Self {
        Effects {
            notify: Vec::new(),
            close: Vec::new(),
            drop: Vec::new(),
            dial: Vec::new(),
            abort: Vec::new(),
            opened: 0,
            reused: 0,
            idle_delta: 0,
            acquire_timeouts: 0,
            due: None,
            held_reports: Vec::new(),
        }
    }
}

impl<K, T, S> Effects<K, T, S> {
    fn due_at(&mut self, at: Instant) {
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// Whether nothing is left to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.notify.is_empty()
            && self.close.is_empty()
            && self.drop.is_empty()
            && self.dial.is_empty()
            && self.abort.is_empty()
            && self.held_reports.is_empty()
    }
}

/// A dial error handed to several waiters (an HTTP/2 dial was counted for all of them): the
/// same error, shared.
#[derive(Clone)]
pub(crate) struct SharedError(Arc<BoxError>);

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self.0, f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&**self.0)
    }
}

/// The error of checkouts waiting when the pool was dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolClosed;

impl fmt::Display for PoolClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection pool was dropped while this request waited for a connection")
    }
}

impl std::error::Error for PoolClosed {}

/// The global least-recently-used order of idle connections: idle sequence number to key. The
/// numbers grow, so the first entry is the connection idle the longest, and each host's idle
/// list is in the same order.
struct IdleIndex<K> {
    lru: BTreeMap<u64, K>,
    next_seq: u64,
}

impl<K> IdleIndex<K> {
    fn insert(&mut self, key: K) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.lru.insert(seq, key);
        seq
    }

    fn remove(&mut self, seq: u64) {
        let removed = self.lru.remove(&seq);
        debug_assert!(
            removed.is_some(),
            "idle connection missing from the LRU index"
        );
    }

    fn len(&self) -> usize {
        self.lru.len()
    }
}

impl<T: Poolable, S> Host<T, S> {
    fn new(expect: usize) -> Self {
        Host {
            idle: VecDeque::new(),
            shared: Vec::new(),
            exclusive_out: 0,
            dials: Vec::new(),
            orphans: Vec::new(),
            waiters: VecDeque::new(),
            fresh: VecDeque::new(),
            expect: expect.max(1),
        }
    }

    /// Marks the dials beyond what the waiters need as orphans (the newest first), clears the
    /// mark of those needed again, and gives up the orphans whose grace is over.
    /// Only for exclusive connections (HTTP/1), and only while the key has one open: its
    /// dials are likely to finish, and each will be wanted. With none open (every dial hangs,
    /// or fails), or once a shared connection (HTTP/2) is there to carry the waiters, a surplus
    /// dial is given up at once (a burst over a new HTTP/2 host would otherwise open a
    /// connection per request).
    fn orphan_surplus<K, S2>(&mut self, now: Instant, fx: &mut Effects<K, T, S2>) {
        let keep = self
            .waiters
            .len()
            .div_ceil(self.expect)
            .min(self.dials.len());
        let exclusive_open = self.exclusive_out + self.idle.len() > 0;
        if !exclusive_open || self.expect > 1 || !self.shared.is_empty() {
            for id in self.dials.drain(keep..) {
                fx.abort.push(id);
            }
            self.orphans.clear();
            return;
        }
        let surplus = &self.dials[keep..];
        self.orphans.retain(|(id, _)| surplus.contains(id));
        for id in surplus {
            if !self.orphans.iter().any(|(o, _)| o == id) {
                let until = clock::add(now, ORPHAN_GRACE);
                self.orphans.push((*id, until));
                fx.due_at(until);
            }
        }
        self.give_up_orphans(now, fx);
    }

    /// Aborts the orphans whose grace is over.
    fn give_up_orphans<K, S2>(&mut self, now: Instant, fx: &mut Effects<K, T, S2>) {
        let dials = &mut self.dials;
        self.orphans.retain(|&(id, until)| {
            if until > now {
                return true;
            }
            dials.retain(|d| *d != id);
            fx.abort.push(id);
            false
        });
    }

    /// Dials of fresh checkouts in flight.
    fn fresh_dials(&self) -> usize {
        self.fresh.iter().filter(|f| f.dial.is_some()).count()
    }

    /// Connections dialing, in use and idle.
    fn total(&self) -> usize {
        self.dials.len()
            + self.fresh_dials()
            + self.exclusive_out
            + self.shared.len()
            + self.idle.len()
    }

    /// Checkouts waiting, fresh ones included.
    fn waiting(&self) -> usize {
        self.waiters.len() + self.fresh.len()
    }

    fn is_empty(&self) -> bool {
        self.total() == 0 && self.waiting() == 0
    }

    /// Waiters the dials in flight are counted to serve (a prefix of the queue).
    fn covered(&self) -> usize {
        self.dials.len().saturating_mul(self.expect)
    }

    /// A usable connection now: room on a shared one in use, else the most recently used idle
    /// one. Dead and expired idle connections met on the way are closed.
    fn take<K, S2>(
        &mut self,
        index: &mut IdleIndex<K>,
        now: Instant,
        fx: &mut Effects<K, T, S2>,
    ) -> Option<Grant<T>> {
        for sc in self.shared.iter_mut() {
            if sc.draining {
                continue;
            }
            if !sc.conn.value.is_open() || sc.conn.meta.expired(now) {
                sc.draining = true;
                continue;
            }
            if sc.out < sc.conn.value.capacity() {
                if let Some(share) = sc.conn.value.share() {
                    sc.out += 1;
                    sc.conn.meta.uses += 1;
                    fx.reused += 1;
                    return Some(Grant {
                        conn: share,
                        meta: sc.conn.meta,
                        shared: true,
                        idle_for: Some(Duration::ZERO),
                        held: None,
                    });
                }
            }
        }
        while let Some(idle) = self.idle.pop_back() {
            index.remove(idle.seq);
            fx.idle_delta -= 1;
            if !idle.conn.value.is_open() {
                fx.close.push((idle.conn.value, CloseReason::Error));
                continue;
            }
            if idle.conn.meta.expired(now) {
                fx.close.push((idle.conn.value, CloseReason::Lifetime));
                continue;
            }
            // Idle as long as the connection itself allows (the reaper may not have looked yet).
            if idle
                .conn
                .value
                .idle_timeout()
                .is_some_and(|t| now >= clock::add(idle.since, t))
            {
                fx.close.push((idle.conn.value, CloseReason::Idle));
                continue;
            }
            let idle_for = now.saturating_duration_since(idle.since);
            return Some(self.hand_out(idle.conn, Some(idle_for), fx));
        }
        None
    }

    /// Gives `conn` (not idle, not shared yet) to a checkout.
    fn hand_out<K, S2>(
        &mut self,
        mut conn: Conn<T>,
        idle_for: Option<Duration>,
        fx: &mut Effects<K, T, S2>,
    ) -> Grant<T> {
        conn.meta.uses += 1;
        if conn.meta.uses > 1 {
            fx.reused += 1;
        }
        if conn.value.capacity() > 1 {
            if let Some(share) = conn.value.share() {
                let meta = conn.meta;
                self.shared.push(SharedConn {
                    conn,
                    out: 1,
                    draining: false,
                });
                return Grant {
                    conn: share,
                    meta,
                    shared: true,
                    idle_for,
                    held: None,
                };
            }
        }
        self.exclusive_out += 1;
        Grant {
            conn: conn.value,
            meta: conn.meta,
            shared: false,
            idle_for,
            held: None,
        }
    }
}

/// Why a connection that is being let go is closed, if it is.
fn close_reason(
    closed: bool,
    discard: Option<CloseReason>,
    open: bool,
    meta: &Meta,
    now: Instant,
) -> Option<CloseReason> {
    if closed {
        Some(CloseReason::Other)
    } else if discard.is_some() {
        discard
    } else if !open {
        Some(CloseReason::Error)
    } else if meta.expired(now) {
        Some(CloseReason::Lifetime)
    } else {
        None
    }
}

pub(crate) struct State<K, T, S> {
    config: Config,
    hosts: HashMap<K, Host<T, S>>,
    idle: IdleIndex<K>,
    next_waiter: WaiterId,
    next_dial: DialId,
    held: Vec<Option<HeldEntry<K>>>,
    held_free: Vec<usize>,
    closed: bool,
}

impl<K, T, S> State<K, T, S>
where
    K: Hash + Eq + Clone,
    T: Poolable,
{
    pub(crate) fn new(config: Config) -> Self {
        State {
            config,
            hosts: HashMap::new(),
            idle: IdleIndex {
                lru: BTreeMap::new(),
                next_seq: 0,
            },
            next_waiter: 0,
            next_dial: 0,
            held: Vec::new(),
            held_free: Vec::new(),
            closed: false,
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Idle connections in total.
    pub(crate) fn idle_total(&self) -> usize {
        self.idle.len()
    }

    /// Idle connections of `key`.
    pub(crate) fn idle_of(&self, key: &K) -> usize {
        self.hosts.get(key).map_or(0, |h| h.idle.len())
    }

    /// Connections of `key` dialing, in use and idle.
    pub(crate) fn open_of(&self, key: &K) -> usize {
        self.hosts.get(key).map_or(0, Host::total)
    }

    /// Checkouts of `key` waiting.
    pub(crate) fn waiting_of(&self, key: &K) -> usize {
        self.hosts.get(key).map_or(0, Host::waiting)
    }

    /// Dials of `key` in flight.
    pub(crate) fn dialing_of(&self, key: &K) -> usize {
        self.hosts
            .get(key)
            .map_or(0, |h| h.dials.len() + h.fresh_dials())
    }

    fn register_held(&mut self, key: &K, now: Instant) -> Option<HeldKey> {
        self.config.held_threshold?;
        let entry = HeldEntry {
            key: key.clone(),
            since: now,
            reported: false,
        };
        Some(HeldKey(match self.held_free.pop() {
            Some(i) => {
                self.held[i] = Some(entry);
                i
            }
            None => {
                self.held.push(Some(entry));
                self.held.len() - 1
            }
        }))
    }

    fn remove_held(&mut self, key: Option<HeldKey>) {
        if let Some(HeldKey(i)) = key {
            if self.held.get_mut(i).and_then(Option::take).is_some() {
                self.held_free.push(i);
            }
        }
    }

    /// Registers a grant made under the lock in the held-checkout registry.
    fn held(
        &mut self,
        key: &K,
        mut grant: Grant<T>,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> Grant<T> {
        grant.held = self.register_held(key, now);
        if let Some(t) = self.config.held_threshold {
            fx.due_at(clock::add(now, t));
        }
        grant
    }

    /// A usable connection of `key` right now, if one is idle or has room and nobody waits
    /// for it already (waiters are served in order, never overtaken).
    pub(crate) fn try_checkout(
        &mut self,
        key: &K,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> Option<Grant<T>> {
        if self.closed {
            return None;
        }
        let host = self.hosts.get_mut(key)?;
        if !host.waiters.is_empty() {
            return None;
        }
        let grant = host.take(&mut self.idle, now, fx)?;
        Some(self.held(key, grant, now, fx))
    }

    /// Queues a checkout of `key` (after [`try_checkout`](Self::try_checkout) found nothing),
    /// starting a dial if it is not covered by one and there is room.
    pub(crate) fn enqueue(
        &mut self,
        key: &K,
        notify: S,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> Result<WaiterId, BoxError> {
        self.queue(key, notify, false, now, fx)
    }

    /// Queues a checkout of `key` that must get a connection dialed for it (a request sent
    /// again because its pooled connection was lost: the others of its age are suspect). It
    /// gets a dial of its own at once if there is room under `max_conns_per_host`, else after
    /// closing the key's least recently used idle connection (counted as
    /// [`CloseReason::Cap`]), else once room comes back (a connection closes or is returned
    /// with nobody waiting for it). Bounded by `max_waiters_per_host` with the other waiters.
    pub(crate) fn enqueue_fresh(
        &mut self,
        key: &K,
        notify: S,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> Result<WaiterId, BoxError> {
        self.queue(key, notify, true, now, fx)
    }

    fn queue(
        &mut self,
        key: &K,
        notify: S,
        fresh: bool,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> Result<WaiterId, BoxError> {
        if self.closed {
            return Err(PoolClosed.into());
        }
        let expect = self.config.expected_capacity;
        let host = self
            .hosts
            .entry(key.clone())
            .or_insert_with(|| Host::new(expect));
        if host.waiting() >= self.config.max_waiters_per_host {
            let waiting = host.waiting();
            if host.is_empty() {
                self.hosts.remove(key);
            }
            return Err(Error::overloaded(Phase::Acquire, waiting).into());
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        if fresh {
            host.fresh.push_back(FreshWaiter {
                id,
                notify,
                dial: None,
            });
        } else {
            host.waiters.push_back(Waiter {
                id,
                notify,
                expired: false,
            });
        }
        self.schedule(key, now, fx);
        Ok(id)
    }

    /// Serves the waiters of `key` from what is usable, then matches dials to what is still
    /// waiting: gives up dials nobody is left for, starts dials for waiters none covers (room
    /// permitting), and fails waiters whose acquire timeout passed once no dial covers them.
    fn schedule(&mut self, key: &K, now: Instant, fx: &mut Effects<K, T, S>) {
        let Some(host) = self.hosts.get_mut(key) else {
            return;
        };
        while !host.waiters.is_empty() {
            let Some(grant) = host.take(&mut self.idle, now, fx) else {
                break;
            };
            let waiter = host.waiters.pop_front().expect("checked non-empty");
            fx.notify.push((waiter.notify, Ok(grant)));
            // Registered below, once the borrow of the host ends.
        }
        let waiting = host.waiters.len();
        host.orphan_surplus(now, fx);
        // Fresh checkouts first: each is a request already sent once. Room is made by closing
        // the least recently used idle connection (suspect anyway: its peers were lost).
        let cap = self.config.max_conns_per_host;
        for i in 0..host.fresh.len() {
            if host.fresh[i].dial.is_some() {
                continue;
            }
            if host.total() >= cap {
                if let Some((orphan, _)) = host.orphans.pop() {
                    // A dial nobody waits for makes room before a connection does.
                    host.dials.retain(|d| *d != orphan);
                    fx.abort.push(orphan);
                } else {
                    let Some(old) = host.idle.pop_front() else {
                        break;
                    };
                    self.idle.remove(old.seq);
                    fx.idle_delta -= 1;
                    fx.close.push((old.conn.value, CloseReason::Cap));
                }
            }
            let id = self.next_dial;
            self.next_dial += 1;
            host.fresh[i].dial = Some(id);
            fx.dial.push((key.clone(), id));
        }
        while waiting > host.covered() && host.total() < self.config.max_conns_per_host {
            let id = self.next_dial;
            self.next_dial += 1;
            host.dials.push(id);
            fx.dial.push((key.clone(), id));
        }
        let covered = host.covered();
        if host.waiters.len() > covered && host.waiters.iter().skip(covered).any(|w| w.expired) {
            let mut i = covered;
            while i < host.waiters.len() {
                if host.waiters[i].expired {
                    let w = host.waiters.remove(i).expect("index in range");
                    let err = Error::timeout(Phase::Acquire, self.config.acquire_timeout);
                    fx.notify.push((w.notify, Err(err.into())));
                    fx.acquire_timeouts += 1;
                } else {
                    i += 1;
                }
            }
        }
        if host.is_empty() {
            self.hosts.remove(key);
        }
        self.register_new_grants(key, now, fx);
    }

    /// Grants pushed to `fx.notify` by [`schedule`](Self::schedule) have no held-registry entry
    /// yet (the host was borrowed): register them now.
    fn register_new_grants(&mut self, key: &K, now: Instant, fx: &mut Effects<K, T, S>) {
        let Some(threshold) = self.config.held_threshold else {
            return;
        };
        let mut any = false;
        for (_, res) in fx.notify.iter_mut() {
            if let Ok(grant) = res {
                if grant.held.is_none() {
                    grant.held = self.register_held(key, now);
                    any = true;
                }
            }
        }
        if any {
            fx.due_at(clock::add(now, threshold));
        }
    }

    /// Keeps `conn` idle for `key`, within both idle caps: past one, the least recently used
    /// idle connection (of the host, or of the whole pool) is closed.
    fn make_idle(&mut self, key: &K, conn: Conn<T>, now: Instant, fx: &mut Effects<K, T, S>) {
        if self.closed {
            fx.close.push((conn.value, CloseReason::Other));
            return;
        }
        let config = &self.config;
        if config.max_idle == 0 || config.max_idle_per_host == 0 {
            fx.close.push((conn.value, CloseReason::Cap));
            return;
        }
        let own = conn.value.idle_timeout();
        let mut due = match (config.idle_timeout, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| clock::add(now, t));
        if let Some(at) = conn.meta.retire_at {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        if let Some(due) = due {
            fx.due_at(due);
        }
        let host = self
            .hosts
            .get_mut(key)
            .expect("a live connection's host exists");
        let seq = self.idle.insert(key.clone());
        host.idle.push_back(IdleConn {
            conn,
            since: now,
            seq,
        });
        fx.idle_delta += 1;
        while host.idle.len() > config.max_idle_per_host {
            let old = host.idle.pop_front().expect("over the cap");
            self.idle.remove(old.seq);
            fx.idle_delta -= 1;
            fx.close.push((old.conn.value, CloseReason::Cap));
        }
        while self.idle.len() > config.max_idle {
            let (seq, k) = self.idle.lru.pop_first().expect("over the cap");
            let h = self
                .hosts
                .get_mut(&k)
                .expect("an idle connection's host exists");
            let old = h
                .idle
                .pop_front()
                .expect("the LRU entry is its host's oldest");
            debug_assert_eq!(old.seq, seq);
            fx.idle_delta -= 1;
            fx.close.push((old.conn.value, CloseReason::Cap));
            if h.is_empty() {
                self.hosts.remove(&k);
            }
        }
    }

    /// A checkout comes back: to the oldest waiter, else idle, else closed.
    pub(crate) fn give_back(
        &mut self,
        key: &K,
        ret: Returned<T>,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) {
        self.remove_held(ret.held);
        let closed = self.closed;
        let Some(host) = self.hosts.get_mut(key) else {
            debug_assert!(false, "a checked-out connection's host exists");
            fx.drop.push(ret.conn);
            return;
        };
        if ret.shared {
            fx.drop.push(ret.conn);
            let Some(i) = host
                .shared
                .iter()
                .position(|s| s.conn.meta.id == ret.meta.id)
            else {
                debug_assert!(
                    false,
                    "a shared checkout's connection is in the shared list"
                );
                return;
            };
            let sc = &mut host.shared[i];
            sc.out -= 1;
            if ret.discard.is_some() {
                sc.draining = true;
            }
            if sc.out == 0 {
                let open = sc.conn.value.is_open();
                let mut reason = close_reason(closed, ret.discard, open, &sc.conn.meta, now);
                if reason.is_none() && sc.draining {
                    reason = Some(CloseReason::Other);
                }
                // Kept for the waiters only if it can take one (a peer may allow no streams).
                let room = sc.conn.value.capacity() > 0;
                if reason.is_some() || host.waiters.is_empty() || !room {
                    let sc = host.shared.swap_remove(i);
                    match reason {
                        Some(r) => fx.close.push((sc.conn.value, r)),
                        None => self.make_idle(key, sc.conn, now, fx),
                    }
                }
            }
        } else {
            host.exclusive_out -= 1;
            let open = ret.conn.is_open();
            match close_reason(closed, ret.discard, open, &ret.meta, now) {
                Some(r) => fx.close.push((ret.conn, r)),
                None => {
                    let conn = Conn {
                        value: ret.conn,
                        meta: ret.meta,
                    };
                    if let Some(waiter) = host.waiters.pop_front() {
                        let grant = host.hand_out(conn, Some(Duration::ZERO), fx);
                        let grant = self.held(key, grant, now, fx);
                        fx.notify.push((waiter.notify, Ok(grant)));
                    } else {
                        self.make_idle(key, conn, now, fx);
                    }
                }
            }
        }
        self.schedule(key, now, fx);
    }

    /// A connection just dialed, with its lifetime.
    fn new_conn(&self, id: ConnId, value: T, now: Instant) -> Conn<T> {
        let retire_at = self
            .config
            .max_lifetime
            .map(|l| clock::add(now, jitter::jittered(l, self.config.jitter)));
        Conn {
            value,
            meta: Meta {
                id,
                opened: now,
                retire_at,
                uses: 0,
            },
        }
    }

    /// A dial finished: its connection goes to the oldest waiter (or idle); its error to the
    /// waiters it was counted for. A dial given up meanwhile is ignored (its connection is
    /// dropped, never counted).
    pub(crate) fn dial_done(
        &mut self,
        key: &K,
        dial: DialId,
        result: Result<(ConnId, T), BoxError>,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) {
        let Some(host) = self.hosts.get_mut(key) else {
            if let Ok((_, t)) = result {
                fx.drop.push(t);
            }
            return;
        };
        if let Some(pos) = host.fresh.iter().position(|f| f.dial == Some(dial)) {
            let waiter = host.fresh.remove(pos).expect("index in range");
            match result {
                Ok((id, value)) => {
                    fx.opened += 1;
                    host.expect = value.capacity().max(1);
                    let conn = self.new_conn(id, value, now);
                    let host = self.hosts.get_mut(key).expect("looked up above");
                    if self.closed {
                        fx.close.push((conn.value, CloseReason::Other));
                    } else {
                        let grant = host.hand_out(conn, None, fx);
                        let grant = self.held(key, grant, now, fx);
                        fx.notify.push((waiter.notify, Ok(grant)));
                    }
                }
                Err(err) => fx.notify.push((waiter.notify, Err(err))),
            }
            self.schedule(key, now, fx);
            return;
        }
        let Some(pos) = host.dials.iter().position(|d| *d == dial) else {
            if let Ok((_, t)) = result {
                fx.drop.push(t);
            }
            return;
        };
        host.dials.remove(pos);
        host.orphans.retain(|(o, _)| *o != dial);
        match result {
            Ok((id, value)) => {
                fx.opened += 1;
                host.expect = value.capacity().max(1);
                let conn = self.new_conn(id, value, now);
                let host = self.hosts.get_mut(key).expect("looked up above");
                if self.closed {
                    fx.close.push((conn.value, CloseReason::Other));
                } else if let Some(waiter) = host.waiters.pop_front() {
                    let grant = host.hand_out(conn, None, fx);
                    let grant = self.held(key, grant, now, fx);
                    fx.notify.push((waiter.notify, Ok(grant)));
                } else {
                    self.make_idle(key, conn, now, fx);
                }
            }
            Err(err) => {
                let n = host.waiters.len().min(host.expect);
                if n == 1 {
                    let w = host.waiters.pop_front().expect("one waiter");
                    fx.notify.push((w.notify, Err(err)));
                } else if n > 1 {
                    let shared = Arc::new(err);
                    for _ in 0..n {
                        let w = host.waiters.pop_front().expect("n waiters");
                        let err = SharedError(shared.clone());
                        fx.notify.push((w.notify, Err(err.into())));
                    }
                } else {
                    tracing::debug!(error = %err, "dial failed with nobody waiting for it");
                }
            }
        }
        self.schedule(key, now, fx);
    }

    /// A waiter's timer fired (`phase` is `Acquire` for its acquire timeout, `Total` for the
    /// request's deadline).
    pub(crate) fn timed_out(
        &mut self,
        key: &K,
        id: WaiterId,
        phase: Phase,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) -> TimedOut {
        let Some(host) = self.hosts.get_mut(key) else {
            return TimedOut::Served;
        };
        if let Some(pos) = host.fresh.iter().position(|f| f.id == id) {
            // Its own dial in flight: it waits for that (bounded by the connector's timeout).
            if phase == Phase::Acquire && host.fresh[pos].dial.is_some() {
                return TimedOut::Covered;
            }
            let f = host.fresh.remove(pos).expect("index in range");
            fx.abort.extend(f.dial);
            self.schedule(key, now, fx);
            return TimedOut::Failed;
        }
        let Some(pos) = host.waiters.iter().position(|w| w.id == id) else {
            return TimedOut::Served;
        };
        if phase == Phase::Acquire && pos < host.covered() {
            host.waiters[pos].expired = true;
            return TimedOut::Covered;
        }
        host.waiters.remove(pos);
        self.schedule(key, now, fx);
        TimedOut::Failed
    }

    /// A waiter gave up (its future was dropped).
    pub(crate) fn cancel(
        &mut self,
        key: &K,
        id: WaiterId,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) {
        let Some(host) = self.hosts.get_mut(key) else {
            return;
        };
        if let Some(pos) = host.waiters.iter().position(|w| w.id == id) {
            host.waiters.remove(pos);
            self.schedule(key, now, fx);
        } else if let Some(pos) = host.fresh.iter().position(|f| f.id == id) {
            let f = host.fresh.remove(pos).expect("index in range");
            fx.abort.extend(f.dial);
            self.schedule(key, now, fx);
        }
    }

    /// A connection reported an event through its watch.
    pub(crate) fn event(
        &mut self,
        key: &K,
        id: ConnId,
        event: Event,
        now: Instant,
        fx: &mut Effects<K, T, S>,
    ) {
        let Some(host) = self.hosts.get_mut(key) else {
            return;
        };
        if event == Event::Closed {
            if let Some(pos) = host.idle.iter().position(|c| c.conn.meta.id == id) {
                let idle = host.idle.remove(pos).expect("index in range");
                self.idle.remove(idle.seq);
                fx.idle_delta -= 1;
                fx.close.push((idle.conn.value, CloseReason::Error));
            } else if let Some(sc) = host.shared.iter_mut().find(|s| s.conn.meta.id == id) {
                sc.draining = true;
            }
        }
        self.schedule(key, now, fx);
    }

    /// Closes idle connections past their idle timeout or lifetime or closed by their peer,
    /// reports checkouts held past the threshold, and returns when the next one is due.
    pub(crate) fn reap(&mut self, now: Instant, fx: &mut Effects<K, T, S>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let idle_timeout = self.config.idle_timeout;
        let mut emptied = Vec::new();
        for (key, host) in self.hosts.iter_mut() {
            host.give_up_orphans(now, fx);
            for (_, until) in &host.orphans {
                soonest(*until);
            }
            let mut i = 0;
            while i < host.idle.len() {
                let c = &host.idle[i];
                let idle_due = c.idle_due(idle_timeout);
                let reason = if !c.conn.value.is_open() {
                    Some(CloseReason::Error)
                } else if c.conn.meta.expired(now) {
                    Some(CloseReason::Lifetime)
                } else if idle_due.is_some_and(|d| d <= now) {
                    Some(CloseReason::Idle)
                } else {
                    None
                };
                match reason {
                    Some(r) => {
                        let idle = host.idle.remove(i).expect("index in range");
                        self.idle.remove(idle.seq);
                        fx.idle_delta -= 1;
                        fx.close.push((idle.conn.value, r));
                    }
                    None => {
                        if let Some(d) = idle_due {
                            soonest(d);
                        }
                        if let Some(r) = c.conn.meta.retire_at {
                            soonest(r);
                        }
                        i += 1;
                    }
                }
            }
            if host.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.hosts.remove(&key);
        }
        if let Some(threshold) = self.config.held_threshold {
            for entry in self.held.iter_mut().flatten() {
                if entry.reported {
                    continue;
                }
                let due = clock::add(entry.since, threshold);
                if due <= now {
                    entry.reported = true;
                    fx.held_reports.push((entry.key.clone(), now - entry.since));
                } else {
                    soonest(due);
                }
            }
        }
        next
    }

    /// The pool is dropped: idle connections close, waiters fail, dials are given up; connections
    /// in use close when they come back.
    pub(crate) fn shutdown(&mut self, fx: &mut Effects<K, T, S>) {
        self.closed = true;
        for host in self.hosts.values_mut() {
            for idle in host.idle.drain(..) {
                self.idle.remove(idle.seq);
                fx.idle_delta -= 1;
                fx.close.push((idle.conn.value, CloseReason::Other));
            }
            for w in host.waiters.drain(..) {
                fx.notify.push((w.notify, Err(PoolClosed.into())));
            }
            for f in host.fresh.drain(..) {
                fx.abort.extend(f.dial);
                fx.notify.push((f.notify, Err(PoolClosed.into())));
            }
            fx.abort.append(&mut host.dials);
            host.orphans.clear();
            for sc in host.shared.iter_mut() {
                sc.draining = true;
            }
        }
        self.hosts.retain(|_, h| !h.is_empty());
    }

    #[cfg(test)]
    pub(crate) fn next_waiter_id(&self) -> WaiterId {
        self.next_waiter
    }

    #[cfg(test)]
    pub(crate) fn waiting_total(&self) -> usize {
        self.hosts.values().map(Host::waiting).sum()
    }

    #[cfg(test)]
    pub(crate) fn dialing_total(&self) -> usize {
        self.hosts
            .values()
            .map(|h| h.dials.len() + h.fresh_dials())
            .sum()
    }

    #[cfg(test)]
    pub(crate) fn exclusive_total(&self) -> usize {
        self.hosts.values().map(|h| h.exclusive_out).sum()
    }

    #[cfg(test)]
    pub(crate) fn shares_total(&self) -> usize {
        self.hosts
            .values()
            .flat_map(|h| h.shared.iter().map(|s| s.out))
            .sum()
    }

    /// Connections open: in use (exclusive or shared) and idle.
    #[cfg(test)]
    pub(crate) fn live_total(&self) -> usize {
        self.hosts
            .values()
            .map(|h| h.exclusive_out + h.shared.len() + h.idle.len())
            .sum()
    }

    /// Checkouts in the held registry, for tests.
    #[cfg(test)]
    pub(crate) fn held_count(&self) -> usize {
        self.held.iter().flatten().count()
    }

    /// Panics if an invariant does not hold; `now` for the "nobody waits while a usable
    /// connection is idle" check.
    #[cfg(test)]
    pub(crate) fn check(&self, now: Instant) {
        let c = &self.config;
        let idle: usize = self.hosts.values().map(|h| h.idle.len()).sum();
        assert_eq!(idle, self.idle.len(), "idle count and LRU index agree");
        assert!(idle <= c.max_idle, "idle {idle} > max_idle {}", c.max_idle);
        let mut seqs: Vec<u64> = Vec::new();
        for host in self.hosts.values() {
            assert!(!host.is_empty(), "empty hosts are removed");
            assert!(host.idle.len() <= c.max_idle_per_host, "idle per host");
            assert!(host.total() <= c.max_conns_per_host, "connections per host");
            assert!(host.waiting() <= c.max_waiters_per_host, "waiters per host");
            if host.fresh.iter().any(|f| f.dial.is_none()) {
                assert!(
                    host.total() >= c.max_conns_per_host && host.idle.is_empty(),
                    "a fresh checkout waits without a dial while there is room or an idle \
                     connection to close"
                );
            }
            assert!(
                host.idle
                    .iter()
                    .zip(host.idle.iter().skip(1))
                    .all(|(a, b)| a.seq < b.seq),
                "a host's idle list is in LRU order"
            );
            seqs.extend(host.idle.iter().map(|i| i.seq));
            for sc in &host.shared {
                assert!(
                    sc.out >= 1,
                    "a shared connection in the shared list is in use"
                );
            }
            if !host.waiters.is_empty() {
                let usable_idle = host.idle.iter().any(|i| {
                    i.conn.value.is_open()
                        && !i.conn.meta.expired(now)
                        && i.idle_due(None).is_none_or(|d| now < d)
                });
                assert!(
                    !usable_idle,
                    "a waiter waits while a usable connection is idle"
                );
                let room = host.shared.iter().any(|s| {
                    !s.draining
                        && s.conn.value.is_open()
                        && !s.conn.meta.expired(now)
                        && s.out < s.conn.value.capacity()
                });
                assert!(!room, "a waiter waits while a shared connection has room");
                if host.total() < c.max_conns_per_host {
                    assert!(
                        host.waiters.len() <= host.covered(),
                        "an uncovered waiter while there is room to dial"
                    );
                }
            }
            let keep = host
                .waiters
                .len()
                .div_ceil(host.expect)
                .min(host.dials.len());
            for id in &host.dials[keep..] {
                assert!(
                    host.orphans.iter().any(|(o, _)| o == id),
                    "a dial nobody waits for, not marked to be given up"
                );
            }
            assert!(
                host.orphans.len() == host.dials.len() - keep,
                "an orphan that is needed, or not a dial"
            );
        }
        seqs.sort_unstable();
        let lru: Vec<u64> = self.idle.lru.keys().copied().collect();
        assert_eq!(seqs, lru, "LRU index matches the idle lists");
    }
}
