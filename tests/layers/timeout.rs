use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, SizeHint};
use http_body_util::{Empty, Full};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_err, task};
use tower_test::mock;

use tower_hardened::{
    BodyIdleTimeout, BodyIdleTimeoutBody, BodyIdleTimeoutFuture, BodyIdleTimeoutLayer, Phase,
    RequestDeadline, RequestWriteBody, RequestWriteTimeout, RequestWriteTimeoutBody,
    RequestWriteTimeoutFuture, RequestWriteTimeoutLayer, ResponseHeaderTimeout,
    ResponseHeaderTimeoutFuture, ResponseHeaderTimeoutLayer, Stats,
};

use crate::util::*;

fn with_deadline<B>(body: B, d: Duration) -> Request<B> {
    let mut req = Request::new(body);
    req.extensions_mut().insert(RequestDeadline::after(d));
    req
}

// ---- response headers ----

#[tokio::test(start_paused = true)]
async fn response_headers_fire_exactly_at_the_limit() {
    let stats = Stats::new();
    let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<()>, _>(
        ResponseHeaderTimeoutLayer::new(Duration::from_secs(2)).stats(stats.clone()),
    );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    // The clock starts at the first poll (when a client sends), not at the call.
    advance(Duration::from_millis(300)).await;
    assert_pending!(fut.poll());
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
    assert_eq!(err.to_string(), "no response headers within 2s");
    assert_eq!(stats.snapshot().timeouts(Phase::ResponseHeaders), 1);
}

#[tokio::test(start_paused = true)]
async fn response_headers_in_time_pass_and_earlier_deadline_is_reported() {
    let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<()>, _>(
        ResponseHeaderTimeoutLayer::new(Duration::from_secs(2)),
    );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    send.send_response(Response::new(()));
    assert_ready!(fut.poll()).unwrap();

    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(with_deadline((), Duration::from_millis(700))));
    let _req = handle.next_request().await.unwrap();
    advance(Duration::from_millis(699)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(err.to_string(), "request deadline of 700ms exceeded");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through() {
    let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<()>, _>(
        ResponseHeaderTimeoutLayer::new(Duration::from_secs(2)),
    );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error("boom");
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "boom");
    assert!(phase_of(&err).is_none());
}

// ---- body idle ----

type IdleSvc = mock::Spawn<BodyIdleTimeout<mock::Mock<Request<()>, Response<ChannelBody>>>>;
type IdleHandle = mock::Handle<Request<()>, Response<ChannelBody>>;

async fn idle_body(
    svc: &mut IdleSvc,
    handle: &mut IdleHandle,
    req: Request<()>,
) -> (BodyTx, task::Spawn<BodyIdleTimeoutBody<ChannelBody>>) {
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(req));
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(fut.poll()).unwrap();
    (tx, task::spawn(resp.into_body()))
}

#[tokio::test(start_paused = true)]
async fn body_idle_resets_on_every_frame_and_fires_exactly() {
    let stats = Stats::new();
    let (mut svc, mut handle) =
        mock::spawn_layer(BodyIdleTimeoutLayer::new(Duration::from_secs(1)).stats(stats.clone()));
    let (tx, mut body) = idle_body(&mut svc, &mut handle, Request::new(())).await;

    // A frame every 900 ms keeps it alive far past the limit.
    for _ in 0..5 {
        advance(Duration::from_millis(900)).await;
        assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
        tx.send(Ok(Bytes::from("x"))).unwrap();
        let f = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)));
        assert!(f.unwrap().unwrap().is_data());
    }
    // Then silence: fires exactly one limit after the last frame.
    advance(Duration::from_millis(999)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_millis(1)).await;
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::BodyIdle));
    assert_eq!(err.to_string(), "no response body data for 1s");
    assert!(body.enter(|_, b| b.is_end_stream()));
    assert_eq!(stats.snapshot().timeouts(Phase::BodyIdle), 1);
}

#[tokio::test(start_paused = true)]
async fn body_idle_does_not_blame_the_peer_for_a_slow_caller() {
    let (mut svc, mut handle) =
        mock::spawn_layer(BodyIdleTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, mut body) = idle_body(&mut svc, &mut handle, Request::new(())).await;
    // The peer sent in time, the caller polls 5 s later: the frame is delivered.
    advance(Duration::from_millis(500)).await;
    tx.send(Ok(Bytes::from("x"))).unwrap();
    advance(Duration::from_millis(4500)).await;
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .is_ok());
    // And the idle clock restarts from that delivery.
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_millis(999)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_millis(1)).await;
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::BodyIdle));
}

#[tokio::test(start_paused = true)]
async fn body_idle_is_cut_by_an_earlier_deadline() {
    let (mut svc, mut handle) =
        mock::spawn_layer(BodyIdleTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, mut body) = idle_body(
        &mut svc,
        &mut handle,
        with_deadline((), Duration::from_millis(2500)),
    )
    .await;
    for _ in 0..3 {
        advance(Duration::from_millis(800)).await;
        tx.send(Ok(Bytes::from("x"))).unwrap();
        assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_some());
    }
    // 2400 ms now; the idle timer would fire at 3400, the deadline fires at 2500.
    advance(Duration::from_millis(99)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_millis(1)).await;
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));
}

#[tokio::test(start_paused = true)]
async fn body_idle_never_delivers_a_frame_past_the_deadline() {
    let (mut svc, mut handle) =
        mock::spawn_layer(BodyIdleTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, mut body) = idle_body(
        &mut svc,
        &mut handle,
        with_deadline((), Duration::from_secs(5)),
    )
    .await;
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_some());
    // Nobody polls for 6 s (a slow caller is not the peer's fault, so no idle error), and a
    // frame is ready by then: the request's deadline has passed, so it is not delivered.
    advance(Duration::from_secs(6)).await;
    tx.send(Ok(Bytes::from("b"))).unwrap();
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(err.to_string(), "request deadline of 5s exceeded");
}

#[tokio::test(start_paused = true)]
async fn body_idle_passes_a_body_to_its_end() {
    let (mut svc, mut handle) =
        mock::spawn_layer(BodyIdleTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, mut body) = idle_body(&mut svc, &mut handle, Request::new(())).await;
    tx.send(Ok(Bytes::from("x"))).unwrap();
    drop(tx);
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());
    assert!(body.enter(|_, b| b.is_end_stream()));
    advance(Duration::from_secs(5)).await;
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());
}

#[tokio::test(start_paused = true)]
async fn wrappers_forward_size_hints() {
    let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<Full<Bytes>>, _>(
        BodyIdleTimeoutLayer::new(Duration::from_secs(1)),
    );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(Full::new(Bytes::from("hello"))));
    let body = assert_ready!(fut.poll()).unwrap().into_body();
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());

    let mut hint = SizeHint::new();
    hint.set_lower(2);
    hint.set_upper(10);
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)));
    assert_ready!(svc.poll_ready()).unwrap();
    let (_up, up) = ChannelBody::new();
    let mut fut = task::spawn(svc.call(Request::new(up.with_hint(hint))));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.body().size_hint().lower(), 2);
    assert_eq!(req.body().size_hint().upper(), Some(10));
    assert!(!req.body().is_end_stream());
    let (_down, down) = ChannelBody::new();
    send.send_response(Response::new(down.with_hint(hint)));
    let body = assert_ready!(fut.poll()).unwrap().into_body();
    assert_eq!(body.size_hint().upper(), Some(10));

    let empty = Request::new(Empty::<Bytes>::new());
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<RequestWriteBody<Empty<Bytes>>>, Response<()>, _>(
            RequestWriteTimeoutLayer::new(Duration::from_secs(1)),
        );
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(empty);
    let (req, _send) = handle.next_request().await.unwrap();
    assert!(req.body().is_end_stream());
    assert_eq!(req.body().size_hint().exact(), Some(0));
}

// ---- request write ----

type WriteReq = Request<RequestWriteBody<ChannelBody>>;

type WriteSvc = mock::Spawn<RequestWriteTimeout<mock::Mock<WriteReq, Response<ChannelBody>>>>;
type WriteHandle = mock::Handle<WriteReq, Response<ChannelBody>>;

fn write_setup(layer: RequestWriteTimeoutLayer) -> (WriteSvc, WriteHandle) {
    mock::spawn_layer(layer)
}

#[tokio::test(start_paused = true)]
async fn request_write_hands_a_large_frame_over_in_slices_and_watches_each() {
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    assert_pending!(fut.poll());
    // One frame of 150 KiB, and the end of the body: 64 + 64 + 22 KiB.
    tx.send(Ok(Bytes::from(vec![1u8; 150 * 1024]))).unwrap();
    drop(tx);
    let mut got = Vec::new();
    for left in [86 * 1024u64, 22 * 1024, 0] {
        let frame = assert_ready!(conn.enter(|cx, b| b.poll_frame(cx)))
            .unwrap()
            .unwrap();
        got.push(frame.into_data().unwrap().len());
        // What is left of the frame counts in the hint, and the body is not over before it.
        assert_eq!(conn.enter(|_, b| b.size_hint().lower()), left);
        if left > 0 {
            assert!(!conn.enter(|_, b| b.is_end_stream()));
            // Still watched: a slice not taken for the limit is a stall.
            advance(Duration::from_millis(999)).await;
            assert_pending!(fut.poll());
        }
    }
    assert_eq!(got, [64 * 1024, 64 * 1024, 22 * 1024]);
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_none());
    // The last slice was taken (the end asked for): nothing is watched any more.
    advance(Duration::from_secs(10)).await;
    assert_pending!(fut.poll());

    // A slice the connection does not come back for fails the exchange at the limit.
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    tx.send(Ok(Bytes::from(vec![1u8; 100 * 1024]))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    advance(Duration::from_secs(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
}

#[tokio::test(start_paused = true)]
async fn request_write_fires_when_the_peer_stops_taking_frames() {
    let stats = Stats::new();
    let (mut svc, mut handle) =
        write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)).stats(stats.clone()));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, _send) = handle.next_request().await.unwrap();
    // The test plays the connection: it pulls the request body.
    let mut conn = task::spawn(req.into_body());
    assert_pending!(fut.poll());

    // The body has nothing yet: a slow producer is not the peer's fault.
    assert_pending!(conn.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_secs(10)).await;
    assert_pending!(fut.poll());

    // A frame is handed over and taken back-to-back: fine.
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert!(fut.is_woken());
    advance(Duration::from_millis(500)).await;
    assert_pending!(fut.poll());
    assert_pending!(conn.enter(|cx, b| b.poll_frame(cx))); // asks for more: not stalled

    // Another frame, and then the connection stops asking.
    tx.send(Ok(Bytes::from("b"))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert_pending!(fut.poll());
    advance(Duration::from_millis(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
    assert_eq!(err.to_string(), "request body not taken by the peer for 1s");
    assert_eq!(stats.snapshot().timeouts(Phase::RequestWrite), 1);

    // The connection's next pull gets the error once, so it closes instead of going on.
    tx.send(Ok(Bytes::from("c"))).unwrap();
    let err = assert_ready!(conn.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_none());
}

#[tokio::test(start_paused = true)]
async fn response_header_clock_starts_once_the_upload_is_sent() {
    let layer = tower::ServiceBuilder::new()
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(1)))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(10)))
        .into_inner();
    let (mut svc, mut handle) = mock::spawn_layer::<WriteReq, Response<ChannelBody>, _>(layer);
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    assert_pending!(fut.poll());
    // A 5 s upload, each frame taken at once: the header limit (1 s) is not counting yet.
    for _ in 0..5 {
        assert_pending!(conn.enter(|cx, b| b.poll_frame(cx)));
        advance(Duration::from_secs(1)).await;
        tx.send(Ok(Bytes::from("a"))).unwrap();
        assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
        assert_pending!(fut.poll());
    }
    // The upload ends: now the server has 1 s for its headers, to the millisecond.
    drop(tx);
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_none());
    assert!(fut.is_woken());
    advance(Duration::from_millis(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
}

#[tokio::test(start_paused = true)]
async fn response_header_clock_held_by_an_upload_still_obeys_the_deadline() {
    let layer = tower::ServiceBuilder::new()
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(1)))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(10)))
        .into_inner();
    let (mut svc, mut handle) = mock::spawn_layer::<WriteReq, Response<ChannelBody>, _>(layer);
    let (_tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(with_deadline(up, Duration::from_secs(3))));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    assert_pending!(conn.enter(|cx, b| b.poll_frame(cx)));
    assert_pending!(fut.poll());
    advance(Duration::from_millis(2999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
}

#[tokio::test(start_paused = true)]
async fn request_write_stops_watching_a_finished_upload() {
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    tx.send(Ok(Bytes::from("a"))).unwrap();
    drop(tx);
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_none());
    advance(Duration::from_secs(30)).await;
    assert_pending!(fut.poll());
    let (_down, down) = ChannelBody::new();
    send.send_response(Response::new(down));
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    advance(Duration::from_secs(30)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
}

#[tokio::test(start_paused = true)]
async fn request_write_keeps_watching_after_the_headers() {
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    // The server answers early (full duplex) but stops reading the upload.
    let (_down, down) = ChannelBody::new();
    send.send_response(Response::new(down));
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    advance(Duration::from_millis(999)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_millis(1)).await;
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
}

#[tokio::test(start_paused = true)]
async fn request_write_reports_an_earlier_deadline() {
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(5)));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(with_deadline(up, Duration::from_secs(2))));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    advance(Duration::from_secs(1)).await;
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert_pending!(fut.poll());
    advance(Duration::from_millis(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_body_stops_the_watch() {
    let (mut svc, mut handle) = write_setup(RequestWriteTimeoutLayer::new(Duration::from_secs(1)));
    let (tx, up) = ChannelBody::new();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(up)));
    let (req, _send) = handle.next_request().await.unwrap();
    let mut conn = task::spawn(req.into_body());
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(conn.enter(|cx, b| b.poll_frame(cx))).is_some());
    drop(conn); // the connection gave up on the body (it failed or the request was cancelled)
    advance(Duration::from_secs(5)).await;
    assert_pending!(fut.poll());
}

#[test]
fn zero_limits_are_rejected_at_construction() {
    for f in [
        (|| drop(ResponseHeaderTimeoutLayer::new(Duration::ZERO))) as fn(),
        || drop(BodyIdleTimeoutLayer::new(Duration::ZERO)),
        || drop(RequestWriteTimeoutLayer::new(Duration::ZERO)),
    ] {
        let err = std::panic::catch_unwind(f).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("must be greater than zero"), "{msg}");
    }
}

#[test]
fn public_types_are_send_sync_clone() {
    type M<Req, B> = mock::Mock<Req, Response<B>>;
    type F<Req, B> = <M<Req, B> as tower_service::Service<Req>>::Future;
    assert_send_sync::<ResponseHeaderTimeout<M<Request<()>, ()>>>();
    assert_clone::<ResponseHeaderTimeout<M<Request<()>, ()>>>();
    assert_send_sync::<ResponseHeaderTimeoutFuture<F<Request<()>, ()>>>();
    assert_send_sync::<BodyIdleTimeout<M<Request<()>, ChannelBody>>>();
    assert_clone::<BodyIdleTimeout<M<Request<()>, ChannelBody>>>();
    assert_send_sync::<BodyIdleTimeoutFuture<F<Request<()>, ChannelBody>>>();
    assert_send_sync::<BodyIdleTimeoutBody<ChannelBody>>();
    assert_send_sync::<RequestWriteTimeout<M<WriteReq, ChannelBody>>>();
    assert_clone::<RequestWriteTimeout<M<WriteReq, ChannelBody>>>();
    assert_send_sync::<RequestWriteTimeoutFuture<F<WriteReq, ChannelBody>>>();
    assert_send_sync::<RequestWriteTimeoutBody<ChannelBody>>();
    assert_send_sync::<RequestWriteBody<ChannelBody>>();
    assert_clone::<ResponseHeaderTimeoutLayer>();
    assert_clone::<BodyIdleTimeoutLayer>();
    assert_clone::<RequestWriteTimeoutLayer>();
}
