use std::time::Duration;

use http::Uri;
use tokio::time::{advance, Instant};
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower_test::mock;

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;
use tower::{Layer, Service};
use tower_hardened::{
    BoxError, ConnectTimeout, ConnectTimeoutLayer, Error, Phase, Stats, TlsHandshakeTimeout,
    TlsHandshakeTimeoutFuture, TlsHandshakeTimeoutLayer,
};

use crate::util::*;

/// Stands for a TCP stream (and, after the fake handshake, the TLS stream).
#[derive(Debug, PartialEq, Eq)]
struct Conn(u32);

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// A TLS connector shaped like hyper-rustls' `HttpsConnector`: calls the TCP connector in `call`,
/// awaits it inside its own future, then "handshakes" for `handshake` (forever if `None`).
/// `before` is time spent before the TCP future is first polled (as a proxy lookup would).
#[derive(Clone)]
struct FakeTls<C> {
    tcp: C,
    before: Duration,
    handshake: Option<Duration>,
}

impl<C> Service<Uri> for FakeTls<C>
where
    C: Service<Uri, Response = Conn>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Conn;
    type Error = BoxError;
    type Future = BoxFut<Conn>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let tcp = self.tcp.call(dst);
        let (before, handshake) = (self.before, self.handshake);
        Box::pin(async move {
            if !before.is_zero() {
                tokio::time::sleep(before).await;
            }
            let conn = tcp.await.map_err(Into::into)?;
            match handshake {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
            Ok(Conn(conn.0 + 1000))
        })
    }
}

type Mock = mock::Mock<Uri, Conn>;
type Handle = mock::Handle<Uri, Conn>;
type Stack = TlsHandshakeTimeout<FakeTls<ConnectTimeout<Mock>>>;

/// Polls `svc` ready (a mock connector is ready at once) and hands it back for `call`.
fn ready<S: Service<Uri>>(svc: &mut S) -> &mut S
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => svc,
        other => panic!("connector not ready: {other:?}"),
    }
}

fn uri() -> Uri {
    "https://example.test/".parse().unwrap()
}

/// `TlsHandshakeTimeout(FakeTls(ConnectTimeout(mock)))`, the recommended order.
fn stack(connect: u64, tls: u64, handshake: Option<u64>, stats: &Stats) -> (Stack, Handle) {
    let (tcp, handle) = mock::pair::<Uri, Conn>();
    let tcp = ConnectTimeoutLayer::new(Duration::from_secs(connect))
        .stats(stats.clone())
        .layer(tcp);
    let fake = FakeTls {
        tcp,
        before: Duration::ZERO,
        handshake: handshake.map(Duration::from_secs),
    };
    let svc = TlsHandshakeTimeoutLayer::new(Duration::from_secs(tls))
        .stats(stats.clone())
        .layer(fake);
    (svc, handle)
}

#[tokio::test(start_paused = true)]
async fn handshake_clock_starts_when_tcp_is_connected() {
    let stats = Stats::new();
    let (mut svc, mut handle) = stack(10, 2, None, &stats);
    let start = Instant::now();
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();

    // TCP takes 5 s: longer than the TLS limit, and not blamed on TLS.
    advance(Duration::from_secs(5)).await;
    assert_pending!(fut.poll());
    send.send_response(Conn(1));
    assert_pending!(fut.poll()); // connected now: the handshake starts

    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    assert!(fut.is_woken());
    let err = assert_ready_err!(fut.poll());
    assert_eq!(Instant::now() - start, Duration::from_secs(7));
    assert_eq!(phase_of(&err), Some(Phase::TlsHandshake));
    assert_eq!(err.to_string(), "TLS handshake not done within 2s");
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 1);
    assert_eq!(snap.timeouts(Phase::Connect), 0);
}

#[tokio::test(start_paused = true)]
async fn a_handshake_within_the_limit_gives_the_connection() {
    let stats = Stats::new();
    let (mut svc, mut handle) = stack(10, 2, Some(1), &stats);
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();
    advance(Duration::from_secs(9)).await;
    send.send_response(Conn(1));
    assert_pending!(fut.poll());
    advance(Duration::from_secs(1)).await;
    let conn = assert_ready_ok!(fut.poll());
    assert_eq!(conn, Conn(1001));
    assert_eq!(stats.snapshot().timeouts_total(), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_tcp_is_a_connect_timeout_not_a_tls_one() {
    let stats = Stats::new();
    let (mut svc, mut handle) = stack(3, 1, None, &stats);
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_millis(2999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    let found = Error::find(&*err).expect("the connect timeout, through the TLS layer");
    assert_eq!(found.phase(), Some(Phase::Connect));
    assert_eq!(found.limit(), Some(Duration::from_secs(3)));
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::Connect), 1);
    assert_eq!(snap.timeouts(Phase::TlsHandshake), 0);
}

#[tokio::test(start_paused = true)]
async fn tcp_errors_pass_through_both_layers_unchanged() {
    let (mut svc, mut handle) = stack(3, 1, None, &Stats::new());
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    let err = assert_ready_err!(fut.poll());
    assert!(Error::find(&*err).is_none());
    let io = err.downcast_ref::<std::io::Error>().expect("inner error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn without_connect_timeout_inside_the_limit_covers_the_whole_call() {
    let stats = Stats::new();
    let (tcp, mut handle) = mock::pair::<Uri, Conn>();
    let fake = FakeTls {
        tcp,
        before: Duration::ZERO,
        handshake: None,
    };
    let mut svc = TlsHandshakeTimeoutLayer::new(Duration::from_secs(2))
        .stats(stats.clone())
        .layer(fake);
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1500)).await;
    send.send_response(Conn(1));
    assert_pending!(fut.poll());
    // 2 s from the call, not from the TCP connection.
    advance(Duration::from_millis(499)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::TlsHandshake));
    assert_eq!(stats.snapshot().timeouts(Phase::TlsHandshake), 1);

    // Also when TCP itself hangs: nothing tells where it ends, so the whole call is bounded.
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::TlsHandshake));
}

#[tokio::test(start_paused = true)]
async fn a_connect_step_that_starts_late_moves_the_clock() {
    let (tcp, mut handle) = mock::pair::<Uri, Conn>();
    let fake = FakeTls {
        tcp: ConnectTimeoutLayer::new(Duration::from_secs(10)).layer(tcp),
        before: Duration::from_secs(1),
        handshake: None,
    };
    let mut svc = TlsHandshakeTimeoutLayer::new(Duration::from_secs(2)).layer(fake);
    let start = Instant::now();
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    // For the first second nothing has reported: the timer is armed from the call...
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();
    advance(Duration::from_secs(1)).await;
    // ...then the connect step shows itself, and the TLS clock stops while it runs.
    assert_pending!(fut.poll());
    advance(Duration::from_secs(3)).await;
    assert_pending!(fut.poll());
    send.send_response(Conn(1));
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::TlsHandshake));
    assert_eq!(Instant::now() - start, Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_outside_the_tls_connector_bounds_both() {
    // The wrong order still bounds everything, as one `Connect` phase.
    let (tcp, mut handle) = mock::pair::<Uri, Conn>();
    let fake = FakeTls {
        tcp,
        before: Duration::ZERO,
        handshake: None,
    };
    let mut svc = ConnectTimeoutLayer::new(Duration::from_secs(2)).layer(fake);
    let mut fut = task::spawn(ready(&mut svc).call(uri()));
    assert_pending!(fut.poll());
    let (_dst, send) = handle.next_request().await.unwrap();
    send.send_response(Conn(1));
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Connect));
}

#[tokio::test(start_paused = true)]
async fn two_handshakes_on_one_task_keep_their_own_clocks() {
    // Two connects polled by the same task (as a client's select would): each scope is its own.
    let (mut a, mut ha) = stack(10, 2, None, &Stats::new());
    let (mut b, mut hb) = stack(10, 2, None, &Stats::new());
    let fa = ready(&mut a).call(uri());
    let fb = ready(&mut b).call(uri());
    let mut both = task::spawn(async move {
        let (ra, rb) = tokio::join!(fa, fb);
        (ra.map(|_| ()), rb.map(|_| ()))
    });
    assert_pending!(both.poll());
    let (_d, sa) = ha.next_request().await.unwrap();
    let (_d, sb) = hb.next_request().await.unwrap();
    sa.send_response(Conn(1));
    assert_pending!(both.poll());
    advance(Duration::from_secs(1)).await;
    sb.send_response(Conn(2));
    assert_pending!(both.poll());
    advance(Duration::from_secs(2)).await;
    // a fired at 2 s, b at 3 s: both done now, each with its own phase.
    let (ra, rb) = tokio_test::assert_ready!(both.poll());
    assert_eq!(phase_of(&ra.unwrap_err()), Some(Phase::TlsHandshake));
    assert_eq!(phase_of(&rb.unwrap_err()), Some(Phase::TlsHandshake));
}

#[test]
#[should_panic(expected = "TlsHandshakeTimeoutLayer limit must be greater than zero")]
fn zero_limit_is_rejected_at_construction() {
    let _ = TlsHandshakeTimeoutLayer::new(Duration::ZERO);
}

#[test]
fn layer_config_is_readable() {
    let layer = TlsHandshakeTimeoutLayer::new(Duration::from_secs(10));
    assert_eq!(layer.limit(), Duration::from_secs(10));
    let mut svc = layer.layer(1u8);
    *svc.get_mut() += 1;
    assert_eq!(*svc.get_ref(), 2);
    assert_eq!(svc.into_inner(), 2);
}

fn assert_unpin<T: Unpin>() {}
fn assert_send<T: Send>() {}

#[test]
fn public_types_are_send_sync_clone_and_unpin() {
    assert_send_sync::<TlsHandshakeTimeoutLayer>();
    assert_clone::<TlsHandshakeTimeoutLayer>();
    assert_send_sync::<Stack>();
    assert_clone::<Stack>();
    type Fut = <Stack as Service<Uri>>::Future;
    // As Send as the TLS connector's own future (a `Send` box here).
    assert_send::<Fut>();
    // hyper-util's legacy client requires `Unpin` connector futures.
    assert_unpin::<Fut>();
    assert_unpin::<TlsHandshakeTimeoutFuture<BoxFut<Conn>>>();
}
