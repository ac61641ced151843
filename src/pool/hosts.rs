//! Per-host connection accounting: one semaphore and one open-count per (scheme, authority),
//! created on first use and removed as soon as nothing refers to it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use http::uri::{Authority, Scheme};
use http::Uri;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The key hyper-util's legacy client pools by: scheme and authority. Using the very same key is
/// what keeps the cap free of deadlocks (see the module docs).
pub(crate) type HostKey = (Scheme, Authority);

pub(crate) fn key_of(uri: &Uri) -> Option<HostKey> {
    Some((uri.scheme()?.clone(), uri.authority()?.clone()))
}

pub(crate) struct HostState {
    /// `None` when there is no cap: only the open count is kept.
    pub(crate) sem: Option<Arc<Semaphore>>,
    /// Connections dialing or open (the permits taken out of `sem`, or what they would be).
    pub(crate) open: AtomicUsize,
    /// The host's live connections (see `ConnectionInfo::retire_stale_peers`).
    pub(crate) peers: Arc<super::info::Peers>,
    /// Handles on this state. Changed only under the map's lock, so the last handle to go
    /// knows it is the last (an `Arc` count would not: a handle's own reference is released
    /// after its `drop`, outside the lock, so two last handles dropped at once each saw the
    /// other's).
    handles: AtomicUsize,
}

/// Every host with a dial waiting or a connection open.
pub(crate) struct Hosts {
    max: Option<usize>,
    map: Mutex<HashMap<HostKey, Arc<HostState>>>,
}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hosts")
            .field("max", &self.max)
            .field("hosts", &self.len())
            .finish()
    }
}

impl Hosts {
    pub(crate) fn new(max: Option<usize>) -> Arc<Hosts> {
        Arc::new(Hosts {
            max,
            map: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HostKey, Arc<HostState>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // is a single insert or remove), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on `key`'s state, creating it if needed.
    pub(crate) fn handle(self: &Arc<Self>, key: HostKey) -> HostHandle {
        let state = {
            let mut map = self.lock();
            let state = map
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(HostState {
                        sem: self
                            .max
                            .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
                        open: AtomicUsize::new(0),
                        peers: Arc::default(),
                        handles: AtomicUsize::new(0),
                    })
                })
                .clone();
            state.handles.fetch_add(1, Relaxed);
            state
        };
        HostHandle {
            hosts: self.clone(),
            key,
            state,
        }
    }

    /// Hosts with state right now (a dial waiting or a connection open).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Connections dialing or open to `key` right now.
    pub(crate) fn open(&self, key: &HostKey) -> usize {
        self.lock().get(key).map_or(0, |s| s.open.load(Relaxed))
    }

    /// Every host with its count of connections dialing or open.
    pub(crate) fn snapshot(&self) -> Vec<(HostKey, usize)> {
        self.lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.open.load(Relaxed)))
            .collect()
    }
}

/// Keeps a host's state alive; the last handle dropped removes it from the map.
pub(crate) struct HostHandle {
    hosts: Arc<Hosts>,
    key: HostKey,
    pub(crate) state: Arc<HostState>,
}

impl HostHandle {
    pub(crate) fn key(&self) -> &HostKey {
        &self.key
    }
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        let mut map = self.hosts.lock();
        // Handles are counted only under this lock, so the last one knows it is.
        if self.state.handles.fetch_sub(1, Relaxed) == 1 {
            if let Some(s) = map.get(&self.key) {
                if Arc::ptr_eq(s, &self.state) {
                    map.remove(&self.key);
                }
            }
        }
    }
}

/// A connection's hold on its host: the cap permit (if capped) and one unit of the open count.
/// Dropped exactly when the connection is.
pub(crate) struct Slot {
    // Field order matters: the permit goes back before the handle may remove the host.
    permit: Option<OwnedSemaphorePermit>,
    host: HostHandle,
}

impl Slot {
    pub(crate) fn new(host: HostHandle, permit: Option<OwnedSemaphorePermit>) -> Slot {
        host.state.open.fetch_add(1, Relaxed);
        Slot { permit, host }
    }

    pub(crate) fn key(&self) -> &HostKey {
        self.host.key()
    }

    /// The host's live connections.
    pub(crate) fn peers(&self) -> Arc<super::info::Peers> {
        self.host.state.peers.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.host.state.open.fetch_sub(1, Relaxed);
        drop(self.permit.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> HostKey {
        key_of(&s.parse().unwrap()).unwrap()
    }

    #[test]
    fn state_is_shared_per_key_and_reclaimed_by_the_last_handle() {
        let hosts = Hosts::new(Some(2));
        let a1 = hosts.handle(key("http://a:80/"));
        let a2 = hosts.handle(key("http://a:80/x"));
        let b = hosts.handle(key("https://a:80/"));
        assert!(
            Arc::ptr_eq(&a1.state, &a2.state),
            "same scheme and authority"
        );
        assert!(
            !Arc::ptr_eq(&a1.state, &b.state),
            "scheme is part of the key"
        );
        assert_eq!(hosts.len(), 2);
        let slot = Slot::new(a1, None);
        assert_eq!(hosts.open(&key("http://a:80")), 1);
        drop(a2);
        assert_eq!(hosts.len(), 2, "the slot still holds host a");
        drop(slot);
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts.open(&key("http://a:80")), 0);
        drop(b);
        assert_eq!(hosts.len(), 0);
    }

    #[test]
    fn concurrent_drops_of_the_last_two_handles_forget_the_host() {
        use std::sync::Barrier;
        const ROUNDS: usize = 5_000;
        let hosts = Hosts::new(Some(2));
        let barrier = Arc::new(Barrier::new(2));
        let other = {
            let (hosts, barrier) = (hosts.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut stale = 0;
                for _ in 0..ROUNDS {
                    let h = hosts.handle(key("http://a:80/"));
                    barrier.wait();
                    drop(h);
                    barrier.wait();
                    if hosts.len() != 0 {
                        stale += 1;
                        // Clean up for the next round (a fresh handle is the only one now).
                        drop(hosts.handle(key("http://a:80/")));
                    }
                    barrier.wait();
                }
                stale
            })
        };
        for _ in 0..ROUNDS {
            let h = hosts.handle(key("http://a:80/"));
            barrier.wait();
            drop(h);
            barrier.wait();
            barrier.wait();
        }
        assert_eq!(other.join().unwrap(), 0, "rounds that left the host behind");
    }

    #[test]
    fn no_key_without_scheme_or_authority() {
        assert!(key_of(&"/path".parse().unwrap()).is_none());
    }
}
