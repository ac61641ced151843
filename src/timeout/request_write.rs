//! [`RequestWriteTimeoutLayer`]: fails an exchange whose peer stops taking the request body.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::channels::{fired, HeaderClock, HeaderHold};
use crate::clock::{self, Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Phase};
use crate::stats::Stats;

/// Fails an exchange whose peer stops taking the request body: phase
/// [`RequestWrite`](Phase::RequestWrite) (or [`Total`](Phase::Total) when the request's
/// [`RequestDeadline`] comes first).
///
/// An upload is *stalled* when the client has handed a frame of the request body to the
/// connection and the connection does not ask for the next one within the limit — the peer
/// stopped reading, its receive window and our send buffers are full. Time during which the
/// request body itself has nothing to give (a slow producer) is **not** counted: that is the
/// caller's own pace, not the peer's fault. The clock only runs while the body is unfinished; a
/// request without a body costs nothing. The connection takes data in pieces of at most 64 KiB
/// (a larger frame is handed over in slices, zero-copy for `Bytes`), so one large frame — a
/// `Full` body — is watched while it goes out, not only until hyper queues it; the last piece
/// is watched until the connection asks for the end of the body, after which only the
/// connection's own write buffers are left to drain.
///
/// When it fires, the response future (or the response body, if the headers came first) fails,
/// and the request body answers the connection's next pull with the same error, so hyper closes
/// the connection instead of keeping a stuck upload alive. OkHttp's `writeTimeout`; Go and
/// reqwest have none.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_hardened::RequestWriteTimeoutLayer;
///
/// let layer = RequestWriteTimeoutLayer::new(Duration::from_secs(10));
/// # let _ = layer;
/// ```
///
/// # Panics
///
/// [`RequestWriteTimeoutLayer::new`] panics when the limit is zero.
#[derive(Debug, Clone)]
pub struct RequestWriteTimeoutLayer {
    limit: Duration,
    stats: Option<Stats>,
}

impl RequestWriteTimeoutLayer {
    /// The peer must take each frame of the request body within `limit`.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        clock::check_duration("RequestWriteTimeoutLayer limit", limit);
        RequestWriteTimeoutLayer { limit, stats: None }
    }

    /// Counts fired timeouts in `stats`, by phase.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The configured limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl<S> Layer<S> for RequestWriteTimeoutLayer {
    type Service = RequestWriteTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestWriteTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequestWriteTimeoutLayer`]: wraps the request body in a
/// [`RequestWriteBody`] and watches it.
#[derive(Debug, Clone)]
pub struct RequestWriteTimeout<S> {
    inner: S,
    layer: RequestWriteTimeoutLayer,
}

impl<S> RequestWriteTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: RequestWriteTimeoutLayer) -> Self {
        RequestWriteTimeout { inner, layer }
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

/// What the request body and the watchdog share.
#[derive(Debug, Default)]
struct State {
    /// A frame was handed over at this instant and the next one has not been asked for since.
    waiting_since: Option<Instant>,
    /// The request body ended, failed or was dropped: nothing more to watch.
    done: bool,
    /// The watchdog fired with this bound; the body reports it on its next pull.
    fired: Option<Bound>,
    /// Who to wake when a wait starts.
    waker: Option<Waker>,
    /// Keeps an outer response-header clock from starting until the body is sent.
    header_hold: Option<HeaderHold>,
}

impl State {
    /// The request body ended, failed or was dropped.
    fn finish(&mut self) {
        self.done = true;
        if let Some(mut hold) = self.header_hold.take() {
            hold.release();
        }
    }
}

/// One upload: the state the request body and the watchdog share, and what the watchdog needs
/// to bound and report a stall. Made only for a request with a body to watch, so a request
/// without one carries nothing of this layer but two empty words.
#[derive(Debug)]
struct Upload {
    state: Mutex<State>,
    limit: Duration,
    deadline: Option<RequestDeadline>,
    stats: Option<Stats>,
    authority: Option<Authority>,
}

type Shared = Arc<Upload>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock leaves the state consistent (plain assignments only).
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S, B, RB> Service<Request<B>> for RequestWriteTimeout<S>
where
    S: Service<Request<RequestWriteBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
{
    type Response = Response<RequestWriteTimeoutBody<RB>>;
    type Error = BoxError;
    type Future = RequestWriteTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = RequestDeadline::of(&req);
        let stats = self.layer.stats.as_ref();
        let (req, watch) = watch_upload(req, self.layer.limit, deadline, stats, None);
        RequestWriteTimeoutFuture {
            inner: self.inner.call(req),
            sleep: watch.sleep,
            watchdog: Some(watch.watchdog),
        }
    }
}

/// Wraps `req`'s body to time its upload (a stall longer than `limit` fails it, as does the
/// request's `deadline`), and gives the watch of that
/// upload from the response side. A body already over is not watched. The body holds the
/// request's response-header clock (`clock`, or else one in the extensions) until it is sent,
/// and carries `clock` for the client under it.
#[inline]
pub(crate) fn watch_upload<B: Body>(
    req: Request<B>,
    limit: Duration,
    deadline: Option<RequestDeadline>,
    stats: Option<&Stats>,
    clock: Option<HeaderClock>,
) -> (Request<RequestWriteBody<B>>, UploadWatch) {
    let shared: Option<Shared> = if req.body().is_end_stream() {
        None
    } else {
        let hold = clock
            .as_ref()
            .or_else(|| req.extensions().get::<HeaderClock>())
            .map(HeaderClock::hold);
        Some(Arc::new(Upload {
            state: Mutex::new(State {
                header_hold: hold,
                ..State::default()
            }),
            limit,
            deadline,
            stats: stats.cloned(),
            authority: req.uri().authority().cloned(),
        }))
    };
    let watch = UploadWatch {
        watchdog: Watchdog {
            shared: shared.clone(),
        },
        sleep: LazySleep::default(),
    };
    let req = req.map(|inner| RequestWriteBody {
        inner,
        guard: DoneOnDrop(shared),
        reported: false,
        rest: None,
        clock,
    });
    (req, watch)
}

/// The watch of one upload from the response side (see [`watch_upload`]). The default one
/// watches nothing.
#[derive(Debug, Default)]
pub(crate) struct UploadWatch {
    watchdog: Watchdog,
    sleep: LazySleep,
}

impl UploadWatch {
    /// Ready with the bound that fired, once the upload stalled past it (counted already).
    #[cfg_attr(not(feature = "preset"), allow(dead_code))]
    #[inline]
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<Bound> {
        // The fused body polls this on every frame, almost always with nothing watched: that
        // case is answered here, inlined, before the watchdog's own loop (which checks it too).
        if self.watchdog.shared.is_none() {
            return Poll::Pending;
        }
        self.watchdog.poll_fired(&mut self.sleep, cx)
    }
}

/// Marks the upload done when the request body goes away, so the watchdog stops.
#[derive(Debug)]
struct DoneOnDrop(Option<Shared>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 {
            let mut st = lock(shared);
            st.finish();
            st.waiting_since = None;
        }
    }
}

/// Watches the shared state from the response side.
#[derive(Debug, Default)]
struct Watchdog {
    /// `None`: nothing (more) to watch.
    shared: Option<Shared>,
}

impl Watchdog {
    /// Ready with the bound that fired; pending while the upload is fine or over.
    fn poll_fired(&mut self, sleep: &mut LazySleep, cx: &mut Context<'_>) -> Poll<Bound> {
        loop {
            let Some(shared) = &self.shared else {
                return Poll::Pending;
            };
            let mut st = lock(shared);
            if st.done {
                drop(st);
                self.shared = None;
                return Poll::Pending;
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            let Some(since) = st.waiting_since else {
                // Nothing handed over and not yet taken: the body's wake-up will wake us.
                return Poll::Pending;
            };
            let bound = Bound::new(
                since,
                shared.limit,
                Phase::RequestWrite,
                shared.deadline.as_ref(),
            );
            if Instant::now() >= bound.at {
                st.fired = Some(bound);
                drop(st);
                let err = bound.error();
                fired(shared.stats.as_ref(), shared.authority.as_ref(), &err);
                self.shared = None;
                return Poll::Ready(bound);
            }
            drop(st);
            // When the sleep fires, look again: the upload may have moved on since.
            ready!(sleep.poll_until(bound.at, cx));
        }
    }
}

/// The largest data frame handed to the connection at once. A larger frame is handed over in
/// slices of this size, so the connection asks for each slice when it has room for it and the
/// watch (and the hold on the response-header clock) lasts until the last slice is asked for:
/// a `Full` body of 32 MiB is not "sent" the moment hyper takes it into its write queue. What
/// stays unwatched is the connection's write buffer (hyper's, up to its `max_buf_size`, and the
/// kernel's socket buffer) at the very end.
const SLICE: usize = 64 * 1024;

pin_project! {
    /// The request body as the inner service sees it: records when the connection takes each
    /// frame, and hands data frames over in slices of at most 64 KiB (zero-copy for `Bytes`;
    /// other data types are copied into `Bytes`). `size_hint` and `is_end_stream` are the inner
    /// body's, plus what is left of a sliced frame.
    pub struct RequestWriteBody<B> {
        #[pin]
        inner: B,
        guard: DoneOnDrop,
        reported: bool,
        // What is left of a frame larger than a slice (boxed: never there for most bodies,
        // and this body is in every request the client under it moves around).
        rest: Option<Box<Bytes>>,
        // The request's response-header clock, for the crate's own transport when the preset
        // puts it here instead of in the extensions.
        clock: Option<HeaderClock>,
    }
}

impl<B> RequestWriteBody<B> {
    /// The response-header clock the body carries, if the preset gave it one.
    #[cfg_attr(not(feature = "preset"), allow(dead_code))]
    pub(crate) fn header_clock(&self) -> Option<&HeaderClock> {
        self.clock.as_ref()
    }

    /// Whether its upload is watched (it was not over when the request was sent).
    #[cfg_attr(not(feature = "preset"), allow(dead_code))]
    pub(crate) fn is_watched(&self) -> bool {
        self.guard.0.is_some()
    }
}

impl<B> std::fmt::Debug for RequestWriteBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestWriteBody").finish_non_exhaustive()
    }
}

/// A frame with its data as `Bytes` (a no-op for `Bytes`, a copy for other data types).
fn into_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

impl<B> Body for RequestWriteBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let Some(shared) = &this.guard.0 else {
            let res = ready!(this.inner.poll_frame(cx));
            return Poll::Ready(res.map(|r| r.map(into_bytes).map_err(Into::into)));
        };
        {
            let mut st = lock(shared);
            if let Some(bound) = st.fired {
                if *this.reported {
                    return Poll::Ready(None);
                }
                *this.reported = true;
                return Poll::Ready(Some(Err(bound.error().into())));
            }
            // The connection asks for more: whatever was handed over has been taken.
            st.waiting_since = None;
        }
        let res = match this.rest {
            None => ready!(this.inner.poll_frame(cx)).map(|r| {
                r.map(|frame| {
                    let mut frame = into_bytes(frame);
                    if let Some(data) = frame.data_mut().filter(|d| d.len() > SLICE) {
                        *this.rest = Some(Box::new(data.split_off(SLICE)));
                    }
                    frame
                })
                .map_err(Into::into)
            }),
            Some(rest) => {
                let n = rest.len().min(SLICE);
                let slice = rest.split_to(n);
                if rest.is_empty() {
                    *this.rest = None;
                }
                Some(Ok(Frame::data(slice)))
            }
        };
        let mut st = lock(shared);
        match &res {
            Some(Ok(_)) => st.waiting_since = Some(Instant::now()),
            Some(Err(_)) | None => st.finish(),
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        drop(st);
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        let rest = self.rest.as_ref().map_or(0, |r| r.len() as u64);
        if rest == 0 {
            return hint;
        }
        // Upper first: `set_lower` checks against it.
        let mut out = SizeHint::new();
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_add(rest));
        }
        out.set_lower(hint.lower().saturating_add(rest));
        out
    }
}

pin_project! {
    /// The response future of [`RequestWriteTimeout`].
    pub struct RequestWriteTimeoutFuture<F> {
        #[pin]
        inner: F,
        sleep: LazySleep,
        watchdog: Option<Watchdog>,
    }
}

impl<F> std::fmt::Debug for RequestWriteTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestWriteTimeoutFuture")
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for RequestWriteTimeoutFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RequestWriteTimeoutBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            let resp = res.map_err(Into::into)?;
            let watchdog = this
                .watchdog
                .take()
                .expect("RequestWriteTimeoutFuture polled after completion");
            return Poll::Ready(Ok(resp.map(|inner| RequestWriteTimeoutBody {
                inner,
                sleep: std::mem::take(this.sleep),
                watchdog,
                done: false,
            })));
        }
        let watchdog = this
            .watchdog
            .as_mut()
            .expect("RequestWriteTimeoutFuture polled after completion");
        let bound = ready!(watchdog.poll_fired(this.sleep, cx));
        Poll::Ready(Err(bound.error().into()))
    }
}

pin_project! {
    /// The response body of [`RequestWriteTimeout`]: keeps watching an upload that goes on after
    /// the response headers arrived. Forwards `size_hint` and `is_end_stream`.
    pub struct RequestWriteTimeoutBody<B> {
        #[pin]
        inner: B,
        sleep: LazySleep,
        watchdog: Watchdog,
        done: bool,
    }
}

impl<B> std::fmt::Debug for RequestWriteTimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestWriteTimeoutBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> Body for RequestWriteTimeoutBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(bound) = this.watchdog.poll_fired(this.sleep, cx) {
            *this.done = true;
            return Poll::Ready(Some(Err(bound.error().into())));
        }
        let res = ready!(this.inner.poll_frame(cx));
        if !matches!(res, Some(Ok(_))) {
            *this.done = true;
        }
        Poll::Ready(res.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_request_carries_is_small() {
        // Everything a watch needs is in one `Arc`, made only for a request with a body: the
        // future and the response body, which move up the stack, add two or three words.
        type F = std::future::Ready<Result<Response<()>, BoxError>>;
        let word = std::mem::size_of::<usize>();
        assert!(
            std::mem::size_of::<RequestWriteTimeoutFuture<F>>()
                <= std::mem::size_of::<F>() + 3 * word
        );
        assert!(std::mem::size_of::<RequestWriteTimeoutBody<()>>() <= 3 * word);
    }
}
