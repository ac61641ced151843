//! The layer in isolation, over `tower_test::mock`: permits held by bodies, the queue, the
//! acquire timeout and the deadline, what counts as an overload signal, per-host limits, the
//! handle and `Stats`, bad settings, and the static trait bounds.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, SizeHint};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok, task};
use tower_test::mock;

use super::*;
use crate::test_util::*;
use crate::{Error, ErrorKind, Phase, RequestDeadline, Stats};

type Mock = mock::Mock<Request<()>, Response<ChannelBody>>;
type Handle = mock::Handle<Request<()>, Response<ChannelBody>>;
type Svc = mock::Spawn<AdaptiveLimit<Mock>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// AIMD with a fixed threshold: no probe, so the limit starts where it is set.
fn fixed(initial: usize) -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::new(
        Aimd::new().latency_threshold(Duration::from_secs(10)),
        1..=100,
    )
    .initial_limit(initial)
    .update_interval(ms(10))
}

fn req(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

fn call(svc: &mut Svc, uri: &str) -> task::Spawn<AdaptiveLimitFuture<Mock, ()>> {
    assert_ready_ok!(svc.poll_ready(), "always ready");
    task::spawn(svc.call(req(uri)))
}

/// Answers the next request with a scripted body of the given status.
async fn answer(handle: &mut Handle, status: StatusCode) -> BodyTx {
    let (_req, send) = handle.next_request().await.expect("a request");
    let (tx, body) = ChannelBody::new();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    send.send_response(resp);
    tx
}

fn kind_of(err: &crate::BoxError) -> ErrorKind {
    Error::find(&**err).expect("this crate's error").kind()
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_held_by_the_body_and_the_sample_ends_with_it() {
    let layer = AdaptiveLimitLayer::new(Gradient::new(), 1..=1);
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    for i in 0..5 {
        let mut first = call(&mut svc, "http://a/");
        assert_pending!(first.poll());
        advance(ms(10)).await;
        let tx = answer(&mut handle, StatusCode::OK).await;
        let mut body = task::spawn(assert_ready_ok!(first.poll()).into_body());
        assert_eq!(h.in_flight(), 1);

        // Headers are here, the body is not done: the next request waits.
        let mut second = call(&mut svc, "http://a/");
        assert_pending!(second.poll());
        assert_eq!(h.waiting(), 1);
        assert!(handle.poll_request().is_pending());

        // The body takes 40 ms more; its end releases the permit.
        advance(ms(40)).await;
        tx.send(Ok(Bytes::from("x"))).unwrap();
        assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_some());
        assert!(body.enter(|_, b| b.holds_permit()));
        drop(tx);
        assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());
        assert!(!body.enter(|_, b| b.holds_permit()));
        assert!(second.is_woken(), "round {i}");
        drop(second); // a waiter dropped with its permit: not a sample
        assert_eq!((h.in_flight(), h.waiting()), (0, 0));
    }
    // Five samples of 50 ms end the first probe: the latency is the body's end, not the headers.
    assert_eq!(h.min_rtt(), Some(ms(50)));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_that_is_not_the_servers_fault() {
    let stats = Stats::new();
    let layer = fixed(1).max_waiting(1).stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let _tx = answer(&mut handle, StatusCode::OK).await;
    let _body = assert_ready_ok!(first.poll());
    let mut second = call(&mut svc, "http://a/2");
    assert_pending!(second.poll());
    for _ in 0..20 {
        let mut third = call(&mut svc, "http://a/3");
        let err = assert_ready_err!(third.poll());
        assert_eq!(kind_of(&err), ErrorKind::Overloaded);
        assert_eq!(phase_of(&err), Some(Phase::Acquire));
        advance(ms(10)).await;
    }
    let snap = stats.snapshot();
    assert_eq!((snap.overloads, snap.waiting, snap.in_flight), (20, 1, 1));
    // Our own refusals never reached the server: the limit did not fall for them.
    assert_eq!(h.limit(), 1);
    assert_eq!(snap.adaptive_limit, 1);
}

#[tokio::test(start_paused = true)]
async fn the_acquire_timeout_bounds_the_wait_exactly() {
    let stats = Stats::new();
    let layer = fixed(1).acquire_timeout(ms(100)).stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let _tx = answer(&mut handle, StatusCode::OK).await;
    let _body = assert_ready_ok!(first.poll());

    let mut second = call(&mut svc, "http://a/2");
    assert_pending!(second.poll());
    advance(ms(99)).await;
    assert_pending!(second.poll());
    advance(ms(1)).await;
    let err = assert_ready_err!(second.poll());
    assert_eq!(phase_of(&err), Some(Phase::Acquire));
    assert_eq!(kind_of(&err), ErrorKind::Timeout);
    assert_eq!(
        err.to_string(),
        Error::timeout(Phase::Acquire, ms(100)).to_string()
    );
    assert_eq!(h.waiting(), 0);
    assert_eq!(stats.snapshot().timeouts(Phase::Acquire), 1);
    assert_eq!(
        h.limit(),
        1,
        "a wait in our queue says nothing about the server"
    );
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_bounds_the_wait() {
    let layer = fixed(1).acquire_timeout(Duration::from_secs(1));
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let _tx = answer(&mut handle, StatusCode::OK).await;
    let _body = assert_ready_ok!(first.poll());

    let mut r = req("http://a/2");
    r.extensions_mut().insert(RequestDeadline::after(ms(50)));
    assert_ready_ok!(svc.poll_ready());
    let mut second = task::spawn(svc.call(r));
    assert_pending!(second.poll());
    advance(ms(50)).await;
    let err = assert_ready_err!(second.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));

    // Without an acquire timeout the deadline alone bounds it.
    let layer = fixed(1);
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let _tx = answer(&mut handle, StatusCode::OK).await;
    let _body = assert_ready_ok!(first.poll());
    let mut r = req("http://a/2");
    r.extensions_mut().insert(RequestDeadline::after(ms(30)));
    let mut second = task::spawn(svc.call(r));
    assert_pending!(second.poll());
    advance(ms(30)).await;
    assert_eq!(
        phase_of(&assert_ready_err!(second.poll())),
        Some(Phase::Total)
    );
}

/// Sends `n` requests at once and answers each one `how`, reading what there is of each body.
async fn batch(svc: &mut Svc, handle: &mut Handle, n: usize, how: &str) {
    let mut futs: Vec<_> = (0..n).map(|_| call(svc, "http://a/")).collect();
    for f in &mut futs {
        assert_pending!(f.poll());
    }
    advance(ms(10)).await;
    let mut keep = Vec::new();
    for mut f in futs {
        let (_req, send) = handle.next_request().await.unwrap();
        match how {
            "error" => send.send_error("connection reset"),
            "refused below" => send.send_error(Error::overloaded(Phase::Acquire, 8)),
            "timeout below" => send.send_error(Error::timeout(Phase::ResponseHeaders, ms(10))),
            "503" | "429" | "504" | "200" => {
                let (tx, body) = ChannelBody::new();
                let mut resp = Response::new(body);
                *resp.status_mut() = StatusCode::from_bytes(how.as_bytes()).unwrap();
                send.send_response(resp);
                drop(tx); // the body ends at its first poll
            }
            "body error" => {
                let (tx, body) = ChannelBody::new();
                send.send_response(Response::new(body));
                tx.send(Err("cut".into())).unwrap();
                keep.push(tx);
            }
            other => panic!("{other}"),
        }
        if let std::task::Poll::Ready(Ok(resp)) = f.poll() {
            let mut body = resp.into_body();
            while let std::task::Poll::Ready(Some(Ok(_))) = poll_once(&mut body) {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn errors_refusals_timeouts_and_overload_statuses_lower_the_limit() {
    for how in [
        "error",
        "refused below",
        "timeout below",
        "503",
        "429",
        "504",
        "body error",
    ] {
        let layer = fixed(10);
        let h = layer.handle();
        let (mut svc, mut handle) = mock::spawn_layer(layer);
        batch(&mut svc, &mut handle, 10, how).await;
        assert_eq!((h.limit(), h.in_flight()), (9, 0), "{how}: × 0.9");
    }
    // And a healthy batch grows it.
    let layer = fixed(10);
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    batch(&mut svc, &mut handle, 10, "200").await;
    assert_eq!(h.limit(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_caller_giving_up_after_the_request_was_sent_is_an_overload_signal() {
    let layer = fixed(10);
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut futs: Vec<_> = (0..10).map(|_| call(&mut svc, "http://a/")).collect();
    for f in &mut futs {
        assert_pending!(f.poll());
    }
    for _ in 0..10 {
        let _ = handle.next_request().await.unwrap(); // sent, never answered
    }
    advance(ms(10)).await;
    drop(futs);
    assert_eq!((h.limit(), h.in_flight()), (9, 0));

    // Dropped before the inner service was ready: it never reached the server, no sample.
    handle.allow(0);
    let mut futs: Vec<_> = (0..9).map(|_| call(&mut svc, "http://a/")).collect();
    for f in &mut futs {
        assert_pending!(f.poll());
    }
    assert_eq!(h.in_flight(), 9);
    advance(ms(10)).await;
    drop(futs);
    assert_eq!((h.limit(), h.in_flight()), (9, 0));
}

#[tokio::test(start_paused = true)]
async fn bodies_keep_their_permits_when_the_limit_falls() {
    let layer = AdaptiveLimitLayer::new(
        Aimd::new()
            .backoff(0.3)
            .latency_threshold(Duration::from_secs(10)),
        1..=100,
    )
    .initial_limit(20)
    .update_interval(ms(10));
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let mut f = call(&mut svc, "http://a/");
        assert_pending!(f.poll());
        let tx = answer(&mut handle, StatusCode::OK).await;
        bodies.push((tx, assert_ready_ok!(f.poll()).into_body()));
    }
    advance(ms(10)).await;
    // Ten of them fail: the limit falls to 6, below the 10 still in flight.
    for (tx, mut body) in bodies.drain(..10) {
        tx.send(Err("reset".into())).unwrap();
        assert!(matches!(
            poll_once(&mut body),
            std::task::Poll::Ready(Some(Err(_)))
        ));
    }
    assert_eq!((h.limit(), h.in_flight()), (6, 10));
    assert!(
        bodies.iter().all(|(_, b)| b.holds_permit()),
        "none taken back"
    );

    // Nothing is admitted until fewer than 6 are in flight.
    let mut waiter = call(&mut svc, "http://a/late");
    assert_pending!(waiter.poll());
    for _ in 0..4 {
        let (tx, mut body) = bodies.pop().unwrap();
        drop(tx);
        assert!(matches!(poll_once(&mut body), std::task::Poll::Ready(None)));
        assert_pending!(waiter.poll());
    }
    assert_eq!(h.in_flight(), 6);
    drop(bodies.pop());
    assert!(waiter.is_woken());
    assert_pending!(waiter.poll());
    assert_eq!(h.in_flight(), 6);
    let _ = handle.next_request().await.unwrap();
    // Requests sent at the older limit ended: a new era, it did not fall again for them.
    assert_eq!(h.limit(), 6);
}

#[tokio::test(start_paused = true)]
async fn body_forwards_size_hint_and_end_of_stream() {
    let layer = fixed(2);
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut f = call(&mut svc, "http://a/");
    assert_pending!(f.poll());
    let (req, send) = handle.next_request().await.unwrap();
    drop(req);
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body.with_hint(SizeHint::with_exact(5))));
    let mut body = assert_ready_ok!(f.poll()).into_body();
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    drop(tx);
    assert!(matches!(poll_once(&mut body), std::task::Poll::Ready(None)));
    assert!(body.is_end_stream());
    assert_eq!(h.in_flight(), 0);
    let _ = body.get_ref();

    // A body already at its end releases with the headers.
    use tower::{Layer, ServiceExt};
    let layer = fixed(1);
    let h = layer.handle();
    let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    }));
    let resp = svc.oneshot(req_of("http://a/")).await.unwrap();
    assert!(!resp.body().holds_permit());
    assert!(resp.body().is_end_stream());
    assert_eq!(resp.body().size_hint().exact(), Some(0));
    assert_eq!(h.in_flight(), 0);
}

fn req_of(uri: &str) -> Request<()> {
    req(uri)
}

#[tokio::test(start_paused = true)]
async fn per_host_limits_learn_apart() {
    let stats = Stats::new();
    let layer = fixed(10).per_host().stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    assert_eq!(h.hosts(), 0);
    // Host a fails, host b is fine.
    let mut a: Vec<_> = (0..10)
        .map(|_| call(&mut svc, "http://a.example/"))
        .collect();
    let mut b: Vec<_> = (0..10)
        .map(|_| call(&mut svc, "http://B.example:80/"))
        .collect();
    for f in a.iter_mut().chain(b.iter_mut()) {
        assert_pending!(f.poll());
    }
    assert_eq!((h.hosts(), h.in_flight(), h.limit()), (2, 20, 20));
    assert_eq!(stats.snapshot().adaptive_limit, 20);
    advance(ms(10)).await;
    for _ in 0..20 {
        let (req, send) = handle.next_request().await.unwrap();
        if req.uri().host() == Some("a.example") {
            send.send_error("reset");
        } else {
            send.send_response(Response::new(ChannelBody::new().1));
        }
    }
    for f in a.iter_mut().chain(b.iter_mut()) {
        let _ = f.poll();
    }
    drop((a, b));
    let a = "http://a.example/".parse().unwrap();
    let b = "http://b.example/".parse().unwrap();
    assert_eq!(h.limit_for(&a), Some(9));
    assert_eq!(h.limit_for(&b), Some(11));
    assert_eq!(h.limit_for(&"http://c.example/".parse().unwrap()), None);
    assert_eq!((h.limit(), h.in_flight(), h.waiting()), (20, 0, 0));
    assert_eq!(stats.snapshot().adaptive_limit, 20);
    assert_eq!(h.min_rtt(), None);
    assert_eq!(h.min_rtt_for(&a), None);
}

#[tokio::test(start_paused = true)]
async fn per_host_queues_are_bounded_per_host() {
    let layer = fixed(1).per_host().max_waiting(1);
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    let mut a1 = call(&mut svc, "http://a/");
    let mut a2 = call(&mut svc, "http://a/");
    let mut a3 = call(&mut svc, "http://a/");
    let mut b1 = call(&mut svc, "http://b/");
    assert_pending!(a1.poll());
    assert_pending!(a2.poll());
    assert_eq!(
        kind_of(&assert_ready_err!(a3.poll())),
        ErrorKind::Overloaded
    );
    assert_pending!(b1.poll());
    let _ = handle.next_request().await.unwrap();
    let _ = handle.next_request().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn per_host_entries_with_nothing_in_flight_are_pruned_and_uncounted() {
    use tower::{Layer, ServiceExt};
    let stats = Stats::new();
    let layer = fixed(3).per_host().stats(stats.clone());
    let h = layer.handle();
    let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    }));
    for i in 0..1000 {
        let uri = format!("http://h{i}.example/");
        svc.clone().oneshot(req(&uri)).await.unwrap();
        assert!(h.hosts() <= 64, "{} hosts kept", h.hosts());
    }
    assert!(h.hosts() > 0, "idle hosts are kept up to the bound");
    assert_eq!(stats.snapshot().adaptive_limit as usize, 3 * h.hosts());
    drop((svc, h, layer));
    assert_eq!(
        stats.snapshot().adaptive_limit,
        0,
        "dropped limiters leave the gauge"
    );
}

#[tokio::test(start_paused = true)]
async fn stats_follow_the_limit_and_the_counts() {
    let stats = Stats::new();
    let layer = fixed(10).stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer(layer);
    assert_eq!(stats.snapshot().adaptive_limit, 10);
    batch(&mut svc, &mut handle, 10, "error").await;
    let snap = stats.snapshot();
    assert_eq!(
        (snap.adaptive_limit, snap.in_flight, snap.waiting),
        (9, 0, 0)
    );
    assert_eq!(h.limit(), 9);
    let dbg = format!("{h:?}");
    assert!(dbg.contains("AdaptiveLimitHandle"), "{dbg}");
}

#[test]
fn bad_settings_panic_with_a_clear_message() {
    fn panics<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(f)
            .map(drop)
            .expect_err("must panic");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(msg.starts_with("tower-hardened: "), "{msg}");
        msg
    }
    let g = Gradient::new;
    #[allow(clippy::reversed_empty_ranges)]
    let empty = || AdaptiveLimitLayer::new(g(), 10..=5);
    assert!(panics(empty).contains("min 10 is above max 5"));
    assert!(panics(|| AdaptiveLimitLayer::new(g(), 0..=5)).contains("above zero"));
    assert!(panics(|| AdaptiveLimitLayer::new(g(), 1..=usize::MAX)).contains("at most"));
    let l = || AdaptiveLimitLayer::new(g(), 2..=8);
    assert!(panics(|| l().initial_limit(9)).contains("outside its limits 2..=8"));
    assert!(panics(|| l().initial_limit(1)).contains("initial_limit"));
    assert!(panics(|| l().acquire_timeout(Duration::ZERO)).contains("acquire_timeout"));
    assert!(panics(|| l().update_interval(Duration::ZERO)).contains("update_interval"));
    assert!(panics(|| l().min_rtt_probe(Duration::ZERO, 0.1)).contains("interval"));
    assert!(panics(|| l().min_rtt_probe(ms(1), 1.5)).contains("jitter"));
    assert!(panics(|| l().min_rtt_probe(ms(1), f64::NAN)).contains("jitter"));
    assert!(panics(|| g().buffer(0.0)).contains("buffer"));
    assert!(panics(|| g().buffer(f64::NAN)).contains("buffer"));
    assert!(panics(|| g().buffer(f64::INFINITY)).contains("buffer"));
    assert!(panics(|| Aimd::new().backoff(1.0)).contains("backoff"));
    assert!(panics(|| Aimd::new().backoff(0.0)).contains("backoff"));
    assert!(panics(|| Aimd::new().backoff(f64::NAN)).contains("backoff"));
    assert!(panics(|| Aimd::new().increase(0)).contains("increase"));
    assert!(panics(|| Aimd::new().tolerance(1.0)).contains("tolerance"));
    assert!(panics(|| Aimd::new().tolerance(f64::NAN)).contains("tolerance"));
    assert!(panics(|| Aimd::new().latency_threshold(Duration::ZERO)).contains("threshold"));
    // And good ones do not.
    let _ = AdaptiveLimitLayer::new(Aimd::new().backoff(0.5).increase(2).tolerance(2.0), 1..=1)
        .min_rtt_probe(Duration::from_secs(1), 0.0)
        .initial_limit(1);
}

#[test]
fn setters_make_a_fresh_limit_and_clones_share_it() {
    let a = fixed(4);
    let b = a.clone();
    assert!(std::sync::Arc::ptr_eq(&a.shared, &b.shared));
    let c = a.clone().max_waiting(3);
    assert!(!std::sync::Arc::ptr_eq(&a.shared, &c.shared));
    assert_eq!(c.handle().limit(), 4, "settings are kept");
    // The default initial limit is 20, within the limits.
    assert_eq!(
        AdaptiveLimitLayer::new(Aimd::new().latency_threshold(ms(1)), 1..=8)
            .handle()
            .limit(),
        8
    );
    assert_eq!(
        AdaptiveLimitLayer::new(Aimd::new().latency_threshold(ms(1)), 30..=80)
            .handle()
            .limit(),
        30
    );
}

#[test]
fn public_types_are_send_sync_clone() {
    assert_send_sync::<AdaptiveLimitLayer>();
    assert_clone::<AdaptiveLimitLayer>();
    assert_send_sync::<AdaptiveLimit<Mock>>();
    assert_clone::<AdaptiveLimit<Mock>>();
    assert_send_sync::<AdaptiveLimitFuture<Mock, ()>>();
    assert_send_sync::<AdaptiveLimitBody<ChannelBody>>();
    assert_send_sync::<AdaptiveLimitHandle>();
    assert_clone::<AdaptiveLimitHandle>();
    assert_send_sync::<Aimd>();
    assert_clone::<Aimd>();
    assert_send_sync::<Gradient>();
    assert_clone::<Gradient>();
    assert_send_sync::<AdaptiveAlgorithm>();
    assert_clone::<AdaptiveAlgorithm>();
}
