use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::exchange::{Outcome, Recording};
use super::TelemetryBody;
use crate::error::BoxError;

pin_project! {
    /// The response future of [`Telemetry`](super::Telemetry): polls the inner future inside
    /// the request's span and hands the record on to the body. Dropped before the headers, it
    /// records the request as `cancelled`.
    pub struct TelemetryFuture<F> {
        #[pin]
        inner: F,
        rec: Option<Recording>,
    }
}

impl<F> std::fmt::Debug for TelemetryFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryFuture")
            .field("rec", &self.rec)
            .finish_non_exhaustive()
    }
}

impl<F> TelemetryFuture<F> {
    pub(crate) fn new(inner: F, rec: Recording) -> Self {
        TelemetryFuture {
            inner,
            rec: Some(rec),
        }
    }
}

impl<F, RB, E> Future for TelemetryFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: http_body::Body,
{
    type Output = Result<Response<TelemetryBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = {
            let _entered = this.rec.as_ref().map(|r| r.span.enter());
            ready!(this.inner.poll(cx))
        };
        let mut rec = this
            .rec
            .take()
            .expect("TelemetryFuture polled after completion");
        Poll::Ready(match res {
            Ok(resp) => {
                rec.headers(resp.status());
                Ok(resp.map(|body| TelemetryBody::new(body, rec)))
            }
            Err(e) => {
                let e = e.into();
                rec.finish(Outcome::Failed(&*e));
                Err(e)
            }
        })
    }
}
