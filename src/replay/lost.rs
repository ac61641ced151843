//! The contract between [`Replay`](super::Replay) and the client under it: how a failure says
//! "written on a reused connection that the peer closed before any byte of the response", and
//! how a replay asks for a fresh connection.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A transport's own statement, anywhere in a failed request's error chain (inside an
/// `io::Error` too): the request was written (in part or whole) on a *reused* connection, and
/// the peer closed or reset that connection before any byte of the response came back; the
/// connection had been idle for `idle` before the request. Nothing else may return it: a
/// replayable request that fails with it is sent again. `source` is what the transport saw
/// (hyper's error), next in the chain.
#[derive(Debug, Clone)]
pub(crate) struct LostConnection {
    pub(crate) idle: Duration,
    pub(crate) source: Option<std::sync::Arc<dyn StdError + Send + Sync>>,
}

impl fmt::Display for LostConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reused connection (idle for {:?}) closed by the peer before the response",
            self.idle
        )
    }
}

impl StdError for LostConnection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let source: &(dyn StdError + 'static) = self.source.as_deref()?;
        Some(source)
    }
}

/// A request extension on every replay: the inner client must send it on a connection it dials
/// now, not on a pooled one (the crate's transport honours it; hyper-util's legacy client
/// cannot, so [`Lost::make_room`] first retires the pooled connections as stale as the one that
/// failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreshConnection;

/// A failure that may be replayed, found by [`lost`].
#[derive(Debug)]
pub(crate) struct Lost {
    /// How long the connection had been idle before the request, if known.
    pub(crate) idle: Option<Duration>,
    #[cfg(feature = "pool")]
    info: Option<crate::pool::ConnectionInfo>,
}

impl Lost {
    /// Before the replay: on the legacy path, retire the host's other pooled connections that
    /// have been idle at least 7/8 as long as the failed one was (a server closing idle
    /// connections closes many at once, and those nearly as idle are about to go too); returns
    /// how many. The transport dials afresh instead.
    pub(crate) fn make_room(&self) -> usize {
        #[cfg(feature = "pool")]
        if let (Some(info), Some(idle)) = (&self.info, self.idle) {
            return info.retire_stale_peers(idle - idle / 8);
        }
        0
    }
}

/// Whether `err` is a written request lost with its reused connection before any response byte:
/// a [`LostConnection`] in its chain, or hyper-util's legacy client's error as
/// [`PoolConnector`](crate::PoolConnector) and [`RetireLayer`](crate::RetireLayer) let us read it.
///
/// `entered` is when the request entered the replay layer: a connection opened before it was
/// taken from the pool (reused, or idle unused), one opened after it was dialed for it.
pub(crate) fn lost(err: &(dyn StdError + 'static), entered: tokio::time::Instant) -> Option<Lost> {
    if let Some(l) = find::<LostConnection>(err) {
        return Some(Lost {
            idle: Some(l.idle),
            #[cfg(feature = "pool")]
            info: None,
        });
    }
    #[cfg(feature = "pool")]
    if let Some(lost) = legacy(err, entered) {
        return Some(lost);
    }
    #[cfg(not(feature = "pool"))]
    let _ = entered;
    None
}

/// The first `T` in `err`'s chain, looking inside `io::Error`s as [`Error::find`](crate::Error::find) does.
pub(crate) fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    for _ in 0..64 {
        let cur = next?;
        if let Some(found) = cur.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = cur
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(found) = find::<T>(inner) {
                return Some(found);
            }
        }
        next = cur.source();
    }
    None
}

/// hyper-util's legacy client: its error names the connection (`connect_info`), whose
/// [`ConnectionInfo`](crate::ConnectionInfo) tells whether it came from the pool (it had carried
/// a response, or it was opened before the request) and whether anything was read since the
/// request's first write; hyper's error tells how the connection ended.
#[cfg(feature = "pool")]
fn legacy(err: &(dyn StdError + 'static), entered: tokio::time::Instant) -> Option<Lost> {
    use hyper_util::client::legacy::Error as LegacyError;

    let client_err = find::<LegacyError>(err)?;
    if client_err.is_connect() {
        return None;
    }
    let info = crate::pool::ConnectionInfo::of(client_err.connect_info()?)?;
    let ex = info.exchange()?;
    let pooled = ex.reused || info.opened_at() < entered;
    if !pooled || ex.http2 {
        return None;
    }
    let hyper_err = find::<hyper::Error>(err)?;
    if hyper_err.is_timeout() || hyper_err.is_parse() || hyper_err.is_user() {
        return None;
    }
    // No byte of the response: an end of stream is the one read that succeeded, or a reset
    // came before any read did. (A read of data is a success too, so a head cut short counts
    // two or more.)
    let nothing_read = if hyper_err.is_incomplete_message() {
        ex.reads <= 1
    } else if peer_reset(err) {
        ex.reads == 0
    } else {
        false
    };
    nothing_read.then(|| Lost {
        idle: Some(ex.idle),
        info: Some(info),
    })
}

/// An IO error in the chain that says the peer reset or closed the connection.
#[cfg(feature = "pool")]
fn peer_reset(err: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::*;
    find::<std::io::Error>(err).is_some_and(|io| {
        matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        )
    })
}
