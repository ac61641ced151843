//! The floor: the least a layer can do per request to give a deadline and a body-held permit
//! (one clock read, one request extension, one tokio timer armed when the response is not ready
//! at once, one semaphore permit moved into the body). Not a usable layer (no error when the
//! timer fires, no queue): only its costs are real. Shared by `benches/stack.rs` and
//! `examples/overhead.rs` (by `#[path]`), so both measure the same floor.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

#[derive(Clone)]
pub struct Floor<S> {
    pub inner: S,
    pub sem: Arc<Semaphore>,
}

#[derive(Clone, Copy)]
struct Deadline(#[allow(dead_code)] Instant);

impl<S, B, RB> tower::Service<http::Request<B>> for Floor<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Unpin,
{
    type Response = http::Response<PermitBody<RB>>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let at = Instant::now() + Duration::from_secs(30);
        req.extensions_mut().insert(Deadline(at));
        let permit = self.sem.clone().try_acquire_owned().ok();
        FloorFuture {
            inner: self.inner.call(req),
            at,
            sleep: None,
            permit,
        }
    }
}

pub struct FloorFuture<F> {
    inner: F,
    at: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl<F, RB, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>> + Unpin,
{
    type Output = Result<http::Response<PermitBody<RB>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(r) => {
                let permit = self.permit.take();
                Poll::Ready(r.map(|resp| resp.map(|b| PermitBody(b, permit))))
            }
            Poll::Pending => {
                let at = self.at;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                let _ = sleep.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }
}

pub struct PermitBody<B>(B, Option<OwnedSemaphorePermit>);

impl<B: http_body::Body + Unpin> http_body::Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let r = Pin::new(&mut self.0).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.1 = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// The floor around `inner`, with 256 permits (the preset's global limit).
pub fn floor<S>(inner: S) -> Floor<S> {
    Floor {
        inner,
        sem: Arc::new(Semaphore::new(256)),
    }
}
