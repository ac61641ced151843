//! What one request records, from `call` to the end of its response body: its span and, with
//! the `metrics` feature, its series.

use std::fmt;

use http::{Request, StatusCode};

use crate::error::{Error, ErrorKind, Phase};

/// `error.type` when the caller dropped the response future before the headers came.
pub(crate) const CANCELLED: &str = "cancelled";
/// `error.type` of an error that is not this crate's (a refused connection, a protocol error).
pub(crate) const OTHER: &str = "_OTHER";

/// The `error.type` of a failure: the phase of a timeout, the kind of any other error of this
/// crate, `_OTHER` for the rest.
pub(crate) fn error_type(err: &(dyn std::error::Error + 'static)) -> &'static str {
    match Error::find(err) {
        Some(e) if e.kind() == ErrorKind::Timeout => e.phase().unwrap_or(Phase::Total).as_str(),
        Some(e) => e.kind().as_str(),
        None => OTHER,
    }
}

/// `server.address`: the URI's host, IPv6 without brackets (as OpenTelemetry writes it).
pub(crate) fn host(uri: &http::Uri) -> &str {
    uri.host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// How an exchange ended.
pub(crate) enum Outcome<'a> {
    /// The body ended, or was dropped by the caller (which is how Rust stops reading).
    Done,
    Failed(&'a (dyn std::error::Error + 'static)),
    /// The response future was dropped before the headers.
    Cancelled,
}

/// What a layer keeps between requests: the series it registered (nothing without `metrics`).
#[cfg(feature = "metrics")]
pub(crate) type Cache = crate::telemetry::record::SeriesCache;
/// What a layer keeps between requests: the series it registered (nothing without `metrics`).
#[cfg(not(feature = "metrics"))]
pub(crate) type Cache = NoCache;

/// Without `metrics` there are no series to keep.
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct NoCache;

/// One request's record. Finished exactly once: by [`Recording::finish`], or on drop (before
/// the headers that is a cancellation; after them, a body dropped by its reader).
pub(crate) struct Recording {
    pub(crate) span: tracing::Span,
    status: Option<StatusCode>,
    finished: bool,
    #[cfg(feature = "metrics")]
    metrics: metered::Metered,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("status", &self.status)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// Opens the span (and, with `metrics`, counts the request active in `cache`'s series and
    /// hands inner layers its [`Exchange`] through the extensions).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn start<B>(req: &mut Request<B>, cache: &mut Cache) -> Recording {
        let uri = req.uri();
        let span = tracing::debug_span!(
            "http.client.request",
            otel.kind = "client",
            http.request.method = %req.method(),
            server.address = host(uri),
            server.port = uri.port_u16().or_else(|| match uri.scheme_str() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            }),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        Recording {
            span,
            status: None,
            finished: false,
            #[cfg(feature = "metrics")]
            metrics: metered::Metered::start(req, cache),
        }
    }

    /// The response headers came.
    pub(crate) fn headers(&mut self, status: StatusCode) {
        self.status = Some(status);
        self.span
            .record("http.response.status_code", status.as_u16());
    }

    pub(crate) fn finish(&mut self, outcome: Outcome<'_>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let error_type = match outcome {
            Outcome::Done => None,
            Outcome::Cancelled => Some(CANCELLED),
            Outcome::Failed(err) => Some(error_type(err)),
        };
        if let Some(et) = error_type {
            self.span.record("error.type", et);
            self.span.record("otel.status_code", "ERROR");
            match outcome {
                Outcome::Failed(err) => tracing::debug!(
                    parent: &self.span,
                    error.type = et,
                    status = self.status.map(|s| s.as_u16()),
                    "request failed: {err}"
                ),
                _ => tracing::debug!(
                    parent: &self.span,
                    error.type = et,
                    "request cancelled before its response headers"
                ),
            }
        }
        #[cfg(feature = "metrics")]
        self.metrics.finish(self.status, error_type);
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.status.is_some() {
            self.finish(Outcome::Done);
        } else {
            self.finish(Outcome::Cancelled);
        }
    }
}

/// What a transport connection gives [`Exchange::got_connection`] to be counted active while a
/// request uses it: its tracker with `metrics`, nothing without.
#[cfg(feature = "metrics")]
#[cfg_attr(not(feature = "transport"), allow(dead_code))]
pub(crate) type ConnMeter = std::sync::Arc<crate::telemetry::record::ConnTracker>;
/// What a transport connection gives [`Exchange::got_connection`] to be counted active while a
/// request uses it: its tracker with `metrics`, nothing without.
#[cfg(not(feature = "metrics"))]
#[cfg_attr(not(feature = "transport"), allow(dead_code))]
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnMeter;

/// The handle inner layers find in a request's extensions to tell the exchange what they saw:
/// the legacy pool's `Retire` layer tells it which connection the request got. Without the
/// `metrics` feature it is never there, and costs nothing.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    #[cfg(feature = "metrics")]
    inner: std::sync::Arc<metered::Shared>,
}

impl Exchange {
    /// The exchange a request belongs to, if a [`TelemetryLayer`](super::TelemetryLayer) is
    /// around it.
    #[allow(unused_variables)]
    pub(crate) fn of<B>(req: &Request<B>) -> Option<Exchange> {
        #[cfg(feature = "metrics")]
        return req.extensions().get::<Exchange>().cloned();
        #[cfg(not(feature = "metrics"))]
        return None;
    }

    /// The request has its connection (the transport knows when its pool hands one out):
    /// records the time in queue and counts the connection (its `meter`) active until the
    /// exchange ends, once.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    pub(crate) fn got_connection(&self, meter: &ConnMeter) {
        #[cfg(feature = "metrics")]
        self.inner.got_connection(meter);
    }

    /// Looks for the connection hyper-util's client picked for the request in `capture`; once
    /// it is there, records the time in queue and counts the connection active until the
    /// exchange ends. Returns whether the connection was seen (then call it no more).
    #[cfg(feature = "pool")]
    #[allow(unused_variables)]
    pub(crate) fn connected_via(
        &self,
        capture: &hyper_util::client::legacy::connect::CaptureConnection,
    ) -> bool {
        #[cfg(feature = "metrics")]
        {
            let meta = capture.connection_metadata();
            let Some(connected) = meta.as_ref() else {
                return false;
            };
            let info = crate::pool::ConnectionInfo::of(connected);
            self.inner.connected(info.as_ref());
        }
        true
    }
}

#[cfg(feature = "metrics")]
pub(crate) mod metered {
    use std::sync::{Arc, Mutex, PoisonError};

    use http::{Request, StatusCode};
    use tokio::time::Instant;

    use super::Exchange;
    use crate::telemetry::record::{Series, SeriesCache};

    /// What the request and the inner layers share.
    #[derive(Debug)]
    pub(crate) struct Shared {
        start: Instant,
        series: Arc<Series>,
        state: Mutex<Conn>,
    }

    #[derive(Debug, Default)]
    struct Conn {
        seen: bool,
        ended: bool,
        #[cfg(feature = "pool")]
        using: Option<crate::pool::ConnectionUse>,
        /// The transport's connection, counted active for this exchange.
        tracked: Option<crate::telemetry::record::TrackerUse>,
    }

    impl Shared {
        fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        #[cfg(feature = "pool")]
        pub(super) fn connected(&self, info: Option<&crate::pool::ConnectionInfo>) {
            let mut conn = self.lock();
            if conn.seen || conn.ended {
                return;
            }
            conn.seen = true;
            self.series.queued(self.start.elapsed());
            conn.using = info.map(crate::pool::ConnectionInfo::begin_use);
        }

        /// The transport took a connection for this exchange: the first one ends its time in
        /// the queue; a later one (a retry or a replay on another connection) takes over the
        /// count of active connections from the one before, which is no longer used.
        pub(super) fn got_connection(&self, meter: &super::ConnMeter) {
            let mut conn = self.lock();
            if conn.ended {
                return;
            }
            if !conn.seen {
                conn.seen = true;
                self.series.queued(self.start.elapsed());
            }
            let before = conn
                .tracked
                .replace(crate::telemetry::record::TrackerUse::begin(meter));
            drop(conn);
            drop(before);
        }

        /// The exchange is over: the connection it used is no longer counted active for it.
        fn end(&self) {
            let mut conn = self.lock();
            conn.ended = true;
            #[cfg(feature = "pool")]
            let using = conn.using.take();
            let tracked = conn.tracked.take();
            drop(conn);
            #[cfg(feature = "pool")]
            drop(using);
            drop(tracked);
        }
    }

    pub(super) struct Metered {
        shared: Arc<Shared>,
    }

    impl Metered {
        pub(super) fn start<B>(req: &mut Request<B>, cache: &mut SeriesCache) -> Metered {
            let series = cache.get(req.method(), req.uri());
            series.started();
            let shared = Arc::new(Shared {
                start: Instant::now(),
                series,
                state: Mutex::new(Conn::default()),
            });
            req.extensions_mut().insert(Exchange {
                inner: shared.clone(),
            });
            Metered { shared }
        }

        pub(super) fn finish(
            &mut self,
            status: Option<StatusCode>,
            error_type: Option<&'static str>,
        ) {
            self.shared.end();
            let took = self.shared.start.elapsed();
            self.shared.series.ended(status, error_type, took);
        }
    }
}
