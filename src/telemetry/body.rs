use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::exchange::{Outcome, Recording};
use crate::error::BoxError;

pin_project! {
    /// The response body of [`Telemetry`](super::Telemetry): polls the inner body inside the
    /// request's span and ends the record (duration, `error.type`) when the body ends, fails
    /// or is dropped.
    ///
    /// Forwards `size_hint` and `is_end_stream` of the inner body.
    pub struct TelemetryBody<B> {
        #[pin]
        inner: B,
        rec: Option<Recording>,
    }
}

impl<B> std::fmt::Debug for TelemetryBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBody")
            .field("rec", &self.rec)
            .finish_non_exhaustive()
    }
}

impl<B: Body> TelemetryBody<B> {
    pub(crate) fn new(inner: B, mut rec: Recording) -> Self {
        // A body already over (HEAD, 204, an empty `Full`) ends the exchange at the headers.
        let rec = if inner.is_end_stream() {
            rec.finish(Outcome::Done);
            None
        } else {
            Some(rec)
        };
        TelemetryBody { inner, rec }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for TelemetryBody<B>
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
        let mut this = self.project();
        let res = {
            let _entered = this.rec.as_ref().map(|r| r.span.enter());
            ready!(this.inner.as_mut().poll_frame(cx))
        };
        let res = res.map(|r| r.map_err(Into::into));
        if let Some(mut rec) = this.rec.take() {
            match &res {
                None => rec.finish(Outcome::Done),
                Some(Err(e)) => rec.finish(Outcome::Failed(&**e)),
                Some(Ok(_)) if this.inner.is_end_stream() => rec.finish(Outcome::Done),
                Some(Ok(_)) => *this.rec = Some(rec),
            }
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
