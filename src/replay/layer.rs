//! [`ReplayLayer`] and its service [`Replay`].

use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::body::SharedKept;
use super::policy::{self, BodyRule};
use super::{ReplayBody, ReplayFuture};
use crate::deadline::RequestDeadline;
use crate::error::BoxError;
use crate::stats::Stats;

/// Sends a request once more when its reused connection was closed by the peer after the request
/// was written and before any byte of the response: the stale keep-alive race. Produces
/// [`Replay`].
///
/// A request is replayed when both hold:
///
/// | the request | replayed |
/// |---|---|
/// | GET, HEAD, OPTIONS, TRACE | yes |
/// | any method with an `Idempotency-Key` or `X-Idempotency-Key` header | yes |
/// | PUT, DELETE (idempotent by RFC 9110 §9.2.2) | only with [`replay_put_delete`](Self::replay_put_delete) |
/// | POST, PATCH, CONNECT and any other method | no |
/// | body empty, or with an exact size hint of at most 64 KiB (kept while it goes out) | yes |
/// | body of unknown size or larger | no |
///
/// (Go's `isReplayable` is the first two rows; Go too replays PUT and DELETE only with a key.)
/// A request is replayed at most once, with the same extensions (so within the same
/// [`RequestDeadline`]); a deadline already gone fails it as [`Phase::Total`](crate::Phase::Total)
/// instead. Errors of this crate — every timeout — are never replayed. A request that is not
/// replayed fails with [`ErrorKind::ConnectionClosed`](crate::ErrorKind::ConnectionClosed),
/// whose message says what happened and why it was not sent again.
///
/// Which failures qualify is told by the client: see the [module docs](crate::replay).
///
/// # Example
///
/// ```
/// use tower::Layer;
/// use tower_hardened::{PoolClientBuilder, ReplayLayer, Stats};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let stats = Stats::new();
/// let client = PoolClientBuilder::new()
///     .stats(stats.clone())
///     .build_http::<tower_hardened::ReplayBody<http_body_util::Empty<bytes::Bytes>>>();
/// let client = ReplayLayer::new().stats(stats.clone()).layer(client);
/// # let _ = client; }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReplayLayer {
    put_delete: bool,
    stats: Option<Stats>,
}

impl ReplayLayer {
    /// Replays GET, HEAD, OPTIONS, TRACE and requests with an idempotency key.
    pub fn new() -> Self {
        ReplayLayer::default()
    }

    /// Also replays PUT and DELETE (off by default: a server may not implement them
    /// idempotently).
    pub fn replay_put_delete(mut self, allow: bool) -> Self {
        self.put_delete = allow;
        self
    }

    /// Counts replays in `stats` ([`StatsSnapshot::replays`](crate::StatsSnapshot::replays)).
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl<S> Layer<S> for ReplayLayer {
    type Service = Replay<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Replay {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ReplayLayer`].
///
/// # Example
///
/// ```
/// use tower_hardened::{Replay, ReplayLayer};
///
/// let svc = Replay::new(tower::service_fn(|_req: http::Request<tower_hardened::ReplayBody<String>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }), ReplayLayer::new());
/// let _inner = svc.get_ref();
/// ```
#[derive(Debug, Clone)]
pub struct Replay<S> {
    inner: S,
    layer: ReplayLayer,
}

impl<S> Replay<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: ReplayLayer) -> Self {
        Replay { inner, layer }
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

/// What a replay needs: the request without its body, the body kept, the service.
pub(crate) struct Retry<S> {
    pub(crate) svc: S,
    pub(crate) parts: http::request::Parts,
    /// `None`: the body was empty.
    pub(crate) kept: Option<SharedKept>,
}

impl<S, B, RB> Service<Request<B>> for Replay<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ReplayFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let verdict = policy::method(req.method(), req.headers(), self.layer.put_delete)
            .and_then(|()| policy::body(req.body()));
        let deadline = RequestDeadline::of(&req);
        let authority = req.uri().authority().cloned();
        let stats = self.layer.stats.clone();
        match verdict {
            Err(why) => {
                let fut = self.inner.call(req.map(ReplayBody::pass));
                ReplayFuture::new(fut, Err(why), deadline, stats, authority)
            }
            Ok(rule) => {
                let (parts, body) = req.into_parts();
                let (body, kept) = match rule {
                    BodyRule::Empty => (ReplayBody::pass(body), None),
                    BodyRule::Keep => {
                        let (body, kept) = ReplayBody::keep(body);
                        (body, Some(kept))
                    }
                };
                let copy = copy_parts(&parts);
                // The ready service takes this request; a clone stays ready-less for the
                // replay (tower-service's "be careful when cloning inner services").
                let clone = self.inner.clone();
                let mut svc = std::mem::replace(&mut self.inner, clone);
                let fut = svc.call(Request::from_parts(parts, body));
                let retry = Retry {
                    svc,
                    parts: copy,
                    kept,
                };
                ReplayFuture::new(fut, Ok(retry), deadline, stats, authority)
            }
        }
    }
}

fn copy_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy.extensions = parts.extensions.clone();
    copy
}
