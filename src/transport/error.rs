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
/// ends in hyper's error, or, for a request the connection ended under before hyper took it
/// from its queue, in the transport's own. The transport returns it boxed; find it with
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
    /// hyper's error, or [`EndedUnsent`].
    source: Arc<dyn std::error::Error + Send + Sync>,
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

    /// The HTTP/1 connection ended while the request still waited in hyper's queue for it:
    /// never written, and hyper will neither answer nor hand it back (see [`EndedUnsent`]).
    pub(crate) fn ended_unsent(reused: bool, idle_for: Option<Duration>, retried: bool) -> Self {
        ConnectionError {
            reused,
            idle_for,
            nothing_written: true,
            retried,
            source: Arc::new(EndedUnsent),
            lost: None,
        }
    }

    /// Marks it as lost with its reused connection, idle for `idle` before the request: its
    /// `source()` chain then passes through the replay layer's `LostConnection`.
    pub(crate) fn lost(mut self, idle: Duration) -> Self {
        self.lost = Some(LostConnection {
            idle,
            source: Some(self.source.clone()),
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
    /// request back unsent, or the connection ended while the request waited in hyper's queue).
    /// When `false`, some or all of it may have been written.
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
        let Some(e) = self.source.downcast_ref::<hyper::Error>() else {
            // `EndedUnsent`: the connection ended (its peer closed it, or it failed) under the
            // request.
            return true;
        };
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

/// The end of a [`ConnectionError`]'s chain when the HTTP/1 connection ended while the request
/// waited in hyper's queue for it. hyper queues a request in a tokio channel; one queued just
/// after the connection's task dropped and drained that channel stays in it, never written and
/// never failed (tokio-rs/tokio#7714), and its caller would wait for a response until a timeout.
/// The transport sees its connection's task end and fails the request with this instead.
#[derive(Debug)]
pub(crate) struct EndedUnsent;

impl fmt::Display for EndedUnsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection ended while the request waited in hyper's queue for it")
    }
}

impl std::error::Error for EndedUnsent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_its_connection_ended_under_is_unsent_closed_and_lost_for_a_replay() {
        let idle = Duration::from_millis(148);
        let err = ConnectionError::ended_unsent(true, Some(idle), false).lost(idle);
        assert!(err.nothing_written() && err.is_closed_by_peer() && err.is_reused());
        assert_eq!(
            err.to_string(),
            "reused connection, closed by the peer before the response (nothing of the request \
             was written): the connection ended while the request waited in hyper's queue for it"
        );
        let boxed: crate::BoxError = err.into();
        let lost = crate::replay::lost::lost(&*boxed, tokio::time::Instant::now())
            .expect("a replay sends it again");
        assert_eq!(lost.idle, Some(idle));
        // The chain ends in the transport's own statement.
        let mut last: &(dyn std::error::Error + 'static) = &*boxed;
        while let Some(next) = last.source() {
            last = next;
        }
        assert!(last.is::<EndedUnsent>());
        // On a new connection it is not the replay's to send again.
        let fresh: crate::BoxError = ConnectionError::ended_unsent(false, None, false).into();
        assert!(crate::replay::lost::lost(&*fresh, tokio::time::Instant::now()).is_none());
    }
}
