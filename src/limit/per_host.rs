//! Per-host state: one FIFO semaphore per scheme + authority, created on a host's first request
//! and removed the moment the host has nothing in flight and nothing waiting.
//!
//! The map sits behind one mutex, taken once to admit a request (find or create the entry and
//! count the request as one of its users) and once more only by the last user to leave, which
//! removes the entry if it still has no user. Users are added only under the lock, so a request
//! arriving at the same time either finds the entry before the check (and keeps it alive) or
//! creates a fresh one after. Tickets and permits hold an `Arc` of their entry, so their counts
//! change without the lock. A permit released into the semaphore of an entry already removed
//! goes nowhere: nobody was waiting on it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
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
    /// Where the host is in `authority`, and the port (the scheme's default filled in): parsed
    /// once here, not again on every hash and comparison of the map's lookups.
    host: std::ops::Range<usize>,
    port: Option<u16>,
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
        HostKey::new(req.uri().scheme().cloned(), authority)
    }

    pub(crate) fn of_uri(uri: &http::Uri) -> HostKey {
        HostKey::new(uri.scheme().cloned(), uri.authority().cloned())
    }

    fn new(scheme: Option<Scheme>, authority: Option<Authority>) -> HostKey {
        let host = authority.as_ref().map_or(0..0, |a| {
            // `Authority::host` is a slice of `as_str`: keep its position.
            let host = a.host();
            let start = host.as_ptr() as usize - a.as_str().as_ptr() as usize;
            start..start + host.len()
        });
        let port = authority
            .as_ref()
            .and_then(Authority::port_u16)
            .or_else(|| default_port(scheme.as_ref()));
        HostKey {
            scheme,
            authority,
            host,
            port,
        }
    }

    fn scheme(&self) -> &str {
        self.scheme.as_ref().map_or("", Scheme::as_str)
    }

    fn host(&self) -> &str {
        self.authority
            .as_ref()
            .map_or("", |a| &a.as_str()[self.host.clone()])
    }

    fn port(&self) -> Option<u16> {
        self.port
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

/// One host's limit. Its counts are atomics, so a request that holds the entry (through its
/// ticket or permit) updates them without the map's lock; only finding or creating the entry,
/// and removing it, take the lock.
pub(crate) struct Host {
    sem: Arc<Semaphore>,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
    /// Tickets and permits holding this entry. Raised only under the map's lock, so an entry
    /// seen at zero under the lock has no user and none can appear.
    users: AtomicUsize,
}

/// Every host's limit, shared by every service a layer makes.
pub(crate) struct Hosts {
    pub(crate) config: Config,
    map: Mutex<HashMap<HostKey, Arc<Host>>>,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hosts")
            .field("limit_per_host", &self.config.limit)
            .field("hosts", &self.hosts())
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// Below this capacity the map is never shrunk.
const MIN_CAPACITY: usize = 64;

impl Hosts {
    pub(crate) fn new(config: Config) -> Hosts {
        Hosts {
            config,
            map: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<HostKey, Arc<Host>>> {
        // Nothing panics while the lock is held; a release path must never panic.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn hosts(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.lock().capacity()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Acquire)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Acquire)
    }

    /// (in flight, waiting) for one host.
    pub(crate) fn counts(&self, key: &HostKey) -> (usize, usize) {
        self.lock().get(key).map_or((0, 0), |h| {
            (h.in_flight.load(Acquire), h.waiting.load(Acquire))
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, key: HostKey) -> Admission {
        let limit = self.config.limit;
        let mut map = self.lock();
        let host = map
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Host {
                    sem: Arc::new(Semaphore::new(limit)),
                    in_flight: AtomicUsize::new(0),
                    waiting: AtomicUsize::new(0),
                    users: AtomicUsize::new(0),
                })
            })
            .clone();
        if let Ok(permit) = host.sem.clone().try_acquire_owned() {
            host.users.fetch_add(1, AcqRel);
            drop(map);
            host.in_flight.fetch_add(1, AcqRel);
            self.in_flight.fetch_add(1, AcqRel);
            if let Some(stats) = self.config.in_flight_stats() {
                stats.in_flight_add(1);
            }
            return Admission::Now(Permit::new(Scope::Host(self.clone(), key, host), permit));
        }
        // No permit free means a permit holder uses this entry: it stays, nothing to remove.
        // `waiting` is raised only here, under the lock, so it never passes the bound.
        let waiting = host.waiting.load(Acquire);
        if waiting >= self.config.max_waiting {
            drop(map);
            return Admission::Refused(self.config.refuse(waiting, &key));
        }
        host.users.fetch_add(1, AcqRel);
        host.waiting.fetch_add(1, AcqRel);
        drop(map);
        self.waiting.fetch_add(1, AcqRel);
        if let Some(stats) = &self.config.stats {
            stats.waiting_add(1);
        }
        let acquire = Box::pin(host.sem.clone().acquire_owned());
        let ticket = Ticket {
            scope: Some(Scope::Host(self.clone(), key, host)),
        };
        Admission::enqueue(ticket, acquire)
    }

    pub(crate) fn waited_in(&self, host: &Host) {
        host.waiting.fetch_sub(1, AcqRel);
        host.in_flight.fetch_add(1, AcqRel);
        self.waiting.fetch_sub(1, AcqRel);
        self.in_flight.fetch_add(1, AcqRel);
    }

    pub(crate) fn gave_up(&self, key: &HostKey, host: &Arc<Host>) {
        host.waiting.fetch_sub(1, AcqRel);
        self.waiting.fetch_sub(1, AcqRel);
        self.release(key, host);
    }

    pub(crate) fn left(&self, key: &HostKey, host: &Arc<Host>) {
        host.in_flight.fetch_sub(1, AcqRel);
        self.in_flight.fetch_sub(1, AcqRel);
        self.release(key, host);
    }

    /// One user fewer; the last one removes the entry — unless a new user arrived meanwhile
    /// (checked under the lock, where users are added) or the entry was already replaced.
    fn release(&self, key: &HostKey, host: &Arc<Host>) {
        if host.users.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        let mut map = self.lock();
        let ours = map.get(key).is_some_and(|h| Arc::ptr_eq(h, host));
        if ours && host.users.load(Acquire) == 0 {
            map.remove(key);
            // Keep memory proportional to the hosts in use now, not to the busiest moment ever.
            let (len, cap) = (map.len(), map.capacity());
            if cap > MIN_CAPACITY && len * 4 < cap {
                map.shrink_to((len * 2).max(MIN_CAPACITY));
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    use super::HostKey;

    fn key(uri: &str) -> HostKey {
        HostKey::of_uri(&uri.parse().unwrap())
    }

    fn same(a: &str, b: &str) -> bool {
        let (ka, kb) = (key(a), key(b));
        let s = RandomState::new();
        let equal = ka == kb;
        if equal {
            assert_eq!(
                s.hash_one(&ka),
                s.hash_one(&kb),
                "{a} and {b}: equal keys, other hashes"
            );
        }
        equal
    }

    #[test]
    fn host_and_port_are_parsed_once_and_compared_as_before() {
        assert!(same("http://Example.COM/", "http://example.com:80/x"));
        assert!(same("https://example.com", "https://EXAMPLE.com:443"));
        assert!(same(
            "http://user:pw@example.com:8080/",
            "http://example.com:8080/"
        ));
        assert!(same("http://[::1]:80/", "http://[::1]/"));
        assert!(!same("http://example.com/", "https://example.com/"));
        assert!(!same("http://example.com:8080/", "http://example.com/"));
        assert!(!same("http://a.example/", "http://b.example/"));
        assert!(!same("http://[::1]:8080/", "http://[::2]:8080/"));
        let k = key("http://user@Host.example:81/");
        assert_eq!((k.host(), k.port()), ("Host.example", Some(81)));
        let none = HostKey::of_uri(&"/path".parse().unwrap());
        assert_eq!((none.host(), none.port()), ("", None));
        let req = http::Request::get("/p")
            .header(http::header::HOST, "Example.com:80")
            .body(())
            .unwrap();
        let k = HostKey::of(&req);
        assert_eq!((k.host(), k.port()), ("Example.com", Some(80)));
        let lower = http::Request::get("/q")
            .header(http::header::HOST, "example.COM:80")
            .body(())
            .unwrap();
        assert!(k == HostKey::of(&lower));
    }
}
