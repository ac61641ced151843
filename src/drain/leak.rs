//! Held-body (leak) detection: a registry of live bodies and one shared sweeper task per layer.
//!
//! Registering and removing a body is one uncontended mutex lock and a slot in a vector (a free
//! list makes slots reused, a generation makes a stale key harmless). No task, timer or waker per
//! body: one sweeper task, holding only a `Weak` to the registry, sleeps until the earliest
//! unreported body reaches the threshold, reports every body that has, and sleeps again. It ends
//! when the registry is gone (the layer, its services and every body dropped); the registry also
//! aborts it on drop, so it does not outlive them by a single tick.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::{Method, Uri};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock;
use crate::stats::Stats;

/// The part of the threshold by which sweeps are spaced at least, so a stream of bodies with
/// deadlines close together costs at most ten scans per threshold, not one per body. A body is
/// thus reported between `threshold` and `threshold * 1.1` after its headers arrived.
const SWEEPS_PER_THRESHOLD: u32 = 10;

/// The smallest spacing between two sweeps.
const MIN_SPACING: Duration = Duration::from_millis(1);

pub(crate) struct Registry {
    threshold: Duration,
    spacing: Duration,
    stats: Option<Stats>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<usize>,
    sweeper: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

struct Entry {
    method: Method,
    uri: Uri,
    since: Instant,
    reported: bool,
    /// The span the body's response came in (a telemetry layer's request span, if any): the
    /// report is an event on it.
    span: tracing::Span,
}

/// A body's place in the registry; given back to [`Registry::remove`] when it ends or is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeakKey {
    // Two 32-bit halves, so that a body holding its key stays small (`Option<LeakKey>` is
    // 8 bytes).
    index: u32,
    generation: NonZeroU32,
}

impl Registry {
    pub(crate) fn new(threshold: Duration, stats: Option<Stats>) -> Registry {
        Registry {
            threshold,
            spacing: (threshold / SWEEPS_PER_THRESHOLD).max(MIN_SPACING),
            stats,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in the critical sections can panic half-way, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a live body from now on; starts the sweeper if none runs (first body, or the
    /// runtime that ran the last one is gone). Without a tokio runtime the body is recorded but
    /// only swept once a body is registered from inside one.
    pub(crate) fn register(self: &Arc<Self>, method: Method, uri: Uri) -> LeakKey {
        self.register_at(method, uri, Instant::now(), tracing::Span::current())
    }

    /// As [`register`](Self::register), for a body whose headers came at `since` in `span`.
    pub(crate) fn register_at(
        self: &Arc<Self>,
        method: Method,
        uri: Uri,
        since: Instant,
        span: tracing::Span,
    ) -> LeakKey {
        let mut state = self.lock();
        let index = match state.free.pop() {
            Some(i) => i,
            None => {
                state.slots.push(Slot::default());
                state.slots.len() - 1
            }
        };
        let slot = &mut state.slots[index];
        let generation =
            NonZeroU32::new(slot.generation.wrapping_add(1)).unwrap_or(NonZeroU32::MIN);
        // Made before the slot is written: nothing below can panic.
        let key = LeakKey {
            index: u32::try_from(index).expect("fewer than 2^32 bodies alive at once"),
            generation,
        };
        slot.generation = generation.get();
        slot.entry = Some(Entry {
            method,
            uri,
            since,
            reported: false,
            span,
        });
        if state.sweeper.as_ref().is_none_or(JoinHandle::is_finished) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                state.sweeper = Some(rt.spawn(sweeper(Arc::downgrade(self))));
            }
        }
        key
    }

    /// Forgets a body that ended or was dropped: it is never reported after this.
    pub(crate) fn remove(&self, key: LeakKey) {
        let mut state = self.lock();
        let index = key.index as usize;
        if let Some(slot) = state.slots.get_mut(index) {
            if slot.generation == key.generation.get() && slot.entry.is_some() {
                // Dropped in place: `take` would copy the entry out first.
                slot.entry = None;
                state.free.push(index);
            }
        }
    }

    /// Bodies registered and not yet removed.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        let state = self.lock();
        state.slots.len() - state.free.len()
    }

    /// Reports every body held past the threshold (once each) and returns when the earliest
    /// body not yet reported will be due.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let mut earliest: Option<Instant> = None;
        {
            let mut state = self.lock();
            for entry in state.slots.iter_mut().filter_map(|s| s.entry.as_mut()) {
                if entry.reported {
                    continue;
                }
                let at = clock::add(entry.since, self.threshold);
                if at <= now {
                    entry.reported = true;
                    due.push((
                        entry.method.clone(),
                        entry.uri.clone(),
                        now - entry.since,
                        entry.span.clone(),
                    ));
                } else {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                }
            }
        }
        // Outside the lock: registration never waits for a log line.
        for (method, uri, age, span) in due {
            if let Some(stats) = &self.stats {
                stats.leak();
            }
            let uri = redacted(&uri);
            tracing::warn!(
                parent: &span,
                %method,
                %uri,
                ?age,
                "response body held for {age:?} without being read to its end or dropped \
                 (it pins its connection); read it or drop it"
            );
        }
        earliest
    }
}

/// The URI as logged: scheme, host, port and path. Userinfo and the query are left out (they
/// may carry credentials or tokens); a query is shown as `?…`.
fn redacted(uri: &Uri) -> String {
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(a) = uri.authority() {
        let host_port = a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, hp)| hp);
        out.push_str(host_port);
    }
    out.push_str(uri.path());
    if uri.query().is_some() {
        out.push_str("?…");
    }
    out
}

impl Drop for Registry {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = state.sweeper.take() {
            task.abort();
        }
    }
}

/// The one sweeper of a registry. Holds only a `Weak`: it never keeps the layer alive.
async fn sweeper(registry: Weak<Registry>) {
    let mut last: Option<Instant> = None;
    loop {
        let next = {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let now = Instant::now();
            // A body registered after this sweep is due no earlier than `now + threshold`, so
            // with nothing pending that is the next time anything can be due.
            let mut next = registry
                .sweep(now)
                .unwrap_or_else(|| clock::add(now, registry.threshold));
            if let Some(last) = last {
                next = next.max(clock::add(last, registry.spacing));
            }
            next
        };
        last = Some(next);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn userinfo_and_query_are_not_logged() {
        for (uri, logged) in [
            ("http://example.com/held?id=7", "http://example.com/held?…"),
            (
                "https://user:secret@example.com:8443/a/b?token=x#f",
                "https://example.com:8443/a/b?…",
            ),
            ("http://[::1]:80/", "http://[::1]:80/"),
            ("/relative/only", "/relative/only"),
        ] {
            assert_eq!(super::redacted(&uri.parse().unwrap()), logged, "{uri}");
        }
    }
}

#[cfg(test)]
mod key_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Registry;

    /// A registry whose one slot held a body that is gone, and a way to register another.
    fn with_a_freed_slot() -> (
        Arc<Registry>,
        super::LeakKey,
        impl Fn(&Arc<Registry>) -> super::LeakKey,
    ) {
        let registry = Arc::new(Registry::new(Duration::from_secs(10), None));
        let register = |r: &Arc<Registry>| {
            let uri = http::Uri::from_static("http://example.com/");
            r.register_at(
                http::Method::GET,
                uri,
                tokio::time::Instant::now(),
                tracing::Span::none(),
            )
        };
        let first = register(&registry);
        registry.remove(first);
        (registry, first, register)
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_removed_once_leaves_a_later_body_in_its_slot_alone() {
        let (registry, first, register) = with_a_freed_slot();
        // The slot is reused, under a new generation.
        let second = register(&registry);
        assert_eq!(registry.live(), 1);
        assert_ne!(first, second);
        // A second removal with the first body's key is a stale key: the second body stays.
        registry.remove(first);
        assert_eq!(registry.live(), 1);
        registry.remove(second);
        assert_eq!(registry.live(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_generation_that_wraps_skips_zero_and_its_key_still_removes() {
        let (registry, _, register) = with_a_freed_slot();
        registry.lock().slots[0].generation = u32::MAX;
        let wrapped = register(&registry);
        assert_eq!(wrapped.generation.get(), 1);
        assert_eq!(registry.live(), 1);
        registry.remove(wrapped);
        assert_eq!(registry.live(), 0);
    }

    #[test]
    fn a_body_holding_its_key_carries_eight_bytes_for_it() {
        assert_eq!(std::mem::size_of::<Option<super::LeakKey>>(), 8);
    }
}
