//! Private time helpers shared by every timer of the crate. (What layers tell each other about
//! time, such as the response-header clock, is in `channels.rs`.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

#[cfg(any(feature = "timeout", feature = "limit", feature = "pool"))]
use crate::{
    deadline::RequestDeadline,
    error::{Error, Phase},
};

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
///
/// A timer polled again and again for the same instant (a connection's lifetime timer, polled
/// on every read) is polled through tokio only while that changes something: once it has been
/// polled twice for one instant, a poll from the same task while it is still in the timer
/// wheel is answered `Pending` at once, since the waker tokio holds wakes that task.
#[derive(Debug, Default)]
pub(crate) struct LazySleep(Option<Pin<Box<Armed>>>);

pin_project_lite::pin_project! {
    #[derive(Debug)]
    struct Armed {
        #[pin]
        sleep: Sleep,
        // The waker of the last poll that registered with tokio for the current instant, kept
        // from the second such poll on (a timer polled once never clones it).
        waker: Option<Waker>,
    }
}

impl LazySleep {
    /// Polls a timer for `at`, making or moving it as needed.
    pub(crate) fn poll_until(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let Some(armed) = &mut self.0 else {
            let armed = Box::pin(Armed {
                sleep: tokio::time::sleep_until(at),
                waker: None,
            });
            return self.0.insert(armed).as_mut().project().sleep.poll(cx);
        };
        let mut armed = armed.as_mut().project();
        if armed.sleep.deadline() != at {
            armed.sleep.as_mut().reset(at);
            // Polled below with this task's waker: the one kept may be another task's.
            *armed.waker = None;
            return armed.sleep.poll(cx);
        }
        // Still in the wheel, with the waker of a poll from this same task: nothing to do.
        if !armed.sleep.is_elapsed()
            && armed
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let polled = armed.sleep.poll(cx);
        if polled.is_pending()
            && !armed
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            *armed.waker = Some(cx.waker().clone());
        }
        polled
    }

    /// Whether a timer was ever made (for tests of the fast path).
    #[cfg(test)]
    pub(crate) fn is_armed(&self) -> bool {
        self.0.is_some()
    }
}

/// When a phase timer fires: the earlier of the phase's own limit and the request's deadline,
/// and which of the two that is, so the error names the right phase.
#[cfg(any(feature = "timeout", feature = "limit", feature = "pool"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) at: Instant,
    pub(crate) phase: Phase,
    pub(crate) limit: Duration,
}

#[cfg(any(feature = "timeout", feature = "limit", feature = "pool"))]
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

    /// A waker that records whether it was woken.
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn flag() -> (std::sync::Arc<Flag>, Waker) {
        let f = std::sync::Arc::new(Flag(false.into()));
        (f.clone(), Waker::from(f))
    }

    fn woken(f: &Flag) -> bool {
        f.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_polled_again_wakes_the_task_that_polled_it_last() {
        let at = Instant::now() + Duration::from_millis(10);
        let (a, wa) = flag();
        let mut s = LazySleep::default();
        // Polled three times by one task (the third is answered without tokio), then by another:
        // the other one is woken when it fires.
        for _ in 0..3 {
            assert!(s.poll_until(at, &mut Context::from_waker(&wa)).is_pending());
        }
        let (b, wb) = flag();
        assert!(s.poll_until(at, &mut Context::from_waker(&wb)).is_pending());
        // And again by the first, which must then be the one woken.
        let (c, wc) = flag();
        for _ in 0..3 {
            assert!(s.poll_until(at, &mut Context::from_waker(&wc)).is_pending());
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(woken(&c), "the last task to poll is woken");
        assert!(!woken(&a) && !woken(&b));
        assert!(s.poll_until(at, &mut Context::from_waker(&wc)).is_ready());
        // Moved after it fired: pending again, and woken again at the new instant.
        let later = at + Duration::from_millis(5);
        let (d, wd) = flag();
        for _ in 0..3 {
            assert!(s
                .poll_until(later, &mut Context::from_waker(&wd))
                .is_pending());
        }
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(woken(&d));
        assert!(s
            .poll_until(later, &mut Context::from_waker(&wd))
            .is_ready());
        // Moved by another task's poll: the task that polled it before is not taken for the
        // one tokio holds.
        let (t2, t3) = (
            later + Duration::from_millis(5),
            later + Duration::from_millis(6),
        );
        let (e, we) = flag();
        for _ in 0..3 {
            assert!(s.poll_until(t2, &mut Context::from_waker(&we)).is_pending());
        }
        let (_f, wf) = flag();
        assert!(s.poll_until(t3, &mut Context::from_waker(&wf)).is_pending());
        assert!(s.poll_until(t3, &mut Context::from_waker(&we)).is_pending());
        tokio::time::advance(Duration::from_millis(6)).await;
        assert!(woken(&e), "the task that polled last is woken");
    }

    #[cfg(any(feature = "timeout", feature = "limit", feature = "pool"))]
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
