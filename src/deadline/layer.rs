use std::time::Duration;

use tower_layer::Layer;

use super::Deadline;
use crate::clock;
use crate::stats::Stats;

/// Applies a total deadline to every request: [`Deadline`].
///
/// The deadline is fixed when the request enters this layer and covers everything inside it:
/// queue and pool waits, connecting, the response headers and the whole response body.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::DeadlineLayer;
///
/// let layer = DeadlineLayer::new(Duration::from_secs(10)).propagate_grpc_timeout(true);
/// # let _ = layer;
/// ```
///
/// # Panics
///
/// [`DeadlineLayer::new`] panics when the budget is zero: a request that may take no time at all
/// is a configuration mistake, told at construction rather than as a failure of every request.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    pub(crate) budget: Duration,
    pub(crate) propagate: bool,
    pub(crate) stats: Option<Stats>,
}

impl DeadlineLayer {
    /// A deadline `budget` after each request enters.
    #[track_caller]
    pub fn new(budget: Duration) -> Self {
        clock::check_duration("DeadlineLayer budget", budget);
        DeadlineLayer {
            budget,
            propagate: false,
            stats: None,
        }
    }

    /// Writes the time left into the outgoing `grpc-timeout` header, so the next hop can stop
    /// when this one gives up. Off by default.
    ///
    /// A `grpc-timeout` already on the request (tonic's `Request::set_timeout`) is then read as
    /// a deadline of its own: when it is earlier than the one this layer fixes, it is the
    /// request's deadline (in the extensions, and for every inner layer) and is what is sent;
    /// otherwise it is replaced by the smaller time left here.
    pub fn propagate_grpc_timeout(mut self, on: bool) -> Self {
        self.propagate = on;
        self
    }

    /// Counts fired deadlines in `stats`.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The configured budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            layer: self.clone(),
        }
    }
}
