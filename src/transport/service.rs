use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use http::header::HOST;
use http::{Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use super::body::TransportBody;
use super::builder::TransportBuilder;
use super::conn::{until_ended, Conn, Key, Proto};
use super::error::ConnectionError;
use crate::channels::{HeaderClock, HeaderHold};
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Error};
use crate::io_watch::keep_alive_hint;
use crate::pool::Pool;
use crate::replay::lost::{find, FreshConnection};
use crate::telemetry::Exchange;

/// An HTTP client of this crate's own: hyper's `client::conn` HTTP/1 and HTTP/2 connections
/// over the keyed [`Pool`], so that every pool bound is exact. Built with
/// [`Transport::builder`]; see the [module docs](super).
///
/// It is a `tower::Service<http::Request<B>>` for request bodies of type `B`; clones share one
/// pool. Requests need an absolute URI (scheme and authority). It is always ready: waiting for
/// a connection happens in the response future, bounded by the acquire timeout and the
/// request's [`RequestDeadline`].
///
/// # Example
///
/// ```
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
/// use tower_hardened::Transport;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_hardened::BoxError> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # tokio::spawn(async move { loop {
/// #     let (s, _) = listener.accept().await.unwrap();
/// #     tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
/// #         hyper_util::rt::TokioIo::new(s),
/// #         hyper::service::service_fn(|_| async {
/// #             Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("ok"))))
/// #         })));
/// # } });
/// let transport = Transport::builder().max_idle(10).build::<Empty<bytes::Bytes>>();
/// let uri: http::Uri = format!("http://{addr}/").parse()?;
///
/// let resp = transport.clone().oneshot(http::Request::get(uri.clone()).body(Empty::new())?).await?;
/// assert_eq!(resp.into_body().collect().await?.to_bytes(), "ok");
/// # tokio::task::yield_now().await;
/// assert_eq!(transport.idle_connections(), 1); // back in the pool
/// # Ok(()) }
/// ```
pub struct Transport<B: Send + 'static> {
    pool: Pool<Key, Conn<B>>,
    clock_of: ClockOf<B>,
    /// Takes the clock the fused preset hands over with [`hand_clock`] (set by `with_clock_of`).
    handed: bool,
}

/// Where the transport finds a request's response-header clock: in its extensions, or (for the
/// preset, which puts an upload's in the request body it wraps anyway) where the preset says.
/// The preset hands over the clock of a request whose body is over with [`hand_clock`].
pub(crate) type ClockOf<B> = fn(&Request<B>) -> Option<&HeaderClock>;

fn clock_in_extensions<B>(req: &Request<B>) -> Option<&HeaderClock> {
    req.extensions().get::<HeaderClock>()
}

#[cfg(feature = "preset")]
thread_local! {
    static HANDED: std::cell::Cell<Option<HeaderClock>> = const { std::cell::Cell::new(None) };
}

/// Hands `clock` to the next call of a transport made `with_clock_of` on this thread: the fused
/// preset's clock for a request whose body is over when sent, which then needs no body (nor
/// extension map) to carry it. Called right before that call, which takes it. (On a thread
/// whose thread-locals are being destroyed the clock is dropped: the request then runs with the
/// clock unheld and no deadline for its checkout other than the acquire timeout, as under
/// `Fused`'s own bounds.)
#[cfg(feature = "preset")]
#[inline]
pub(crate) fn hand_clock(clock: HeaderClock) {
    let _ = HANDED.try_with(|slot| {
        let stale = slot.replace(Some(clock));
        debug_assert!(stale.is_none(), "a handed header clock was never taken");
    });
}

/// Whether a clock handed over on this thread is still waiting for its call.
#[cfg(all(test, feature = "preset"))]
pub(crate) fn clock_handed() -> bool {
    HANDED.with(|slot| {
        let clock = slot.take();
        let handed = clock.is_some();
        slot.set(clock);
        handed
    })
}

impl Transport<()> {
    /// A builder with the documented defaults (see [`TransportBuilder`]).
    pub fn builder() -> TransportBuilder {
        TransportBuilder::new()
    }
}

impl<B: Send + 'static> Transport<B> {
    pub(crate) fn from_pool(pool: Pool<Key, Conn<B>>) -> Self {
        Transport {
            pool,
            clock_of: clock_in_extensions::<B>,
            handed: false,
        }
    }

    /// Finds each request's response-header clock with `clock_of` (see [`ClockOf`]), or takes
    /// the one handed over with [`hand_clock`].
    #[cfg(feature = "preset")]
    pub(crate) fn with_clock_of(mut self, clock_of: ClockOf<B>) -> Self {
        self.clock_of = clock_of;
        self.handed = true;
        self
    }

    /// Idle connections in the pool, all hosts together.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    /// Connections to `uri`'s scheme and authority dialing, in use and idle (what
    /// `max_conns_per_host` bounds).
    pub fn open_connections(&self, uri: &Uri) -> usize {
        key_of(uri).map_or(0, |k| self.pool.open_of(&k))
    }

    /// Idle connections to `uri`'s scheme and authority.
    pub fn idle_connections_to(&self, uri: &Uri) -> usize {
        key_of(uri).map_or(0, |k| self.pool.idle_of(&k))
    }
}

impl<B: Send + 'static> Clone for Transport<B> {
    fn clone(&self) -> Self {
        Transport {
            pool: self.pool.clone(),
            clock_of: self.clock_of,
            handed: self.handed,
        }
    }
}

impl<B: Send + 'static> fmt::Debug for Transport<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("pool", &self.pool)
            .finish()
    }
}

fn key_of(uri: &Uri) -> Result<Key, BoxError> {
    match (uri.scheme(), uri.authority()) {
        (Some(s), Some(a)) => Ok(Key::new(s.clone(), a.clone())),
        _ => Err(format!(
            "tower-hardened: the transport needs an absolute request URI (scheme and \
             authority), got `{uri}`"
        )
        .into()),
    }
}

impl<B> Service<Request<B>> for Transport<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<TransportBody<B>>;
    type Error = BoxError;
    type Future = TransportFuture<B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    #[inline(always)]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        #[cfg(feature = "preset")]
        let handed = if self.handed {
            HANDED.try_with(std::cell::Cell::take).ok().flatten()
        } else {
            None
        };
        #[cfg(not(feature = "preset"))]
        let handed = None;
        let clocks = Clocks {
            of: self.clock_of,
            handed,
        };
        TransportFuture {
            inner: Mutex::new(Box::pin(send(self.pool.clone(), clocks, req))),
        }
    }
}

type Output<B> = Result<Response<TransportBody<B>>, BoxError>;

/// Where a request's response-header clock is: in the request (its extensions, or where
/// `clock_of` says), or else handed over with the call (see [`hand_clock`]).
struct Clocks<B> {
    of: ClockOf<B>,
    handed: Option<HeaderClock>,
}

impl<B> Clocks<B> {
    fn of<'a>(&'a self, req: &'a Request<B>) -> Option<&'a HeaderClock> {
        (self.of)(req).or(self.handed.as_ref())
    }
}

/// The response future of [`Transport`]. `Send` and `Sync`.
pub struct TransportFuture<B: Send + 'static> {
    // In a `Mutex` only to be `Sync` (as hyper-util's futures are); polls reach it through
    // `get_mut`, without locking.
    inner: Mutex<Pin<Box<dyn Future<Output = Output<B>> + Send>>>,
}

impl<B: Send + 'static> Future for TransportFuture<B> {
    type Output = Output<B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .poll(cx)
    }
}

impl<B: Send + 'static> fmt::Debug for TransportFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportFuture").finish_non_exhaustive()
    }
}

/// One request: a connection from the pool (one dialed for it if it carries
/// [`FreshConnection`], a replay), the request on it, and at most one retry, on a connection
/// dialed for it, when hyper gave the request back unsent. A request written on a reused HTTP/1
/// connection that the peer closed before any byte of the response is marked lost (see
/// [`lost_before_response`]).
async fn send<B>(pool: Pool<Key, Conn<B>>, clocks: Clocks<B>, mut req: Request<B>) -> Output<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let key = key_of(req.uri())?;
    // An outer response-header clock starts once the connection is obtained: the wait for it
    // is bounded by the acquire timeout, a dial by the connect timeout. It is held only if the
    // checkout waits (see `held_while_waiting`).
    let mut hold = None;
    let fresh = req.extensions().get::<FreshConnection>().is_some();
    let exchange = Exchange::of(&req);
    let mut retried = false;
    // Set for the retry of an HTTP/1 request never written: it goes to a new connection, since
    // its idle peers are as stale as the one that was closing (a server closes many at once).
    // An HTTP/2 retry (its connection was going away) takes an ordinary checkout, so the
    // requests a GOAWAY hands back share the next connection instead of dialing one each.
    let mut retry_fresh = false;
    loop {
        // Boxed once: a checkout is about 250 bytes, and the response body keeps it.
        let clock = clocks.of(&req);
        // The same on a retry (the request handed back carries what it carried).
        let deadline = deadline_of(&req, clock);
        let mut lease = Box::new(if fresh || retry_fresh {
            let checkout = pool.checkout_fresh_until(key.clone(), deadline);
            held_while_waiting(checkout, clock, &mut hold).await?
        } else {
            let checkout = pool.checkout_until(key.clone(), deadline);
            held_while_waiting(checkout, clock, &mut hold).await?
        });
        drop(hold.take());
        if let Some(exchange) = &exchange {
            exchange.got_connection(&lease.meter);
        }
        let h1 = matches!(lease.proto, Proto::H1(..));
        if h1 {
            if !req.headers().contains_key(HOST) {
                req.headers_mut().insert(HOST, lease.host.clone());
            }
            if !lease.connected.is_proxied() {
                origin_form(req.uri_mut());
            }
        }
        let reads_before = lease.wire.reads();
        let sent = match &mut lease.proto {
            Proto::H1(tx, _) => {
                // hyper's future does not borrow `tx`, so the connection can be closed under it.
                let sending = tx.try_send_request(req);
                until_ended(sending, &mut lease.proto).await
            }
            Proto::H2(tx, _) => tx.try_send_request(req).await,
            Proto::Closed => unreachable!("a connection is closed only under its exchange"),
        };
        let mut err = match sent {
            Ok(resp) => {
                if h1 {
                    lease.wire.keep_alive_hint(keep_alive_hint(&resp));
                }
                let (mut parts, body) = resp.into_parts();
                lease.connected.get_extras(&mut parts.extensions);
                return Ok(Response::from_parts(parts, TransportBody::new(body, lease)));
            }
            Err(err) => err,
        };
        let (reused, idle_for) = (lease.is_reused(), lease.idle_for());
        let back = err.take_message();
        let lost = h1
            && reused
            && back.is_none()
            && lost_before_response(err.error(), lease.wire.reads() - reads_before);
        if h1 {
            // hyper closes an HTTP/1 connection whose exchange failed.
            (*lease).discard();
        } else {
            drop(lease);
        }
        match back {
            Some(back) if !retried => {
                tracing::debug!(
                    error = %err.error(),
                    reused,
                    "request not written (its connection was closing): retried on a new connection"
                );
                retried = true;
                retry_fresh = h1;
                req = back;
                absolute_form(req.uri_mut(), &key);
                // The new connection is waited for and dialed under its own limits, not the
                // header clock's: stop it again until the retry has its connection.
                hold = clocks.of(&req).map(HeaderClock::hold_again);
            }
            back => {
                let mut err = ConnectionError::new(
                    reused,
                    idle_for,
                    back.is_some(),
                    retried,
                    err.into_error(),
                );
                if lost {
                    err = err.lost(idle_for.unwrap_or_default());
                }
                tracing::debug!(lost, "{err}");
                return Err(err.into());
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Polls a checkout, holding the response-header clock only while it waits: the clock of a
    /// request that finds its connection at once is never held, and starts when its timer first
    /// looks at it, right after this poll. A hold taken before (a retry's, which stops a started
    /// clock) stays.
    struct HeldWhileWaiting<'a, F> {
        #[pin]
        checkout: F,
        clock: Option<&'a HeaderClock>,
        hold: &'a mut Option<HeaderHold>,
    }
}

fn held_while_waiting<'a, F: Future>(
    checkout: F,
    clock: Option<&'a HeaderClock>,
    hold: &'a mut Option<HeaderHold>,
) -> HeldWhileWaiting<'a, F> {
    HeldWhileWaiting {
        checkout,
        clock,
        hold,
    }
}

impl<F: Future> Future for HeldWhileWaiting<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = this.checkout.poll(cx);
        if polled.is_pending() && this.hold.is_none() {
            **this.hold = this.clock.map(HeaderClock::hold);
        }
        polled
    }
}

/// The request's deadline: the earlier of a `RequestDeadline` in its extensions and the one its
/// header clock carries (the fused preset puts its deadline only there, and a `RequestDeadline`
/// the caller put in the request may be a later one).
fn deadline_of<B>(req: &Request<B>, clock: Option<&HeaderClock>) -> Option<RequestDeadline> {
    match (
        RequestDeadline::of(req),
        clock.and_then(HeaderClock::deadline),
    ) {
        (Some(a), Some(b)) => Some(if a.instant() <= b.instant() { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Whether a written request's failure says "the peer closed or reset the connection before
/// any byte of the response", given the reads its connection saw since just before the
/// request went out (the legacy path's rule, in `replay::lost`): an end of stream seen as the
/// only read, or a reset before any read. Never a timeout (ours, inside an `io::Error`, or
/// hyper's), a parse error or a user error.
fn lost_before_response(err: &hyper::Error, reads: u64) -> bool {
    if err.is_timeout() || err.is_parse() || err.is_user() || Error::find(err).is_some() {
        return false;
    }
    if err.is_incomplete_message() {
        return reads <= 1;
    }
    use std::io::ErrorKind::*;
    let reset = find::<std::io::Error>(err).is_some_and(|io| {
        matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        )
    });
    reset && reads == 0
}

/// `/path?query` only, as HTTP/1 sends it to an origin server.
fn origin_form(uri: &mut Uri) {
    let path = match uri.path_and_query() {
        Some(p) if p.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(p.clone());
            Uri::from_parts(parts).expect("a path alone is a valid URI")
        }
        _ => Uri::from_static("/"),
    };
    *uri = path;
}

/// Back to the absolute form (for a retry, which may go to an HTTP/2 connection).
fn absolute_form(uri: &mut Uri, key: &Key) {
    if uri.scheme().is_some() {
        return;
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(key.scheme.clone());
    parts.authority = Some(key.authority.clone());
    parts.path_and_query = uri.path_and_query().cloned();
    if let Ok(abs) = Uri::from_parts(parts) {
        *uri = abs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_s_future_fits_malloc_s_fast_path() {
        // Boxed once per request. glibc serves up to 1,032 bytes from a per-thread cache; past
        // that every request pays a slower malloc and free (about 150 instructions).
        let transport = Transport::builder().build::<http_body_util::Empty<bytes::Bytes>>();
        let req = Request::get("http://a.test/")
            .body(Default::default())
            .unwrap();
        let clocks = Clocks {
            of: transport.clock_of,
            handed: None,
        };
        let sending = send(transport.pool.clone(), clocks, req);
        let size = std::mem::size_of_val(&sending);
        assert!(size <= 1032, "{size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_the_earlier_of_the_extension_and_the_header_clock() {
        let soon = RequestDeadline::after(std::time::Duration::from_secs(2));
        let late = RequestDeadline::after(std::time::Duration::from_secs(3600));
        let with = |ext: Option<RequestDeadline>| {
            let mut req = Request::new(());
            if let Some(d) = ext {
                req.extensions_mut().insert(d);
            }
            req
        };
        let clock = |d| HeaderClock::with_deadline(Some(d));
        // The preset's (in the clock) is earlier than one the caller put in the request.
        assert_eq!(
            deadline_of(&with(Some(late)), Some(&clock(soon))),
            Some(soon)
        );
        assert_eq!(
            deadline_of(&with(Some(soon)), Some(&clock(late))),
            Some(soon)
        );
        assert_eq!(deadline_of(&with(None), Some(&clock(soon))), Some(soon));
        assert_eq!(deadline_of(&with(Some(late)), None), Some(late));
        let no_deadline = HeaderClock::default();
        assert_eq!(deadline_of(&with(None), Some(&no_deadline)), None);
    }

    #[test]
    fn uri_forms_round_trip() {
        let key = key_of(&"http://example.com:8080/a?b=1".parse().unwrap()).unwrap();
        let mut uri: Uri = "http://example.com:8080/a?b=1".parse().unwrap();
        origin_form(&mut uri);
        assert_eq!(uri, "/a?b=1");
        absolute_form(&mut uri, &key);
        assert_eq!(uri, "http://example.com:8080/a?b=1");
        let mut root: Uri = "http://example.com".parse().unwrap();
        origin_form(&mut root);
        assert_eq!(root, "/");
    }

    /// A loopback server that answers the first request of its one connection, then either
    /// reads the second whole and closes (`stall` false) or never reads again.
    async fn second_request(stall: bool) -> Uri {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while buf.windows(4).all(|w| w != b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            if stall {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                return;
            }
            buf.clear();
            while buf.windows(4).all(|w| w != b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            // Read whole, answered never: dropped.
        });
        format!("http://{addr}/").parse().unwrap()
    }

    async fn first_then(
        transport: &crate::Transport<http_body_util::Full<bytes::Bytes>>,
        uri: &Uri,
        second: http_body_util::Full<bytes::Bytes>,
    ) -> BoxError {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let get = Request::get(uri.clone()).body(Default::default()).unwrap();
        let resp = transport.clone().oneshot(get).await.unwrap();
        resp.into_body().collect().await.unwrap();
        tokio::task::yield_now().await;
        let req = Request::post(uri.clone()).body(second).unwrap();
        transport.clone().oneshot(req).await.unwrap_err()
    }

    #[tokio::test]
    async fn a_written_request_lost_with_its_reused_connection_says_so_for_a_replay() {
        use crate::replay::lost::LostConnection;
        let uri = second_request(false).await;
        let transport = crate::Transport::builder().build();
        let err = first_then(&transport, &uri, "order".into()).await;
        let lost = find::<LostConnection>(&*err).expect("marked lost for the replay layer");
        assert!(lost.idle > std::time::Duration::ZERO);
        // Behind it in the chain: hyper's error, and the transport's error outside it.
        assert!(find::<hyper::Error>(&*err).is_some());
        let conn = ConnectionError::find(&*err).unwrap();
        assert!(conn.is_reused() && !conn.nothing_written());
    }

    #[tokio::test]
    async fn a_write_stall_on_a_reused_connection_is_a_timeout_never_a_loss() {
        use crate::replay::lost::LostConnection;
        let uri = second_request(true).await;
        let transport = crate::Transport::builder()
            .write_stall_timeout(std::time::Duration::from_millis(300))
            .build();
        let big = bytes::Bytes::from(vec![0u8; 64 << 20]);
        let err = first_then(&transport, &uri, big.into()).await;
        let ours = Error::find(&*err).expect("a typed error");
        assert_eq!(ours.phase(), Some(crate::Phase::RequestWrite), "{err}");
        assert!(ConnectionError::find(&*err).unwrap().is_reused());
        assert!(
            find::<LostConnection>(&*err).is_none(),
            "a timeout is never reported as a lost connection"
        );
    }

    #[test]
    fn a_relative_uri_is_refused_with_a_clear_error() {
        let err = key_of(&"/only/a/path".parse().unwrap()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("tower-hardened: the transport needs an absolute"));
    }
}
