use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use tower_service::Service;

use super::{DeadlineBody, DeadlineFuture, DeadlineLayer, RequestBudget, RequestDeadline};
use crate::error::BoxError;

static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Bounds each request, its response body included, by one deadline: see [`DeadlineLayer`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_hardened::{DeadlineLayer, RequestDeadline};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let svc = ServiceBuilder::new()
///     .layer(DeadlineLayer::new(Duration::from_secs(5)))
///     .service(service_fn(|req: Request<String>| async move {
///         // Inner layers and services see the deadline.
///         assert!(RequestDeadline::of(&req).is_some());
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
///     }));
/// let resp = svc.oneshot(Request::new(String::new())).await?;
/// assert_eq!(resp.into_body().collect().await?.to_bytes(), "hi");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    pub(crate) inner: S,
    pub(crate) layer: DeadlineLayer,
}

impl<S> Deadline<S> {
    /// Wraps `inner` with the deadline of `layer`.
    pub fn new(inner: S, layer: DeadlineLayer) -> Self {
        Deadline { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Gives back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<DeadlineBody<RB>>;
    type Error = BoxError;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let stamp = Stamp::on(&mut req, &self.layer);
        let authority = req.uri().authority().cloned();
        DeadlineFuture::new(
            self.inner.call(req),
            stamp.deadline,
            stamp.expired,
            stamp.hop,
            self.layer.stats.clone(),
            authority,
        )
    }
}

/// A request's deadline as [`Deadline`] sets it, for whatever enforces it (the layer's future
/// and body, or the preset's own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) deadline: RequestDeadline,
    /// Gone when the request came in (a caller's earlier deadline, a zero `grpc-timeout`).
    pub(crate) expired: bool,
    /// The deadline the next hop was sent as `grpc-timeout`, if it was.
    pub(crate) hop: Option<tokio::time::Instant>,
    /// When the request came in (the clock read the deadline was set from).
    #[cfg_attr(not(feature = "preset"), allow(dead_code))]
    pub(crate) now: tokio::time::Instant,
}

impl Stamp {
    /// Sets `req`'s deadline by `layer`'s rules: the budget (a [`RequestBudget`] in the
    /// extensions, or the layer's), an earlier deadline kept, and with propagation on, the
    /// caller's `grpc-timeout` in and ours out. Inserts the deadline when it is the layer's.
    pub(crate) fn on<B>(req: &mut Request<B>, layer: &DeadlineLayer) -> Stamp {
        let (stamp, ours) = Stamp::compute(req, layer);
        if ours {
            req.extensions_mut().insert(stamp.deadline);
        }
        stamp
    }

    /// As [`Stamp::on`], but leaves the insertion to the caller: also says whether the
    /// deadline is the layer's (else it is an earlier one already in the extensions).
    #[inline]
    pub(crate) fn compute<B>(req: &mut Request<B>, layer: &DeadlineLayer) -> (Stamp, bool) {
        let budget = req
            .extensions()
            .get::<RequestBudget>()
            .map_or(layer.budget, RequestBudget::get);
        // One clock read for the new deadline and for whether the one kept is gone already.
        let now = tokio::time::Instant::now();
        let mut deadline = RequestDeadline::after_from(now, budget);
        let mut ours = true;
        if let Some(earlier) = RequestDeadline::of(req) {
            if earlier.instant() <= deadline.instant() {
                deadline = earlier;
                ours = false;
            }
        }
        // The deadline the next hop was sent, when it was (see `DeadlineFuture`).
        let mut hop = None;
        if layer.propagate {
            // A `grpc-timeout` the caller set (tonic's `Request::set_timeout`) is a deadline
            // too: kept when earlier, and then the header it came in is what goes out.
            let asked = req
                .headers()
                .get(&GRPC_TIMEOUT)
                .and_then(|v| v.to_str().ok())
                .and_then(RequestDeadline::parse_grpc_timeout)
                .map(|asked| RequestDeadline::after_from(now, asked));
            if let Some(asked) = asked.filter(|a| a.instant() < deadline.instant()) {
                deadline = asked;
                ours = true;
            }
            let (header, sent) = RequestDeadline::grpc_timeout(deadline.remaining());
            req.headers_mut().insert(GRPC_TIMEOUT.clone(), header);
            hop = Some(crate::clock::add(tokio::time::Instant::now(), sent));
        }
        let stamp = Stamp {
            deadline,
            expired: now >= deadline.instant(),
            hop,
            now,
        };
        (stamp, ours)
    }
}
