//! Private helpers that both connection paths share (the legacy pool's `PoolIo` and the
//! transport's `TransportIo`): the write-stall check of a socket and the server's `Keep-Alive:
//! timeout=N` hint.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use tokio::time::Instant;

use crate::clock::{self, LazySleep};
use crate::error::{Error, Phase};

/// The margin by which a connection is retired before the server's `Keep-Alive: timeout=N`
/// hint: 1 s (Node's agent takes 1 s off the hint; undici 1–2 s), but at most half the hint, so
/// that a short hint still allows reuse.
pub(crate) fn hint_margin(hint: Duration) -> Duration {
    (hint / 2).min(Duration::from_secs(1))
}

/// The `timeout` of an HTTP/1 response's `Keep-Alive` header (`Keep-Alive: timeout=5, max=100`),
/// in whole seconds as RFC 2068 §19.7.1.1 and MDN define it.
pub(crate) fn keep_alive_hint<B>(resp: &Response<B>) -> Option<Duration> {
    if resp.version() >= http::Version::HTTP_2 {
        return None;
    }
    // A constant name: parsing "keep-alive" for each response cost about 200 instructions.
    const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
    let value = resp.headers().get(KEEP_ALIVE)?.to_str().ok()?;
    value.split(',').find_map(|param| {
        let (name, secs) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        let secs = secs.trim().trim_matches('"');
        secs.parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// Watches a write-side poll for lack of progress: passes a result through, except that a
/// write still pending `limit` after the first pending one fails the connection with an
/// `io::Error` (`TimedOut`) wrapping [`Error::timeout`]`(`[`Phase::RequestWrite`]`, limit)`.
/// One lazily made timer per connection, moved, never one per write; a write that is ready at
/// once costs a comparison or two.
#[inline]
pub(crate) fn stall_check<R>(
    res: Poll<io::Result<R>>,
    progressed: impl FnOnce(&R) -> bool,
    limit: Option<Duration>,
    since: &mut Option<Instant>,
    timer: &mut LazySleep,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    let Some(limit) = limit else {
        return res;
    };
    match &res {
        Poll::Ready(Ok(r)) => {
            if since.is_some() && progressed(r) {
                *since = None;
            }
        }
        Poll::Ready(Err(_)) => {}
        Poll::Pending => {
            if let Some(err) = stalled(limit, since, timer, cx) {
                return Poll::Ready(Err(err));
            }
        }
    }
    res
}

/// The slow path of [`stall_check`]: a write is pending; has it been for `limit`?
#[cold]
fn stalled(
    limit: Duration,
    since: &mut Option<Instant>,
    timer: &mut LazySleep,
    cx: &mut Context<'_>,
) -> Option<io::Error> {
    let start = *since.get_or_insert_with(Instant::now);
    if timer.poll_until(clock::add(start, limit), cx).is_pending() {
        return None;
    }
    let err = Error::timeout(Phase::RequestWrite, limit);
    tracing::debug!("{err}: closing the connection");
    Some(io::Error::new(io::ErrorKind::TimedOut, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_is_read_from_http1_responses_only() {
        let resp = |v: &str, version| {
            let mut r = Response::new(());
            *r.version_mut() = version;
            r.headers_mut().insert("keep-alive", v.parse().unwrap());
            r
        };
        let h1 = http::Version::HTTP_11;
        let s = Duration::from_secs;
        assert_eq!(keep_alive_hint(&resp("timeout=5, max=100", h1)), Some(s(5)));
        assert_eq!(
            keep_alive_hint(&resp("max=100, Timeout = \"7\"", h1)),
            Some(s(7))
        );
        assert_eq!(keep_alive_hint(&resp("max=100", h1)), None);
        assert_eq!(keep_alive_hint(&resp("timeout=soon", h1)), None);
        assert_eq!(
            keep_alive_hint(&resp("timeout=5", http::Version::HTTP_2)),
            None
        );
        assert_eq!(hint_margin(s(5)), s(1));
        assert_eq!(hint_margin(s(1)), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_pending_past_the_limit_fails_and_progress_resets_the_clock() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let limit = Some(Duration::from_secs(2));
        let (mut since, mut timer) = (None, LazySleep::default());
        let mut poll = |res: Poll<io::Result<usize>>, cx: &mut Context<'_>| {
            stall_check(res, |n| *n > 0, limit, &mut since, &mut timer, cx)
        };
        assert!(poll(Poll::Pending, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(poll(Poll::Pending, &mut cx).is_pending());
        // Progress: the clock starts again at the next pending write.
        assert!(matches!(
            poll(Poll::Ready(Ok(1)), &mut cx),
            Poll::Ready(Ok(1))
        ));
        assert!(poll(Poll::Pending, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(poll(Poll::Pending, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        let Poll::Ready(Err(e)) = poll(Poll::Pending, &mut cx) else {
            panic!("the stalled write fails");
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let ours = Error::find(&e).expect("our error inside the io::Error");
        assert_eq!(ours.phase(), Some(Phase::RequestWrite));
        assert_eq!(
            ours.to_string(),
            "request body not taken by the peer for 2s"
        );
        // Off: passes everything through.
        let (mut since, mut timer) = (None, LazySleep::default());
        let off = stall_check::<usize>(
            Poll::Pending,
            |_| true,
            None,
            &mut since,
            &mut timer,
            &mut cx,
        );
        assert!(off.is_pending() && !timer.is_armed());
    }
}
