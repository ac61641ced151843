//! [`ReplayLayer`] and its service [`Replay`].

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::body::SharedKept;
use super::policy::{self, BodyRule};
use super::{ReplayBody, ReplayFuture};
use crate::error::{BoxError, NotRetried};
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
/// [`RequestDeadline`](crate::RequestDeadline)); a deadline already gone fails it as [`Phase::Total`](crate::Phase::Total)
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
    pub(super) stats: Option<Stats>,
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
        Replay::new(inner, self.clone())
    }
}

/// The service of [`ReplayLayer`].
///
/// A replay is sent on a clone of the inner service, made (once for this service and its
/// clones) at its first request and again after [`get_mut`](Self::get_mut): a request that
/// may be replayed then costs no clone of the inner service.
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
pub struct Replay<S> {
    inner: S,
    shared: Arc<Shared<S>>,
}

/// What a service and its clones share: the settings, and the clone of the inner service
/// that replays are sent on.
pub(crate) struct Shared<S> {
    pub(crate) layer: ReplayLayer,
    svc: OnceLock<Snapshot<S>>,
}

/// The clone of the inner service that replays are cloned from, and how to clone it (so that
/// the response future needs no `S: Clone` of its own).
struct Snapshot<S> {
    svc: Mutex<S>,
    clone: fn(&S) -> S,
}

impl<S> Shared<S> {
    pub(crate) fn new(layer: ReplayLayer) -> Arc<Self> {
        Arc::new(Shared {
            layer,
            svc: OnceLock::new(),
        })
    }
}

impl<S> Shared<S> {
    /// A new clone of the inner service, for a replay.
    pub(crate) fn service(&self) -> S {
        let snap = self
            .svc
            .get()
            .expect("a replay's service is set by the request's call");
        // Clones only under the lock: a poisoned lock still holds a whole service.
        (snap.clone)(&snap.svc.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<S: fmt::Debug> fmt::Debug for Replay<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("inner", &self.inner)
            .field("layer", &self.shared.layer)
            .finish()
    }
}

impl<S: Clone> Clone for Replay<S> {
    fn clone(&self) -> Self {
        Replay {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> Replay<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: ReplayLayer) -> Self {
        Replay {
            inner,
            shared: Shared::new(layer),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Replays of requests sent after this use a clone of the
    /// service as changed.
    pub fn get_mut(&mut self) -> &mut S {
        self.shared = Shared::new(self.shared.layer.clone());
        &mut self.inner
    }

    /// Gives back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What a replay needs: the request without its body, the body kept, where to get a service;
/// then the replay waiting for that service to be ready.
pub(crate) struct Retry<S, B> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) parts: http::request::Parts,
    /// `None`: the body was empty.
    pub(crate) kept: Option<SharedKept>,
    /// The replay, waiting for its service to be ready (boxed: only a replay pays for it).
    #[allow(clippy::type_complexity)]
    pub(crate) pending: Option<Box<(S, Request<ReplayBody<B>>)>>,
    /// Bounds that wait by the request's deadline: nothing inside bounds it.
    pub(crate) sleep: crate::clock::LazySleep,
    /// The replay was sent.
    pub(crate) replaying: bool,
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
        let mut retry = Err(NotRetried::Replayed);
        let req = prepare(&self.shared, &self.inner, req, &mut retry);
        ReplayFuture::new(self.inner.call(req), retry.map(Box::new))
    }
}

/// Decides whether `req` may be replayed, by its method, headers and body, and keeps in
/// `retry` what a replay needs (a copy of the request's head and, for a small body, the body),
/// or why there is none. Returns the request for its first attempt, its body wrapped (kept when
/// small). `retry` is written in place: in the fused preset it is in the future's box already.
#[inline]
pub(crate) fn prepare<S: Clone, B: Body>(
    shared: &Arc<Shared<S>>,
    inner: &S,
    req: Request<B>,
    retry: &mut Result<Retry<S, B>, NotRetried>,
) -> Request<ReplayBody<B>> {
    let layer = &shared.layer;
    let verdict = policy::method(req.method(), req.headers(), layer.put_delete)
        .and_then(|()| policy::body(req.body()));
    let rule = match verdict {
        Err(why) => {
            *retry = Err(why);
            return req.map(ReplayBody::pass);
        }
        Ok(rule) => rule,
    };
    let (parts, body) = req.into_parts();
    let (body, kept) = match rule {
        BodyRule::Empty => (ReplayBody::pass(body), None),
        BodyRule::Keep => {
            let (body, kept) = ReplayBody::keep(body);
            (body, Some(kept))
        }
    };
    let copy = copy_parts(&parts);
    // The clone replays are sent on: made once, from the service before it takes its first
    // request (tower-service's "be careful when cloning inner services": a clone that is not
    // ready is polled ready before the replay).
    shared.svc.get_or_init(|| Snapshot {
        svc: Mutex::new(inner.clone()),
        clone: S::clone,
    });
    *retry = Ok(Retry {
        shared: shared.clone(),
        parts: copy,
        kept,
        pending: None,
        sleep: crate::clock::LazySleep::default(),
        replaying: false,
    });
    Request::from_parts(parts, body)
}

fn copy_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    if !parts.headers.is_empty() {
        copy.headers = parts.headers.clone();
    }
    copy.extensions = parts.extensions.clone();
    copy
}
