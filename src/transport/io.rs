//! The IO of every transport connection: the connector's IO, with a write-stall timeout and a
//! count of reads that the request path reads to tell a request lost with its connection from
//! one that got an answer.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::time::Instant;

use crate::clock::LazySleep;
use crate::io_watch::{hint_margin, stall_check};

/// What a connection's IO and the requests on it share.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Reads that succeeded (an end of stream included): a request that sees this count move
    /// by at most the end of stream got no byte of its response.
    reads: AtomicU64,
    /// How long the connection may idle, in ms, from the server's last `Keep-Alive: timeout`
    /// hint less the margin; `u64::MAX` for none.
    idle_limit_ms: AtomicU64,
}

impl Wire {
    pub(crate) fn new() -> Arc<Wire> {
        Arc::new(Wire {
            reads: AtomicU64::new(0),
            idle_limit_ms: AtomicU64::new(u64::MAX),
        })
    }

    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }

    /// A response's `Keep-Alive: timeout=N`, if it had one: the connection may idle `N` less
    /// [`hint_margin`] from now on (the last response that had one counts, as on the legacy
    /// path).
    pub(crate) fn keep_alive_hint(&self, hint: Option<Duration>) {
        let Some(h) = hint else {
            return;
        };
        let ms =
            u64::try_from(h.saturating_sub(hint_margin(h)).as_millis()).unwrap_or(u64::MAX - 1);
        self.idle_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection may idle, by the server's hint.
    pub(crate) fn idle_limit(&self) -> Option<Duration> {
        match self.idle_limit_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

/// The connector's IO `T` as the transport drives it: a write, flush or shutdown pending
/// longer than the write-stall limit without progress fails the connection with an
/// `io::Error` wrapping [`Error::timeout`](crate::Error::timeout)`(RequestWrite, limit)`
/// (one lazy timer per connection); successful reads are counted in its [`Wire`].
pub(crate) struct TransportIo<T> {
    inner: T,
    wire: Arc<Wire>,
    write_stall: Option<Duration>,
    stalled_since: Option<Instant>,
    stall_timer: LazySleep,
}

impl<T> TransportIo<T> {
    pub(crate) fn new(inner: T, wire: Arc<Wire>, write_stall: Option<Duration>) -> Self {
        TransportIo {
            inner,
            wire,
            write_stall,
            stalled_since: None,
            stall_timer: LazySleep::default(),
        }
    }
}

impl<T> fmt::Debug for TransportIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportIo")
            .field("write_stall", &self.write_stall)
            .field("reads", &self.wire.reads())
            .finish_non_exhaustive()
    }
}

impl<T: Read + Unpin> Read for TransportIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            self.wire.reads.fetch_add(1, Ordering::AcqRel);
        }
        res
    }
}

impl<T: Write + Unpin> TransportIo<T> {
    fn check<R>(
        &mut self,
        res: Poll<io::Result<R>>,
        progressed: impl FnOnce(&R) -> bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        stall_check(
            res,
            progressed,
            self.write_stall,
            &mut self.stalled_since,
            &mut self.stall_timer,
            cx,
        )
    }
}

impl<T: Write + Unpin> Write for TransportIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(res, |n| *n > 0, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(res, |_| true, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(res, |_| true, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(res, |n| *n > 0, cx)
    }
}

impl<T: Connection> Connection for TransportIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::error::{Error, Phase};

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_exactly_at_the_limit() {
        // A pipe of 16 bytes whose other end never reads.
        let (ours, _theirs) = tokio::io::duplex(16);
        let limit = Duration::from_secs(3);
        let mut io = TransportIo::new(TokioIo::new(ours), Wire::new(), Some(limit));
        let n = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &[0; 64])).await;
        assert_eq!(n.unwrap(), 16, "the pipe takes what fits");
        let start = Instant::now();
        let err = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &[0; 64]))
            .await
            .unwrap_err();
        assert_eq!(
            start.elapsed(),
            limit,
            "exactly the limit, not a timer per write"
        );
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let ours = Error::find(&err).expect("our error inside");
        assert_eq!(ours.phase(), Some(Phase::RequestWrite));
        assert!(io.stall_timer.is_armed());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_never_fail_and_never_arm_a_timer() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut io = TransportIo::new(
            TokioIo::new(ours),
            Wire::new(),
            Some(Duration::from_secs(1)),
        );
        for _ in 0..10 {
            let n = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"hello")).await;
            assert_eq!(n.unwrap(), 5);
            tokio::time::advance(Duration::from_secs(5)).await;
        }
        poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
            .await
            .unwrap();
        assert!(!io.stall_timer.is_armed());
        // Reads are counted, the end of the stream too.
        use tokio::io::AsyncWriteExt;
        theirs.write_all(b"x").await.unwrap();
        drop(theirs);
        let mut buf = [0u8; 8];
        let mut rb = hyper::rt::ReadBuf::new(&mut buf);
        poll_fn(|cx| Pin::new(&mut io).poll_read(cx, rb.unfilled()))
            .await
            .unwrap();
        let mut rb = hyper::rt::ReadBuf::new(&mut buf);
        poll_fn(|cx| Pin::new(&mut io).poll_read(cx, rb.unfilled()))
            .await
            .unwrap();
        assert_eq!(io.wire.reads(), 2);
    }

    #[test]
    fn the_hint_less_its_margin_is_the_idle_limit() {
        let wire = Wire::new();
        assert_eq!(wire.idle_limit(), None);
        wire.keep_alive_hint(Some(Duration::from_secs(5)));
        assert_eq!(wire.idle_limit(), Some(Duration::from_secs(4)));
        wire.keep_alive_hint(Some(Duration::from_secs(1)));
        assert_eq!(wire.idle_limit(), Some(Duration::from_millis(500)));
        wire.keep_alive_hint(Some(Duration::ZERO));
        assert_eq!(wire.idle_limit(), Some(Duration::ZERO));
        wire.keep_alive_hint(None);
        assert_eq!(
            wire.idle_limit(),
            Some(Duration::ZERO),
            "a response without one keeps it"
        );
    }
}
