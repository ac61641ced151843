use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, SizeHint};
use tokio::time::{advance, Instant};
use tokio_test::{assert_pending, assert_ready, assert_ready_err, task};
use tower_test::mock;

use tower_hardened::{
    Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, Phase, RequestBudget, RequestDeadline,
    Stats,
};

use crate::util::*;

type Handle = mock::Handle<Request<()>, Response<ChannelBody>>;

type Svc = mock::Spawn<Deadline<mock::Mock<Request<()>, Response<ChannelBody>>>>;

fn setup(layer: DeadlineLayer) -> (Svc, Handle) {
    mock::spawn_layer(layer)
}

#[tokio::test(start_paused = true)]
async fn headers_cut_exactly_at_the_deadline() {
    let stats = Stats::new();
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_secs(2)).stats(stats.clone()));
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (req, _send) = handle.next_request().await.unwrap();
    let d = RequestDeadline::of(&req).expect("deadline in the extensions");
    assert_eq!(d.remaining(), Duration::from_secs(2));

    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(err.to_string(), "request deadline of 2s exceeded");
    assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);
}

#[tokio::test(start_paused = true)]
async fn body_cut_at_the_same_instant() {
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(2)));
    assert_ready!(svc.poll_ready()).unwrap();
    let start = Instant::now();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(500)).await;
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(fut.poll()).unwrap();
    let mut body = task::spawn(resp.into_body());

    tx.send(Ok(Bytes::from("a"))).unwrap();
    let frame = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "a");

    advance(Duration::from_millis(1499)).await;
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    assert!(!body.enter(|_, b| b.is_end_stream()));
    advance(Duration::from_millis(1)).await;
    assert!(body.is_woken());
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    // Ended after the error, and stays ended.
    assert!(body.enter(|_, b| b.is_end_stream()));
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_always_ready_body_is_cut_too() {
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(1)));
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    advance(Duration::from_secs(1)).await;
    // Data is waiting, but the deadline has passed: the timer wins.
    tx.send(Ok(Bytes::from("late"))).unwrap();
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_in_the_extensions_wins() {
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(10)));
    let earlier = RequestDeadline::after(Duration::from_secs(1));
    let mut req = Request::new(());
    req.extensions_mut().insert(earlier);
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(req));
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(RequestDeadline::of(&req), Some(earlier));
    advance(Duration::from_secs(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "request deadline of 1s exceeded");

    // A later one is replaced by ours.
    let later = RequestDeadline::after(Duration::from_secs(60));
    let mut req = Request::new(());
    req.extensions_mut().insert(later);
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(
        RequestDeadline::of(&req).unwrap().remaining(),
        Duration::from_secs(10)
    );
}

#[tokio::test(start_paused = true)]
async fn expired_on_entry_fails_without_starting_the_exchange() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tower::ServiceExt;

    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let svc = tower_layer::Layer::layer(
        &DeadlineLayer::new(Duration::from_secs(10)),
        tower::service_fn(move |_req: Request<()>| {
            let flag = flag.clone();
            async move {
                flag.store(true, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(Response::new(
                    http_body_util::Empty::<Bytes>::new(),
                ))
            }
        }),
    );
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_millis(1)));
    advance(Duration::from_millis(5)).await;
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert!(
        !started.load(Ordering::SeqCst),
        "the inner future must not be polled"
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_is_propagated_when_asked() {
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_millis(1500)).propagate_grpc_timeout(true));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(Request::new(()));
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "1500000u");

    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_millis(1500)));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(Request::new(()));
    let (req, _send) = handle.next_request().await.unwrap();
    assert!(req.headers().get("grpc-timeout").is_none());
}

#[tokio::test(start_paused = true)]
async fn body_forwards_size_hint_and_end_of_stream() {
    let (_tx, inner) = ChannelBody::new();
    let body = DeadlineBody::new(
        inner.with_hint(SizeHint::with_exact(5)),
        RequestDeadline::after(Duration::from_secs(1)),
    );
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());

    let full = DeadlineBody::new(
        http_body_util::Full::new(Bytes::from("hello")),
        RequestDeadline::after(Duration::from_secs(1)),
    );
    assert_eq!(full.size_hint().exact(), Some(5));
    let empty = DeadlineBody::new(
        http_body_util::Empty::<Bytes>::new(),
        RequestDeadline::after(Duration::from_secs(1)),
    );
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));

    let mut hint = SizeHint::new();
    hint.set_lower(3);
    hint.set_upper(9);
    let (_tx, inner) = ChannelBody::new();
    let ranged = DeadlineBody::new(
        inner.with_hint(hint),
        RequestDeadline::after(Duration::from_secs(1)),
    );
    assert_eq!(ranged.size_hint().lower(), 3);
    assert_eq!(ranged.size_hint().upper(), Some(9));
}

#[test]
#[should_panic(expected = "DeadlineLayer budget must be greater than zero")]
fn zero_budget_is_rejected_at_construction() {
    let _ = DeadlineLayer::new(Duration::ZERO);
}

#[test]
fn public_types_are_send_sync_clone() {
    type Svc = Deadline<mock::Mock<Request<()>, Response<ChannelBody>>>;
    assert_send_sync::<Svc>();
    assert_clone::<Svc>();
    assert_send_sync::<DeadlineLayer>();
    assert_clone::<DeadlineLayer>();
    assert_send_sync::<
        DeadlineFuture<
            <mock::Mock<Request<()>, Response<ChannelBody>> as tower_service::Service<
                Request<()>,
            >>::Future,
        >,
    >();
    assert_send_sync::<DeadlineBody<ChannelBody>>();
    assert_send_sync::<RequestDeadline>();
}

#[tokio::test(start_paused = true)]
async fn remaining_counts_down_to_zero() {
    let d = RequestDeadline::after(Duration::from_secs(3));
    assert_eq!(d.remaining(), Duration::from_secs(3));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(d.remaining(), Duration::from_secs(2));
    assert!(!d.is_expired());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(d.remaining(), Duration::ZERO);
    assert!(d.is_expired());
    assert_eq!(d.budget(), Duration::from_secs(3));
    let u = RequestDeadline::until(Instant::now() + Duration::from_millis(10));
    assert_eq!(u.budget(), Duration::from_millis(10));
}

#[test]
fn grpc_timeout_round_trips_within_eight_digits() {
    for d in [
        Duration::from_nanos(5),
        Duration::from_millis(99),
        Duration::from_millis(1500),
        Duration::from_secs(500),
        Duration::from_secs(200_000),
        Duration::from_secs(86_400 * 365 * 30),
    ] {
        let v = RequestDeadline::encode_grpc_timeout(d);
        let s = v.to_str().unwrap();
        assert!(s.len() <= 9, "{s}");
        let back = RequestDeadline::parse_grpc_timeout(s).unwrap();
        assert!(back <= d, "{s} decodes to {back:?} > {d:?}");
        // Rounded down by less than one unit of the chosen size.
        assert!(d - back < d / 1000 + Duration::from_nanos(1), "{s}");
    }
    assert_eq!(RequestDeadline::parse_grpc_timeout(""), None);
    assert_eq!(RequestDeadline::parse_grpc_timeout("123456789m"), None);
    assert_eq!(RequestDeadline::parse_grpc_timeout("-1S"), None);
    assert_eq!(
        RequestDeadline::parse_grpc_timeout("2H"),
        Some(Duration::from_secs(7200))
    );
}

#[tokio::test(start_paused = true)]
async fn an_earlier_grpc_timeout_of_the_caller_is_the_deadline_and_is_sent() {
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_secs(10)).propagate_grpc_timeout(true));
    let mut req = Request::new(());
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("250m"));
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(req));
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "250000u");
    let d = RequestDeadline::of(&req).expect("the caller's deadline in the extensions");
    assert_eq!(d.remaining(), Duration::from_millis(250));
    advance(Duration::from_millis(249)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "request deadline of 250ms exceeded");

    // A later one is replaced by the smaller time left here.
    let mut req = Request::new(());
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("60S"));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "10000000u");
    assert_eq!(
        RequestDeadline::of(&req).unwrap().remaining(),
        Duration::from_secs(10)
    );

    // An unreadable one is replaced too.
    let mut req = Request::new(());
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("soon"));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "10000000u");
}

#[tokio::test(start_paused = true)]
async fn a_grpc_timeout_is_neither_read_nor_touched_without_propagation() {
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(10)));
    let mut req = Request::new(());
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("250m"));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "250m");
    assert_eq!(
        RequestDeadline::of(&req).unwrap().remaining(),
        Duration::from_secs(10)
    );
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_in_the_extensions_beats_the_callers_grpc_timeout_too() {
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_secs(10)).propagate_grpc_timeout(true));
    let earlier = RequestDeadline::after(Duration::from_millis(100));
    let mut req = Request::new(());
    req.extensions_mut().insert(earlier);
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("2S"));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(RequestDeadline::of(&req), Some(earlier));
    assert_eq!(req.headers()["grpc-timeout"], "100000u");
}

#[tokio::test(start_paused = true)]
async fn a_request_budget_replaces_the_layers_longer_or_shorter() {
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(10)));
    for secs in [3600, 1] {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RequestBudget::new(Duration::from_secs(secs)));
        assert_ready!(svc.poll_ready()).unwrap();
        let mut fut = task::spawn(svc.call(req));
        let (req, _send) = handle.next_request().await.unwrap();
        let d = RequestDeadline::of(&req).unwrap();
        assert_eq!(d.remaining(), Duration::from_secs(secs));
        assert_eq!(d.budget(), Duration::from_secs(secs));
        advance(Duration::from_secs(secs) - Duration::from_millis(1)).await;
        assert_pending!(fut.poll());
        advance(Duration::from_millis(1)).await;
        let err = assert_ready_err!(fut.poll());
        assert_eq!(
            err.to_string(),
            format!("request deadline of {secs}s exceeded")
        );
    }

    // An earlier deadline already there is kept over a longer budget.
    let earlier = RequestDeadline::after(Duration::from_secs(5));
    let mut req = Request::new(());
    req.extensions_mut().insert(earlier);
    req.extensions_mut()
        .insert(RequestBudget::new(Duration::from_secs(3600)));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(RequestDeadline::of(&req), Some(earlier));
}

#[tokio::test(start_paused = true)]
async fn a_request_budget_is_sent_as_grpc_timeout_unless_the_caller_asked_for_less() {
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_secs(10)).propagate_grpc_timeout(true));
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(RequestBudget::new(Duration::from_secs(3600)));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "3600000m");

    let mut req = Request::new(());
    req.extensions_mut()
        .insert(RequestBudget::new(Duration::from_secs(3600)));
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("30S"));
    assert_ready!(svc.poll_ready()).unwrap();
    let _fut = svc.call(req);
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["grpc-timeout"], "30000000u");
}

#[test]
#[should_panic(expected = "RequestBudget must be greater than zero")]
fn a_zero_request_budget_is_rejected_at_construction() {
    let _ = RequestBudget::new(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn an_inner_failure_once_the_sent_deadline_passed_is_the_deadline() {
    // The next hop enforces the grpc-timeout it was sent and fails a moment before this clock
    // fires (tonic's channel does, with `Cancelled`): reported as this deadline, its source kept.
    let (mut svc, mut handle) =
        setup(DeadlineLayer::new(Duration::from_secs(2)).propagate_grpc_timeout(true));
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    send.send_error("the hop's own timeout");
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(err.to_string(), "request deadline of 2s exceeded");
    let source = std::error::Error::source(&*err).expect("the hop's error kept");
    assert_eq!(source.to_string(), "the hop's own timeout");

    // Earlier than that, an inner failure is its own.
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1990)).await;
    send.send_error("refused");
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "refused");

    // And without propagation nothing was sent on: failures are always their own.
    let (mut svc, mut handle) = setup(DeadlineLayer::new(Duration::from_secs(2)));
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    send.send_error("late");
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "late");
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_of_this_crate_keeps_its_phase_and_is_counted_once() {
    // The hop rule is for the foreign error of a hop that enforces the sent deadline; an error
    // of one of our own layers already names its phase and was counted where it fired.
    let stats = Stats::new();
    let layers = tower::ServiceBuilder::new()
        .layer(
            DeadlineLayer::new(Duration::from_secs(2))
                .propagate_grpc_timeout(true)
                .stats(stats.clone()),
        )
        .layer(
            tower_hardened::ResponseHeaderTimeoutLayer::new(Duration::from_secs(10))
                .stats(stats.clone()),
        )
        .into_inner();
    let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<ChannelBody>, _>(layers);
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    assert_pending!(fut.poll());
    let (_req, _send) = handle.next_request().await.unwrap();
    // The header timer inside is cut by the same deadline and fires first: one Total, not two.
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);

    // A typed error of another phase in the last millisecond stays what it is.
    let (mut svc, mut handle) = setup(
        DeadlineLayer::new(Duration::from_secs(2))
            .propagate_grpc_timeout(true)
            .stats(stats.clone()),
    );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    send.send_error(tower_hardened::Error::overloaded(Phase::Acquire, 8));
    let err = assert_ready_err!(fut.poll());
    let typed = tower_hardened::Error::find(&*err).expect("typed");
    assert!(typed.is_overloaded(), "{err}");
    assert_eq!(typed.phase(), Some(Phase::Acquire));
    assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);
}
