use std::time::Duration;

use http::Uri;
use tokio::time::{advance, Instant};
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower_test::mock;

use std::future::Future;
use std::pin::Pin;
use tower::{Layer, Service};
use tower_hardened::{
    BoxError, ConnectTimeout, ConnectTimeoutFuture, ConnectTimeoutLayer, Error, ErrorKind, Phase,
    Stats,
};

use crate::util::*;

/// Stands for a TCP stream: the connector's response type must come out unchanged.
#[derive(Debug, PartialEq, Eq)]
struct Conn(u32);

type Mock = mock::Mock<Uri, Conn>;

fn uri() -> Uri {
    "http://example.test:8080/".parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn fires_exactly_at_the_limit() {
    let stats = Stats::new();
    let (mut svc, mut handle) = mock::spawn_layer::<Uri, Conn, _>(
        ConnectTimeoutLayer::new(Duration::from_secs(3)).stats(stats.clone()),
    );
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(uri()));
    let (dst, _send) = handle.next_request().await.unwrap();
    assert_eq!(dst, uri());

    assert_pending!(fut.poll());
    advance(Duration::from_millis(2999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    assert!(fut.is_woken());
    let err = assert_ready_err!(fut.poll());
    let found = Error::find(&*err).expect("this crate's error");
    assert_eq!(found.phase(), Some(Phase::Connect));
    assert_eq!(found.kind(), ErrorKind::Timeout);
    assert_eq!(found.limit(), Some(Duration::from_secs(3)));
    assert_eq!(err.to_string(), "connect (DNS + TCP) not done within 3s");
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::Connect), 1);
    assert_eq!(snap.timeouts_total(), 1);
}

#[tokio::test(start_paused = true)]
async fn connection_passes_through_unchanged_before_the_limit() {
    let stats = Stats::new();
    let (mut svc, mut handle) = mock::spawn_layer::<Uri, Conn, _>(
        ConnectTimeoutLayer::new(Duration::from_secs(3)).stats(stats.clone()),
    );
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(uri()));
    let (_dst, send) = handle.next_request().await.unwrap();
    assert_pending!(fut.poll());
    advance(Duration::from_millis(2999)).await;
    send.send_response(Conn(7));
    let conn: Conn = assert_ready_ok!(fut.poll());
    assert_eq!(conn, Conn(7));
    assert_eq!(stats.snapshot().timeouts_total(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_limit_starts_at_the_call_not_the_first_poll() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Uri, Conn, _>(ConnectTimeoutLayer::new(Duration::from_secs(3)));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(uri()));
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_secs(2)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_secs(1)).await;
    assert_ready_err!(fut.poll());
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Uri, Conn, _>(ConnectTimeoutLayer::new(Duration::from_secs(3)));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(uri()));
    let (_dst, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    let err = assert_ready_err!(fut.poll());
    assert!(Error::find(&*err).is_none(), "not ours: {err:?}");
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the inner error itself, only boxed");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_errors_pass_through() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Uri, Conn, _>(ConnectTimeoutLayer::new(Duration::from_secs(3)));
    handle.send_error("not ready");
    let err = assert_ready_err!(svc.poll_ready());
    assert_eq!(err.to_string(), "not ready");
}

#[tokio::test(start_paused = true)]
async fn an_immediate_connection_needs_no_timer() {
    let svc =
        ConnectTimeoutLayer::new(Duration::from_secs(1)).layer(tower::service_fn(|_: Uri| async {
            Ok::<_, std::io::Error>(Conn(1))
        }));
    let start = Instant::now();
    let conn = tower::ServiceExt::oneshot(svc, uri()).await.unwrap();
    assert_eq!(conn, Conn(1));
    assert_eq!(Instant::now(), start);
}

#[test]
#[should_panic(expected = "ConnectTimeoutLayer limit must be greater than zero")]
fn zero_limit_is_rejected_at_construction() {
    let _ = ConnectTimeoutLayer::new(Duration::ZERO);
}

#[test]
fn layer_config_is_readable() {
    let layer = ConnectTimeoutLayer::new(Duration::from_millis(1500));
    assert_eq!(layer.limit(), Duration::from_millis(1500));
    let svc = layer.layer(7u8);
    assert_eq!(*svc.get_ref(), 7);
    let mut svc = svc;
    *svc.get_mut() = 8;
    assert_eq!(svc.into_inner(), 8);
}

fn assert_unpin<T: Unpin>() {}

#[test]
fn public_types_are_send_sync_clone_and_unpin() {
    assert_send_sync::<ConnectTimeoutLayer>();
    assert_clone::<ConnectTimeoutLayer>();
    assert_send_sync::<ConnectTimeout<Mock>>();
    assert_clone::<ConnectTimeout<Mock>>();
    type Fut = <ConnectTimeout<Mock> as Service<Uri>>::Future;
    assert_send_sync::<Fut>();
    // hyper-util's legacy client requires `Unpin` connector futures.
    type BoxFut = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;
    assert_unpin::<ConnectTimeoutFuture<BoxFut>>();
    assert_unpin::<Fut>();
}

/// A request type that cannot be read, like reqwest's `connector_layer` request.
#[derive(Debug)]
struct Opaque;

#[tokio::test(start_paused = true)]
async fn any_request_type_is_bounded_and_a_timeout_has_a_timed_out_io_cause() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Opaque, Conn, _>(ConnectTimeoutLayer::new(Duration::from_secs(3)));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(Opaque));
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_secs(3)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(tower_hardened::Phase::Connect));
    let cause = std::error::Error::source(&*err).expect("a cause");
    let io = cause
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}
