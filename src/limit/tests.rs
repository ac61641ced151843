use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, SizeHint};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok, task};
use tower_test::mock;

use super::*;
use crate::test_util::*;
use crate::{Error, ErrorKind, Phase, RequestDeadline, Stats};

type Mock = mock::Mock<Request<()>, Response<ChannelBody>>;
type Handle = mock::Handle<Request<()>, Response<ChannelBody>>;
type Fut = LimitFuture<Mock, ()>;

fn req(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

fn global(layer: ConcurrencyLimitLayer) -> (mock::Spawn<ConcurrencyLimit<Mock>>, Handle) {
    mock::spawn_layer(layer)
}

fn per_host(layer: PerHostLimitLayer) -> (mock::Spawn<PerHostLimit<Mock>>, Handle) {
    mock::spawn_layer(layer)
}

/// Calls through a spawned service (which must always be ready) and returns the spawned future.
fn call<S>(svc: &mut mock::Spawn<S>, uri: &str) -> task::Spawn<S::Future>
where
    S: tower_service::Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    assert_ready_ok!(svc.poll_ready(), "always ready, even when full");
    task::spawn(svc.call(req(uri)))
}

/// Takes the next request the inner service got, answers it with a scripted body, and returns
/// the request's URI and the body's sender.
async fn answer(handle: &mut Handle) -> (String, BodyTx) {
    let (req, send) = handle.next_request().await.expect("a request");
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    (req.uri().to_string(), tx)
}

fn no_request(handle: &mut Handle) {
    assert!(
        handle.poll_request().is_pending(),
        "the inner service must not see a request"
    );
}

fn kind_of(err: &crate::BoxError) -> ErrorKind {
    Error::find(&**err).expect("this crate's error").kind()
}

#[tokio::test(start_paused = true)]
async fn permit_is_held_while_the_body_lives_and_released_at_its_end() {
    let layer = ConcurrencyLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);

    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let (_, tx) = answer(&mut handle).await;
    let resp = assert_ready_ok!(first.poll());
    let mut body = task::spawn(resp.into_body());
    assert_eq!((h.in_flight(), h.available()), (1, 0));

    let mut second = call(&mut svc, "http://a/2");
    assert_pending!(second.poll());
    assert_eq!(h.waiting(), 1);
    no_request(&mut handle);

    // Data flowing does not release it.
    tx.send(Ok(Bytes::from("x"))).unwrap();
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_some());
    assert!(body.enter(|_, b| b.holds_permit()));
    assert_pending!(second.poll());
    assert_eq!(h.in_flight(), 1);

    // The end of the body does.
    drop(tx);
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());
    assert!(!body.enter(|_, b| b.holds_permit()));
    assert!(second.is_woken());
    assert_eq!(h.in_flight(), 0);
    assert_pending!(second.poll());
    assert_eq!((h.in_flight(), h.waiting()), (1, 0));
    let (uri, _tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://a/2");
}

#[tokio::test(start_paused = true)]
async fn permit_is_released_on_a_body_error() {
    let layer = ConcurrencyLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let (_, tx) = answer(&mut handle).await;
    let mut body = task::spawn(assert_ready_ok!(first.poll()).into_body());
    tx.send(Err("cut".into())).unwrap();
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "cut");
    assert_eq!(h.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn permit_is_released_when_the_body_is_dropped() {
    let layer = ConcurrencyLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);
    let mut first = call(&mut svc, "http://a/1");
    assert_pending!(first.poll());
    let (_, _tx) = answer(&mut handle).await;
    let resp = assert_ready_ok!(first.poll());
    assert_eq!(h.in_flight(), 1);
    drop(resp);
    assert_eq!((h.in_flight(), h.available()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn permit_is_released_when_the_future_is_dropped_at_any_point() {
    let stats = Stats::new();
    let layer = ConcurrencyLimitLayer::new(1).stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);

    // Holding a permit, waiting for the inner service to be ready.
    handle.allow(0);
    let mut f = call(&mut svc, "http://a/1");
    assert_pending!(f.poll());
    assert_eq!(h.in_flight(), 1);
    assert_eq!(stats.snapshot().in_flight, 1);
    drop(f);
    assert_eq!(h.in_flight(), 0);
    assert_eq!(stats.snapshot().in_flight, 0);

    // Called, waiting for the response headers.
    handle.allow(10);
    let mut f = call(&mut svc, "http://a/2");
    assert_pending!(f.poll());
    let (_req, _send) = handle.next_request().await.unwrap();
    assert_eq!(h.in_flight(), 1);
    drop(f);
    assert_eq!(h.in_flight(), 0);

    // The inner call fails: no body to hold the permit.
    let mut f = call(&mut svc, "http://a/3");
    assert_pending!(f.poll());
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error("refused");
    assert_eq!(assert_ready_err!(f.poll()).to_string(), "refused");
    assert_eq!(h.in_flight(), 0);

    // The inner service fails to get ready.
    handle.send_error("broken");
    let mut f = call(&mut svc, "http://a/4");
    assert_eq!(assert_ready_err!(f.poll()).to_string(), "broken");
    assert_eq!((h.in_flight(), h.available()), (0, 1));
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_body_already_at_its_end_releases_at_once() {
    use tower::{Layer, ServiceExt};
    let layer = ConcurrencyLimitLayer::new(1);
    let h = layer.handle();
    let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    }));
    let resp = svc.clone().oneshot(req("http://a/")).await.unwrap();
    assert!(!resp.body().holds_permit());
    assert_eq!(h.in_flight(), 0);
    // And a full body keeps it until read.
    let svc = ConcurrencyLimitLayer::new(1).layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
            "abc",
        ))))
    }));
    let h = svc.handle();
    let resp = svc.oneshot(req("http://a/")).await.unwrap();
    assert_eq!(h.in_flight(), 1);
    let mut body = resp.into_body();
    // The only frame is also the last: released with it, before the `None`.
    let frame = poll_once(&mut body);
    assert!(matches!(frame, std::task::Poll::Ready(Some(Ok(_)))));
    assert_eq!(h.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_frees_its_place_and_never_takes_a_permit() {
    let stats = Stats::new();
    let layer = ConcurrencyLimitLayer::new(1)
        .max_waiting(1)
        .stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);

    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let (_, a_tx) = answer(&mut handle).await;
    let a_resp = assert_ready_ok!(a.poll());

    // B waits and is cancelled: its place is free again.
    let mut b = call(&mut svc, "http://a/b");
    assert_pending!(b.poll());
    assert_eq!((h.waiting(), stats.snapshot().waiting), (1, 1));
    drop(b);
    assert_eq!((h.waiting(), stats.snapshot().waiting), (0, 0));

    // C waits (not refused: B's place is free). The permit is handed to C when A ends, and C is
    // cancelled before it runs: the permit goes back, nothing was called.
    let mut c = call(&mut svc, "http://a/c");
    assert_pending!(c.poll());
    drop(a_tx);
    drop(a_resp);
    assert!(c.is_woken());
    drop(c);
    assert_eq!((h.in_flight(), h.waiting(), h.available()), (0, 0, 1));
    no_request(&mut handle);

    // D goes at once.
    let mut d = call(&mut svc, "http://a/d");
    assert_pending!(d.poll());
    let (uri, _tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://a/d");
    assert_eq!(stats.snapshot().overloads, 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_the_order_they_called() {
    let layer = ConcurrencyLimitLayer::new(1);
    let (mut svc, mut handle) = global(layer);
    let mut first = call(&mut svc, "http://a/0");
    assert_pending!(first.poll());
    let (_, tx) = answer(&mut handle).await;
    let resp = assert_ready_ok!(first.poll());

    let mut waiters: Vec<_> = (1..=5)
        .map(|i| call(&mut svc, &format!("http://a/{i}")))
        .collect();
    // Polled for the first time in reverse: the order of `call` still decides.
    for w in waiters.iter_mut().rev() {
        assert_pending!(w.poll());
    }
    drop((tx, resp));
    let mut seen = Vec::new();
    for _ in 0..5 {
        for w in waiters.iter_mut().rev() {
            if w.is_woken() {
                assert_pending!(w.poll());
            }
        }
        let (req, send) = handle.next_request().await.unwrap();
        seen.push(req.uri().path().to_string());
        // Answer with an empty body: releases the permit as soon as the response is ready.
        let (tx, body) = ChannelBody::new();
        drop(tx);
        send.send_response(Response::new(body));
        for w in waiters.iter_mut() {
            if w.is_woken() {
                if let std::task::Poll::Ready(resp) = w.poll() {
                    drop(resp.unwrap());
                }
            }
        }
    }
    assert_eq!(seen, ["/1", "/2", "/3", "/4", "/5"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once() {
    let stats = Stats::new();
    let layer = ConcurrencyLimitLayer::new(1)
        .max_waiting(2)
        .stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let mut b = call(&mut svc, "http://a/b");
    let mut c = call(&mut svc, "http://a/c");
    assert_pending!(b.poll());
    assert_pending!(c.poll());
    assert_eq!(h.waiting(), 2);

    let mut d = call(&mut svc, "http://a/d");
    let err = assert_ready_err!(d.poll());
    assert_eq!(kind_of(&err), ErrorKind::Overloaded);
    assert_eq!(phase_of(&err), Some(Phase::Acquire));
    assert_eq!(
        err.to_string(),
        "overloaded: the queue for a permit is full (2 waiting)"
    );
    assert_eq!(stats.snapshot().overloads, 1);
    assert_eq!(h.waiting(), 2);
    let (uri, _tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://a/a");
    no_request(&mut handle);

    // No queue at all: shed as soon as every permit is taken.
    let layer = ConcurrencyLimitLayer::new(1).max_waiting(0);
    let (mut svc, _handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let mut b = call(&mut svc, "http://a/b");
    assert_eq!(kind_of(&assert_ready_err!(b.poll())), ErrorKind::Overloaded);
}

#[tokio::test(start_paused = true)]
async fn the_acquire_timeout_bounds_the_wait_exactly() {
    let stats = Stats::new();
    let layer = ConcurrencyLimitLayer::new(1)
        .acquire_timeout(Duration::from_millis(500))
        .stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let mut b = call(&mut svc, "http://a/b");
    assert_pending!(b.poll());
    advance(Duration::from_millis(499)).await;
    assert_pending!(b.poll());
    advance(Duration::from_millis(1)).await;
    assert!(b.is_woken());
    let err = assert_ready_err!(b.poll());
    assert_eq!(phase_of(&err), Some(Phase::Acquire));
    assert_eq!(err.to_string(), "no permit or connection within 500ms");
    assert_eq!(stats.snapshot().timeouts(Phase::Acquire), 1);
    assert_eq!(h.waiting(), 0);

    // It bounds only the wait: a request holding a permit may take longer.
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_secs(5)).await;
    assert_pending!(a.poll());
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    assert_ready_ok!(a.poll());
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_bounds_the_wait_exactly() {
    let layer = ConcurrencyLimitLayer::new(1).acquire_timeout(Duration::from_secs(1));
    let h = layer.handle();
    let (mut svc, _handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());

    // The deadline comes before the acquire timeout: it is the one reported.
    let mut r = req("http://a/b");
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_millis(300)));
    let mut b = task::spawn(svc.call(r));
    assert_pending!(b.poll());
    advance(Duration::from_millis(299)).await;
    assert_pending!(b.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(b.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(err.to_string(), "request deadline of 300ms exceeded");

    // Without an acquire timeout, the deadline alone bounds it.
    let layer = ConcurrencyLimitLayer::new(1);
    let (mut svc, _handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let mut r = req("http://a/b");
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_millis(300)));
    let mut b = task::spawn(svc.call(r));
    assert_pending!(b.poll());
    advance(Duration::from_millis(300)).await;
    assert_eq!(phase_of(&assert_ready_err!(b.poll())), Some(Phase::Total));
    assert_eq!(h.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn body_forwards_size_hint_and_end_of_stream() {
    let (_tx, inner) = ChannelBody::new();
    let body = LimitBody::new(inner.with_hint(SizeHint::with_exact(5)), None);
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());

    let mut hint = SizeHint::new();
    hint.set_lower(3);
    hint.set_upper(9);
    let (_tx, inner) = ChannelBody::new();
    let ranged = LimitBody::new(inner.with_hint(hint), None);
    assert_eq!(ranged.size_hint().lower(), 3);
    assert_eq!(ranged.size_hint().upper(), Some(9));

    let full = LimitBody::new(http_body_util::Full::new(Bytes::from("hello")), None);
    assert_eq!(full.size_hint().exact(), Some(5));
    assert!(!full.is_end_stream());
    let empty = LimitBody::new(http_body_util::Empty::<Bytes>::new(), None);
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn per_host_limits_are_independent_and_keys_are_normalised() {
    let stats = Stats::new();
    let layer = PerHostLimitLayer::new(1).stats(stats.clone());
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);

    let mut a1 = call(&mut svc, "http://a.example/1");
    assert_pending!(a1.poll());
    let (_, a_tx) = answer(&mut handle).await;
    let a1 = assert_ready_ok!(a1.poll());

    // Another host is not held up.
    let mut b1 = call(&mut svc, "http://b.example/1");
    assert_pending!(b1.poll());
    let (uri, _b_tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://b.example/1");
    let b1 = assert_ready_ok!(b1.poll());

    // The same host, written differently, is.
    let mut a2 = call(&mut svc, "http://A.EXAMPLE:80/2");
    assert_pending!(a2.poll());
    // And https is another host.
    let mut a3 = call(&mut svc, "https://a.example/3");
    assert_pending!(a3.poll());
    let (uri, _a3_tx) = answer(&mut handle).await;
    assert_eq!(uri, "https://a.example/3");
    no_request(&mut handle);

    let a_uri: http::Uri = "http://a.example/".parse().unwrap();
    assert_eq!(h.in_flight_for(&a_uri), 1);
    assert_eq!(h.waiting_for(&a_uri), 1);
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (3, 3, 1));
    assert_eq!(stats.snapshot().in_flight, 3);

    drop((a_tx, a1));
    assert!(a2.is_woken());
    assert_pending!(a2.poll());
    let (uri, _tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://A.EXAMPLE:80/2");
    let a2 = assert_ready_ok!(a2.poll());
    let a3 = assert_ready_ok!(a3.poll());

    drop((b1, a2, a3));
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (0, 0, 0));
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn per_host_queue_is_bounded_per_host_and_state_is_reclaimed() {
    let layer = PerHostLimitLayer::new(1)
        .max_waiting(1)
        .acquire_timeout(Duration::from_millis(100));
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    let mut a1 = call(&mut svc, "http://a/1");
    assert_pending!(a1.poll());
    let mut a2 = call(&mut svc, "http://a/2");
    assert_pending!(a2.poll());
    let mut a3 = call(&mut svc, "http://a/3");
    let err = assert_ready_err!(a3.poll());
    assert_eq!(kind_of(&err), ErrorKind::Overloaded);
    assert_eq!(
        err.to_string(),
        "overloaded: the queue for a permit is full (1 waiting)"
    );
    // Another host has its own queue.
    let mut b1 = call(&mut svc, "http://b/1");
    assert_pending!(b1.poll());
    assert_eq!(h.hosts(), 2);

    // a2 times out waiting; the host stays (a1 is in flight); b1 and a1 end: nothing is left.
    advance(Duration::from_millis(100)).await;
    assert_eq!(
        phase_of(&assert_ready_err!(a2.poll())),
        Some(Phase::Acquire)
    );
    assert_eq!((h.hosts(), h.waiting()), (2, 0));
    drop(b1);
    assert_eq!(h.hosts(), 1);
    let (_req, _send) = handle.next_request().await.unwrap();
    drop(a1);
    assert_eq!((h.hosts(), h.in_flight()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn per_host_key_falls_back_to_the_host_header() {
    let layer = PerHostLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, _handle) = per_host(layer);
    assert_ready_ok!(svc.poll_ready());
    let r = Request::get("/x")
        .header("host", "origin.example:8080")
        .body(())
        .unwrap();
    let mut f = task::spawn(svc.call(r));
    assert_pending!(f.poll());
    assert_eq!(
        h.in_flight_for(&"origin.example:8080".parse().unwrap()),
        1,
        "keyed by the Host header"
    );
}

#[tokio::test(start_paused = true)]
async fn many_distinct_hosts_leave_nothing_behind() {
    let layer = PerHostLimitLayer::new(2).max_idle_hosts(4);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    let mut held = Vec::new();
    for i in 0..2_000 {
        let mut f = call(&mut svc, &format!("http://h{i}.example/"));
        assert_pending!(f.poll());
        let (_, tx) = answer(&mut handle).await;
        held.push((assert_ready_ok!(f.poll()), tx));
    }
    assert_eq!(h.hosts(), 2_000);
    let cap_full = h.gate.capacity();
    held.clear();
    assert_eq!((h.hosts(), h.in_flight()), (0, 0));
    assert!(
        h.gate.entries() <= 4,
        "at most max_idle_hosts idle entries are kept: {}",
        h.gate.entries()
    );
    assert!(
        h.gate.capacity() < cap_full / 4,
        "the map shrinks with its hosts: {} of {cap_full}",
        h.gate.capacity()
    );
}

#[tokio::test(start_paused = true)]
async fn the_last_host_key_is_reused_only_for_the_same_spelling_and_still_admits() {
    // The service keeps the key of its last request: a request spelled alike (scheme and
    // authority byte for byte) reuses it, and is admitted through the map like any other, even
    // after the entry of that key was removed as idle.
    let layer = PerHostLimitLayer::new(1).max_idle_hosts(1);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    let mut a1 = call(&mut svc, "http://a.example/1");
    assert_pending!(a1.poll());
    let (_, a_tx) = answer(&mut handle).await;
    let a1 = assert_ready_ok!(a1.poll());
    // Same spelling, same key: held up by the limit of 1.
    let mut a2 = call(&mut svc, "http://a.example/2");
    assert_pending!(a2.poll());
    no_request(&mut handle);
    // Another spelling of the same host after it: the same limit.
    let mut a3 = call(&mut svc, "http://A.example:80/3");
    assert_pending!(a3.poll());
    no_request(&mut handle);
    // A host spelled like `a` but another port is another key.
    let mut c1 = call(&mut svc, "http://a.example:81/");
    assert_pending!(c1.poll());
    let (uri, _c_tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://a.example:81/");
    let c1 = assert_ready_ok!(c1.poll());
    let a_uri: http::Uri = "http://a.example/".parse().unwrap();
    assert_eq!((h.in_flight_for(&a_uri), h.waiting_for(&a_uri)), (1, 2));
    drop((a_tx, a1, a2, a3, c1));
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (0, 0, 0));

    // With no idle entry kept, an entry goes as its last user leaves; the service's last key
    // then finds none and makes a new one, which the next request of that key shares.
    let layer = PerHostLimitLayer::new(1).max_idle_hosts(0);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    let z: http::Uri = "http://z.example/".parse().unwrap();
    let mut z1 = call(&mut svc, "http://z.example/1");
    assert_pending!(z1.poll());
    let (_, tx) = answer(&mut handle).await;
    drop((assert_ready_ok!(z1.poll()), tx));
    assert_eq!(h.gate.entries(), 0);
    let mut z2 = call(&mut svc, "http://z.example/2");
    assert_pending!(z2.poll());
    let (_, z_tx) = answer(&mut handle).await;
    let z2 = assert_ready_ok!(z2.poll());
    let mut z3 = call(&mut svc, "http://z.example/3");
    assert_pending!(z3.poll());
    no_request(&mut handle);
    assert_eq!(
        (h.in_flight_for(&z), h.waiting_for(&z), h.gate.entries()),
        (1, 1, 1)
    );
    drop((z_tx, z2));
    assert_pending!(z3.poll());
    let (_, _tx) = answer(&mut handle).await;
    drop(assert_ready_ok!(z3.poll()));
    assert_eq!(
        (h.hosts(), h.in_flight(), h.waiting(), h.gate.entries()),
        (0, 0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_idle_bound_is_64_hosts() {
    let layer = PerHostLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    let open = |n: usize, svc: &mut mock::Spawn<PerHostLimit<Mock>>| {
        let held: Vec<_> = (0..n)
            .map(|i| {
                let mut f = call(svc, &format!("http://h{i}.example/"));
                assert_pending!(f.poll());
                f
            })
            .collect();
        held
    };
    // 50 hosts, all idle again: fewer than 64, so every entry is kept.
    let mut held = Vec::new();
    for mut f in open(50, &mut svc) {
        let (_, tx) = answer(&mut handle).await;
        held.push((assert_ready_ok!(f.poll()), tx));
    }
    held.clear();
    assert_eq!((h.hosts(), h.gate.entries()), (0, 50));
    // 200 hosts, all idle again: more than 64, so the sweep keeps at most 64.
    for mut f in open(200, &mut svc) {
        let (_, tx) = answer(&mut handle).await;
        held.push((assert_ready_ok!(f.poll()), tx));
    }
    held.clear();
    assert_eq!(h.hosts(), 0);
    assert!(
        h.gate.entries() <= 64,
        "{} idle entries kept",
        h.gate.entries()
    );
}

#[tokio::test(start_paused = true)]
async fn one_request_at_a_time_keeps_one_entry() {
    let layer = PerHostLimitLayer::new(2);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    for i in 0..10 {
        let mut f = call(&mut svc, &format!("http://Same.example/{i}"));
        assert_pending!(f.poll());
        let (_, tx) = answer(&mut handle).await;
        let resp = assert_ready_ok!(f.poll());
        assert_eq!((h.hosts(), h.gate.entries()), (1, 1));
        drop((resp, tx));
        // Idle, but kept for the next request: not rebuilt per request.
        assert_eq!((h.hosts(), h.gate.entries(), h.in_flight()), (0, 1, 0));
    }
}

#[test]
#[should_panic(expected = "ConcurrencyLimitLayer max must be greater than zero")]
fn zero_limit_is_rejected() {
    let _ = ConcurrencyLimitLayer::new(0);
}

#[test]
#[should_panic(expected = "PerHostLimitLayer max_per_host must be greater than zero")]
fn zero_per_host_limit_is_rejected() {
    let _ = PerHostLimitLayer::new(0);
}

#[test]
#[should_panic(expected = "acquire_timeout must be greater than zero")]
fn zero_acquire_timeout_is_rejected() {
    let _ = ConcurrencyLimitLayer::new(1).acquire_timeout(Duration::ZERO);
}

#[test]
fn setters_make_a_fresh_limit_and_clones_share_it() {
    let layer = ConcurrencyLimitLayer::new(3);
    let clone = layer.clone();
    assert!(std::sync::Arc::ptr_eq(
        &layer.handle().gate,
        &clone.handle().gate
    ));
    let other = layer.clone().max_waiting(3);
    assert!(!std::sync::Arc::ptr_eq(
        &layer.handle().gate,
        &other.handle().gate
    ));
    assert_eq!(other.handle().limit(), 3);
}

#[test]
fn public_types_are_send_sync_clone() {
    assert_send_sync::<ConcurrencyLimitLayer>();
    assert_clone::<ConcurrencyLimitLayer>();
    assert_send_sync::<PerHostLimitLayer>();
    assert_clone::<PerHostLimitLayer>();
    assert_send_sync::<ConcurrencyLimit<Mock>>();
    assert_clone::<ConcurrencyLimit<Mock>>();
    assert_send_sync::<PerHostLimit<Mock>>();
    assert_clone::<PerHostLimit<Mock>>();
    assert_send_sync::<Fut>();
    assert_send_sync::<LimitBody<ChannelBody>>();
    assert_send_sync::<LimitHandle>();
    assert_send_sync::<PerHostHandle>();
    assert_clone::<LimitHandle>();
    assert_clone::<PerHostHandle>();
}

#[tokio::test]
async fn a_permit_arriving_after_the_bound_is_passed_on_not_used() {
    // Real time, with the runtime blocked so its timer driver cannot fire the waiter's timer:
    // the lag a busy runtime has. The waiter must not start an exchange past its deadline.
    let layer = ConcurrencyLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = global(layer);
    let mut a = call(&mut svc, "http://a/a");
    assert_pending!(a.poll());
    let (_, a_tx) = answer(&mut handle).await;
    let a = assert_ready_ok!(a.poll());

    let mut r = req("http://a/late");
    r.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_millis(20)));
    let mut late = task::spawn(svc.call(r));
    assert_pending!(late.poll());
    std::thread::sleep(Duration::from_millis(40));
    drop((a, a_tx));
    assert!(late.is_woken());
    let err = assert_ready_err!(late.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    no_request(&mut handle);
    assert_eq!((h.in_flight(), h.waiting(), h.available()), (0, 0, 1));
}

/// A response body that counts itself active from the inner call until it is dropped.
struct Counted(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_host_entry_removal_races_new_arrivals_safely() {
    // Threads keep one host's entry going away and coming back: the last user leaving races
    // new arrivals. A removal that misses a new arrival would leave two entries (two
    // semaphores) for one host, and the inner service would see two requests at once.
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use tower::{Layer, ServiceExt};
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let layer = PerHostLimitLayer::new(1).max_waiting(usize::MAX);
    let h = layer.handle();
    let (a, p) = (active.clone(), peak.clone());
    let svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
        let now = a.fetch_add(1, SeqCst) + 1;
        p.fetch_max(now, SeqCst);
        let body = Counted(a.clone());
        async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
    }));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                for _ in 0..3_000 {
                    let resp = svc.clone().oneshot(req("http://one.example/")).await;
                    drop(resp.unwrap());
                    if peak.load(SeqCst) > 1 {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(SeqCst), 1, "two requests to one host at once");
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (0, 0, 0));
    assert_eq!(active.load(SeqCst), 0);
}

/// An inner service whose readiness is a place in a FIFO queue, like tower's `Buffer`: a
/// `poll_ready` that returns `Pending` leaves *that instance* queued, and a freed slot goes to
/// the first instance queued, whoever polls it next. A clone starts outside the queue.
type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

struct Queued {
    slots: Arc<Semaphore>,
    waiting: Option<SlotWait>,
    ready: Option<OwnedSemaphorePermit>,
    called: Arc<AtomicUsize>,
}

impl Queued {
    fn new(slots: usize) -> Queued {
        Queued {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: None,
            ready: None,
            called: Arc::default(),
        }
    }
}

impl Clone for Queued {
    fn clone(&self) -> Self {
        Queued {
            slots: self.slots.clone(),
            waiting: None,
            ready: None,
            called: self.called.clone(),
        }
    }
}

impl tower_service::Service<Request<()>> for Queued {
    type Response = Response<http_body_util::Empty<Bytes>>;
    type Error = crate::BoxError;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready.is_none() {
            let slots = self.slots.clone();
            let waiting = self
                .waiting
                .get_or_insert_with(|| Box::pin(slots.acquire_owned()));
            let permit = std::task::ready!(waiting.as_mut().poll(cx)).expect("open");
            self.waiting = None;
            self.ready = Some(permit);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        // The slot is used by the call only for a moment: given back at once.
        drop(self.ready.take().expect("called when ready"));
        self.called.fetch_add(1, SeqCst);
        std::future::ready(Ok(Response::new(http_body_util::Empty::new())))
    }
}

#[tokio::test(start_paused = true)]
async fn an_inner_service_not_ready_at_once_is_driven_by_the_instance_that_queued() {
    use tower_layer::Layer;
    use tower_service::Service;
    for per_host_layer in [false, true] {
        let inner = Queued::new(1);
        let (slots, called) = (inner.slots.clone(), inner.called.clone());
        let taken = slots.clone().try_acquire_owned().unwrap(); // the only slot, held elsewhere
        let mut svc: tower::util::BoxService<Request<()>, _, crate::BoxError> = if per_host_layer {
            tower::util::BoxService::new(PerHostLimitLayer::new(4).layer(inner))
        } else {
            tower::util::BoxService::new(ConcurrencyLimitLayer::new(4).layer(inner))
        };
        let mut f = task::spawn(svc.call(req("http://a/1")));
        assert_pending!(f.poll());
        assert_eq!(called.load(SeqCst), 0);
        // The slot frees up: it goes to whichever instance queued first. The request must get
        // it without anyone calling the service again.
        drop(taken);
        assert_ready_ok!(f.poll());
        assert_eq!(called.load(SeqCst), 1);
        drop(svc);
    }
}

#[tokio::test]
async fn an_inner_service_that_failed_is_never_used_again() {
    use tower::{Layer, Service, ServiceExt};
    // Each instance fails once, then panics if polled again (as a used-up `FutureService`).
    #[derive(Clone, Default)]
    struct FailsOnce(bool);
    impl tower_service::Service<Request<()>> for FailsOnce {
        type Response = Response<http_body_util::Empty<Bytes>>;
        type Error = crate::BoxError;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
            assert!(!self.0, "polled again after it failed");
            self.0 = true;
            Poll::Ready(Err("connect failed".into()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            unreachable!("never ready")
        }
    }
    let stats = Stats::new();
    let mut global = ConcurrencyLimitLayer::new(4)
        .stats(stats.clone())
        .layer(FailsOnce::default());
    let mut per_host = PerHostLimitLayer::new(4).layer(FailsOnce::default());
    for i in 0..3 {
        let uri = format!("http://a/{i}");
        let err = global.ready().await.unwrap().call(req(&uri)).await;
        assert_eq!(err.unwrap_err().to_string(), "connect failed");
        let err = per_host.ready().await.unwrap().call(req(&uri)).await;
        assert_eq!(err.unwrap_err().to_string(), "connect failed");
    }
    assert_eq!(
        stats.snapshot().in_flight,
        0,
        "the permit went back each time"
    );
}

/// Makes `http://a.example/`'s entry the remembered one of `svc`, and leaves it idle in the map.
async fn remembered_idle_entry(
    svc: &mut mock::Spawn<PerHostLimit<Mock>>,
    handle: &mut Handle,
    h: &PerHostHandle,
) {
    let mut f = call(svc, "http://a.example/0");
    assert_pending!(f.poll());
    let (_, tx) = answer(handle).await;
    drop((assert_ready_ok!(f.poll()), tx));
    assert_eq!((h.hosts(), h.gate.entries()), (0, 1), "idle, kept");
}

#[tokio::test(start_paused = true)]
async fn a_remembered_entry_removed_as_a_request_enters_it_is_not_used() {
    // The service's remembered entry is idle in the map. A request to it sees a permit free
    // (without the map's lock), and the entry is removed as idle before the request takes that
    // permit: the request must not take it (a permit of an entry no other request can see, so
    // the host's limit would not hold) but find the host's entry anew.
    use super::sem::{hooks, Point};
    let layer = PerHostLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    remembered_idle_entry(&mut svc, &mut handle, &h).await;
    let gate = h.gate.clone();
    hooks::at(Point::Acquire, move || gate.remove_idle_now());
    let mut a1 = call(&mut svc, "http://a.example/1");
    assert!(hooks::ran(), "the entry was removed inside the window");
    assert_pending!(a1.poll());
    let (_, a1_tx) = answer(&mut handle).await;
    let a1 = assert_ready_ok!(a1.poll());
    let a: http::Uri = "http://a.example/".parse().unwrap();
    assert_eq!(
        (h.in_flight_for(&a), h.hosts(), h.gate.entries()),
        (1, 1, 1),
        "counted in the host's entry in the map"
    );
    // The limit of 1 holds for the next request, remembered entry or not.
    let mut a2 = call(&mut svc, "http://a.example/2");
    assert_pending!(a2.poll());
    no_request(&mut handle);
    assert_eq!(h.waiting_for(&a), 1);
    drop((a1, a1_tx));
    assert_pending!(a2.poll());
    let (uri, _tx) = answer(&mut handle).await;
    assert_eq!(uri, "http://a.example/2");
    drop(assert_ready_ok!(a2.poll()));
    assert_eq!(
        (h.hosts(), h.in_flight(), h.waiting(), h.gate.entries()),
        (0, 0, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn an_entry_entered_as_the_sweep_looks_at_it_stays() {
    // The sweep sees an entry idle; a request enters it through the service's remembered entry
    // (without the map's lock) before the sweep takes it out: the entry must stay in the map,
    // in use, or the next request would make a second entry (a second limit) for the host.
    use super::sem::{hooks, Point};
    use std::cell::RefCell;
    use std::rc::Rc;
    let layer = PerHostLimitLayer::new(1);
    let h = layer.handle();
    let (mut svc, mut handle) = per_host(layer);
    remembered_idle_entry(&mut svc, &mut handle, &h).await;
    let svc = Rc::new(RefCell::new(svc));
    let entered = Rc::new(RefCell::new(None));
    let (s, e) = (svc.clone(), entered.clone());
    hooks::at(Point::Close, move || {
        *e.borrow_mut() = Some(call(&mut s.borrow_mut(), "http://a.example/1"));
    });
    h.gate.remove_idle_now();
    assert!(hooks::ran(), "the request entered inside the window");
    let mut a1 = entered.borrow_mut().take().unwrap();
    assert_pending!(a1.poll());
    let (_, a1_tx) = answer(&mut handle).await;
    let a1 = assert_ready_ok!(a1.poll());
    let a: http::Uri = "http://a.example/".parse().unwrap();
    assert_eq!(
        (h.in_flight_for(&a), h.hosts(), h.gate.entries()),
        (1, 1, 1),
        "the entry in use stayed"
    );
    // A request to the host spelled otherwise (looked up in the map) finds that entry.
    let mut a2 = call(&mut svc.borrow_mut(), "http://A.example:80/2");
    assert_pending!(a2.poll());
    no_request(&mut handle);
    assert_eq!(h.waiting_for(&a), 1);
    drop((a1, a1_tx));
    assert_pending!(a2.poll());
    let (_, _tx) = answer(&mut handle).await;
    drop(assert_ready_ok!(a2.poll()));
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remembered_entries_race_their_removal_safely() {
    // With no idle entry kept, every request that leaves its host idle removes the host's
    // entry, while other tasks enter that same entry through their service's remembered one,
    // without the map's lock. A request admitted by a removed entry would be a second limit for
    // its host: the inner service would see two requests to one host at once.
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use tower::{Layer, Service, ServiceExt};
    let active: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let peak = Arc::new(AtomicUsize::new(0));
    let layer = PerHostLimitLayer::new(1)
        .max_waiting(usize::MAX)
        .max_idle_hosts(0);
    let h = layer.handle();
    let (a, p) = (active.clone(), peak.clone());
    let svc = layer.layer(tower::service_fn(move |req: Request<()>| {
        let host = req.uri().host().unwrap().to_string();
        let mut map = a.lock().unwrap();
        let n = map.entry(host.clone()).or_default();
        *n += 1;
        p.fetch_max(*n, SeqCst);
        drop(map);
        let a = a.clone();
        async move {
            tokio::task::yield_now().await;
            *a.lock().unwrap().get_mut(&host).unwrap() -= 1;
            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        }
    }));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            // Each task keeps its own service, so its remembered entry is used.
            let mut svc = svc.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let host = if i % 5 == 0 { t + 1 } else { t } % 4;
                    let uri = format!("http://h{host}.example/");
                    let resp = svc.ready().await.unwrap().call(req(&uri)).await;
                    drop(resp.unwrap());
                    if peak.load(SeqCst) > 1 {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(SeqCst), 1, "two requests to one host at once");
    assert_eq!((h.hosts(), h.in_flight(), h.waiting()), (0, 0, 0));
    assert_eq!(h.gate.entries(), 0, "idle entries left with a bound of 0");
}
