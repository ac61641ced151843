//! The crate's one error type: [`Error`], its [`ErrorKind`] and the [`Phase`] it happened in.

use std::fmt;
use std::time::Duration;

/// A boxed, thread-safe error: what the services and bodies of this crate return, like tower's
/// own `BoxError`. Use [`Error::find`] to get this crate's [`Error`] back out of it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The phase of an HTTP exchange that an [`Error`] happened in.
///
/// Every timeout of this crate names one, so a caller can tell a dead host ([`Phase::Connect`])
/// from a slow server ([`Phase::ResponseHeaders`]) from a stalled download ([`Phase::BodyIdle`]).
///
/// # Example
///
/// ```
/// use tower_hardened::Phase;
///
/// assert_eq!(Phase::ResponseHeaders.to_string(), "response headers");
/// assert_eq!(Phase::ALL.len(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Phase {
    /// Name resolution plus TCP connect.
    Connect,
    /// The TLS handshake, after TCP connected.
    TlsHandshake,
    /// Waiting for a concurrency permit or a pooled connection.
    Acquire,
    /// Writing the request body: the peer stopped taking it.
    RequestWrite,
    /// Waiting for the response headers.
    ResponseHeaders,
    /// Waiting for the next frame of the response body.
    BodyIdle,
    /// The whole exchange, from the request entering to the end of the response body.
    Total,
}

impl Phase {
    /// Every phase, in the order an exchange goes through them (`Total` last). A slice, not an
    /// array: a new phase is not a breaking change.
    pub const ALL: &'static [Phase] = &[
        Phase::Connect,
        Phase::TlsHandshake,
        Phase::Acquire,
        Phase::RequestWrite,
        Phase::ResponseHeaders,
        Phase::BodyIdle,
        Phase::Total,
    ];

    /// A short lower-case name, stable for logs and metrics (`"response_headers"`).
    ///
    /// ```
    /// assert_eq!(tower_hardened::Phase::TlsHandshake.as_str(), "tls_handshake");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::TlsHandshake => "tls_handshake",
            Phase::Acquire => "acquire",
            Phase::RequestWrite => "request_write",
            Phase::ResponseHeaders => "response_headers",
            Phase::BodyIdle => "body_idle",
            Phase::Total => "total",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Acquire => "acquire",
            Phase::RequestWrite => "request write",
            Phase::ResponseHeaders => "response headers",
            Phase::BodyIdle => "body idle",
            Phase::Total => "total",
        })
    }
}

/// What went wrong, independent of the [`Phase`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{Error, ErrorKind, Phase};
///
/// let err = Error::timeout(Phase::Connect, Duration::from_secs(5));
/// assert_eq!(err.kind(), ErrorKind::Timeout);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A phase did not finish within its limit (or within the request's deadline).
    Timeout,
    /// A bounded queue was full: the request was refused at once instead of waiting.
    Overloaded,
    /// A response body was larger than the configured byte limit.
    BodyTooLarge,
    /// The peer closed (or reset) a reused connection after the request was written and before
    /// any byte of the response, and the request was not sent again: it was not idempotent, its
    /// body could not be replayed, or it had been replayed once already (see
    /// [`ReplayLayer`](crate::ReplayLayer)).
    ConnectionClosed,
}

/// Why a request whose connection was closed before the response was not sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotRetried {
    /// Its method is not idempotent (and it carries no `Idempotency-Key`).
    Method(http::Method),
    /// PUT or DELETE, which are replayed only when allowed.
    OptIn(http::Method),
    /// Its body is not empty and has no exact size of at most the replay cap.
    BodySize(u64),
    /// Its body was not kept whole (it was still being sent, or it failed).
    BodyNotKept,
    /// It had been replayed once already, and the replay failed the same way.
    Replayed,
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRetried::Method(m) => write!(
                f,
                "not retried because {m} is not idempotent (an Idempotency-Key header marks it safe to retry)"
            ),
            NotRetried::OptIn(m) => write!(
                f,
                "not retried because {m} is replayed only when allowed (ReplayLayer::replay_put_delete)"
            ),
            NotRetried::BodySize(cap) => write!(
                f,
                "not retried because its body could not be replayed (not empty, and no exact size of at most {cap} bytes)"
            ),
            NotRetried::BodyNotKept => f.write_str(
                "not retried because its body could not be replayed (it was not sent whole before the failure)",
            ),
            NotRetried::Replayed => f.write_str("not retried again: it was already replayed once"),
        }
    }
}

/// The details of an [`ErrorKind::ConnectionClosed`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Closed {
    idle: Option<Duration>,
    why: NotRetried,
}

impl ErrorKind {
    /// A short lower-case name, stable for logs and metrics (`"body_too_large"`).
    ///
    /// ```
    /// assert_eq!(tower_hardened::ErrorKind::Overloaded.as_str(), "overloaded");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::ConnectionClosed => "connection_closed",
        }
    }
}

/// The error of every layer in this crate.
///
/// It names its [`ErrorKind`], the [`Phase`] it happened in and the limit that was crossed, and
/// keeps the inner cause (if any) as [`source()`](std::error::Error::source). Layers return it
/// boxed ([`BoxError`]), and clients such as hyper-util's legacy client wrap it further: use
/// [`Error::find`] to get it back from any error.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::{Error, Phase};
///
/// let err = Error::timeout(Phase::ResponseHeaders, Duration::from_secs(5));
/// assert_eq!(err.to_string(), "no response headers within 5s");
/// assert!(err.is_timeout());
///
/// // Wrapped in an io::Error, as a connector would do, and boxed again: still found.
/// let wrapped: Box<dyn std::error::Error + Send + Sync> =
///     Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, err));
/// let found = Error::find(&*wrapped).unwrap();
/// assert_eq!(found.phase(), Some(Phase::ResponseHeaders));
/// ```
pub struct Error {
    kind: ErrorKind,
    phase: Option<Phase>,
    limit: Option<Duration>,
    amount: Option<u64>,
    closed: Option<Box<Closed>>,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: ErrorKind, phase: Option<Phase>) -> Self {
        Error {
            kind,
            phase,
            limit: None,
            amount: None,
            closed: None,
            source: None,
        }
    }

    /// A reused connection, idle for `idle` before the request, closed by the peer before any
    /// byte of the response; the request was not sent again for `why`.
    pub(crate) fn connection_closed(idle: Option<Duration>, why: NotRetried) -> Self {
        Error {
            closed: Some(Box::new(Closed { idle, why })),
            ..Error::new(ErrorKind::ConnectionClosed, None)
        }
    }

    /// A timeout in `phase` after `limit`.
    ///
    /// Layers create these; it is public so that custom layers and tests can produce the same
    /// error.
    pub fn timeout(phase: Phase, limit: Duration) -> Self {
        Error {
            limit: Some(limit),
            ..Error::new(ErrorKind::Timeout, Some(phase))
        }
    }

    /// A full waiting queue: `waiting` requests were already queued in `phase` (usually
    /// [`Phase::Acquire`]; zero when the limit allows no queue at all).
    ///
    /// ```
    /// use tower_hardened::{Error, ErrorKind, Phase};
    ///
    /// let err = Error::overloaded(Phase::Acquire, 64);
    /// assert_eq!(err.kind(), ErrorKind::Overloaded);
    /// assert_eq!(err.to_string(), "overloaded: the queue for a permit is full (64 waiting)");
    /// ```
    pub fn overloaded(phase: Phase, waiting: usize) -> Self {
        Error {
            amount: Some(waiting as u64),
            ..Error::new(ErrorKind::Overloaded, Some(phase))
        }
    }

    /// A response body longer than `limit` bytes.
    ///
    /// ```
    /// let err = tower_hardened::Error::body_too_large(1024);
    /// assert_eq!(err.to_string(), "response body longer than 1024 bytes");
    /// ```
    pub fn body_too_large(limit: u64) -> Self {
        Error {
            amount: Some(limit),
            ..Error::new(ErrorKind::BodyTooLarge, None)
        }
    }

    /// Keeps `source` as the inner cause of this error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The phase it went wrong in, if it belongs to one.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Whether this is a timeout (of any phase, the total deadline included).
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether this is a refusal because a bounded queue was full.
    pub fn is_overloaded(&self) -> bool {
        self.kind == ErrorKind::Overloaded
    }

    /// The time limit that was crossed, for timeouts.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Finds this crate's [`Error`] in `err` or anywhere in its `source()` chain.
    ///
    /// Errors wrapped in [`std::io::Error`] are found too (an `io::Error`'s `source()` skips the
    /// error it wraps, so this looks inside with `get_ref`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_hardened::{BoxError, Error, Phase};
    ///
    /// let err: BoxError = Error::timeout(Phase::Total, Duration::from_secs(1)).into();
    /// assert_eq!(Error::find(&*err).and_then(Error::phase), Some(Phase::Total));
    ///
    /// let other: BoxError = "something else".into();
    /// assert!(Error::find(&*other).is_none());
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
        // Bounded, in case of a cyclic chain.
        for _ in 0..64 {
            let cur = next?;
            if let Some(found) = cur.downcast_ref::<Error>() {
                return Some(found);
            }
            if let Some(io) = cur.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref() {
                    let inner: &(dyn std::error::Error + 'static) = inner;
                    if let Some(found) = Error::find(inner) {
                        return Some(found);
                    }
                }
            }
            next = cur.source();
        }
        None
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(phase) = self.phase {
            d.field("phase", &phase);
        }
        if let Some(limit) = self.limit {
            d.field("limit", &limit);
        }
        if let Some(amount) = self.amount {
            d.field("amount", &amount);
        }
        if let Some(closed) = &self.closed {
            d.field("idle", &closed.idle);
            d.field("not_retried", &closed.why);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Timeout => {
                let limit = self.limit.unwrap_or_default();
                match self.phase.unwrap_or(Phase::Total) {
                    Phase::Connect => write!(f, "connect (DNS + TCP) not done within {limit:?}"),
                    Phase::TlsHandshake => write!(f, "TLS handshake not done within {limit:?}"),
                    Phase::Acquire => write!(f, "no permit or connection within {limit:?}"),
                    Phase::RequestWrite => {
                        write!(f, "request body not taken by the peer for {limit:?}")
                    }
                    Phase::ResponseHeaders => write!(f, "no response headers within {limit:?}"),
                    Phase::BodyIdle => write!(f, "no response body data for {limit:?}"),
                    Phase::Total => write!(f, "request deadline of {limit:?} exceeded"),
                }
            }
            ErrorKind::Overloaded => write!(
                f,
                "overloaded: the queue for a permit is full ({} waiting)",
                self.amount.unwrap_or_default()
            ),
            ErrorKind::BodyTooLarge => write!(
                f,
                "response body longer than {} bytes",
                self.amount.unwrap_or_default()
            ),
            ErrorKind::ConnectionClosed => {
                f.write_str("connection closed by the peer before the response")?;
                let Some(closed) = &self.closed else {
                    return Ok(());
                };
                if let Some(idle) = closed.idle {
                    write!(f, " (a reused connection, idle for {idle:?})")?;
                }
                write!(f, "; {}", closed.why)
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_phase_and_limit() {
        let cases = [
            (Phase::Connect, "connect (DNS + TCP) not done within 5s"),
            (Phase::TlsHandshake, "TLS handshake not done within 5s"),
            (Phase::Acquire, "no permit or connection within 5s"),
            (
                Phase::RequestWrite,
                "request body not taken by the peer for 5s",
            ),
            (Phase::ResponseHeaders, "no response headers within 5s"),
            (Phase::BodyIdle, "no response body data for 5s"),
            (Phase::Total, "request deadline of 5s exceeded"),
        ];
        for (phase, text) in cases {
            let err = Error::timeout(phase, Duration::from_secs(5));
            assert_eq!(err.to_string(), text);
            assert_eq!(err.phase(), Some(phase));
            assert!(err.is_timeout());
            assert!(!err.is_overloaded());
        }
        let ms = Error::timeout(Phase::Total, Duration::from_millis(250));
        assert_eq!(ms.to_string(), "request deadline of 250ms exceeded");
    }

    #[test]
    fn source_is_kept_and_found_through_chains() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::timeout(Phase::Connect, Duration::from_secs(1)).with_source(inner);
        let src = std::error::Error::source(&err).expect("source kept");
        assert_eq!(src.to_string(), "refused");

        #[derive(Debug)]
        struct Wrapper(BoxError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapper")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let wrapped = Wrapper(Box::new(Wrapper(Box::new(err))));
        let found = Error::find(&wrapped).expect("found two levels down");
        assert_eq!(found.phase(), Some(Phase::Connect));
        assert_eq!(found.kind(), ErrorKind::Timeout);

        let io = std::io::Error::other(Error::overloaded(Phase::Acquire, 3));
        let found = Error::find(&io).expect("found inside io::Error");
        assert_eq!(found.kind(), ErrorKind::Overloaded);
        assert!(Error::find(&std::io::Error::other("plain")).is_none());
    }

    #[test]
    fn connection_closed_says_what_happened_and_why_it_was_not_retried() {
        let idle = Some(Duration::from_millis(1500));
        let cases = [
            (
                NotRetried::Method(http::Method::POST),
                "connection closed by the peer before the response (a reused connection, idle for 1.5s); \
                 not retried because POST is not idempotent (an Idempotency-Key header marks it safe to retry)",
            ),
            (
                NotRetried::OptIn(http::Method::PUT),
                "connection closed by the peer before the response (a reused connection, idle for 1.5s); \
                 not retried because PUT is replayed only when allowed (ReplayLayer::replay_put_delete)",
            ),
            (
                NotRetried::BodySize(65536),
                "connection closed by the peer before the response (a reused connection, idle for 1.5s); \
                 not retried because its body could not be replayed (not empty, and no exact size of at most 65536 bytes)",
            ),
            (
                NotRetried::BodyNotKept,
                "connection closed by the peer before the response (a reused connection, idle for 1.5s); \
                 not retried because its body could not be replayed (it was not sent whole before the failure)",
            ),
            (
                NotRetried::Replayed,
                "connection closed by the peer before the response (a reused connection, idle for 1.5s); \
                 not retried again: it was already replayed once",
            ),
        ];
        for (why, text) in cases {
            let err = Error::connection_closed(idle, why);
            assert_eq!(err.to_string(), text);
            assert_eq!(err.kind(), ErrorKind::ConnectionClosed);
            assert_eq!(err.phase(), None);
            assert!(!err.is_timeout());
        }
        let err = Error::connection_closed(None, NotRetried::Replayed);
        assert_eq!(
            err.to_string(),
            "connection closed by the peer before the response; not retried again: it was already replayed once"
        );
    }

    #[test]
    fn phase_names_are_distinct() {
        let mut names: Vec<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Phase::ALL.len());
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
    }
}
