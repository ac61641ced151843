//! Private macros shared by the layers.

/// The `get_ref` / `get_mut` / `into_inner` trio of a service that wraps its inner service in a
/// field named `inner` of type `$T`.
macro_rules! inner_accessors {
    ($T:ident) => {
        /// The inner service.
        pub fn get_ref(&self) -> &$T {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut $T {
            &mut self.inner
        }

        /// Gives back the inner service.
        pub fn into_inner(self) -> $T {
            self.inner
        }
    };
}

/// The `stats` setter and `limit` getter of a timeout layer with fields `limit: Duration` and
/// `stats: Option<Stats>`.
#[cfg_attr(not(feature = "timeout"), allow(unused_macros))]
macro_rules! limit_and_stats {
    () => {
        /// Counts fired timeouts in `stats`, by phase.
        pub fn stats(mut self, stats: $crate::stats::Stats) -> Self {
            self.stats = Some(stats);
            self
        }

        /// The configured limit.
        pub fn limit(&self) -> std::time::Duration {
            self.limit
        }
    };
}

/// `is_end_stream` and `size_hint` of a body wrapper with fields `inner` (the body it wraps)
/// and `done` (it ended the body itself: a timeout, a cap, an error, the end): over when either
/// says so, and the inner body's hint until then.
macro_rules! done_or_inner_hints {
    () => {
        fn is_end_stream(&self) -> bool {
            self.done || self.inner.is_end_stream()
        }

        fn size_hint(&self) -> http_body::SizeHint {
            if self.done {
                http_body::SizeHint::with_exact(0)
            } else {
                self.inner.size_hint()
            }
        }
    };
}
