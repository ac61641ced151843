//! Private time helpers shared by every timer of the crate.

use std::time::Duration;

use tokio::time::Instant;

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

/// When a phase timer fires: the earlier of the phase's own limit and the request's deadline,
/// and which of the two that is, so the error names the right phase.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) at: Instant,
    pub(crate) phase: Phase,
    pub(crate) limit: Duration,
}

#[allow(dead_code)]
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
