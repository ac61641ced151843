use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tower_layer::Layer;

use super::config::Config;
use super::gate::{Admission, Admit};
use super::global::Global;
use super::per_host::{HostKey, Hosts, Last};
use super::{ConcurrencyLimit, LimitHandle, PerHostHandle, PerHostLimit};
use crate::clock;
use crate::stats::Stats;

/// Limits how many requests are in flight at once, counting each one until its response body
/// ends: [`ConcurrencyLimit`].
///
/// One layer is **one limit**: every service it makes, and every clone of those services,
/// shares it (like tower's `GlobalConcurrencyLimitLayer`, unlike tower's `ConcurrencyLimitLayer`,
/// which makes a new limit per `layer` call). Each setter returns a layer with a fresh limit, so
/// configure first, then make services. Read the counts with [`handle`](Self::handle).
///
/// Defaults: at most 1024 requests waiting (Envoy's `max_pending_requests`), no acquire timeout
/// of its own (the wait is still bounded by the request's [`RequestDeadline`](crate::RequestDeadline)).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{ConcurrencyLimitLayer, Stats};
///
/// let stats = Stats::new();
/// let layer = ConcurrencyLimitLayer::new(64)
///     .max_waiting(256)
///     .acquire_timeout(Duration::from_secs(2))
///     .stats(stats.clone());
/// let handle = layer.handle();
/// assert_eq!((handle.limit(), handle.in_flight(), handle.waiting()), (64, 0, 0));
/// ```
///
/// # Panics
///
/// [`new`](Self::new) panics when `max` is zero (every request would wait forever) and
/// [`acquire_timeout`](Self::acquire_timeout) when the timeout is zero.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    gate: Arc<Global>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` requests in flight, response bodies included.
    #[track_caller]
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer {
            gate: Arc::new(Global::new(Config::new("ConcurrencyLimitLayer max", max))),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.gate.config.clone();
        f(&mut config);
        ConcurrencyLimitLayer {
            gate: Arc::new(Global::new(config)),
        }
    }

    /// At most `max` requests wait for a permit; the next one fails at once with an
    /// [`Overloaded`](crate::ErrorKind::Overloaded) error of phase
    /// [`Acquire`](crate::Phase::Acquire). Zero means no queue at all: shed load as soon as every
    /// permit is taken. `usize::MAX` means an unbounded queue.
    pub fn max_waiting(self, max: usize) -> Self {
        self.with(|c| c.max_waiting = max)
    }

    /// Gives up waiting for a permit after `timeout`, with a timeout error of phase
    /// [`Acquire`](crate::Phase::Acquire) — or of [`Total`](crate::Phase::Total) if the request's
    /// deadline comes first.
    #[track_caller]
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        clock::check_duration("ConcurrencyLimitLayer acquire_timeout", timeout);
        self.with(|c| c.acquire_timeout = Some(timeout))
    }

    /// Counts in-flight and waiting requests, refusals and acquire timeouts in `stats`.
    ///
    /// Give one [`Stats`] to one limiter only: two limiters stacked on the same handle each
    /// count the same request as in flight.
    pub fn stats(self, stats: Stats) -> Self {
        self.with(|c| c.stats = Some(stats))
    }

    /// A handle to read this limit's counts, shared with every service the layer makes.
    pub fn handle(&self) -> LimitHandle {
        LimitHandle {
            gate: self.gate.clone(),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit::new(inner, self.clone())
    }
}

impl Admit for ConcurrencyLimitLayer {
    fn admit<B>(&mut self, _req: &Request<B>) -> Admission {
        Admission::global(&self.gate)
    }
}

/// Limits how many requests are in flight at once **to each host** (scheme + authority), each
/// counted until its response body ends: [`PerHostLimit`].
///
/// Like [`ConcurrencyLimitLayer`], one layer is one set of limits shared by every service it
/// makes. A host's state exists while it has requests in flight or waiting, and is kept while
/// idle until idle hosts outnumber both 64 and the hosts in use, so any number of distinct hosts
/// costs memory only for those in use and a bounded number of idle ones. The waiting queue is
/// bounded per host.
///
/// Defaults: at most 1024 requests waiting per host, no acquire timeout of its own.
///
/// # Example
///
/// ```
/// use tower_hardened::PerHostLimitLayer;
///
/// // OkHttp's default: 5 requests per host at once.
/// let layer = PerHostLimitLayer::new(5).max_waiting(64);
/// assert_eq!(layer.handle().hosts(), 0);
/// ```
///
/// # Panics
///
/// [`new`](Self::new) panics when `max_per_host` is zero and
/// [`acquire_timeout`](Self::acquire_timeout) when the timeout is zero.
#[derive(Debug, Clone)]
pub struct PerHostLimitLayer {
    gate: Arc<Hosts>,
    /// The key and entry of the last request with an authority in its URI, which the next one
    /// is likely to share.
    last: Option<Last>,
}

impl PerHostLimitLayer {
    /// At most `max_per_host` requests in flight to each host, response bodies included.
    #[track_caller]
    pub fn new(max_per_host: usize) -> Self {
        PerHostLimitLayer {
            gate: Arc::new(Hosts::new(Config::new(
                "PerHostLimitLayer max_per_host",
                max_per_host,
            ))),
            last: None,
        }
    }

    fn with(&self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.gate.config.clone();
        f(&mut config);
        PerHostLimitLayer {
            gate: Arc::new(Hosts::new(config)),
            last: None,
        }
    }

    /// At most `max` requests wait for a permit **per host**; the next one to that host fails at
    /// once with an [`Overloaded`](crate::ErrorKind::Overloaded) error of phase
    /// [`Acquire`](crate::Phase::Acquire). Zero means no queue; `usize::MAX` means unbounded.
    pub fn max_waiting(self, max: usize) -> Self {
        self.with(|c| c.max_waiting = max)
    }

    /// Gives up waiting for a permit after `timeout` (phase [`Acquire`](crate::Phase::Acquire),
    /// or [`Total`](crate::Phase::Total) if the request's deadline comes first).
    #[track_caller]
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        clock::check_duration("PerHostLimitLayer acquire_timeout", timeout);
        self.with(|c| c.acquire_timeout = Some(timeout))
    }

    /// Counts in-flight and waiting requests, refusals and acquire timeouts in `stats` (give one
    /// [`Stats`] to one limiter only, see [`ConcurrencyLimitLayer::stats`]).
    pub fn stats(self, stats: Stats) -> Self {
        self.with(|c| c.stats = Some(stats))
    }

    /// Counts waits, refusals and timeouts in the stats but not `in_flight`, for a per-host
    /// limiter stacked with a global one on the same handle (the preset does this).
    #[cfg(feature = "preset")]
    pub(crate) fn without_in_flight_count(self) -> Self {
        self.with(|c| c.count_in_flight = false)
    }

    /// Keeps the state of at most `n` idle hosts once idle hosts also outnumber those in use
    /// (64 by default; this crate's tests lower it so that a few hosts reach the sweep).
    #[cfg(test)]
    pub(crate) fn max_idle_hosts(self, n: usize) -> Self {
        self.with(|c| c.max_idle_hosts = n)
    }

    /// A handle to read the per-host counts, shared with every service the layer makes.
    pub fn handle(&self) -> PerHostHandle {
        PerHostHandle {
            gate: self.gate.clone(),
        }
    }
}

impl<S> Layer<S> for PerHostLimitLayer {
    type Service = PerHostLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PerHostLimit::new(inner, self.clone())
    }
}

impl Admit for PerHostLimitLayer {
    /// A client mostly sends to the host it sent to last: a URI spelled as the last one (scheme
    /// and authority byte for byte) has the last key, and while that entry is still in the map
    /// it is the entry, found without parsing, hashing, probing or locking the map again.
    #[inline]
    fn admit<B>(&mut self, req: &Request<B>) -> Admission {
        let uri = req.uri();
        if let (Some(last), Some(authority)) = (&self.last, uri.authority()) {
            if last.key.is_spelled(uri.scheme(), authority) && self.gate.try_enter(&last.host) {
                return Admission::host_entered(&self.gate, &last.host);
            }
        }
        self.admit_slow(req)
    }
}

impl PerHostLimitLayer {
    /// Admission when the last entry gave no permit at once: another host, no permit free (the
    /// request queues, under the map's lock), or the last entry removed since.
    #[cold]
    fn admit_slow<B>(&mut self, req: &Request<B>) -> Admission {
        let uri = req.uri();
        let Some(authority) = uri.authority() else {
            let entry = self.gate.enter(&HostKey::of(req));
            return Admission::host(&self.gate, entry);
        };
        let entry = match &self.last {
            Some(last) if last.key.is_spelled(uri.scheme(), authority) => {
                match self.gate.enter_known(&last.host) {
                    Some(entry) => return Admission::host(&self.gate, entry),
                    None => self.gate.enter(&last.key),
                }
            }
            _ => {
                let key = HostKey::of(req);
                let entry = self.gate.enter(&key);
                self.last = Some(Last {
                    key,
                    host: entry.host().clone(),
                });
                return Admission::host(&self.gate, entry);
            }
        };
        if let Some(last) = &mut self.last {
            last.host = entry.host().clone();
        }
        Admission::host(&self.gate, entry)
    }
}
