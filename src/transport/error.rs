use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::replay::lost::LostConnection;

/// A request failed on its connection before any byte of the response arrived: the peer closed
/// or reset the connection, or the exchange failed in hyper.
///
/// It says what a retry or replay decision needs: whether the connection was
/// [reused](Self::is_reused) (and for [how long it had been idle](Self::idle_for)), whether
/// [nothing of the request was written](Self::nothing_written) (then the transport already
/// retried it once on another connection: [`retried`](Self::retried)). Its `source()` chain
/// ends in hyper's error. The transport returns it boxed; find it with
/// [`ConnectionError::find`].
///
/// A request written on a reused HTTP/1 connection that the peer closed or reset before any
/// byte of the response also says so to a [`ReplayLayer`](crate::ReplayLayer) above, which
/// may send it once more (on a new connection).
///
/// # Example
///
/// ```no_run
/// use tower::ServiceExt;
/// use tower_hardened::{ConnectionError, Transport};
///
/// # #[tokio::main] async fn main() {
/// let transport = Transport::builder().build::<http_body_util::Empty<bytes::Bytes>>();
/// let req = http::Request::get("http://127.0.0.1:8080/").body(Default::default()).unwrap();
/// if let Err(err) = transport.oneshot(req).await {
///     if let Some(conn) = ConnectionError::find(&*err) {
///         println!("reused: {}, idle for {:?}", conn.is_reused(), conn.idle_for());
///     }
/// }
/// # }
/// ```
pub struct ConnectionError {
    reused: bool,
    idle_for: Option<Duration>,
    nothing_written: bool,
    retried: bool,
    source: Arc<hyper::Error>,
    /// Lost with its reused connection before any response byte: a replay may send it again.
    lost: Option<LostConnection>,
}

impl ConnectionError {
    pub(crate) fn new(
        reused: bool,
        idle_for: Option<Duration>,
        nothing_written: bool,
        retried: bool,
        source: hyper::Error,
    ) -> Self {
        ConnectionError {
            reused,
            idle_for,
            nothing_written,
            retried,
            source: Arc::new(source),
            lost: None,
        }
    }

    /// Marks it as lost with its reused connection, idle for `idle` before the request: its
    /// `source()` chain then passes through the replay layer's `LostConnection`.
    pub(crate) fn lost(mut self, idle: Duration) -> Self {
        let source: Arc<dyn std::error::Error + Send + Sync> = self.source.clone();
        self.lost = Some(LostConnection {
            idle,
            source: Some(source),
        });
        self
    }

    /// Whether the connection came from the pool rather than being dialed for this request: it
    /// had carried earlier requests, or was shared, or sat idle (a dial whose request was
    /// served by another connection first). A peer closing it while idle is the usual cause.
    /// (`StatsSnapshot::connections_reused` counts only checkouts of connections that had
    /// served before.)
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// How long the connection had been idle before this request took it (zero when it was
    /// handed straight over or shared; `None` for a connection made for this request).
    pub fn idle_for(&self) -> Option<Duration> {
        self.idle_for
    }

    /// Whether it is certain that nothing of the request reached the connection (hyper gave the
    /// request back unsent). When `false`, some or all of it may have been written.
    pub fn nothing_written(&self) -> bool {
        self.nothing_written
    }

    /// Whether the request had already been retried once on another connection (it was not
    /// written on the first).
    pub fn retried(&self) -> bool {
        self.retried
    }

    /// Whether the peer closed or reset the connection (as opposed to, say, a malformed
    /// response).
    pub fn is_closed_by_peer(&self) -> bool {
        let e = &*self.source;
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            return true;
        }
        let mut next = std::error::Error::source(e);
        while let Some(cur) = next {
            if let Some(io) = cur.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                return matches!(
                    io.kind(),
                    ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
                );
            }
            next = cur.source();
        }
        false
    }

    /// Finds a [`ConnectionError`] in `err` or its `source()` chain.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectionError> {
        let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
        for _ in 0..64 {
            let cur = next?;
            if let Some(found) = cur.downcast_ref::<ConnectionError>() {
                return Some(found);
            }
            next = cur.source();
        }
        None
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reused, self.is_closed_by_peer()) {
            (true, true) => {
                f.write_str("reused connection, closed by the peer before the response")?
            }
            (true, false) => {
                f.write_str("request failed on a reused connection before the response")?
            }
            (false, true) => {
                f.write_str("new connection, closed by the peer before the response")?
            }
            (false, false) => {
                f.write_str("request failed on a new connection before the response")?
            }
        }
        if self.retried {
            f.write_str(" (retried once already: nothing was written on the first connection)")?;
        } else if self.nothing_written {
            f.write_str(" (nothing of the request was written)")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl fmt::Debug for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionError")
            .field("reused", &self.reused)
            .field("idle_for", &self.idle_for)
            .field("nothing_written", &self.nothing_written)
            .field("retried", &self.retried)
            .field("lost", &self.lost.as_ref().map(|l| l.idle))
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.lost {
            Some(lost) => Some(lost),
            None => Some(&*self.source),
        }
    }
}
