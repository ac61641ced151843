//! Test helpers for the unit tests that need private access (limit, drain, pool, preset):
//! scripted bodies driven from the test (the test server crate's `ChannelBody`), and static
//! trait assertions. The tests of the other layers use only the public API and live in
//! `tests/layers/`.

/// Scripted bodies, for the limit and drain tests: the test server crate's, shared with the
/// integration tests.
#[cfg(any(feature = "limit", feature = "drain"))]
pub(crate) use tower_hardened_test_server::body::{BodyTx, ChannelBody};

/// What polling a body once gives.
#[cfg(feature = "limit")]
pub(crate) type Polled<B> = std::task::Poll<
    Option<Result<http_body::Frame<<B as http_body::Body>::Data>, <B as http_body::Body>::Error>>,
>;

/// Polls a body once, with a no-op waker.
#[cfg(feature = "limit")]
pub(crate) fn poll_once<B: http_body::Body + Unpin>(body: &mut B) -> Polled<B> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(body).poll_frame(&mut cx)
}

pub(crate) fn assert_send_sync<T: Send + Sync>() {}
pub(crate) fn assert_clone<T: Clone>() {}

/// The phase of this crate's error inside a boxed error, if any.
#[cfg(any(feature = "limit", feature = "pool"))]
pub(crate) fn phase_of(err: &crate::BoxError) -> Option<crate::Phase> {
    crate::Error::find(&**err).and_then(crate::Error::phase)
}
