//! [`FusedBody`], the body side of the preset's fused outer guarantees.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http::uri::Authority;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::fused::{Config, Ctx};
use crate::channels::fired;
use crate::clock::{Bound, LazySleep};
use crate::deadline::RequestDeadline;
use crate::drain::{DrainFn, LeakKey};
use crate::error::{BoxError, Error, Phase};
use crate::limit::Permit;
use crate::telemetry::{Outcome, Recording};

/// The response body of the fused service around the inner body `B`: holds both permits and
/// the telemetry record until it ends; cut at the deadline and when idle too long; capped in
/// bytes; drained in the background (HTTP/1) when dropped before its end; watched while held.
pub(super) struct FusedBody<B> {
    /// Boxed so that a drop can hand it to a background drain.
    inner: Option<Pin<Box<B>>>,
    done: bool,
    config: Arc<Config>,
    deadline: RequestDeadline,
    authority: Option<Authority>,
    /// The idle bound, cut by the deadline; restarted by each frame.
    bound: Bound,
    sleep: LazySleep,
    left: u64,
    drain: Option<DrainFn<B>>,
    leak: Option<LeakKey>,
    // Released in this order: the global permit, the host's, then the record.
    global: Option<Permit>,
    host: Option<Permit>,
    rec: Option<Recording>,
}

impl<B> fmt::Debug for FusedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FusedBody")
            .field("done", &self.done)
            .field("fires_at", &self.bound.at)
            .field("phase", &self.bound.phase)
            .field("holds_permits", &self.global.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> FusedBody<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(
        inner: B,
        version: Version,
        (host, global): (Permit, Permit),
        mut rec: Recording,
        ctx: &Ctx,
    ) -> Self {
        let config = ctx.config.clone();
        let deadline = ctx.stamp.deadline;
        let bound = Bound::new(
            Instant::now(),
            config.body_idle,
            Phase::BodyIdle,
            Some(&deadline),
        );
        let mut body = FusedBody {
            inner: None,
            done: inner.is_end_stream(),
            left: config.max_body,
            drain: (version < Version::HTTP_2).then_some(|shared, body| shared.on_drop(body)),
            leak: None,
            global: None,
            host: None,
            rec: None,
            deadline,
            authority: ctx.authority.clone(),
            bound,
            sleep: LazySleep::default(),
            config,
        };
        if body.done {
            // Over already (HEAD, 204, an empty body): the exchange ends at the headers.
            rec.finish(Outcome::Done);
        } else {
            body.global = Some(global);
            body.host = Some(host);
            body.rec = Some(rec);
            if let (Some(registry), Some((method, uri))) = (&body.config.drain.leaks, &ctx.held) {
                body.leak = Some(registry.register(method.clone(), uri.clone()));
            }
        }
        body.inner = Some(Box::pin(inner));
        body
    }
}

impl<B> FusedBody<B> {
    /// The exchange is over: the permits go back, and the record ends with `outcome`.
    fn finish(&mut self, outcome: Outcome<'_>) {
        self.done = true;
        self.unwatch();
        drop(self.global.take());
        drop(self.host.take());
        if let Some(mut rec) = self.rec.take() {
            rec.finish(outcome);
        }
    }

    fn unwatch(&mut self) {
        if let (Some(key), Some(registry)) = (self.leak.take(), &self.config.drain.leaks) {
            registry.remove(key);
        }
    }

    /// A bound of ours ended the body: counted, and the exchange over.
    fn cut(&mut self, err: Error) -> BoxError {
        fired(Some(&self.config.stats), self.authority.as_ref(), &err);
        let err: BoxError = err.into();
        self.finish(Outcome::Failed(&*err));
        err
    }

    fn too_large(&mut self) -> BoxError {
        let err: BoxError = Error::body_too_large(self.config.max_body).into();
        self.finish(Outcome::Failed(&*err));
        err
    }
}

impl<B> Body for FusedBody<B>
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
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // Known too large before a byte is read: fail at once instead of reading up to the cap.
        if inner.size_hint().lower() > this.left {
            return Poll::Ready(Some(Err(this.too_large())));
        }
        let polled = {
            let _entered = this.rec.as_ref().map(|r| r.span.enter());
            inner.as_mut().poll_frame(cx)
        };
        match polled {
            // A frame that is ready was sent by the peer in time, however late the caller
            // polls; only the deadline still applies to it (so an endless fast body is cut too).
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if now >= this.deadline.instant() {
                    let err = Error::timeout(Phase::Total, this.deadline.budget());
                    return Poll::Ready(Some(Err(this.cut(err))));
                }
                let n = frame.data_ref().map_or(0, |d| d.remaining() as u64);
                let Some(left) = this.left.checked_sub(n) else {
                    return Poll::Ready(Some(Err(this.too_large())));
                };
                this.left = left;
                if inner.is_end_stream() {
                    this.finish(Outcome::Done);
                } else {
                    // The idle clock restarts when a frame is handed to the caller.
                    this.bound = Bound::new(
                        now,
                        this.config.body_idle,
                        Phase::BodyIdle,
                        Some(&this.deadline),
                    );
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let err: BoxError = e.into();
                this.finish(Outcome::Failed(&*err));
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Done);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.sleep.poll_until(this.bound.at, cx));
                let err = this.bound.error();
                Poll::Ready(Some(Err(this.cut(err))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) if !self.done => b.size_hint(),
            _ => SizeHint::with_exact(0),
        }
    }
}

impl<B> Drop for FusedBody<B> {
    fn drop(&mut self) {
        self.unwatch();
        if !self.done {
            if let (Some(body), Some(drain)) = (self.inner.take(), self.drain) {
                drain(&self.config.drain, body);
            }
        }
        // Then the permits and the record, in the fields' order.
    }
}
