use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tonic::Status;

use super::{status_of, GrpcBody};
use crate::error::BoxError;

pin_project! {
    /// The response future of [`Grpc`](super::Grpc): its error is a [`Status`]
    /// ([`status_of`]), its body a [`GrpcBody`].
    pub struct GrpcFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> GrpcFuture<F> {
    pub(crate) fn new(inner: F) -> Self {
        GrpcFuture { inner }
    }
}

impl<F> std::fmt::Debug for GrpcFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for GrpcFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<GrpcBody<RB>>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(|res| match res {
            Ok(resp) => Ok(resp.map(GrpcBody::new)),
            Err(e) => Err(status_of(e.into())),
        })
    }
}
