//! [`ReplayBody`]: the request body under a [`Replay`](super::Replay), kept for a replay while it
//! goes out.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::policy::MAX_REPLAY_BODY;
use crate::error::BoxError;

/// What was kept of a request body while it went out.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
    /// The whole body went out: `chunks` and `trailers` are all of it.
    complete: bool,
    /// More than the cap, or a failed body: nothing to replay.
    spoiled: bool,
}

pub(crate) type SharedKept = Arc<Mutex<Kept>>;

fn lock(kept: &SharedKept) -> MutexGuard<'_, Kept> {
    // Plain assignments and pushes only: a poisoned lock is still consistent.
    kept.lock().unwrap_or_else(|e| e.into_inner())
}

/// The body of a replay, if the first attempt's body was kept whole.
pub(crate) fn replay_of(kept: &SharedKept) -> Option<(Vec<Bytes>, Option<HeaderMap>)> {
    let k = lock(kept);
    (k.complete && !k.spoiled).then(|| (k.chunks.clone(), k.trailers.clone()))
}

pin_project! {
    /// The request body a [`Replay`](super::Replay) hands to its inner service: the caller's
    /// body `B` as it is (its frames' data as [`Bytes`]), copied aside while it goes out when
    /// the request may be replayed (bodies of at most 64 KiB, by their exact size hint); or, on
    /// the replay, what was kept.
    ///
    /// Forwards `size_hint` and `is_end_stream` of `B`; a replayed body reports its exact size.
    ///
    /// # Example
    ///
    /// ```
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_hardened::{ReplayBody, ReplayLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hardened::BoxError> {
    /// let inner = service_fn(|req: Request<ReplayBody<Full<bytes::Bytes>>>| async move {
    ///     assert_eq!(http_body::Body::size_hint(req.body()).exact(), Some(2));
    ///     Ok::<_, std::convert::Infallible>(Response::new(()))
    /// });
    /// let svc = ReplayLayer::new().layer(inner);
    /// svc.oneshot(Request::put("http://a.test/").body(Full::from("hi"))?).await?;
    /// # Ok(()) }
    /// ```
    pub struct ReplayBody<B> {
        #[pin]
        state: State<B>,
    }
}

/// The body of a replay.
struct Replayed {
    chunks: std::collections::VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

pin_project! {
    #[project = StateProj]
    enum State<B> {
        // Forwarded, not kept.
        Pass { #[pin] inner: B },
        // Forwarded and kept.
        Keep { #[pin] inner: B, kept: SharedKept },
        // The replay: what was kept. Boxed: this body is inside every request the client
        // under the replay layer moves around, and the replay is rare.
        Replayed { kept: Box<Replayed> },
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Pass { .. } => "pass",
            State::Keep { .. } => "keep",
            State::Replayed { .. } => "replayed",
        };
        f.debug_struct("ReplayBody").field("state", &state).finish()
    }
}

impl<B> ReplayBody<B> {
    pub(crate) fn pass(inner: B) -> Self {
        ReplayBody {
            state: State::Pass { inner },
        }
    }

    pub(crate) fn keep(inner: B) -> (Self, SharedKept) {
        let kept = SharedKept::default();
        let body = ReplayBody {
            state: State::Keep {
                inner,
                kept: kept.clone(),
            },
        };
        (body, kept)
    }

    pub(crate) fn replayed(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> Self {
        ReplayBody {
            state: State::Replayed {
                kept: Box::new(Replayed {
                    chunks: chunks.into(),
                    trailers,
                }),
            },
        }
    }
}

fn into_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().state.project() {
            StateProj::Pass { inner } => Poll::Ready(
                ready!(inner.poll_frame(cx)).map(|r| r.map(into_bytes).map_err(Into::into)),
            ),
            StateProj::Keep { mut inner, kept } => {
                let polled = ready!(inner.as_mut().poll_frame(cx));
                let mut k = lock(kept);
                match polled {
                    Some(Ok(frame)) => {
                        let frame = into_bytes(frame);
                        if let Some(data) = frame.data_ref() {
                            k.len += data.len() as u64;
                            if k.len > MAX_REPLAY_BODY {
                                // Longer than its size hint said: not kept.
                                k.spoiled = true;
                                k.chunks = Vec::new();
                            } else if !data.is_empty() {
                                k.chunks.push(data.clone());
                            }
                        } else if let Some(trailers) = frame.trailers_ref() {
                            k.trailers = Some(trailers.clone());
                        }
                        if inner.is_end_stream() {
                            k.complete = true;
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => {
                        k.spoiled = true;
                        Poll::Ready(Some(Err(e.into())))
                    }
                    None => {
                        k.complete = true;
                        Poll::Ready(None)
                    }
                }
            }
            StateProj::Replayed { kept } => {
                if let Some(data) = kept.chunks.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(kept.trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Pass { inner } | State::Keep { inner, .. } => inner.is_end_stream(),
            State::Replayed { kept } => kept.chunks.is_empty() && kept.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Pass { inner } | State::Keep { inner, .. } => inner.size_hint(),
            State::Replayed { kept } => {
                SizeHint::with_exact(kept.chunks.iter().map(|c| c.len() as u64).sum())
            }
        }
    }
}
