//! Private time helpers shared by every timer of the crate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::deadline::RequestDeadline;
use crate::error::{Error, Phase};

/// About 30 years: what "never" means for a timer, as tokio itself does for `Duration::MAX`.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + d`, saturating at a far future instead of panicking on overflow.
pub(crate) fn add(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or_else(|| now + FAR)
}

/// Panics with a clear message when a configured duration is zero.
#[track_caller]
pub(crate) fn check_duration(what: &str, d: Duration) {
    assert!(
        !d.is_zero(),
        "tower-hardened: {what} must be greater than zero (use a large value, not zero, to mean \"no limit\")"
    );
}

/// A timer made only when it is first needed, then moved with `reset`.
///
/// A tokio `Sleep` takes the timer driver's lock when dropped, even if it was never polled, so
/// making one per request and layer costs on the fast path and contends across threads. Our
/// futures and bodies poll their inner first and only arm a timer when the inner is not ready:
/// a response or frame that is ready at once never touches the timer wheel. The box is the price
/// of laziness on the slow path, where a network wait dwarfs it.
#[derive(Debug, Default)]
pub(crate) struct LazySleep(Option<Pin<Box<Sleep>>>);

impl LazySleep {
    /// Polls a timer for `at`, making or moving it as needed.
    pub(crate) fn poll_until(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep.as_mut().poll(cx)
            }
            None => self
                .0
                .insert(Box::pin(tokio::time::sleep_until(at)))
                .as_mut()
                .poll(cx),
        }
    }

    /// Whether a timer was ever made (for tests of the fast path).
    #[cfg(test)]
    pub(crate) fn is_armed(&self) -> bool {
        self.0.is_some()
    }
}

/// When a phase timer fires: the earlier of the phase's own limit and the request's deadline,
/// and which of the two that is, so the error names the right phase.
#[allow(dead_code)] // used by the timeout layers
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) at: Instant,
    pub(crate) phase: Phase,
    pub(crate) limit: Duration,
}

#[allow(dead_code)] // used by the timeout layers
impl Bound {
    /// The bound of a phase of length `limit` starting at `start`, cut by `deadline` if earlier.
    pub(crate) fn new(
        start: Instant,
        limit: Duration,
        phase: Phase,
        deadline: Option<&RequestDeadline>,
    ) -> Bound {
        let own = Bound {
            at: add(start, limit),
            phase,
            limit,
        };
        match deadline {
            Some(d) if d.instant() < own.at => Bound {
                at: d.instant(),
                phase: Phase::Total,
                limit: d.budget(),
            },
            _ => own,
        }
    }

    pub(crate) fn error(&self) -> Error {
        Error::timeout(self.phase, self.limit)
    }
}

/// Holds back a response-header clock until the request is on its way.
///
/// [`ResponseHeaderTimeout`](crate::ResponseHeaderTimeout) puts one in the request's extensions.
/// Inner layers that know a phase the header clock must not count take a [`HeaderHold`] in their
/// `call` and release it when that phase is over: the request body is sent
/// (`RequestWriteTimeout`), the connection is obtained (`Retire`, through hyper-util's
/// `capture_connection`). The clock starts when the last hold is released; with no hold taken it
/// starts when the request entered the layer. Connect, TLS, pool waits and uploads have limits
/// of their own: counting them as well would name the wrong phase (Go's
/// `ResponseHeaderTimeout` also starts once the request is written).
#[allow(dead_code)] // used by the timeout and pool layers
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderClock(std::sync::Arc<ClockShared>);

#[derive(Debug, Default)]
struct ClockShared {
    state: std::sync::Mutex<HeaderClockState>,
    /// How many times a started clock was stopped again ([`HeaderClock::hold_again`]): read
    /// without the lock by a clock's user that already knows when it started.
    restarts: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct HeaderClockState {
    holds: usize,
    held: bool,
    started: Option<Instant>,
    waker: Option<std::task::Waker>,
}

#[allow(dead_code)] // used by the timeout and pool layers
impl HeaderClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HeaderClockState> {
        // Plain assignments only under the lock: a poisoned state is still consistent.
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Like [`hold`](Self::hold), but a clock that already started is stopped and starts from
    /// zero again when this hold is released: for a request sent once more on another
    /// connection because the first never took it (its new connection has limits of its own).
    pub(crate) fn hold_again(&self) -> HeaderHold {
        let mut st = self.lock();
        if st.started.take().is_some() {
            self.0
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        st.holds += 1;
        st.held = true;
        HeaderHold(Some(self.clone()))
    }

    /// How many times the clock was stopped again after it started.
    pub(crate) fn restarts(&self) -> u64 {
        self.0.restarts.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps the clock from starting until the hold is released or dropped.
    pub(crate) fn hold(&self) -> HeaderHold {
        let mut st = self.lock();
        st.holds += 1;
        st.held = true;
        HeaderHold(Some(self.clone()))
    }

    /// When the clock started: `entered` if no hold was ever taken, the release of the last hold
    /// otherwise; `None` while held (and `cx` is woken when it starts).
    pub(crate) fn poll_started(&self, entered: Instant, cx: &mut Context<'_>) -> Option<Instant> {
        let mut st = self.lock();
        if !st.held {
            return Some(entered);
        }
        if st.started.is_none() && !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        st.started
    }
}

/// One reason not to start a [`HeaderClock`] yet; released by [`HeaderHold::release`] or drop.
#[derive(Debug)]
pub(crate) struct HeaderHold(Option<HeaderClock>);

#[allow(dead_code)] // used by the timeout and pool layers
impl HeaderHold {
    /// This phase is over (idempotent).
    pub(crate) fn release(&mut self) {
        let Some(clock) = self.0.take() else { return };
        let mut st = clock.lock();
        st.holds -= 1;
        if st.holds == 0 {
            st.started = Some(Instant::now());
            if let Some(w) = st.waker.take() {
                drop(st);
                w.wake();
            }
        }
    }
}

impl Drop for HeaderHold {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates() {
        let now = Instant::now();
        assert!(add(now, Duration::MAX) > add(now, Duration::from_secs(86_400 * 365)));
    }

    #[test]
    #[should_panic(expected = "timeout must be greater than zero")]
    fn zero_is_rejected() {
        check_duration("timeout", Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn lazy_sleep_arms_on_first_poll_and_moves() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut s = LazySleep::default();
        assert!(!s.is_armed());
        let at = Instant::now() + Duration::from_millis(10);
        assert!(s.poll_until(at, &mut cx).is_pending());
        assert!(s.is_armed());
        tokio::time::advance(Duration::from_millis(10)).await;
        // Moved later before it was seen to fire: pending again, then fires at the new instant.
        let later = at + Duration::from_millis(5);
        assert!(s.poll_until(later, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(4)).await;
        assert!(s.poll_until(later, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(s.poll_until(later, &mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_held_again_restarts_when_released() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let clock = HeaderClock::default();
        let entered = Instant::now();
        let mut first = clock.hold();
        tokio::time::advance(Duration::from_secs(1)).await;
        first.release();
        let started = clock.poll_started(entered, &mut cx).unwrap();
        assert_eq!(started, entered + Duration::from_secs(1));
        assert_eq!(clock.restarts(), 0);
        let mut again = clock.hold_again();
        assert_eq!(clock.restarts(), 1);
        assert_eq!(clock.poll_started(entered, &mut cx), None, "stopped again");
        tokio::time::advance(Duration::from_secs(2)).await;
        again.release();
        let restarted = clock.poll_started(entered, &mut cx).unwrap();
        assert_eq!(restarted, entered + Duration::from_secs(3));
        // Held again before it ever started: nothing to restart.
        let fresh = HeaderClock::default();
        let _h = fresh.hold();
        let _h2 = fresh.hold_again();
        assert_eq!(fresh.restarts(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn bound_takes_the_earlier() {
        let now = Instant::now();
        let d = RequestDeadline::until(now + Duration::from_secs(2));
        let b = Bound::new(now, Duration::from_secs(5), Phase::BodyIdle, Some(&d));
        assert_eq!(b.phase, Phase::Total);
        assert_eq!(b.at, now + Duration::from_secs(2));
        assert_eq!(b.limit, Duration::from_secs(2));
        let b = Bound::new(now, Duration::from_secs(1), Phase::BodyIdle, Some(&d));
        assert_eq!(b.phase, Phase::BodyIdle);
        assert_eq!(b.at, now + Duration::from_secs(1));
        let b = Bound::new(now, Duration::from_secs(1), Phase::BodyIdle, None);
        assert_eq!(b.error().phase(), Some(Phase::BodyIdle));
    }
}
