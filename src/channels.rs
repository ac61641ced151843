//! The private channels between layers: what one layer tells another, or tells the counters,
//! that neither the request nor the response carries in public. Each says who writes it, who
//! reads it and why it exists.
//!
//! - **The response-header clock** ([`HeaderClock`], in the request's extensions, or under the
//!   fused preset on the crate's own transport in its `RequestWriteBody`, or for a body over
//!   when sent handed to the transport's call through a thread-local). Written by
//!   `ResponseHeaderTimeout` (or the fused preset), which puts a fresh clock in every request it
//!   sends on, and by what is inside it that knows a phase the clock must not count: the
//!   request-write timeout holds it until the request body is sent, `Retire` (pool) and the
//!   `Transport` until the connection is obtained (only if its checkout waits), the reqwest
//!   adapter while reqwest connects.
//!   Read by the header timer, which starts when the last hold is released. Why: connect, TLS,
//!   pool waits and uploads have limits of their own, so counting them against the response
//!   headers would name the wrong phase; Go's `ResponseHeaderTimeout` also starts once the
//!   request is written.
//! - **The TLS/TCP split** ([`split`], a tokio task-local). Written by `ConnectTimeoutFuture`
//!   ("connecting", then "connected at"), read by `TlsHandshakeTimeoutFuture`, which sets the
//!   slot around each poll of the TLS connector it wraps and starts the handshake clock when
//!   TCP is connected. Why: connectors are called with a `Uri` only, and the TLS connector in
//!   between (hyper-rustls' `HttpsConnector`, any other) is opaque, so there is no extension to
//!   carry the instant; a slot that exists only while the outer future polls the inner one is
//!   the one channel through it, and two connects on one task keep separate slots. Also read
//!   by the reqwest adapter's `ReqwestServiceFuture`, which holds the response-header clock
//!   while a connect future inside reqwest says it is running.
//! - **The timeout reporter** ([`fired`]). Written by every layer whose timer fires (deadline,
//!   the five phase timeouts, the limiters' acquire wait, the pool's acquire wait), right before
//!   it returns its error. Read by whoever reads the shared [`Stats`] (`timeouts(phase)`) and
//!   by `tracing` subscribers (one debug event with the phase and the authority). Why: one
//!   place counts each fired timeout once, under its phase, and logs it with the same fields,
//!   whichever layer fired.
//! - **The background drain** ([`background`], a tokio task-local). Written by the drain task of
//!   `DrainOnDrop`, which runs the dropped body's polls inside it. Read by [`fired`], which then
//!   counts nothing. Why: a timer that fires while a dropped body is drained (the deadline, the
//!   idle limit of a layer inside) ends no request of a caller; the drain reports its own outcome
//!   (`DrainAbandon`), and counting it as a timeout of the request would count one request twice
//!   when the caller already got a timeout from an outer layer.

use http::uri::Authority;

use crate::error::{Error, Phase};
use crate::stats::Stats;

#[cfg(any(feature = "timeout", feature = "pool"))]
pub(crate) use self::header_clock::{HeaderClock, HeaderHold};

/// The response-header clock and its holds.
#[cfg(any(feature = "timeout", feature = "pool"))]
mod header_clock {
    use tokio::time::Instant;

    /// Holds back a response-header clock until the request is on its way (who puts it in the
    /// request and who holds it: see the module docs). It starts when the last hold is
    /// released; with no hold ever taken, when its timer first looks at it (right after the first
    /// poll of the service under `ResponseHeaderTimeout`).
    #[derive(Debug, Clone, Default)]
    pub(crate) struct HeaderClock(std::sync::Arc<ClockShared>);

    #[derive(Debug, Default)]
    struct ClockShared {
        /// The request's deadline, for the crate's transport under the fused preset, which
        /// puts no `RequestDeadline` in the extensions.
        #[cfg(feature = "timeout")]
        deadline: Option<crate::deadline::RequestDeadline>,
        state: std::sync::Mutex<HeaderClockState>,
        /// A hold was ever taken. Set under the lock, read without it: a clock never held (the
        /// usual case, a request whose connection was there at once) is read with no lock.
        held: std::sync::atomic::AtomicBool,
        /// How many times a started clock was stopped again ([`HeaderClock::hold_again`]): read
        /// without the lock by a clock's user that already knows when it started.
        #[cfg(feature = "timeout")]
        restarts: std::sync::atomic::AtomicU64,
    }

    #[derive(Debug, Default)]
    struct HeaderClockState {
        holds: usize,
        started: Option<Instant>,
        waker: Option<std::task::Waker>,
    }

    impl HeaderClock {
        fn lock(&self) -> std::sync::MutexGuard<'_, HeaderClockState> {
            // Plain assignments only under the lock: a poisoned state is still consistent.
            self.0
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// A clock that also carries the request's deadline (see [`HeaderClock::deadline`]).
        #[cfg(feature = "timeout")]
        pub(crate) fn with_deadline(deadline: Option<crate::deadline::RequestDeadline>) -> Self {
            HeaderClock(std::sync::Arc::new(ClockShared {
                deadline,
                ..ClockShared::default()
            }))
        }

        /// Makes this clock as new, if nothing else holds it (a clock handed on through a
        /// pool instead of allocated); `false` if something does.
        #[cfg(feature = "preset")]
        #[inline]
        pub(crate) fn reset_if_alone(&mut self) -> bool {
            let Some(shared) = std::sync::Arc::get_mut(&mut self.0) else {
                return false;
            };
            let st = shared
                .state
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            st.holds = 0;
            st.started = None;
            st.waker = None;
            *shared.held.get_mut() = false;
            *shared.restarts.get_mut() = 0;
            true
        }

        /// A clock made as new by [`reset_if_alone`](Self::reset_if_alone), for a request with
        /// `deadline`; `None` if something holds it again.
        #[cfg(feature = "preset")]
        #[inline]
        pub(crate) fn with_new_deadline(
            mut self,
            deadline: Option<crate::deadline::RequestDeadline>,
        ) -> Option<HeaderClock> {
            std::sync::Arc::get_mut(&mut self.0)?.deadline = deadline;
            Some(self)
        }

        /// The request's deadline, as the clock was made with.
        #[cfg(feature = "timeout")]
        #[cfg_attr(not(feature = "transport"), allow(dead_code))]
        pub(crate) fn deadline(&self) -> Option<crate::deadline::RequestDeadline> {
            self.0.deadline
        }

        /// Keeps the clock from starting until the hold is released or dropped.
        /// Like [`hold`](Self::hold), but a clock that already started is stopped and starts
        /// from zero again when this hold is released: for a request sent once more on another
        /// connection because the first never took it (its new connection has limits of its own).
        #[cfg(feature = "transport")]
        pub(crate) fn hold_again(&self) -> HeaderHold {
            let mut st = self.lock();
            // A clock never held started when its timer did.
            let never_held = !self.0.held.load(std::sync::atomic::Ordering::Acquire);
            if st.started.take().is_some() || never_held {
                self.0
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
            }
            st.holds += 1;
            self.0
                .held
                .store(true, std::sync::atomic::Ordering::Release);
            HeaderHold(Some(self.clone()))
        }

        /// How many times the clock was stopped again after it started.
        #[cfg(feature = "timeout")]
        pub(crate) fn restarts(&self) -> u64 {
            self.0.restarts.load(std::sync::atomic::Ordering::Acquire)
        }

        pub(crate) fn hold(&self) -> HeaderHold {
            let mut st = self.lock();
            st.holds += 1;
            self.0
                .held
                .store(true, std::sync::atomic::Ordering::Release);
            HeaderHold(Some(self.clone()))
        }

        /// When the clock started: `unheld` if no hold was ever taken (the timer passes the
        /// instant it first looks), the release of the last hold otherwise; `None` while held
        /// (and `cx` is woken when it starts).
        #[cfg(feature = "timeout")]
        #[inline]
        pub(crate) fn poll_started(
            &self,
            unheld: Instant,
            cx: &mut std::task::Context<'_>,
        ) -> Option<Instant> {
            if !self.0.held.load(std::sync::atomic::Ordering::Acquire) {
                return Some(unheld);
            }
            let mut st = self.lock();
            if st.started.is_none() && !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            st.started
        }
    }

    /// One reason not to start a [`HeaderClock`] yet; released by [`HeaderHold::release`] or drop.
    #[derive(Debug)]
    pub(crate) struct HeaderHold(Option<HeaderClock>);

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

    #[cfg(all(test, feature = "transport"))]
    mod tests {
        use std::task::Context;
        use std::time::Duration;

        use tokio::time::Instant;

        use super::HeaderClock;

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
        async fn a_clock_never_held_runs_from_its_entry_and_restarts_when_held_again() {
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let clock = HeaderClock::default();
            let entered = Instant::now();
            tokio::time::advance(Duration::from_secs(1)).await;
            // No hold (the connection was there at once): it runs from when the timer began.
            assert_eq!(clock.poll_started(entered, &mut cx), Some(entered));
            // A retry's connection: stopped, and started again when it is there.
            let mut again = clock.hold_again();
            assert_eq!(clock.restarts(), 1);
            assert_eq!(clock.poll_started(entered, &mut cx), None, "stopped");
            tokio::time::advance(Duration::from_secs(2)).await;
            again.release();
            let restarted = clock.poll_started(entered, &mut cx).unwrap();
            assert_eq!(restarted, entered + Duration::from_secs(3));
        }
    }
}

/// How a [`TlsHandshakeTimeoutFuture`](crate::TlsHandshakeTimeoutFuture) learns where TCP
/// ends: a task-local slot, set for the duration of each poll of its inner future, that a
/// [`ConnectTimeoutFuture`](crate::ConnectTimeoutFuture) polled inside it writes to.
#[cfg(feature = "timeout")]
pub(crate) mod split {
    use std::cell::Cell;

    use tokio::time::Instant;

    /// What the connect step inside has reported so far.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Split {
        /// No connect step has shown itself.
        Unseen,
        /// A connect step is running.
        Connecting,
        /// The connect step finished at this instant.
        Connected(Instant),
    }

    tokio::task_local! {
        static SPLIT: Cell<Split>;
    }

    /// Runs `poll` with the slot set to `state`; returns its result and the slot afterwards.
    pub(crate) fn scope<R>(state: Split, poll: impl FnOnce() -> R) -> (R, Split) {
        SPLIT.sync_scope(Cell::new(state), || {
            let r = poll();
            (r, SPLIT.with(Cell::get))
        })
    }

    /// Called by a connect future on each poll: "a connect step is running" (if it is not done).
    pub(crate) fn connecting() {
        let _ = SPLIT.try_with(|s| {
            if s.get() == Split::Unseen {
                s.set(Split::Connecting);
            }
        });
    }

    /// Called by a connect future when it connected.
    pub(crate) fn connected(at: Instant) {
        let _ = SPLIT.try_with(|s| s.set(Split::Connected(at)));
    }
}

/// Whether the current poll belongs to the background drain of a dropped body.
pub(crate) mod background {
    tokio::task_local! {
        static DRAINING: ();
    }

    /// Runs `fut` as a background drain: timeouts fired inside it are not counted.
    #[cfg(feature = "drain")]
    pub(crate) async fn drain<F: std::future::Future>(fut: F) -> F::Output {
        DRAINING.scope((), fut).await
    }

    /// Whether we are inside [`drain`].
    pub(crate) fn draining() -> bool {
        DRAINING.try_with(|_| ()).is_ok()
    }
}

/// Reports a timeout that fired: counts it by phase in `stats` and logs it at debug level with
/// its phase and authority. Every layer calls it once per fired timer, right before it returns
/// the error. Inside a background drain it only logs at trace level (see the module docs).
pub(crate) fn fired(stats: Option<&Stats>, authority: Option<&Authority>, err: &Error) {
    if background::draining() {
        tracing::trace!(
            phase = err.phase().map(Phase::as_str),
            authority = authority.map(Authority::as_str),
            "{err} (while draining a dropped body; not a timeout of the request)"
        );
        return;
    }
    if let Some(stats) = stats {
        if let Some(phase) = err.phase() {
            stats.timeout(phase);
        }
    }
    tracing::debug!(
        phase = err.phase().map(Phase::as_str),
        authority = authority.map(Authority::as_str),
        "{err}"
    );
}
