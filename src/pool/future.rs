use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Uri;
use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::error::Elapsed;
use tower_service::Service;

use super::hosts::{HostHandle, Slot};
use super::{jitter, ConnectionInfo, PoolConnectorLayer, PoolIo};
use crate::error::{BoxError, Error, Phase};

type Acquire = Pin<
    Box<
        dyn Future<Output = Result<Result<OwnedSemaphorePermit, AcquireError>, Elapsed>>
            + Send
            + Sync,
    >,
>;

pin_project! {
    /// The future of [`PoolConnector`](super::PoolConnector): waits for room under the
    /// per-host cap (bounded by the acquire timeout), then dials with the inner connector and
    /// wraps the connection in a [`PoolIo`].
    ///
    /// It is `Unpin` whenever the inner connector's future is, as hyper-util requires.
    pub struct PoolConnectFuture<C, F> {
        #[pin]
        state: State<C, F>,
        layer: Arc<PoolConnectorLayer>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<C, F> {
        // Only boxed when the cap is full: a dial under the cap goes straight to `Connecting`.
        Waiting {
            wait: Acquire,
            svc: Option<C>,
            dst: Option<Uri>,
            host: Option<HostHandle>,
        },
        Connecting {
            #[pin]
            fut: F,
            slot: Option<Slot>,
        },
        Done,
    }
}

impl<C, F> std::fmt::Debug for PoolConnectFuture<C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Waiting { .. } => "waiting for room under the per-host cap",
            State::Connecting { .. } => "connecting",
            State::Done => "done",
        };
        f.debug_struct("PoolConnectFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<C> PoolConnectFuture<C, C::Future>
where
    C: Service<Uri>,
{
    pub(crate) fn new(
        mut svc: C,
        dst: Uri,
        host: Option<HostHandle>,
        layer: Arc<PoolConnectorLayer>,
    ) -> Self {
        let state = match host {
            Some(host) => match host.state.sem.clone() {
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(permit) => State::Connecting {
                        fut: svc.call(dst),
                        slot: Some(Slot::new(host, Some(permit))),
                    },
                    Err(_) => {
                        tracing::trace!(authority = %host.key().1, "per-host connection cap reached, dial waits");
                        State::Waiting {
                            wait: Box::pin(tokio::time::timeout(
                                layer.acquire_timeout,
                                sem.acquire_owned(),
                            )),
                            svc: Some(svc),
                            dst: Some(dst),
                            host: Some(host),
                        }
                    }
                },
                None => State::Connecting {
                    fut: svc.call(dst),
                    slot: Some(Slot::new(host, None)),
                },
            },
            None => State::Connecting {
                fut: svc.call(dst),
                slot: None,
            },
        };
        PoolConnectFuture { state, layer }
    }
}

impl<C, T, E> Future for PoolConnectFuture<C, C::Future>
where
    C: Service<Uri, Response = T, Error = E>,
    E: Into<BoxError>,
{
    type Output = Result<PoolIo<T>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting {
                    wait,
                    svc,
                    dst,
                    host,
                } => {
                    let host_key = host.as_ref().map(|h| h.key().1.clone());
                    match ready!(wait.as_mut().poll(cx)) {
                        Ok(Ok(permit)) => {
                            let (Some(mut svc), Some(dst), Some(host)) =
                                (svc.take(), dst.take(), host.take())
                            else {
                                unreachable!("waiting state is entered with all three");
                            };
                            let fut = svc.call(dst);
                            this.state.set(State::Connecting {
                                fut,
                                slot: Some(Slot::new(host, Some(permit))),
                            });
                        }
                        Ok(Err(closed)) => {
                            // The semaphore is never closed; kept as an error, not a panic.
                            this.state.set(State::Done);
                            return Poll::Ready(Err(closed.into()));
                        }
                        Err(_elapsed) => {
                            this.state.set(State::Done);
                            let err = Error::timeout(Phase::Acquire, this.layer.acquire_timeout);
                            crate::channels::fired(
                                this.layer.stats.as_ref(),
                                host_key.as_ref(),
                                &err,
                            );
                            return Poll::Ready(Err(err.into()));
                        }
                    }
                }
                StateProj::Connecting { fut, slot } => {
                    let res = ready!(fut.poll(cx));
                    let slot = slot.take();
                    this.state.set(State::Done);
                    // On error the slot is dropped here: the permit goes back at once.
                    let io = res.map_err(Into::into)?;
                    let layer = &**this.layer;
                    let lifetime = layer
                        .max_lifetime
                        .map(|d| jitter::jittered(d, layer.jitter));
                    let info = ConnectionInfo::with_peers(
                        slot.as_ref().map(|s| s.key().clone()),
                        lifetime,
                        slot.as_ref().map(Slot::peers),
                    );
                    return Poll::Ready(Ok(PoolIo::new(
                        io,
                        info,
                        slot,
                        layer.stats.clone(),
                        layer.idle_timeout,
                    )
                    .write_stall(layer.write_stall)));
                }
                StateProj::Done => panic!("PoolConnectFuture polled after completion"),
            }
        }
    }
}
