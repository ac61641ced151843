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
/// polled twice for one instant (with coop budget left: a poll without it registers nothing),
/// a poll from the same task while it is still in the timer wheel is answered `Pending` at
/// once, since the waker tokio holds wakes that task.
#[derive(Debug, Default)]
pub(crate) struct LazySleep(Option<Pin<Box<Armed>>>);

pin_project_lite::pin_project! {
    #[derive(Debug)]
    #[cfg_attr(not(feature = "preset"), allow(dead_code))]
    struct Armed {
        #[pin]
        sleep: Sleep,
        // The waker of the last poll that registered with tokio for the current instant, kept
        // from the second such poll on (a timer polled once never clones it).
        waker: Option<Waker>,
        // The runtime whose timer driver holds it, when it may go to a `SleepPool`.
        runtime: Option<tokio::runtime::Id>,
    }
}

/// Timers that a client's requests hand on to each other, so that a request on the fast path
/// neither allocates one nor goes through the timer wheel's lock.
///
/// A timer given back stays in tokio's wheel at its old instant; the next request, whose
/// instant is later, leaves it there and is woken once too early, when it moves it (see
/// [`LazySleep::poll_until_pooled`]). A timer is only taken by a request on the runtime it was
/// made on, and the pool keeps at most [`SleepPool::CAP`] of them; others are dropped as
/// before. Response-header clocks that nothing else holds are kept with them.
#[cfg(feature = "preset")]
#[derive(Debug, Default)]
pub(crate) struct SleepPool(std::sync::Mutex<Kept>);

/// What a [`SleepPool`] keeps: timers, and response-header clocks that nothing else holds.
#[cfg(feature = "preset")]
#[derive(Debug, Default)]
struct Kept {
    sleeps: Vec<Pin<Box<Armed>>>,
    clocks: Vec<crate::channels::HeaderClock>,
}

#[cfg(feature = "preset")]
impl SleepPool {
    /// The most timers kept: more than a client has requests waiting at once is waste.
    const CAP: usize = 64;

    #[inline]
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Pushes and pops only: a poisoned list is still a list.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A timer of `runtime`, if the pool has one. If the pool's are of another runtime (one the
    /// client was used on before), they are all dropped instead, outside the lock.
    fn take(&self, runtime: tokio::runtime::Id) -> Option<Pin<Box<Armed>>> {
        let mut kept = self.lock();
        let armed = kept.sleeps.pop()?;
        if armed.runtime == Some(runtime) {
            return Some(armed);
        }
        // The client moved to another runtime: the timers of the one before (which may be
        // gone, its driver kept alive by them) all go.
        let old = std::mem::take(&mut kept.sleeps);
        drop(kept);
        drop((armed, old));
        None
    }

    /// A response-header clock for `deadline`: one that was handed back, made as new, or a new
    /// one. (The attempt's timer is taken when first polled, for the runtime that polls it: a
    /// request may be made on one runtime and awaited on another.)
    #[inline]
    pub(crate) fn take_clock(
        &self,
        deadline: Option<crate::deadline::RequestDeadline>,
    ) -> crate::channels::HeaderClock {
        let clock = self.lock().clocks.pop();
        clock
            .and_then(|c| c.with_new_deadline(deadline))
            .unwrap_or_else(|| crate::channels::HeaderClock::with_deadline(deadline))
    }

    /// Gives back an attempt's timer and clock, under one lock: the timer if the pool made it,
    /// the clock if nothing else holds it (the client under the preset may still, in a request
    /// body it has not dropped).
    #[inline]
    pub(crate) fn put_for_headers(
        &self,
        sleep: &mut LazySleep,
        mut clock: crate::channels::HeaderClock,
    ) {
        let mut armed = sleep.for_pool();
        let mut clock = clock.reset_if_alone().then_some(clock);
        let mut kept = self.lock();
        if kept.sleeps.len() < Self::CAP {
            kept.sleeps.extend(armed.take());
        }
        if kept.clocks.len() < Self::CAP {
            kept.clocks.extend(clock.take());
        }
        drop(kept);
        // More than the pool keeps: dropped outside its lock.
        drop((armed, clock));
    }

    fn put(&self, armed: Pin<Box<Armed>>) {
        let mut kept = self.lock();
        if kept.sleeps.len() < Self::CAP {
            kept.sleeps.push(armed);
            return;
        }
        drop(kept);
        drop(armed);
    }

    /// How many timers are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().sleeps.len()
    }

    /// How many response-header clocks are kept.
    #[cfg(test)]
    pub(crate) fn clocks(&self) -> usize {
        self.lock().clocks.len()
    }
}

impl LazySleep {
    /// Polls a timer for `at`, making or moving it as needed.
    pub(crate) fn poll_until(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let Some(armed) = &mut self.0 else {
            let armed = Box::pin(Armed {
                sleep: tokio::time::sleep_until(at),
                waker: None,
                runtime: None,
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
        // A poll without coop budget registers nothing with tokio: no waker is kept then.
        let budget = tokio::task::coop::has_budget_remaining();
        let polled = armed.sleep.poll(cx);
        if polled.is_pending()
            && budget
            && !armed
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            *armed.waker = Some(cx.waker().clone());
        }
        polled
    }

    /// As [`poll_until`](Self::poll_until), but a timer still to be made is taken from `pool`
    /// if it has one (and is made fit to go back to it otherwise).
    #[cfg(feature = "preset")]
    pub(crate) fn poll_until_pooled(
        &mut self,
        pool: &SleepPool,
        at: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if self.0.is_none() {
            let runtime = tokio::runtime::Handle::current().id();
            let armed = pool.take(runtime).unwrap_or_else(|| {
                Box::pin(Armed {
                    sleep: tokio::time::sleep_until(at),
                    waker: None,
                    runtime: Some(runtime),
                })
            });
            self.0 = Some(armed);
        }
        let Some(armed) = &mut self.0 else {
            unreachable!("armed above")
        };
        let mut armed = armed.as_mut().project();
        if armed.sleep.deadline() < at {
            // A timer handed on is set for its last owner's instant, earlier than this one's
            // (instants move on with time): left there, it wakes this task once too early and
            // is moved then, instead of being moved for every request.
            // Polled each time (no waker kept): a request waits for its headers in few polls.
            if armed.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Its early instant came: `poll_until` moves it to this one.
        }
        self.poll_until(at, cx)
    }

    /// Gives the timer (if one was made for a pool) back to `pool`; this one is unarmed again.
    #[cfg(feature = "preset")]
    #[inline]
    pub(crate) fn recycle(&mut self, pool: &SleepPool) {
        if let Some(armed) = self.for_pool() {
            pool.put(armed);
        }
    }

    /// The timer, if a pool made it, made fit to go back to it; this one is unarmed again.
    #[cfg(feature = "preset")]
    #[inline]
    fn for_pool(&mut self) -> Option<Pin<Box<Armed>>> {
        let mut armed = self.0.take().filter(|a| a.runtime.is_some())?;
        // The last owner's task is not kept alive by the pool (tokio's entry keeps its waker
        // until the next owner polls it).
        *armed.as_mut().project().waker = None;
        Some(armed)
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

    #[cfg(feature = "preset")]
    #[tokio::test(start_paused = true)]
    async fn a_pooled_timer_is_handed_on_and_fires_at_its_new_instant() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let pool = SleepPool::default();
        // A body's idle timer, far out, given back.
        let mut first = LazySleep::default();
        let far = Instant::now() + Duration::from_secs(30);
        assert!(first.poll_until_pooled(&pool, far, &mut cx).is_pending());
        first.recycle(&pool);
        assert!(!first.is_armed());
        assert_eq!(pool.len(), 1);
        // The next request takes it, for an earlier instant, and it fires then.
        let mut second = LazySleep::default();
        let at = Instant::now() + Duration::from_secs(10);
        assert!(second.poll_until_pooled(&pool, at, &mut cx).is_pending());
        assert_eq!(pool.len(), 0, "taken, not made anew");
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(second.poll_until_pooled(&pool, at, &mut cx).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(second.poll_until_pooled(&pool, at, &mut cx).is_ready());
        // Given back after it fired, then moved later by the next one.
        second.recycle(&pool);
        let mut third = LazySleep::default();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(third.poll_until_pooled(&pool, later, &mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(third.poll_until_pooled(&pool, later, &mut cx).is_ready());
        // A timer the pool did not make is not kept.
        let mut plain = LazySleep::default();
        assert!(plain
            .poll_until(later + Duration::from_secs(1), &mut cx)
            .is_pending());
        plain.recycle(&pool);
        assert_eq!(pool.len(), 0);
    }

    #[cfg(feature = "preset")]
    #[tokio::test(start_paused = true)]
    async fn a_pooled_timer_set_earlier_wakes_early_once_and_fires_at_the_new_instant() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let pool = SleepPool::default();
        let mut first = LazySleep::default();
        let old = Instant::now() + Duration::from_secs(1);
        assert!(first.poll_until_pooled(&pool, old, &mut cx).is_pending());
        first.recycle(&pool);
        // The next owner's instant is later: the timer is left at the old one.
        let mut second = LazySleep::default();
        let at = Instant::now() + Duration::from_secs(3);
        let mut task = tokio_test::task::spawn(std::future::poll_fn(|cx| {
            second.poll_until_pooled(&pool, at, cx)
        }));
        tokio_test::assert_pending!(task.poll());
        assert_eq!(pool.len(), 0, "taken");
        // The old instant wakes this task, but is not its bound: moved, still pending.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(task.is_woken(), "woken at the old instant");
        tokio_test::assert_pending!(task.poll());
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert!(!task.is_woken());
        tokio_test::assert_pending!(task.poll());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(task.is_woken());
        tokio_test::assert_ready!(task.poll());
    }

    #[cfg(feature = "preset")]
    #[tokio::test(start_paused = true)]
    async fn a_header_clock_is_handed_on_as_new_and_only_when_nothing_else_holds_it() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let pool = SleepPool::default();
        let first = RequestDeadline::after(Duration::from_secs(10));
        let mut sleep = LazySleep::default();
        let clock = pool.take_clock(Some(first));
        assert_eq!(clock.deadline(), Some(first));
        // Still in a request body the client under the preset has not dropped: not kept.
        let in_body = clock.clone();
        pool.put_for_headers(&mut sleep, clock);
        assert_eq!(pool.clocks(), 0);
        // Used to the full (held, started, stopped again, started again), then alone: kept.
        let clock = in_body;
        let mut hold = clock.hold();
        tokio::time::advance(Duration::from_secs(1)).await;
        hold.release();
        hold = clock.hold_again();
        hold.release();
        assert_eq!(clock.restarts(), 1);
        pool.put_for_headers(&mut sleep, clock);
        assert_eq!(pool.clocks(), 1);
        // The next request's: its own deadline, never held, no restart.
        let second = RequestDeadline::after(Duration::from_secs(3));
        let clock = pool.take_clock(Some(second));
        assert_eq!(pool.clocks(), 0, "taken, not made anew");
        assert_eq!(clock.deadline(), Some(second));
        assert_eq!(clock.restarts(), 0);
        let entered = Instant::now();
        assert_eq!(
            clock.poll_started(entered, &mut cx),
            Some(entered),
            "never held"
        );
        let _hold = clock.hold();
        assert_eq!(
            clock.poll_started(entered, &mut cx),
            None,
            "held until released"
        );
    }

    /// A runtime of its own, with time (paused or not), for the tests of timers across runtimes.
    #[cfg(feature = "preset")]
    fn runtime(paused: bool) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(paused)
            .build()
            .unwrap()
    }

    #[cfg(feature = "preset")]
    #[test]
    fn a_header_timer_made_on_one_runtime_and_polled_on_another_takes_a_timer_there() {
        use crate::timeout::HeaderTimer;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let pool = SleepPool::default();
        let rt = || runtime(true);
        let limit = Duration::from_secs(1);
        let first = rt();
        // The pool has a timer of the first runtime, and a request is made there.
        let timer = first.block_on(async {
            let mut s = LazySleep::default();
            let at = Instant::now() + Duration::from_secs(10);
            assert!(s.poll_until_pooled(&pool, at, &mut cx).is_pending());
            s.recycle(&pool);
            HeaderTimer::detached_pooled(limit, None, Instant::now(), &pool).0
        });
        drop(first);
        // Awaited on another: polling the first runtime's timer would panic.
        let mut timer = timer;
        rt().block_on(async {
            assert!(timer.poll_fired_pooled(&pool, &mut cx).is_pending());
            tokio::time::advance(limit).await;
            assert!(timer.poll_fired_pooled(&pool, &mut cx).is_ready());
        });
    }

    #[cfg(feature = "preset")]
    #[test]
    fn a_pooled_timer_of_a_runtime_gone_is_not_handed_on() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let pool = SleepPool::default();
        let rt = || runtime(false);
        let first = rt();
        first.block_on(async {
            // A burst: several timers given back.
            let mut burst: Vec<LazySleep> = (0..8).map(|_| LazySleep::default()).collect();
            let at = Instant::now() + Duration::from_secs(10);
            for s in &mut burst {
                assert!(s.poll_until_pooled(&pool, at, &mut cx).is_pending());
            }
            for s in &mut burst {
                s.recycle(&pool);
            }
        });
        drop(first);
        assert_eq!(pool.len(), 8);
        // On another runtime, polling the old timer would panic (its driver is shut down).
        rt().block_on(async {
            let mut s = LazySleep::default();
            let at = Instant::now() + Duration::from_millis(10);
            assert!(s.poll_until_pooled(&pool, at, &mut cx).is_pending());
            // All of them: they keep the old runtime's driver (its file descriptors) alive.
            assert_eq!(pool.len(), 0, "the old ones were dropped");
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(s.poll_until_pooled(&pool, at, &mut cx).is_ready());
        });
    }

    /// Spends the task's whole coop budget, as a busy task does before it reaches a timer.
    fn exhaust(cx: &mut Context<'_>) {
        while let Poll::Ready(r) = tokio::task::coop::poll_proceed(cx) {
            r.made_progress();
        }
    }

    /// Polls `poll` until it is ready (within `limit`), the first two polls without budget.
    async fn without_budget_at_first(
        limit: Duration,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<()>,
    ) -> Result<Duration, tokio::time::error::Elapsed> {
        let start = Instant::now();
        let mut polls = 0;
        let fired = std::future::poll_fn(|cx| {
            polls += 1;
            if polls <= 2 {
                exhaust(cx);
            }
            poll(cx)
        });
        tokio::time::timeout(limit, fired).await?;
        Ok(start.elapsed())
    }

    #[tokio::test]
    async fn a_timer_polled_twice_without_budget_still_fires() {
        let mut s = LazySleep::default();
        let at = Instant::now() + Duration::from_millis(20);
        let limit = Duration::from_millis(500);
        let took = without_budget_at_first(limit, |cx| s.poll_until(at, cx)).await;
        assert!(took.is_ok(), "a 20 ms timer did not fire in 500 ms");
    }

    #[cfg(feature = "preset")]
    #[tokio::test]
    async fn a_pooled_timer_polled_twice_without_budget_wakes_its_new_owner() {
        let pool = SleepPool::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = LazySleep::default();
        let far = Instant::now() + Duration::from_secs(10);
        assert!(first.poll_until_pooled(&pool, far, &mut cx).is_pending());
        first.recycle(&pool);
        let mut s = LazySleep::default();
        let at = Instant::now() + Duration::from_millis(20);
        let limit = Duration::from_millis(500);
        let took = without_budget_at_first(limit, |cx| s.poll_until_pooled(&pool, at, cx)).await;
        // Woken by the timer, not by the 500 ms timeout polling it again.
        assert!(
            took.as_ref().is_ok_and(|t| *t < Duration::from_millis(400)),
            "{took:?}"
        );
    }

    #[cfg(feature = "preset")]
    #[tokio::test(start_paused = true)]
    async fn a_pooled_timer_does_not_keep_its_last_owners_task() {
        let pool = SleepPool::default();
        let (task, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let mut s = LazySleep::default();
        let at = Instant::now() + Duration::from_secs(10);
        // Twice for one instant: the second poll keeps the waker.
        assert!(s.poll_until_pooled(&pool, at, &mut cx).is_pending());
        assert!(s.poll_until_pooled(&pool, at, &mut cx).is_pending());
        s.recycle(&pool);
        drop(waker);
        // The one reference left besides ours is the one tokio's entry holds until the next
        // owner polls it (or it fires).
        assert_eq!(std::sync::Arc::strong_count(&task), 2);
        let mut next = LazySleep::default();
        let mut cx = Context::from_waker(Waker::noop());
        let later = at + Duration::from_secs(1);
        assert!(next.poll_until_pooled(&pool, later, &mut cx).is_pending());
        assert_eq!(
            std::sync::Arc::strong_count(&task),
            1,
            "kept after the next poll"
        );
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
