//! The recording points of the `metrics` feature: every metric name of the crate, the bounded
//! attribute sets, and one function per event. Nothing here is compiled without the feature.
//!
//! Who calls what: [`Stats`](crate::Stats) calls the counters; the telemetry layer keeps a
//! [`SeriesCache`] and records each request's [`Series`]; the legacy pool keeps a
//! [`ConnTracker`] per connection (its requests say when they use it). The transport keeps one
//! too, per connection (opened at the dial, closed when its task ends), and tells the
//! request's [`Exchange`](super::Exchange) (`Exchange::of(&req)`) `got_connection(tracker)` at
//! checkout, which counts it active until the exchange ends ([`TrackerUse`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Method;
use metrics::{Label, SharedString};

use crate::error::Phase;
use crate::stats::{CloseReason, DrainAbandon};

pub(crate) const REQUEST_DURATION: &str = "http.client.request.duration";
pub(crate) const ACTIVE_REQUESTS: &str = "http.client.active_requests";
pub(crate) const OPEN_CONNECTIONS: &str = "http.client.open_connections";
pub(crate) const CONNECTION_DURATION: &str = "http.client.connection.duration";
pub(crate) const TIME_IN_QUEUE: &str = "http.client.request.time_in_queue";
pub(crate) const TIMEOUTS: &str = "tower_hardened.timeouts";
pub(crate) const OVERLOADS: &str = "tower_hardened.overloads";
pub(crate) const DRAINS: &str = "tower_hardened.drains";
pub(crate) const LEAKS: &str = "tower_hardened.leaks";
pub(crate) const REPLAYS: &str = "tower_hardened.replays";
pub(crate) const CONNECTIONS_CLOSED: &str = "tower_hardened.connections.closed";
pub(crate) const ADAPTIVE_LIMIT: &str = "tower_hardened.adaptive.limit";

/// The `outcome` of a dropped body's drain: it was read to its end, or why it was given up.
pub(crate) const DRAIN_OUTCOMES: [&str; 6] = [
    "finished",
    "bytes",
    "time",
    "concurrency",
    "error",
    "no_runtime",
];

#[cfg_attr(not(feature = "drain"), allow(dead_code))]
pub(crate) fn drain_outcome(why: Option<DrainAbandon>) -> &'static str {
    match why {
        None => "finished",
        Some(DrainAbandon::Bytes) => "bytes",
        Some(DrainAbandon::Time) => "time",
        Some(DrainAbandon::Concurrency) => "concurrency",
        Some(DrainAbandon::Error) => "error",
        Some(DrainAbandon::NoRuntime) => "no_runtime",
    }
}

pub(crate) fn close_reason(why: CloseReason) -> &'static str {
    match why {
        CloseReason::Idle => "idle",
        CloseReason::Lifetime => "lifetime",
        CloseReason::Cap => "cap",
        CloseReason::Error => "error",
        CloseReason::Other => "other",
    }
}

/// `http.request.method`: the method if it is one of the nine of RFC 9110 and RFC 5789, else
/// `_OTHER` (OpenTelemetry's rule, so a client cannot be made to mint a series per method).
pub(crate) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `server.address` and `server.port` of one peer: host and port only (never a path or a
/// query), shared cheaply between the series of one request or connection.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    address: SharedString,
    port: SharedString,
}

impl Server {
    /// From a URI's scheme and authority; the port defaults by scheme (80, 443). IPv6 hosts lose
    /// their brackets, as OpenTelemetry writes them.
    pub(crate) fn new(scheme: Option<&Scheme>, authority: Option<&Authority>) -> Server {
        let address = authority.map_or("", |a| {
            a.host().trim_start_matches('[').trim_end_matches(']')
        });
        let port =
            authority
                .and_then(Authority::port_u16)
                .or_else(|| match scheme.map(Scheme::as_str) {
                    Some("http") => Some(80),
                    Some("https") => Some(443),
                    _ => None,
                });
        let port = match port {
            Some(80) => SharedString::const_str("80"),
            Some(443) => SharedString::const_str("443"),
            Some(p) => SharedString::from(Arc::<str>::from(p.to_string())),
            None => SharedString::const_str(""),
        };
        Server {
            address: SharedString::from(Arc::<str>::from(address)),
            port,
        }
    }

    /// The port label.
    #[cfg(test)]
    pub(crate) fn port(&self) -> &str {
        &self.port
    }

    fn labels(&self, extra: usize) -> Vec<Label> {
        let mut v = Vec::with_capacity(2 + extra);
        v.push(Label::new("server.address", self.address.clone()));
        v.push(Label::new("server.port", self.port.clone()));
        v
    }
}

/// Which recorder the `metrics` macros reach from here now (the thread's local one, the global
/// one, or the no-op one): handles registered with another one are registered again.
fn recorder_id() -> usize {
    metrics::with_recorder(|r| (r as *const dyn metrics::Recorder).cast::<()>() as usize)
}

/// The series of one method and server, registered once per recorder and kept: a request
/// costs a lookup and a few atomic operations, not a key built and hashed per series.
#[derive(Debug)]
pub(crate) struct Series {
    recorder: usize,
    method: &'static str,
    scheme: Option<Scheme>,
    authority: Option<Box<str>>,
    labels: Vec<Label>,
    active: metrics::Gauge,
    queue: metrics::Histogram,
    /// `http.client.request.duration` by status and `error.type`, as they come.
    durations: Mutex<Vec<KeptDuration>>,
}

/// One kept `http.client.request.duration`: status, `error.type`, handle.
type KeptDuration = (Option<u16>, Option<&'static str>, metrics::Histogram);

/// How many status and `error.type` pairs a [`Series`] keeps handles for; past that, the key
/// of the duration is built for each request (the attributes stay bounded all the same).
const MAX_DURATIONS: usize = 32;

impl Series {
    fn for_uri(method: &'static str, uri: &http::Uri) -> Arc<Series> {
        let server = Server::new(uri.scheme(), uri.authority());
        Arc::new(Series::new(method, Some(uri), &server))
    }

    fn new(method: &'static str, uri: Option<&http::Uri>, server: &Server) -> Series {
        let mut labels = server.labels(1);
        labels.insert(0, Label::from_static_parts("http.request.method", method));
        Series {
            recorder: recorder_id(),
            method,
            scheme: uri.and_then(|u| u.scheme().cloned()),
            authority: uri.and_then(|u| u.authority()).map(|a| a.as_str().into()),
            active: metrics::gauge!(ACTIVE_REQUESTS, labels.iter()),
            queue: metrics::histogram!(TIME_IN_QUEUE, labels.iter()),
            labels,
            durations: Mutex::new(Vec::new()),
        }
    }

    /// A request entered: `http.client.active_requests` goes up.
    pub(crate) fn started(&self) {
        self.active.increment(1.0);
    }

    /// The request got its connection `waited` after it entered (queue, pool and dial waits).
    pub(crate) fn queued(&self, waited: Duration) {
        self.queue.record(waited.as_secs_f64());
    }

    /// The request is over: its body ended, failed or was dropped, or it failed before one.
    pub(crate) fn ended(
        &self,
        status: Option<http::StatusCode>,
        error_type: Option<&'static str>,
        took: Duration,
    ) {
        self.active.decrement(1.0);
        let code = status.map(|s| s.as_u16());
        let mut durations = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, h)) = durations
            .iter()
            .find(|(c, e, _)| *c == code && *e == error_type)
        {
            return h.record(took.as_secs_f64());
        }
        let mut labels = self.labels.clone();
        if let Some(status) = status {
            labels.push(Label::new(
                "http.response.status_code",
                status_label(status),
            ));
        }
        if let Some(e) = error_type {
            labels.push(Label::from_static_parts("error.type", e));
        }
        let h = metrics::histogram!(REQUEST_DURATION, labels);
        h.record(took.as_secs_f64());
        if durations.len() < MAX_DURATIONS {
            durations.push((code, error_type, h));
        }
    }
}

/// The [`Series`] of every method and server one layer has seen, by authority, shared by its
/// services; each service also keeps the one it used last, the usual case (one host) costing
/// a comparison of strings. Bounded: past `MAX_HOSTS` authorities, a new one gets series that
/// are not kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeriesCache {
    hosts: Arc<Mutex<HashMap<Box<str>, HostSeries>>>,
    last: Option<Arc<Series>>,
}

type HostSeries = Vec<Arc<Series>>;

const MAX_HOSTS: usize = 256;

impl SeriesCache {
    /// The series of a request with `method` to `uri`'s scheme and authority.
    pub(crate) fn get(&mut self, method: &Method, uri: &http::Uri) -> Arc<Series> {
        let method = method_label(method);
        let Some(authority) = uri.authority() else {
            return Arc::new(Series::new(method, None, &Server::new(uri.scheme(), None)));
        };
        let recorder = recorder_id();
        let fits = |s: &Series| {
            s.method == method
                && s.recorder == recorder
                && s.scheme.as_ref() == uri.scheme()
                && s.authority.as_deref() == Some(authority.as_str())
        };
        if let Some(last) = self.last.as_ref().filter(|s| fits(s)) {
            return last.clone();
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let room = hosts.len() < MAX_HOSTS;
        let series = match hosts.get_mut(authority.as_str()) {
            Some(kept) => match kept.iter().find(|s| fits(s)) {
                Some(s) => s.clone(),
                None => {
                    kept.retain(|s| s.recorder == recorder);
                    let s = Series::for_uri(method, uri);
                    kept.push(s.clone());
                    s
                }
            },
            None if room => {
                let s = Series::for_uri(method, uri);
                hosts.insert(authority.as_str().into(), vec![s.clone()]);
                s
            }
            None => Series::for_uri(method, uri),
        };
        drop(hosts);
        self.last = Some(series.clone());
        series
    }
}

/// The status code as a label value, without an allocation for the common ones.
fn status_label(status: http::StatusCode) -> SharedString {
    let s = match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => return SharedString::from_owned(status.as_str().to_owned()),
    };
    SharedString::const_str(s)
}

pub(crate) fn timeout(phase: Phase) {
    metrics::counter!(TIMEOUTS, "phase" => phase.as_str()).increment(1);
}

pub(crate) fn overload() {
    metrics::counter!(OVERLOADS).increment(1);
}

/// A dropped body's drain ended: `None` read to its end, else why it was given up.
#[cfg_attr(not(feature = "drain"), allow(dead_code))]
pub(crate) fn drain(why: Option<DrainAbandon>) {
    metrics::counter!(DRAINS, "outcome" => drain_outcome(why)).increment(1);
}

pub(crate) fn leak() {
    metrics::counter!(LEAKS).increment(1);
}

/// A request lost to a stale keep-alive connection sent once more (the `replay` module), through
/// `Stats::replay`.
pub(crate) fn replay() {
    metrics::counter!(REPLAYS).increment(1);
}

/// The adaptive limiters' current limit moved by `delta` (their sum, over every host).
#[cfg(feature = "limit")]
pub(crate) fn adaptive_limit(delta: i64) {
    metrics::gauge!(ADAPTIVE_LIMIT).increment(delta as f64);
}

pub(crate) fn connection_closed(why: CloseReason) {
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => close_reason(why)).increment(1);
}

/// `http.connection.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    Active,
    Idle,
}

impl ConnState {
    fn as_str(self) -> &'static str {
        match self {
            ConnState::Active => "active",
            ConnState::Idle => "idle",
        }
    }
}

fn open_connections(server: &Server, state: ConnState) -> metrics::Gauge {
    let mut labels = server.labels(1);
    labels.push(Label::from_static_parts(
        "http.connection.state",
        state.as_str(),
    ));
    metrics::gauge!(OPEN_CONNECTIONS, labels)
}

/// The `http.client.open_connections` gauges of one server, both states, and its
/// `http.client.connection.duration`: what a pool records, registered once per recorder.
#[derive(Debug)]
pub(crate) struct ConnGauges {
    recorder: usize,
    idle: metrics::Gauge,
    active: metrics::Gauge,
    duration: metrics::Histogram,
}

impl ConnGauges {
    pub(crate) fn new(server: &Server) -> ConnGauges {
        ConnGauges {
            recorder: recorder_id(),
            idle: open_connections(server, ConnState::Idle),
            active: open_connections(server, ConnState::Active),
            duration: metrics::histogram!(CONNECTION_DURATION, server.labels(0)),
        }
    }

    /// These gauges, registered again if the recorder changed since.
    pub(crate) fn current(&mut self, server: &Server) -> &ConnGauges {
        if self.recorder != recorder_id() {
            *self = ConnGauges::new(server);
        }
        self
    }

    fn of(&self, state: ConnState) -> &metrics::Gauge {
        match state {
            ConnState::Idle => &self.idle,
            ConnState::Active => &self.active,
        }
    }

    /// A connection opened in `state`.
    pub(crate) fn opened(&self, state: ConnState) {
        self.of(state).increment(1.0);
    }

    /// A connection went from `from` to `to`.
    pub(crate) fn moved(&self, from: ConnState, to: ConnState) {
        if from != to {
            self.of(from).decrement(1.0);
            self.of(to).increment(1.0);
        }
    }

    /// A connection closed in `state`, `age` after it opened.
    pub(crate) fn closed(&self, state: ConnState, age: Duration) {
        self.of(state).decrement(1.0);
        self.duration.record(age.as_secs_f64());
    }
}

/// The state of one connection as seen from the requests using it: active while at least one
/// uses it (an HTTP/2 connection carries several), idle otherwise. Made for pools that do not
/// tell when they hand a connection out (hyper-util's legacy pool): the requests do.
#[derive(Debug)]
pub(crate) struct ConnTracker {
    server: Server,
    state: Mutex<Track>,
}

#[derive(Debug, Default)]
struct Track {
    users: usize,
    open: bool,
    closed: bool,
    /// Registered when the connection opens.
    gauges: Option<ConnGauges>,
}

impl Track {
    fn state(&self) -> ConnState {
        if self.users > 0 {
            ConnState::Active
        } else {
            ConnState::Idle
        }
    }
}

impl ConnTracker {
    pub(crate) fn new(server: Server) -> ConnTracker {
        ConnTracker {
            server,
            state: Mutex::new(Track::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Track> {
        // Plain assignments under the lock: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection is established (counted once).
    pub(crate) fn opened(&self) {
        let mut t = self.lock();
        if !t.open && !t.closed {
            t.open = true;
            let state = t.state();
            t.gauges.insert(ConnGauges::new(&self.server)).opened(state);
        }
    }

    /// A request starts using the connection.
    pub(crate) fn begin_use(&self) {
        let mut t = self.lock();
        t.users += 1;
        if t.open && t.users == 1 {
            if let Some(g) = t.gauges.as_mut() {
                g.current(&self.server)
                    .moved(ConnState::Idle, ConnState::Active);
            }
        }
    }

    /// A request is done with the connection.
    pub(crate) fn end_use(&self) {
        let mut t = self.lock();
        t.users = t.users.saturating_sub(1);
        if t.open && t.users == 0 {
            if let Some(g) = t.gauges.as_mut() {
                g.current(&self.server)
                    .moved(ConnState::Active, ConnState::Idle);
            }
        }
    }

    /// The connection is closed, `age` after it opened (counted once).
    pub(crate) fn closed(&self, age: Duration) {
        let mut t = self.lock();
        if t.open {
            t.open = false;
            t.closed = true;
            let state = t.state();
            if let Some(g) = t.gauges.as_mut() {
                g.current(&self.server).closed(state, age);
            }
        }
    }
}

/// One exchange's use of a transport connection ([`ConnTracker::begin_use`]); dropped when the
/// exchange ends.
#[derive(Debug)]
pub(crate) struct TrackerUse(Arc<ConnTracker>);

impl TrackerUse {
    pub(crate) fn begin(tracker: &Arc<ConnTracker>) -> TrackerUse {
        tracker.begin_use();
        TrackerUse(tracker.clone())
    }
}

impl Drop for TrackerUse {
    fn drop(&mut self) {
        self.0.end_use();
    }
}
