use std::time::Duration;

use crate::clock;

/// A request's own total budget, in place of the [`DeadlineLayer`](super::DeadlineLayer)'s:
/// longer (a long-lived `watch` stream) or shorter (a health probe).
///
/// Put it in the request's extensions (with tonic: `tonic::Request::extensions_mut`) and
/// [`Deadline`](super::Deadline) fixes this request's deadline `budget` after it enters instead
/// of the layer's. **An earlier deadline is still kept**: a [`RequestDeadline`](super::RequestDeadline)
/// already in the extensions, or (with
/// [`propagate_grpc_timeout`](super::DeadlineLayer::propagate_grpc_timeout)) a `grpc-timeout`
/// the caller set, wins when it is earlier, so a budget can never outlive the deadline the
/// caller itself was given.
///
/// Only the total changes: the phase limits of inner layers (response headers, body idle) stay
/// as configured, so a stream that may be silent for longer than the body-idle limit needs a
/// stack with a longer one.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_hardened::{DeadlineLayer, RequestBudget, RequestDeadline};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let svc = DeadlineLayer::new(Duration::from_secs(30)).layer(service_fn(|req: Request<()>| async move {
///     let left = RequestDeadline::of(&req).unwrap().remaining();
///     Ok::<_, std::convert::Infallible>(Response::new(left.as_secs().to_string()))
/// }));
///
/// let mut watch = Request::new(());
/// watch.extensions_mut().insert(RequestBudget::new(Duration::from_secs(3600)));
/// assert_eq!(svc.clone().oneshot(watch).await?.into_body().get_ref(), "3600");
///
/// // An earlier deadline the caller already has is kept.
/// let mut inbound = Request::new(());
/// inbound.extensions_mut().insert(RequestBudget::new(Duration::from_secs(3600)));
/// inbound.extensions_mut().insert(RequestDeadline::after(Duration::from_secs(5)));
/// assert_eq!(svc.oneshot(inbound).await?.into_body().get_ref(), "5");
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// [`RequestBudget::new`] panics when the budget is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestBudget(Duration);

impl RequestBudget {
    /// This request may take `budget` in all, body included.
    #[track_caller]
    pub fn new(budget: Duration) -> Self {
        clock::check_duration("RequestBudget", budget);
        RequestBudget(budget)
    }

    /// The budget.
    pub fn get(&self) -> Duration {
        self.0
    }
}
