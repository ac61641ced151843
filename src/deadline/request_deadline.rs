use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use crate::clock;

/// The instant by which a request must be finished, response body included.
///
/// [`DeadlineLayer`](super::DeadlineLayer) puts one in each request's extensions; every inner
/// layer of this crate reads it and stops at the earlier of its own limit and this deadline. Put
/// one in the extensions yourself (for example from an inbound request's `grpc-timeout`) and
/// `DeadlineLayer` keeps it when it is earlier than its own.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::RequestDeadline;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let deadline = RequestDeadline::after(Duration::from_secs(2));
/// assert!(deadline.remaining() <= Duration::from_secs(2));
/// assert!(!deadline.is_expired());
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(deadline);
/// assert_eq!(RequestDeadline::of(&req), Some(deadline));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestDeadline {
    at: Instant,
    budget: Duration,
}

impl RequestDeadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self::after_from(Instant::now(), budget)
    }

    /// `budget` after `now` (a clock read the caller already made).
    pub(crate) fn after_from(now: Instant, budget: Duration) -> Self {
        RequestDeadline {
            at: clock::add(now, budget),
            budget,
        }
    }

    /// A deadline at `at`; its budget (shown in error messages) is the time left until then.
    pub fn until(at: Instant) -> Self {
        RequestDeadline {
            at,
            budget: at.saturating_duration_since(Instant::now()),
        }
    }

    /// The deadline of a request, if one is in its extensions.
    pub fn of<B>(req: &http::Request<B>) -> Option<Self> {
        req.extensions().get::<RequestDeadline>().copied()
    }

    /// The instant itself.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The whole budget the deadline was given when it was made.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The time left in `grpc-timeout` header format (at most 8 digits and a unit), rounded down
    /// so the next hop never gets more time than is left here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_hardened::RequestDeadline;
    ///
    /// assert_eq!(RequestDeadline::encode_grpc_timeout(Duration::from_millis(1500)), "1500000u");
    /// assert_eq!(RequestDeadline::encode_grpc_timeout(Duration::from_secs(3600 * 30)), "108000S");
    /// assert_eq!(RequestDeadline::parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
    /// assert_eq!(RequestDeadline::parse_grpc_timeout("12x"), None);
    /// ```
    pub fn encode_grpc_timeout(left: Duration) -> HeaderValue {
        Self::grpc_timeout(left).0
    }

    /// [`encode_grpc_timeout`](Self::encode_grpc_timeout), and the duration it encodes (`left`
    /// rounded down to the unit chosen).
    pub(crate) fn grpc_timeout(left: Duration) -> (HeaderValue, Duration) {
        const MAX: u128 = 99_999_999;
        let nanos = left.as_nanos();
        let units: [(u128, char); 6] = [
            (1, 'n'),
            (1_000, 'u'),
            (1_000_000, 'm'),
            (1_000_000_000, 'S'),
            (60_000_000_000, 'M'),
            (3_600_000_000_000, 'H'),
        ];
        for (per, unit) in units {
            let value = nanos / per;
            if value <= MAX {
                let header = HeaderValue::from_str(&format!("{value}{unit}"))
                    .expect("digits and a letter are a valid header value");
                // value * per <= left, which is a Duration: it fits.
                let sent = Duration::from_nanos(u64::try_from(value * per).unwrap_or(u64::MAX));
                return (header, sent);
            }
        }
        (
            HeaderValue::from_static("99999999H"),
            Duration::from_secs(99_999_999 * 3600),
        )
    }

    /// Parses a `grpc-timeout` header value (`"100m"`, `"5S"`, …), for taking a deadline from an
    /// inbound request.
    pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
        let value = value.trim();
        if value.len() < 2 || value.len() > 9 {
            return None;
        }
        let (digits, unit) = value.split_at(value.len() - 1);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        Some(match unit {
            "H" => Duration::from_secs(n * 3600),
            "M" => Duration::from_secs(n * 60),
            "S" => Duration::from_secs(n),
            "m" => Duration::from_millis(n),
            "u" => Duration::from_micros(n),
            "n" => Duration::from_nanos(n),
            _ => return None,
        })
    }
}
