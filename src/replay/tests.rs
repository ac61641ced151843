use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_test::mock;

use super::lost::{FreshConnection, LostConnection};
use super::*;
use crate::deadline::RequestDeadline;
use crate::error::{BoxError, Error, ErrorKind, Phase};
use crate::stats::Stats;
use crate::test_util::*;
use crate::timeout::ResponseHeaderTimeoutLayer;

type Handle<B> = mock::Handle<Request<ReplayBody<B>>, Response<()>>;

fn lost() -> BoxError {
    // As a transport reports it, wrapped in an io::Error the way a connector would.
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        LostConnection {
            idle: Duration::from_secs(1),
            source: None,
        },
    )
    .into()
}

fn req<B>(method: Method, body: B) -> Request<B> {
    Request::builder()
        .method(method)
        .uri("http://a.test/x")
        .header("x-trace", "7")
        .body(body)
        .unwrap()
}

/// Runs `req` through a replay layer whose inner service reads each attempt's body (as a
/// connection sends it) and fails it with `lost()` until `fail` attempts failed, then answers;
/// returns the outcome and the attempts with the bytes of their bodies.
async fn run<B>(
    layer: ReplayLayer,
    req: Request<B>,
    fail: usize,
) -> (Result<Response<()>, BoxError>, Vec<Request<Bytes>>)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (inner, mut handle): (_, Handle<B>) = mock::pair();
    let svc = layer.layer(inner);
    let mut fut = task::spawn(svc.oneshot(req));
    let mut seen = Vec::new();
    loop {
        if let std::task::Poll::Ready(res) = fut.poll() {
            return (res, seen);
        }
        let (r, send) = handle.next_request().await.expect("an attempt");
        let (parts, body) = r.into_parts();
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => Bytes::new(),
        };
        if seen.len() < fail {
            send.send_error(lost());
        } else {
            send.send_response(Response::new(()));
        }
        seen.push(Request::from_parts(parts, bytes));
    }
}

fn closed(err: &BoxError) -> &Error {
    let e = Error::find(&**err).expect("our error");
    assert_eq!(e.kind(), ErrorKind::ConnectionClosed, "{err}");
    e
}

#[tokio::test(start_paused = true)]
async fn replayable_methods_follow_one_table() {
    let key = |m: Method, h: &str| {
        let mut r = req(m, Empty::<Bytes>::new());
        r.headers_mut().insert(
            http::HeaderName::from_bytes(h.as_bytes()).unwrap(),
            "k1".parse().unwrap(),
        );
        r
    };
    // (request, put_delete opt-in, replayed, words the error must contain)
    let cases: Vec<(Request<Empty<Bytes>>, bool, bool, &str)> = vec![
        (req(Method::GET, Empty::new()), false, true, ""),
        (req(Method::HEAD, Empty::new()), false, true, ""),
        (req(Method::OPTIONS, Empty::new()), false, true, ""),
        (req(Method::TRACE, Empty::new()), false, true, ""),
        (key(Method::POST, "idempotency-key"), false, true, ""),
        (key(Method::PATCH, "x-idempotency-key"), false, true, ""),
        (
            req(Method::POST, Empty::new()),
            false,
            false,
            "POST is not idempotent",
        ),
        (
            req(Method::PATCH, Empty::new()),
            false,
            false,
            "PATCH is not idempotent",
        ),
        (
            req(Method::CONNECT, Empty::new()),
            false,
            false,
            "CONNECT is not idempotent",
        ),
        (
            req(Method::PUT, Empty::new()),
            false,
            false,
            "PUT is replayed only when allowed",
        ),
        (
            req(Method::DELETE, Empty::new()),
            false,
            false,
            "DELETE is replayed only when allowed",
        ),
        (req(Method::PUT, Empty::new()), true, true, ""),
        (req(Method::DELETE, Empty::new()), true, true, ""),
        (
            req(Method::POST, Empty::new()),
            true,
            false,
            "POST is not idempotent",
        ),
    ];
    for (r, opt_in, replayed, words) in cases {
        let what = format!("{} opt-in={opt_in}", r.method());
        let stats = Stats::new();
        let layer = ReplayLayer::new()
            .replay_put_delete(opt_in)
            .stats(stats.clone());
        let (res, seen) = run(layer, r, 1).await;
        if replayed {
            assert!(res.is_ok(), "{what}");
            assert_eq!(seen.len(), 2, "{what}");
            assert_eq!(stats.snapshot().replays, 1, "{what}");
        } else {
            let err = res.unwrap_err();
            let text = closed(&err).to_string();
            assert!(
                text.starts_with("connection closed by the peer before the response"),
                "{what}: {text}"
            );
            assert!(text.contains(words), "{what}: {text}");
            assert_eq!(seen.len(), 1, "{what}");
            assert_eq!(stats.snapshot().replays, 0, "{what}");
            // The original failure stays the source.
            let src = std::error::Error::source(closed(&err)).unwrap();
            assert!(src.to_string().contains("reused connection"), "{src}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_replay_is_the_same_request_on_a_fresh_connection() {
    let mut r = req(Method::PUT, Full::new(Bytes::from("hello")));
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_secs(9)));
    let (res, mut seen) = run(ReplayLayer::new().replay_put_delete(true), r, 1).await;
    assert_ready_ok!(std::task::Poll::Ready(res));
    assert_eq!(seen.len(), 2);
    let second = seen.pop().unwrap();
    let first = seen.pop().unwrap();
    assert!(first.extensions().get::<FreshConnection>().is_none());
    assert!(second.extensions().get::<FreshConnection>().is_some());
    assert_eq!(second.method(), Method::PUT);
    assert_eq!(second.uri(), "http://a.test/x");
    assert_eq!(second.headers()["x-trace"], "7");
    assert_eq!(
        RequestDeadline::of(&second),
        RequestDeadline::of(&first),
        "the same deadline"
    );
    assert_eq!(first.body(), "hello");
    assert_eq!(second.body(), "hello");
}

#[tokio::test(start_paused = true)]
async fn bodies_are_replayed_only_when_kept_whole() {
    // Empty bodies and small bodies of exact size (sent whole by the first attempt) are
    // replayed; the body of the first attempt forwards its hints.
    let (inner, mut handle): (_, Handle<Full<Bytes>>) = mock::pair();
    let mut fut = task::spawn(ReplayLayer::new().layer(inner).oneshot(req(
        Method::GET,
        Full::new(Bytes::from(vec![7u8; 64 * 1024])),
    )));
    assert_pending!(fut.poll());
    let (first, send) = handle.next_request().await.unwrap();
    assert_eq!(first.body().size_hint().exact(), Some(64 * 1024));
    assert!(!first.body().is_end_stream());
    let sent = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(sent.len(), 64 * 1024);
    send.send_error(lost());
    assert_pending!(fut.poll());
    let (second, send) = handle.next_request().await.unwrap();
    assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), sent);
    send.send_response(Response::new(()));
    assert_ready_ok!(fut.poll());

    // One byte over the cap: not replayed, and the error says it is the body.
    let big = Full::new(Bytes::from(vec![7u8; 64 * 1024 + 1]));
    let (res, seen) = run(ReplayLayer::new(), req(Method::GET, big), 1).await;
    assert_eq!(seen.len(), 1);
    let err = res.unwrap_err();
    assert!(
        closed(&err).to_string().contains(
            "its body could not be replayed (not empty, and no exact size of at most 65536 bytes)"
        ),
        "{err}"
    );

    // No exact size (a stream): not replayed.
    let (tx, stream) = ChannelBody::new();
    tx.send(Ok(Bytes::from("12345"))).unwrap();
    drop(tx);
    let (res, seen) = run(ReplayLayer::new(), req(Method::GET, stream), 1).await;
    assert_eq!(seen.len(), 1);
    assert!(closed(&res.unwrap_err())
        .to_string()
        .contains("body could not be replayed"));

    // An exact size, but the connection failed before the body went out whole.
    let (tx, stream) = ChannelBody::new();
    let stream = stream.with_hint(SizeHint::with_exact(10));
    tx.send(Ok(Bytes::from("12345"))).unwrap();
    let (inner, mut handle): (_, Handle<ChannelBody>) = mock::pair();
    let mut fut = task::spawn(
        ReplayLayer::new()
            .layer(inner)
            .oneshot(req(Method::GET, stream)),
    );
    assert_pending!(fut.poll());
    let (mut first, send) = handle.next_request().await.unwrap();
    let frame = first.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "12345");
    drop(first); // the connection died with the rest unsent
    send.send_error(lost());
    let err = assert_ready_err!(fut.poll());
    assert!(
        closed(&err)
            .to_string()
            .contains("it was not sent whole before the failure"),
        "{err}"
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn at_most_one_replay() {
    let stats = Stats::new();
    let (res, seen) = run(
        ReplayLayer::new().stats(stats.clone()),
        req(Method::GET, Empty::<Bytes>::new()),
        5,
    )
    .await;
    assert_eq!(seen.len(), 2, "the first attempt and one replay");
    let err = res.unwrap_err();
    assert_eq!(
        closed(&err).to_string(),
        "connection closed by the peer before the response (a reused connection, idle for 1s); \
         not retried again: it was already replayed once"
    );
    assert_eq!(stats.snapshot().replays, 1);
}

#[tokio::test(start_paused = true)]
async fn other_failures_and_timeouts_are_never_replayed() {
    // A failure that is not a lost connection passes through as it is.
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let mut fut = task::spawn(
        ReplayLayer::new()
            .layer(inner)
            .oneshot(req(Method::GET, Empty::new())),
    );
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "refused");
    assert!(Error::find(&*err).is_none());

    // One of our timeouts, even with a lost connection under it, is never replayed.
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let mut fut = task::spawn(
        ReplayLayer::new()
            .layer(inner)
            .oneshot(req(Method::GET, Empty::new())),
    );
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    send.send_error(
        Error::timeout(Phase::RequestWrite, Duration::from_secs(1)).with_source(lost()),
    );
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
    assert_pending!(handle.poll_request());

    // A phase timeout inside the replay fires once and is not replayed.
    let stats = Stats::new();
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let svc = ReplayLayer::new()
        .stats(stats.clone())
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(2)).layer(inner));
    let mut fut = task::spawn(svc.oneshot(req(Method::GET, Empty::new())));
    assert_pending!(fut.poll());
    let (_r, _send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
    assert_pending!(handle.poll_request());
    assert_eq!(stats.snapshot().replays, 0);
}

#[tokio::test(start_paused = true)]
async fn a_replay_past_the_deadline_fails_as_total() {
    let stats = Stats::new();
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let mut r = req(Method::GET, Empty::new());
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_secs(1)));
    let mut fut = task::spawn(
        ReplayLayer::new()
            .stats(stats.clone())
            .layer(inner)
            .oneshot(r),
    );
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    advance(Duration::from_secs(1)).await;
    send.send_error(lost());
    let err = assert_ready_err!(fut.poll());
    let e = Error::find(&*err).unwrap();
    assert_eq!(e.phase(), Some(Phase::Total));
    assert_eq!(e.limit(), Some(Duration::from_secs(1)));
    assert_pending!(handle.poll_request());
    let snap = stats.snapshot();
    assert_eq!((snap.replays, snap.timeouts(Phase::Total)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_replay_waits_for_the_service_to_be_ready() {
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let mut fut = task::spawn(
        ReplayLayer::new()
            .layer(inner)
            .oneshot(req(Method::GET, Empty::new())),
    );
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    handle.allow(0);
    send.send_error(lost());
    assert_pending!(fut.poll());
    assert_pending!(handle.poll_request());
    handle.allow(1);
    assert!(fut.is_woken());
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert_ready_ok!(fut.poll());
}

#[test]
fn types_are_send_sync_and_clone() {
    type Inner = mock::Mock<Request<ReplayBody<Full<Bytes>>>, Response<()>>;
    assert_send_sync::<ReplayLayer>();
    assert_clone::<ReplayLayer>();
    assert_send_sync::<Replay<Inner>>();
    assert_clone::<Replay<Inner>>();
    assert_send_sync::<ReplayFuture<Inner, Full<Bytes>>>();
    assert_send_sync::<ReplayBody<Full<Bytes>>>();
}

#[test]
fn the_body_is_small_on_the_fast_path() {
    // Every request under the replay layer carries this body through the client's futures and
    // channels, which move it several times: the replay's state is boxed so that a body that is
    // only passed on or kept costs its inner body and a word or two.
    assert!(std::mem::size_of::<ReplayBody<Empty<Bytes>>>() <= 16);
}

/// A service that fails its first call with `lost()` and answers the rest, recording which
/// version of itself took each call.
#[derive(Clone)]
struct Tagged {
    tag: u32,
    calls: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl tower_service::Service<Request<ReplayBody<Empty<Bytes>>>> for Tagged {
    type Response = Response<()>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<()>, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReplayBody<Empty<Bytes>>>) -> Self::Future {
        let mut calls = self.calls.lock().unwrap();
        calls.push(self.tag);
        let first_of_two = calls.len() % 2 == 1;
        std::future::ready(if first_of_two {
            Err(lost())
        } else {
            Ok(Response::new(()))
        })
    }
}

#[tokio::test]
async fn replays_go_to_a_clone_of_the_service_as_last_changed() {
    use tower_service::Service;
    // The clone replays are sent on is made once, not per request; `get_mut` makes replays use
    // the service as changed, like the requests.
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut svc = ReplayLayer::new().layer(Tagged {
        tag: 1,
        calls: calls.clone(),
    });
    let get = || req(Method::GET, Empty::<Bytes>::new());
    svc.ready().await.unwrap().call(get()).await.unwrap();
    let mut clone = svc.clone();
    clone.ready().await.unwrap().call(get()).await.unwrap();
    svc.get_mut().tag = 2;
    svc.ready().await.unwrap().call(get()).await.unwrap();
    // The clone made before the change keeps replaying on the service it was made from.
    clone.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(*calls.lock().unwrap(), [1, 1, 1, 1, 2, 2, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_replay_waiting_for_its_service_is_cut_at_the_deadline() {
    // Nothing inside bounds a wait for readiness: the replay bounds it by the deadline.
    let stats = Stats::new();
    let (inner, mut handle): (_, Handle<Empty<Bytes>>) = mock::pair();
    let mut r = req(Method::GET, Empty::new());
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_secs(2)));
    let mut fut = task::spawn(
        ReplayLayer::new()
            .stats(stats.clone())
            .layer(inner)
            .oneshot(r),
    );
    assert_pending!(fut.poll());
    let (_r, send) = handle.next_request().await.unwrap();
    handle.allow(0);
    send.send_error(lost());
    assert_pending!(fut.poll());
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);
    assert_pending!(handle.poll_request());
}
