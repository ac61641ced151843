//! Per-host state: one FIFO semaphore per scheme + authority, created on a host's first request.
//! Like `global.rs`, it knows nothing of tickets and permits; `gate.rs` turns it into them.
//!
//! The map sits behind one mutex, taken to find or create a host's entry, to queue a request
//! (so the entry cannot leave the map meanwhile) and to remove idle entries. An entry is idle
//! exactly when its semaphore is (every permit free, nobody waiting); an idle entry stays in the
//! map (so a host that sends one request at a time does not build and drop its entry on every
//! request) until idle entries outnumber both the hosts in use and the configured bound
//! ([`Config::max_idle_hosts`], 64 by default); then every idle entry is removed at once. Memory
//! follows the hosts in use, plus at most that many idle ones. The sweep removes an entry only by
//! closing its semaphore, with a compare-and-swap that succeeds only while it is idle, and a
//! closed semaphore gives no permit: so an entry seen idle and closed has no user and none can
//! appear. Tickets and permits hold an `Arc` of their entry, so their counts change without the
//! lock; idle entries are counted in an atomic that each change between idle and in use moves.
//!
//! The key's hash is computed once per request (SipHash with a per-process random key, as
//! std's `HashMap`), not on every probe of the map. A service remembers the key and entry of
//! its last request: a request spelled alike skips the key and the lookup, and takes a free
//! permit of that entry with one compare-and-swap, without the map's lock; once the entry has
//! left the map its semaphore refuses, and the service looks its key up again. A removed entry
//! may so outlive its removal until the service's next request: one per service, not per host.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use http::uri::{Authority, Scheme};
use http::Request;

use super::config::Config;
use super::sem::{Busy, Queued, Sem};

/// The key of a host: scheme, host (compared without case) and port, the scheme's default port
/// filled in, so `http://Example.com` and `http://example.com:80` share one limit.
#[derive(Clone, Debug)]
pub(crate) struct HostKey {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
    /// Where the host is in `authority`, and the port (the scheme's default filled in): parsed
    /// once here, not again on every comparison of the map's lookups.
    host: std::ops::Range<usize>,
    port: Option<u16>,
    /// The hash of the lower-cased scheme and host and the port, computed once.
    hash: u64,
}

fn default_port(scheme: Option<&Scheme>) -> Option<u16> {
    match scheme.map(Scheme::as_str) {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("ws") => Some(80),
        Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") => Some(443),
        _ => None,
    }
}

/// Where the host is in an authority (`[userinfo@]host[:port]`, host possibly an `[IPv6]`),
/// and its port, read exactly as `http`'s `Authority::host` and `Authority::port_u16` read
/// them (the port is what follows the last `:`, as the connector dials it), in one cheap pass.
fn split_authority(a: &str) -> (std::ops::Range<usize>, Option<u16>) {
    let b = a.as_bytes();
    let start = b.iter().rposition(|&c| c == b'@').map_or(0, |i| i + 1);
    let rest = &b[start..];
    let host_len = if rest.first() == Some(&b'[') {
        rest.iter()
            .position(|&c| c == b']')
            .map_or(rest.len(), |i| i + 1)
    } else {
        rest.iter().position(|&c| c == b':').unwrap_or(rest.len())
    };
    let port = a.rfind(':').and_then(|i| a[i + 1..].parse().ok());
    (start..start + host_len, port)
}

/// The process's random hashing key for host keys.
fn hash_state() -> &'static RandomState {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new)
}

impl HostKey {
    /// The authority the key was made of.
    #[cfg(feature = "preset")]
    pub(crate) fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

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
        let (host, port) = authority
            .as_ref()
            .map_or((0..0, None), |a| split_authority(a.as_str()));
        let mut key = HostKey {
            port: port.or_else(|| default_port(scheme.as_ref())),
            scheme,
            authority,
            host,
            hash: 0,
        };
        key.hash = key.hash_parts();
        key
    }

    /// SipHash of `scheme 0xff host 0xff port`, lower-cased, written in one piece from a stack
    /// buffer when it fits (one call of the hasher costs about as much as many bytes).
    fn hash_parts(&self) -> u64 {
        let (scheme, host) = (self.scheme().as_bytes(), self.host().as_bytes());
        let mut buf = [0u8; 96];
        let len = scheme.len() + host.len() + 5;
        if len <= buf.len() {
            let (a, rest) = buf.split_at_mut(scheme.len());
            a.copy_from_slice(scheme);
            rest[0] = 0xff;
            rest[1..=host.len()].copy_from_slice(host);
            rest[host.len() + 1] = 0xff;
            let port = self.port.map_or([0xff; 3], |p| {
                let [hi, lo] = p.to_be_bytes();
                [0, hi, lo]
            });
            // Scheme and host are case-folded; the port's bytes are a number, left as they are.
            buf[..scheme.len() + host.len() + 1].make_ascii_lowercase();
            buf[scheme.len() + host.len() + 2..len].copy_from_slice(&port);
            return hash_state().hash_one(&buf[..len]);
        }
        // A long name: lower-cased in stack chunks, no allocation.
        let mut h = hash_state().build_hasher();
        for part in [scheme, host] {
            for chunk in part.chunks(buf.len()) {
                let out = &mut buf[..chunk.len()];
                out.copy_from_slice(chunk);
                out.make_ascii_lowercase();
                h.write(out);
            }
            h.write_u8(0xff);
        }
        self.port.hash(&mut h);
        h.finish()
    }

    /// Whether this is the key of a URI with this scheme and exactly this authority, spelled
    /// alike byte for byte (then [`HostKey::of`] would make an equal key).
    ///
    /// A URI cloned from the one the key was made of shares its bytes: then the authority is
    /// known to be the same without comparing it (the key holds those bytes, so they cannot
    /// have changed). Schemes are compared as `http` compares them (the standard ones without
    /// reading a string; others without case, as the key does).
    #[inline]
    pub(crate) fn is_spelled(&self, scheme: Option<&Scheme>, authority: &Authority) -> bool {
        let Some(mine) = &self.authority else {
            return false;
        };
        let (a, b) = (mine.as_str(), authority.as_str());
        let same = (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b;
        same && self.scheme.as_ref() == scheme
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
        fn same(a: &str, b: &str) -> bool {
            // Usually spelled alike: compare the bytes first, the case-folded ones only if not.
            a == b || a.eq_ignore_ascii_case(b)
        }
        self.hash == other.hash
            && self.port() == other.port()
            && same(self.host(), other.host())
            && same(self.scheme(), other.scheme())
    }
}

impl Eq for HostKey {}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The map's hasher: takes the hash a [`HostKey`] computed once.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HostKey`; fold anything else in, to stay a hasher.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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

/// One host's limit. Its semaphore and counts are atomics, so a request that holds the entry
/// (through its ticket or permit) updates them without the map's lock, and a service enters its
/// remembered entry without it too; only finding or creating an entry, queueing a request, and
/// removing idle entries take the lock.
pub(crate) struct Host {
    /// Kept here, once per host, for reports: tickets and permits hold the entry, not a key.
    key: HostKey,
    /// Idle (every permit free, nobody waiting) exactly when no ticket or permit uses the entry;
    /// closed, once, when it is idle and taken out of the map (under the map's lock), so an entry
    /// seen idle and closed has no user and none can appear.
    pub(crate) sem: Sem,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
}

impl Host {
    pub(crate) fn key(&self) -> &HostKey {
        &self.key
    }
}

/// The entry of a service's last request, and the key it was found by (see
/// [`Hosts::enter_known`]).
#[derive(Clone)]
pub(crate) struct Last {
    pub(crate) key: HostKey,
    pub(crate) host: Arc<Host>,
}

impl fmt::Debug for Last {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Last").field(&self.key).finish()
    }
}

/// What a request finds at its host (see [`Hosts::enter`]); the host's entry comes with it.
pub(crate) enum Entry {
    /// A permit was free; it is counted in flight.
    Permit(Arc<Host>),
    /// No permit free: it is counted as waiting, queued on the host's semaphore with this id.
    Queued(Arc<Host>, u64),
    /// No permit free and this many already wait: the queue is full. Nothing was counted.
    Full(Arc<Host>, usize),
}

impl Entry {
    /// The host's entry.
    pub(crate) fn host(&self) -> &Arc<Host> {
        match self {
            Entry::Permit(host) | Entry::Queued(host, _) | Entry::Full(host, _) => host,
        }
    }
}

type Map = HashMap<HostKey, Arc<Host>, BuildHasherDefault<KeyHasher>>;

/// Every host's limit, shared by every service a layer makes.
pub(crate) struct Hosts {
    pub(crate) config: Config,
    map: Mutex<Map>,
    /// Entries in the map: changed under the lock, read without it.
    len: AtomicUsize,
    /// Idle entries in the map. Each change of an entry between idle and in use (and each new or
    /// removed entry) moves it by one, without the lock, so it is exact whenever no request is
    /// entering or leaving; meanwhile it may be off by those in progress (wrapping below zero).
    idle: AtomicUsize,
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
            map: Mutex::new(HashMap::default()),
            len: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // Nothing panics while the lock is held; a release path must never panic.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle entries, as far as the count can tell (see `idle`), at most `len`.
    fn idle_now(&self, len: usize) -> usize {
        let idle = self.idle.load(Acquire);
        // Below zero (wrapped) for a moment: a request made an entry busy before the leave of
        // its last user was counted.
        if (idle as isize) < 0 {
            return 0;
        }
        idle.min(len)
    }

    /// Hosts with a request in flight or waiting.
    pub(crate) fn hosts(&self) -> usize {
        let map = self.lock();
        map.len() - self.idle_now(map.len())
    }

    /// Entries in the map, idle ones included.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
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

    /// Finds or creates the entry of `key` and counts the request in it: in flight if a permit
    /// is free, waiting if the queue has room.
    pub(crate) fn enter(&self, key: &HostKey) -> Entry {
        let mut map = self.lock();
        let host = match map.get(key) {
            Some(host) => host.clone(),
            None => {
                let host = Arc::new(Host {
                    key: key.clone(),
                    sem: Sem::new(self.config.limit),
                    in_flight: AtomicUsize::new(0),
                    waiting: AtomicUsize::new(0),
                });
                // A new entry is idle until its first user takes a permit below.
                map.insert(key.clone(), host.clone());
                self.len.store(map.len(), Release);
                self.idle.fetch_add(1, AcqRel);
                host
            }
        };
        self.enter_at(map, host)
    }

    /// Takes a free permit of `host`, an entry the caller found before (the entry of its last
    /// request), and counts it in flight, all without the map's lock: `false`, and nothing
    /// counted, if no permit is free or the entry has left the map since (its semaphore refuses
    /// every permit once it is closed, and it is closed as it leaves the map).
    #[inline]
    pub(crate) fn try_enter(&self, host: &Host) -> bool {
        let Ok(was_idle) = host.sem.try_acquire() else {
            return false;
        };
        self.count_entered(host, was_idle);
        true
    }

    /// Like [`enter`](Self::enter), at an entry the caller found before (the entry of its last
    /// request): `None`, and nothing counted, when that entry has left the map since. A permit
    /// free is taken without the map's lock; only a request that must queue takes the lock.
    pub(crate) fn enter_known(&self, host: &Arc<Host>) -> Option<Entry> {
        match host.sem.try_acquire() {
            Ok(was_idle) => Some(self.entered(host.clone(), was_idle)),
            Err(Busy::Closed) => None,
            Err(Busy::Full) => {
                let map = self.lock();
                // Entries are closed only under the lock, as they leave the map.
                if host.sem.is_closed() {
                    return None;
                }
                Some(self.enter_at(map, host.clone()))
            }
        }
    }

    /// A permit was taken from `host`: counts it in flight (and the entry as in use).
    fn entered(&self, host: Arc<Host>, was_idle: bool) -> Entry {
        self.count_entered(&host, was_idle);
        Entry::Permit(host)
    }

    #[inline]
    fn count_entered(&self, host: &Host, was_idle: bool) {
        if was_idle {
            self.idle.fetch_sub(1, AcqRel);
        }
        host.in_flight.fetch_add(1, AcqRel);
        self.in_flight.fetch_add(1, AcqRel);
    }

    /// Counts the request in `host`, an entry of the map, under the lock `map` (so it is not
    /// closed meanwhile).
    fn enter_at(&self, map: MutexGuard<'_, Map>, host: Arc<Host>) -> Entry {
        if let Ok(was_idle) = host.sem.try_acquire() {
            drop(map);
            return self.entered(host, was_idle);
        }
        let max = self.config.max_waiting;
        if let Err(waiting) = host
            .waiting
            .fetch_update(AcqRel, Acquire, |w| (w < max).then_some(w + 1))
        {
            drop(map);
            return Entry::Full(host, waiting);
        }
        let queued = host.sem.acquire_or_queue();
        drop(map);
        match queued {
            Queued::Waiting(id) => {
                self.waiting.fetch_add(1, AcqRel);
                Entry::Queued(host, id)
            }
            // A permit came free since the first look: no wait after all.
            Queued::Got(was_idle) => {
                host.waiting.fetch_sub(1, AcqRel);
                self.entered(host, was_idle)
            }
            // Entries are closed only under the lock, as they leave the map.
            Queued::Closed => unreachable!("an entry of the map is closed"),
        }
    }

    pub(crate) fn waited_in(&self, host: &Host) {
        host.waiting.fetch_sub(1, AcqRel);
        host.in_flight.fetch_add(1, AcqRel);
        self.waiting.fetch_sub(1, AcqRel);
        self.in_flight.fetch_add(1, AcqRel);
    }

    pub(crate) fn gave_up(&self, host: &Host) {
        host.waiting.fetch_sub(1, AcqRel);
        self.waiting.fetch_sub(1, AcqRel);
    }

    /// A permit is being released (its semaphore permit goes back next, with
    /// [`Hosts::give_back`]).
    pub(crate) fn left(&self, host: &Host) {
        host.in_flight.fetch_sub(1, AcqRel);
        self.in_flight.fetch_sub(1, AcqRel);
    }

    /// A permit of `host` goes back. If that made the entry idle, it is counted so, and every
    /// idle entry is removed once they are too many.
    #[inline]
    pub(crate) fn give_back(&self, host: &Host) {
        if host.sem.release() {
            self.became_idle();
        }
    }

    #[inline]
    fn became_idle(&self) {
        let idle = self.idle.fetch_add(1, AcqRel).wrapping_add(1);
        if self.too_many_idle(idle, self.len.load(Acquire)) {
            self.sweep();
        }
    }

    /// Whether idle entries outnumber both the bound and the entries in use.
    fn too_many_idle(&self, idle: usize, len: usize) -> bool {
        idle > self.config.max_idle_hosts && idle > len.saturating_sub(idle)
    }

    /// Removes every idle entry, if they are still too many (the counts are read again under
    /// the lock). An entry is removed only if it is closed, which succeeds only while it is idle.
    #[cold]
    pub(crate) fn sweep(&self) {
        let mut map = self.lock();
        if !self.too_many_idle(self.idle_now(map.len()), map.len()) {
            return;
        }
        self.remove_idle(&mut map);
    }

    /// Removes every idle entry now, whatever the counts (tests only).
    #[cfg(test)]
    pub(crate) fn remove_idle_now(&self) {
        self.remove_idle(&mut self.lock());
    }

    fn remove_idle(&self, map: &mut Map) {
        let before = map.len();
        map.retain(|_, h| !h.sem.close_if_idle());
        self.idle.fetch_sub(before - map.len(), AcqRel);
        self.len.store(map.len(), Release);
        // Keep memory proportional to the hosts in use now, not to the busiest moment ever.
        let (len, cap) = (map.len(), map.capacity());
        if cap > MIN_CAPACITY && len * 4 < cap {
            map.shrink_to((len * 2).max(MIN_CAPACITY));
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
    fn authority_split_matches_http() {
        for a in [
            "example.com",
            "example.com:8080",
            "EXAMPLE.com:1",
            "user@example.com",
            "user:pw@example.com:81",
            "user:p@ss@example.com:82",
            "[::1]",
            "[::1]:443",
            "u@[fe80::1%25eth0]:9",
            "127.0.0.1:0",
            "h:65535",
            "[::1]x:8080",
            "h:99999",
        ] {
            let auth: http::uri::Authority = a.parse().unwrap();
            let (host, port) = super::split_authority(auth.as_str());
            assert_eq!(&auth.as_str()[host], auth.host(), "host of {a}");
            assert_eq!(port, auth.port_u16(), "port of {a}");
        }
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
        // Port numbers whose bytes are ASCII letters are not case-folded into each other.
        let (a, b) = (
            key("http://h.example:16705/"),
            key("http://h.example:24929/"),
        );
        assert!(a != b);
        assert_ne!(a.hash, b.hash, "0x4141 and 0x6161 hash apart");
        // What follows the last ':' is the port, as `http` (and the connector) read it.
        assert!(!same("http://[::1]x:8080/", "http://[::1]/"));
        // Longer than the one-piece hashing buffer: hashed in chunks, same rules.
        let long = "a".repeat(120);
        assert!(same(
            &format!("http://{long}.Example/"),
            &format!("http://{}.example:80/", long.to_uppercase())
        ));
        assert!(!same(
            &format!("http://{long}.example/"),
            &format!("http://{long}.example:81/")
        ));
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
