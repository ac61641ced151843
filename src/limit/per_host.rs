//! Per-host state: one FIFO semaphore per scheme + authority, created on a host's first request
//! and removed the moment the host has nothing in flight and nothing waiting.
//!
//! Every change of a host's counts happens under one mutex, together with the map lookup, so a
//! host is removed only when no request holds or waits for it, and a request arriving at the same
//! time either finds the entry (and counts itself in it) or creates a fresh one. A permit released
//! into the semaphore of an entry already removed goes nowhere: nobody was waiting on it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use http::uri::{Authority, Scheme};
use http::Request;
use tokio::sync::Semaphore;

use super::gate::{Admission, Config, Permit, Scope, Ticket};

/// The key of a host: scheme, host (compared without case) and port, the scheme's default port
/// filled in, so `http://Example.com` and `http://example.com:80` share one limit.
#[derive(Clone, Debug)]
pub(crate) struct HostKey {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
}

fn default_port(scheme: Option<&Scheme>) -> Option<u16> {
    match scheme.map(Scheme::as_str) {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("ws") => Some(80),
        Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") => Some(443),
        _ => None,
    }
}

impl HostKey {
    /// The key of a request: the URI's scheme and authority, or the `Host` header when the URI
    /// has no authority.
    pub(crate) fn of<B>(req: &Request<B>) -> HostKey {
        let authority = req.uri().authority().cloned().or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        });
        HostKey {
            scheme: req.uri().scheme().cloned(),
            authority,
        }
    }

    pub(crate) fn of_uri(uri: &http::Uri) -> HostKey {
        HostKey {
            scheme: uri.scheme().cloned(),
            authority: uri.authority().cloned(),
        }
    }

    fn scheme(&self) -> &str {
        self.scheme.as_ref().map_or("", Scheme::as_str)
    }

    fn host(&self) -> &str {
        self.authority.as_ref().map_or("", Authority::host)
    }

    fn port(&self) -> Option<u16> {
        self.authority
            .as_ref()
            .and_then(Authority::port_u16)
            .or_else(|| default_port(self.scheme.as_ref()))
    }
}

impl PartialEq for HostKey {
    fn eq(&self, other: &Self) -> bool {
        self.scheme().eq_ignore_ascii_case(other.scheme())
            && self.host().eq_ignore_ascii_case(other.host())
            && self.port() == other.port()
    }
}

impl Eq for HostKey {}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Lower-cased in small stack chunks: no allocation per request.
        for part in [self.scheme(), self.host()] {
            let mut buf = [0u8; 32];
            for chunk in part.as_bytes().chunks(buf.len()) {
                let out = &mut buf[..chunk.len()];
                out.copy_from_slice(chunk);
                out.make_ascii_lowercase();
                state.write(out);
            }
            state.write_u8(0xff);
        }
        self.port().hash(state);
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.scheme, &self.authority) {
            (Some(s), Some(a)) => write!(f, "{s}://{a}"),
            (None, Some(a)) => write!(f, "{a}"),
            (Some(s), None) => write!(f, "{s}://"),
            (None, None) => f.write_str("(no authority)"),
        }
    }
}

struct Host {
    sem: Arc<Semaphore>,
    in_flight: usize,
    waiting: usize,
}

struct State {
    map: HashMap<HostKey, Host>,
    in_flight: usize,
    waiting: usize,
}

/// Every host's limit, shared by every service a layer makes.
pub(crate) struct Hosts {
    pub(crate) config: Config,
    state: Mutex<State>,
}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Hosts")
            .field("limit_per_host", &self.config.limit)
            .field("hosts", &s.map.len())
            .field("in_flight", &s.in_flight)
            .field("waiting", &s.waiting)
            .finish()
    }
}

/// Below this capacity the map is never shrunk.
const MIN_CAPACITY: usize = 64;

impl Hosts {
    pub(crate) fn new(config: Config) -> Hosts {
        Hosts {
            config,
            state: Mutex::new(State {
                map: HashMap::new(),
                in_flight: 0,
                waiting: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The counts are updated before anything that could panic; a poisoned lock still holds
        // consistent state, and a release path must never panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn hosts(&self) -> usize {
        self.lock().map.len()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.lock().map.capacity()
    }

    /// (in flight, waiting) for one host.
    pub(crate) fn counts(&self, key: &HostKey) -> (usize, usize) {
        self.lock()
            .map
            .get(key)
            .map_or((0, 0), |h| (h.in_flight, h.waiting))
    }

    pub(crate) fn admit(self: &Arc<Self>, key: HostKey) -> Admission {
        let mut state = self.lock();
        let st = &mut *state;
        let limit = self.config.limit;
        let host = st.map.entry(key.clone()).or_insert_with(|| Host {
            sem: Arc::new(Semaphore::new(limit)),
            in_flight: 0,
            waiting: 0,
        });
        if let Ok(permit) = host.sem.clone().try_acquire_owned() {
            host.in_flight += 1;
            st.in_flight += 1;
            drop(state);
            if let Some(stats) = &self.config.stats {
                stats.in_flight_add(1);
            }
            return Admission::Now(Permit::new(Scope::Host(self.clone(), key), permit));
        }
        // No permit free means something is in flight for this host, so the entry is in use and
        // stays: nothing to remove on refusal.
        if host.waiting >= self.config.max_waiting {
            let waiting = host.waiting;
            drop(state);
            return Admission::Refused(self.config.refuse(waiting, &key));
        }
        host.waiting += 1;
        st.waiting += 1;
        let acquire = Box::pin(host.sem.clone().acquire_owned());
        drop(state);
        if let Some(stats) = &self.config.stats {
            stats.waiting_add(1);
        }
        let ticket = Ticket {
            scope: Some(Scope::Host(self.clone(), key)),
        };
        Admission::enqueue(ticket, acquire)
    }

    pub(crate) fn waited_in(&self, key: &HostKey) {
        let mut state = self.lock();
        state.waiting -= 1;
        state.in_flight += 1;
        if let Some(host) = state.map.get_mut(key) {
            host.waiting -= 1;
            host.in_flight += 1;
        }
    }

    pub(crate) fn gave_up(&self, key: &HostKey) {
        let mut state = self.lock();
        state.waiting -= 1;
        Self::release(&mut state, key, |h| h.waiting -= 1);
    }

    pub(crate) fn left(&self, key: &HostKey) {
        let mut state = self.lock();
        state.in_flight -= 1;
        Self::release(&mut state, key, |h| h.in_flight -= 1);
    }

    fn release(state: &mut State, key: &HostKey, f: impl FnOnce(&mut Host)) {
        let Some(host) = state.map.get_mut(key) else {
            return;
        };
        f(host);
        if host.in_flight == 0 && host.waiting == 0 {
            state.map.remove(key);
            // Keep memory proportional to the hosts in use now, not to the busiest moment ever.
            let (len, cap) = (state.map.len(), state.map.capacity());
            if cap > MIN_CAPACITY && len * 4 < cap {
                state.map.shrink_to((len * 2).max(MIN_CAPACITY));
            }
        }
    }
}
