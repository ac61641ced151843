use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::hosts::Slot;
use super::ConnectionInfo;
use crate::clock::{self, LazySleep};
use crate::io_watch::{hint_margin, stall_check};
use crate::stats::{CloseReason, Stats};

pin_project! {
    /// A connection made by [`PoolConnector`](super::PoolConnector): the inner IO plus its hold
    /// on the per-host cap, its [`ConnectionInfo`] tag and its lifetime timer.
    ///
    /// It forwards [`hyper::rt::Read`], [`hyper::rt::Write`] (vectored writes included) and
    /// hyper-util's [`Connection::connected`] (ALPN, proxy and other extras stay intact; the
    /// [`ConnectionInfo`] is added to them). The cap permit is given back exactly when this
    /// value is dropped, that is when hyper-util's connection task ends.
    pub struct PoolIo<T> {
        #[pin]
        inner: T,
        info: ConnectionInfo,
        // The end of its lifetime (until it passed), and its timer: boxed, so that the IO stays
        // `Unpin` as hyper-util requires; one allocation per connection, only when a lifetime
        // is set.
        retire_at: Option<Instant>,
        retire: LazySleep,
        slot: Option<Slot>,
        stats: Option<Stats>,
        idle_timeout: Option<Duration>,
        last_io: Instant,
        failed: bool,
        // Writes without progress since this instant, and the limit on that.
        write_stall: Option<Duration>,
        stalled_since: Option<Instant>,
        stall_timer: LazySleep,
        // Retires the connection once idle for nearly the server's `Keep-Alive: timeout`.
        hint_timer: LazySleep,
        // The responses seen when the current exchange began (its first write).
        exchange_mark: Option<u64>,
        wrote: bool,
        // The waker last given to the connection's tag for a retirement while unused.
        read_waker: Option<std::task::Waker>,
    }

    impl<T> PinnedDrop for PoolIo<T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let reason = if this.info.retired_for_idleness() {
                CloseReason::Idle
            } else if this.info.is_retired() {
                CloseReason::Lifetime
            } else if *this.failed {
                CloseReason::Error
            } else if this.idle_timeout.is_some_and(|t| this.last_io.elapsed() >= t) {
                CloseReason::Idle
            } else {
                CloseReason::Other
            };
            this.info.release();
            #[cfg(feature = "metrics")]
            this.info.track_close();
            if let Some(stats) = this.stats.as_ref() {
                stats.connection_closed(reason);
            }
            tracing::debug!(
                connection = this.info.id(),
                host = this.slot.as_ref().map(|s| s.key().1.as_str()),
                age = ?this.info.age(),
                ?reason,
                "pooled connection closed"
            );
            drop(this.slot.take());
        }
    }
}

impl<T> std::fmt::Debug for PoolIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolIo")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<T> PoolIo<T> {
    pub(crate) fn new(
        inner: T,
        info: ConnectionInfo,
        slot: Option<Slot>,
        stats: Option<Stats>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        if let Some(stats) = &stats {
            stats.connection_opened();
        }
        #[cfg(feature = "metrics")]
        info.track_open();
        tracing::debug!(
            connection = info.id(),
            host = slot.as_ref().map(|s| s.key().1.as_str()),
            "pooled connection opened"
        );
        PoolIo {
            inner,
            retire_at: info.retire_at(),
            retire: LazySleep::default(),
            info,
            slot,
            stats,
            idle_timeout,
            last_io: Instant::now(),
            failed: false,
            write_stall: None,
            stalled_since: None,
            stall_timer: LazySleep::default(),
            hint_timer: LazySleep::default(),
            exchange_mark: None,
            wrote: false,
            read_waker: None,
        }
    }

    pub(crate) fn write_stall(mut self, limit: Option<Duration>) -> Self {
        self.write_stall = limit;
        self
    }

    /// This connection's tag.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The inner IO.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The inner IO, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Notes IO activity (here and in the connection's tag) and failures for the close reason.
fn seen<R>(
    res: &Poll<io::Result<R>>,
    last_io: &mut Instant,
    failed: &mut bool,
    info: &ConnectionInfo,
    read: bool,
) {
    match res {
        Poll::Ready(Ok(_)) => {
            *last_io = Instant::now();
            info.note_io(*last_io, read);
        }
        Poll::Ready(Err(_)) => *failed = true,
        Poll::Pending => {}
    }
}

/// Before a write: a write after a new response (or the first one) begins an exchange.
fn begin_write(
    info: &ConnectionInfo,
    mark: &mut Option<u64>,
    wrote: &mut bool,
    last_io: Instant,
    first: &[u8],
) {
    if !*wrote {
        *wrote = true;
        info.clear_read_waker();
        if first.starts_with(b"PRI * HTTP/2") {
            info.set_http2();
        }
    }
    let responses = info.requests();
    if *mark != Some(responses) {
        *mark = Some(responses);
        info.begin_exchange(responses, last_io.elapsed());
    }
}

impl<T: Read> Read for PoolIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        // hyper keeps a read pending on every pooled connection, idle ones included, so the
        // lifetime timer registered here wakes the connection's task when it is due.
        if let Some(at) = *this.retire_at {
            if this.retire.poll_until(at, cx).is_ready() {
                *this.retire_at = None;
                this.info.expire();
            }
        }
        // The server's keep-alive hint runs while the connection is idle: from its last IO,
        // and not while a request waits for its response.
        if let Some(hint) = this.info.keep_alive_hint() {
            if !this.info.is_retired() && !this.info.awaiting_response() {
                let due = clock::add(*this.last_io, hint.saturating_sub(hint_margin(hint)));
                if this.hint_timer.poll_until(due, cx).is_ready() {
                    this.info.retire_idle();
                }
            }
        }
        // Retired before it carried a request (no poison pill to reach): ends as the server's
        // close would, an end of stream while idle.
        if this.info.close_requested() {
            return Poll::Ready(Ok(()));
        }
        let res = this.inner.poll_read(cx, buf);
        seen(&res, this.last_io, this.failed, this.info, true);
        if res.is_pending() && !*this.wrote {
            // Until its first request, the connection can be retired unused, from another task.
            if !this
                .read_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                this.info.set_read_waker(cx.waker());
                *this.read_waker = Some(cx.waker().clone());
            }
            // Retired between the check above and the registration: end now.
            if this.info.close_requested() {
                return Poll::Ready(Ok(()));
            }
        }
        res
    }
}

impl<T: Write> Write for PoolIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        begin_write(
            this.info,
            this.exchange_mark,
            this.wrote,
            *this.last_io,
            buf,
        );
        let res = this.inner.poll_write(cx, buf);
        let res = stall_check(
            res,
            |n| *n > 0,
            *this.write_stall,
            this.stalled_since,
            this.stall_timer,
            cx,
        );
        seen(&res, this.last_io, this.failed, this.info, false);
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Not activity: hyper also flushes when it closes an idle connection.
        let this = self.project();
        let res = this.inner.poll_flush(cx);
        let res = stall_check(
            res,
            |_| true,
            *this.write_stall,
            this.stalled_since,
            this.stall_timer,
            cx,
        );
        if let Poll::Ready(Err(_)) = res {
            *this.failed = true;
        }
        res
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let res = this.inner.poll_shutdown(cx);
        stall_check(
            res,
            |_| true,
            *this.write_stall,
            this.stalled_since,
            this.stall_timer,
            cx,
        )
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        begin_write(
            this.info,
            this.exchange_mark,
            this.wrote,
            *this.last_io,
            first,
        );
        let res = this.inner.poll_write_vectored(cx, bufs);
        let res = stall_check(
            res,
            |n| *n > 0,
            *this.write_stall,
            this.stalled_since,
            this.stall_timer,
            cx,
        );
        seen(&res, this.last_io, this.failed, this.info, false);
        res
    }
}

impl<T: Connection> Connection for PoolIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.info.clone())
    }
}
