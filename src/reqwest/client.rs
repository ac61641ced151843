use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ReqwestService;
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Error};
use crate::preset::HardenedService;

type Stack = HardenedService<ReqwestService>;
type StackFuture = <Stack as Service<http::Request<reqwest::Body>>>::Future;

/// A `reqwest::Client` with the request-side stack of a [`Hardened`](crate::Hardened) preset
/// around it, reqwest's own types at its edges: made by
/// [`Hardened::reqwest`](crate::Hardened::reqwest). See the [module docs](super).
///
/// # Example
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
/// let client = reqwest::Client::new();
/// let hardened = tower_hardened::Hardened::new().reqwest(client.clone());
///
/// let resp = hardened.send(client.get("http://127.0.0.1:8080/")).await?;
/// let resp = resp.error_for_status()?;
/// println!("{} from {}", resp.text().await?, "127.0.0.1");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HardenedReqwest {
    inner: Stack,
}

impl HardenedReqwest {
    pub(crate) fn new(inner: Stack) -> Self {
        HardenedReqwest { inner }
    }

    /// The `reqwest::Client` inside, to build requests with (`.get(url)`, `.post(url)`, ...).
    /// Send them with [`send`](Self::send) or [`execute`](Self::execute): the builder's own
    /// `send()` goes around the stack.
    pub fn client(&self) -> &reqwest::Client {
        self.inner.get_ref().get_ref()
    }

    /// Sends `req` through the stack. A `timeout` set on it is honoured as an earlier deadline.
    pub async fn execute(&self, req: reqwest::Request) -> Result<reqwest::Response, BoxError> {
        let mut svc = self.clone();
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    }

    /// Builds the request of `builder` and sends it through the stack (with this adapter's
    /// client: the one the builder was made from is not used).
    pub async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BoxError> {
        let (_, req) = builder.build_split();
        self.execute(req?).await
    }
}

impl Service<reqwest::Request> for HardenedReqwest {
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<reqwest::Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: reqwest::Request) -> Self::Future {
        // Taken out so that reqwest's own timer (started later, inside) does not race ours.
        let timeout = req.timeout_mut().take();
        let mut req = match http::Request::<reqwest::Body>::try_from(req) {
            Ok(req) => req,
            Err(e) => {
                return ReqwestFuture {
                    state: State::Failed {
                        err: Some(e.into()),
                    },
                }
            }
        };
        if let Some(timeout) = timeout {
            // reqwest's per-request timeout, as an earlier deadline (kept by `Deadline` when it
            // is earlier than the preset's total; an earlier one already there stays).
            let asked = RequestDeadline::after(timeout);
            if RequestDeadline::of(&req).is_none_or(|d| asked.instant() < d.instant()) {
                req.extensions_mut().insert(asked);
            }
        }
        ReqwestFuture {
            state: State::Calling {
                inner: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The future of [`HardenedReqwest`]: a `reqwest::Response` whose body runs through the
    /// stack's bodies.
    pub struct ReqwestFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Calling { #[pin] inner: StackFuture },
        Failed { err: Option<BoxError> },
    }
}

impl std::fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}

impl Future for ReqwestFuture {
    type Output = Result<reqwest::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { inner } => {
                let resp = ready!(inner.poll(cx))?;
                let resp = resp.map(|body| reqwest::Body::wrap(TimeoutAsIo { inner: body }));
                Poll::Ready(Ok(reqwest::Response::from(resp)))
            }
            StateProj::Failed { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| "tower-hardened: polled after its end".into()))),
        }
    }
}

pin_project! {
    /// The stack's response body as reqwest reads it: our timeouts become an `io::Error` of kind
    /// `TimedOut` (ours inside), which is what reqwest's `Error::is_timeout` looks for in the
    /// source chain of the errors it makes (`bytes()`, `text()`, `json()`, `chunk()`).
    pub(super) struct TimeoutAsIo<B> {
        #[pin]
        pub(super) inner: B,
    }
}

impl<B> Body for TimeoutAsIo<B>
where
    B: Body<Error = BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx).map_err(|err| {
            if Error::find(&*err).is_some_and(Error::is_timeout) {
                Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, err)) as BoxError
            } else {
                err
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
