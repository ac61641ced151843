use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use pin_project_lite::pin_project;
use reqwest::ResponseBuilderExt;
use tower_service::Service;

use crate::channels::split::{self, Split};
use crate::channels::{HeaderClock, HeaderHold};
use crate::error::BoxError;

/// A `reqwest::Client` as a service of `http` types, the innermost service of
/// [`HardenedReqwest`](super::HardenedReqwest): the request body is wrapped with
/// `reqwest::Body::wrap` (the layers above wrap it too, so it is no longer a `reqwest::Body`),
/// the response comes back as `http::Response<reqwest::Body>` with its final URL kept in the
/// extensions, where `reqwest::Response::from` finds it again.
///
/// While reqwest connects through a [`ConnectTimeoutLayer`](crate::ConnectTimeoutLayer) in its
/// `ClientBuilder::connector_layer`, the preset's response-header clock is held: it starts once
/// the connect is over, as it does on the crate's own transport, so a connect that hangs is a
/// connect timeout; a connect for a redirect or a retry stops it, and it starts anew after.
/// Without that layer reqwest's connect is invisible and the clock counts it, as it does when
/// a request waits for another request's connect (HTTP/2 with prior knowledge).
///
/// # Example
///
/// ```
/// use tower_hardened::reqwest::ReqwestService;
///
/// let svc = ReqwestService::new(reqwest::Client::new());
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// Sends requests with `client`.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService { client }
    }

    /// The client.
    pub fn get_ref(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<B> Service<http::Request<B>> for ReqwestService
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = BoxError;
    type Future = ReqwestServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's client is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Released after the first poll that saw no connect running (see the type's docs).
        let header_clock = req.extensions().get::<HeaderClock>().cloned();
        let header_hold = header_clock.as_ref().map(HeaderClock::hold);
        let req = reqwest::Request::try_from(req.map(reqwest::Body::wrap));
        ReqwestServiceFuture {
            header_clock,
            header_hold,
            state: match req {
                Ok(req) => State::Sending {
                    inner: Box::pin(self.client.execute(req)),
                },
                Err(e) => State::Failed { err: Some(e) },
            },
        }
    }
}

pin_project! {
    /// The future of [`ReqwestService`].
    pub struct ReqwestServiceFuture {
        // Holds an outer response-header clock while reqwest connects.
        header_clock: Option<HeaderClock>,
        header_hold: Option<HeaderHold>,
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        // reqwest's future (`Pending`) cannot be named: boxed, one allocation per request, as
        // reqwest boxes inside its own.
        Sending { inner: Pin<Box<dyn Future<Output = Result<reqwest::Response, reqwest::Error>> + Send>> },
        Failed { err: Option<reqwest::Error> },
    }
}

impl std::fmt::Debug for ReqwestServiceFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestServiceFuture")
            .finish_non_exhaustive()
    }
}

impl Future for ReqwestServiceFuture {
    type Output = Result<http::Response<reqwest::Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Sending { inner } => {
                let polled = if let Some(clock) = this.header_clock.as_ref() {
                    // reqwest polls its connect inside this poll (hyper-util's legacy client
                    // races it against the pool); a `ConnectTimeoutFuture` there says so.
                    let (polled, seen) = split::scope(Split::Unseen, || inner.as_mut().poll(cx));
                    if seen != Split::Connecting {
                        *this.header_hold = None;
                    } else if this.header_hold.is_none() {
                        // Connecting again (a redirect, a retry): the clock starts anew after.
                        *this.header_hold = Some(clock.hold_again());
                    }
                    polled
                } else {
                    inner.as_mut().poll(cx)
                };
                let resp = ready!(polled)?;
                Poll::Ready(Ok(to_http(resp)))
            }
            StateProj::Failed { err } => Poll::Ready(Err(err
                .take()
                .map_or_else(|| "tower-hardened: polled after its end".into(), Into::into))),
        }
    }
}

/// `reqwest::Response` → `http::Response<reqwest::Body>`, keeping the final URL where
/// `reqwest::Response::from` looks for it (reqwest's own conversion drops it).
fn to_http(resp: reqwest::Response) -> http::Response<reqwest::Body> {
    let url = resp.url().clone();
    let mut resp = http::Response::<reqwest::Body>::from(resp);
    let tagged = http::Response::builder()
        .url(url)
        .body(())
        .expect("an empty response with an extension is valid");
    resp.extensions_mut()
        .extend(tagged.into_parts().0.extensions);
    resp
}
