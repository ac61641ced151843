//! Helpers of these tests: scripted bodies driven from the test, and static trait assertions
//! (as in `src/test_util.rs`, which the unit tests with private access use; the bodies are the
//! test server crate's).

use tower_hardened::{BoxError, Error, Phase};

pub(crate) use tower_hardened_test_server::body::{BodyTx, ChannelBody};

pub(crate) fn assert_send_sync<T: Send + Sync>() {}
pub(crate) fn assert_clone<T: Clone>() {}

/// The phase of this crate's error inside a boxed error, if any.
pub(crate) fn phase_of(err: &BoxError) -> Option<Phase> {
    Error::find(&**err).and_then(Error::phase)
}
