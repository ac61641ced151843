//! [`FusedBody`], the body side of the preset's fused outer guarantees.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
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
use crate::timeout::UploadWatch;

/// The response body of the fused service around the inner body `B`: holds both permits and
/// the telemetry record until it ends; bounded by [`Bounded`] (and by the request-write timeout
/// while the upload goes on); drained in the background (HTTP/1) when dropped before its end,
/// still bounded; watched while held.
///
/// Everything lives in one box (a drop hands the box to a background drain), so the body
/// itself is two words and moves for free with its response.
pub(super) struct FusedBody<B> {
    core: Option<Pin<Box<Core<B>>>>,
    drain: Option<DrainFn<Core<B>>>,
}

pin_project_lite::pin_project! {
    /// What a [`FusedBody`] holds.
    pub(super) struct Core<B> {
        #[pin]
        bounded: Bounded<B>,
        leak: Option<LeakKey>,
        // Released in this order: the global permit, the host's, then the record. One
        // `Option` for both: 8 bytes fewer to copy into the box. `None` once the exchange is
        // over (the body ended, failed, or was over at its head).
        permits: Option<(Permit, Permit)>,
        rec: Option<Recording>,
    }
}

impl<B> fmt::Debug for FusedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.as_deref();
        f.debug_struct("FusedBody")
            // Done: the permits are gone.
            .field("done", &core.is_none_or(Core::done))
            .finish_non_exhaustive()
    }
}

impl<B> FusedBody<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    #[inline]
    pub(super) fn new(
        inner: B,
        version: Version,
        permits: (Permit, Permit),
        upload: Option<UploadWatch>,
        mut rec: Recording,
        ctx: &mut Ctx,
    ) -> Self {
        let done = inner.is_end_stream();
        let now = Instant::now();
        let mut core = Core {
            bounded: Bounded::new(inner, upload, ctx, now),
            leak: None,
            permits: None,
            rec: None,
        };
        if done {
            // Over already (HEAD, 204, an empty body): the exchange ends at the headers.
            drop(permits);
            rec.finish(Outcome::Done);
        } else {
            if let (Some(registry), Some((method, uri))) =
                (&ctx.config.drain.leaks, ctx.held.take())
            {
                // The report is an event on the request's span.
                let span = rec.span.clone();
                core.leak = Some(registry.register_at(method, uri, now, span));
            }
            core.permits = Some(permits);
            core.rec = Some(rec);
        }
        FusedBody {
            core: Some(Box::pin(core)),
            drain: (version < Version::HTTP_2).then_some(|shared, body| shared.on_drop(body)),
        }
    }
}

impl<B> Core<B> {
    /// The exchange is over (its permits are gone).
    #[inline]
    fn done(&self) -> bool {
        self.permits.is_none()
    }

    /// The exchange is over: the permits go back, and the record ends with `outcome`.
    fn finish(self: Pin<&mut Self>, outcome: Outcome<'_>) {
        let mut this = self.project();
        this.bounded.as_mut().recycle();
        unwatch(this.leak, &this.bounded.config);
        drop(this.permits.take());
        if let Some(mut rec) = this.rec.take() {
            rec.finish(outcome);
        }
    }
}

#[inline]
fn unwatch(leak: &mut Option<LeakKey>, config: &Config) {
    if let (Some(key), Some(registry)) = (leak.take(), &config.drain.leaks) {
        registry.remove(key);
    }
}

impl<B> Body for FusedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let Some(core) = self.get_mut().core.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = {
            let this = core.as_mut().project();
            // The host's permit names the host in the log line of a bound that fires.
            let Some((_, host)) = this.permits.as_ref() else {
                return Poll::Ready(None);
            };
            let _entered = this.rec.as_ref().map(|r| r.span.enter());
            ready!(this.bounded.poll_bounded(Some(host), cx))
        };
        match &polled {
            Some(Ok(_)) if !core.bounded.is_end_stream() => {}
            Some(Ok(_)) | None => core.as_mut().finish(Outcome::Done),
            Some(Err(e)) => core.as_mut().finish(Outcome::Failed(&**e)),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.core
            .as_deref()
            .is_none_or(|c| c.done() || c.bounded.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match self.core.as_deref() {
            Some(c) if !c.done() => c.bounded.size_hint(),
            _ => SizeHint::with_exact(0),
        }
    }
}

/// What a background drain reads: the bounded body (the permits and the record are gone).
impl<B> Body for Core<B>
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
        // Inside a drain a bound that fires is only logged, without the host (the permits are
        // gone).
        self.project().bounded.poll_bounded(None, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.bounded.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.bounded.size_hint()
    }
}

impl<B> Drop for FusedBody<B> {
    fn drop(&mut self) {
        let Some(mut core) = self.core.take() else {
            return;
        };
        let this = core.as_mut().project();
        unwatch(this.leak, &this.bounded.config);
        if this.permits.is_none() {
            return;
        }
        let Some(drain) = self.drain else {
            // Dropped with it: the inner body first, then the permits and the record.
            return;
        };
        // The body goes to the drain first, then the permits and the record go.
        let (permits, rec) = (this.permits.take(), this.rec.take());
        let shared = this.bounded.config.drain.clone();
        drain(&shared, core);
        drop((permits, rec));
    }
}

pin_project_lite::pin_project! {
    /// The bounds of a response body, while it is read and while a dropped one is drained: the
    /// deadline (a frame ready past it is cut too, so an endless fast body ends), the idle
    /// bound (restarted by each frame, cut by the deadline) and the byte cap. A bound that
    /// fires is counted (only logged inside a background drain).
    pub(super) struct Bounded<B> {
        #[pin]
        inner: B,
        deadline: RequestDeadline,
        // When the idle clock last restarted (the head, then each frame); its bound is
        // computed only when a poll has to wait.
        idle_from: Instant,
        sleep: LazySleep,
        left: u64,
        // An upload still going on while the response streams (full duplex); the default
        // watches nothing.
        upload: UploadWatch,
        config: Arc<Config>,
        done: bool,
    }
}

impl<B> Bounded<B> {
    #[inline]
    fn new(inner: B, upload: Option<UploadWatch>, ctx: &Ctx, now: Instant) -> Self {
        let config = ctx.config.clone();
        let deadline = ctx.stamp.deadline;
        Bounded {
            inner,
            deadline,
            idle_from: now,
            sleep: LazySleep::default(),
            left: config.max_body,
            upload: upload.unwrap_or_default(),
            config,
            done: false,
        }
    }
}

impl<B> Bounded<B> {
    /// Its timer goes back to the client's pool (the body is over).
    #[inline]
    fn recycle(self: Pin<&mut Self>) {
        let this = self.project();
        this.sleep.recycle(&this.config.sleeps);
    }
}

impl<B> Bounded<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// The next frame, within the bounds; a bound that fires is logged with the host of
    /// `host`, the exchange's host permit.
    #[inline]
    fn poll_bounded(
        self: Pin<&mut Self>,
        host: Option<&Permit>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // An upload that stalled (counted where it fired) ends the exchange.
        if let Poll::Ready(bound) = this.upload.poll_fired(cx) {
            *this.done = true;
            return Poll::Ready(Some(Err(bound.error().into())));
        }
        let max = this.config.max_body;
        // Known too large before a byte is read: fail at once instead of reading up to the cap.
        if this.inner.size_hint().lower() > max {
            *this.done = true;
            return Poll::Ready(Some(Err(Error::body_too_large(max).into())));
        }
        let err = match this.inner.poll_frame(cx) {
            // A frame that is ready was sent by the peer in time, however late the caller
            // polls; only the deadline still applies to it.
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if now >= this.deadline.instant() {
                    Error::timeout(Phase::Total, this.deadline.budget())
                } else {
                    let n = frame.data_ref().map_or(0, |d| d.remaining() as u64);
                    let Some(left) = this.left.checked_sub(n) else {
                        *this.done = true;
                        return Poll::Ready(Some(Err(Error::body_too_large(max).into())));
                    };
                    *this.left = left;
                    // The idle clock restarts when a frame is handed on.
                    *this.idle_from = now;
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                return Poll::Ready(Some(Err(e.into())));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {
                let bound = Bound::new(
                    *this.idle_from,
                    this.config.body_idle,
                    Phase::BodyIdle,
                    Some(this.deadline),
                );
                ready!(this
                    .sleep
                    .poll_until_pooled(&this.config.sleeps, bound.at, cx));
                bound.error()
            }
        };
        *this.done = true;
        let authority = host.and_then(Permit::host_authority);
        fired(Some(&this.config.stats), authority.as_ref(), &err);
        Poll::Ready(Some(Err(err.into())))
    }
}

impl<B: Body> Bounded<B> {
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
    fn the_preset_clients_body_core_fits_the_fast_copy_into_its_box() {
        // glibc's memcpy copies up to 256 bytes without a loop.
        type Preset = crate::transport::TransportBody<
            super::super::HardenedRequestBody<super::super::erased::ErasedBody>,
        >;
        let size = std::mem::size_of::<Core<Preset>>();
        assert!(size <= 256, "{size}");
    }

    #[test]
    fn a_bound_is_logged_with_the_hosts_name_never_with_anothers_credentials() {
        use crate::limit::{Admission, Admit, PerHostLimitLayer};
        let mut limit = PerHostLimitLayer::new(4);
        let mut admit = |uri: &str| match limit.admit(&http::Request::get(uri).body(()).unwrap()) {
            Admission::Now(permit) => permit,
            _ => panic!("a free permit"),
        };
        // The first request made the host's entry; a later one to the same host shares it.
        let first = admit("http://alice:secret@a.test:8080/");
        let later = admit("http://a.test:8080/");
        for permit in [&first, &later] {
            let host = permit.host_authority().expect("a host's permit");
            assert_eq!(host.as_str(), "a.test:8080");
        }
        let global = crate::limit::ConcurrencyLimitLayer::new(1)
            .admit(&http::Request::get("http://a.test/").body(()).unwrap());
        let Admission::Now(global) = global else {
            panic!("a free permit")
        };
        assert!(global.host_authority().is_none());
    }
}
