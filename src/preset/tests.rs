use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_err, task};
use tower::{Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::deadline::RequestDeadline;
use crate::test_util::*;
use crate::Phase;

type Up = RequestWriteBody<http_body_util::Empty<Bytes>>;
type Inner = mock::Mock<Request<Up>, Response<ChannelBody>>;

fn get() -> Request<http_body_util::Empty<Bytes>> {
    Request::get("http://a.test/")
        .body(http_body_util::Empty::new())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_stack_shares_one_clock_and_one_stats_handle() {
    let preset = Hardened::new()
        .total(Duration::from_secs(5))
        .response_headers(Duration::from_secs(2));
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(get()));
    assert_pending!(fut.poll());
    let (req, _send) = handle.next_request().await.unwrap();
    // The deadline set at the outermost layer is what the innermost service sees.
    assert_eq!(
        RequestDeadline::of(&req).unwrap().remaining(),
        Duration::from_secs(5)
    );
    assert_eq!(stats.snapshot().in_flight, 1);
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
    let snap = stats.snapshot();
    assert_eq!(snap.timeouts(Phase::ResponseHeaders), 1);
    assert_eq!(snap.in_flight, 0, "the permit went with the failed future");
}

#[tokio::test(start_paused = true)]
async fn the_permit_lives_until_the_body_ends_and_is_counted_once() {
    let preset = Hardened::new().max_in_flight(1).max_requests_per_host(1);
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let call = |svc: &mut HardenedService<Inner>| svc.call(get());
    let mut first = task::spawn(call(&mut svc));
    assert_pending!(first.poll());
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(first.poll()).unwrap();
    // Two stacked limiters, one handle: one request in flight, not two.
    assert_eq!(stats.snapshot().in_flight, 1);

    let mut second = task::spawn(call(&mut svc));
    assert_pending!(second.poll());
    assert_eq!(stats.snapshot().waiting, 1);
    assert!(
        handle.poll_request().is_pending(),
        "second must wait for the body"
    );

    tx.send(Ok(Bytes::from("x"))).unwrap();
    drop(tx);
    let body = resp.into_body().collect().await.unwrap();
    assert_eq!(body.to_bytes(), "x");
    assert!(second.is_woken());
    assert_pending!(second.poll());
    let (_req, _send) = handle.next_request().await.unwrap();
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn service_builder_ext_composes_the_same_layers() {
    let svc = tower::ServiceBuilder::new()
        .deadline(Duration::from_secs(1))
        .held_concurrency_limit(4)
        .per_host_limit(2)
        .drain_on_drop()
        .response_body_limit(1024)
        .response_header_timeout(Duration::from_secs(5))
        .body_idle_timeout(Duration::from_secs(5))
        .request_write_timeout(Duration::from_secs(5))
        .service(tower::service_fn(
            |_req: Request<RequestWriteBody<ChannelBody>>| async {
                let (tx, body) = ChannelBody::new();
                // A body that never ends: the deadline set by `.deadline()` must cut it.
                std::mem::forget(tx);
                Ok::<_, std::convert::Infallible>(Response::new(body))
            },
        ));
    let (_tx, up) = ChannelBody::new();
    let req = Request::get("http://a.test/").body(up).unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    let err = resp.into_body().collect().await.unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));

    let preset = Hardened::new();
    let svc = tower::ServiceBuilder::new()
        .hardened(&preset)
        .service(tower::service_fn(
            |_req: Request<RequestWriteBody<ChannelBody>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                    Bytes::from("ok"),
                )))
            },
        ));
    let (tx, up) = ChannelBody::new();
    drop(tx);
    let resp = svc
        .oneshot(Request::get("http://a.test/").body(up).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.body().size_hint().exact(),
        Some(2),
        "size hint survives every wrapper"
    );
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
}

#[test]
fn bad_configuration_is_refused_at_construction() {
    let cases: Vec<(fn(), &str)> = vec![
        (
            || drop(Hardened::new().total(Duration::ZERO)),
            "Hardened::total must be greater than zero",
        ),
        (
            || drop(Hardened::new().connect(Duration::ZERO)),
            "Hardened::connect must be greater than zero",
        ),
        (
            || drop(Hardened::new().body_idle(Duration::ZERO)),
            "Hardened::body_idle must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_in_flight(0)),
            "max_in_flight must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_requests_per_host(0)),
            "max_requests_per_host must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_response_body(0)),
            "cap must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_response_header_bytes(100)),
            "at least 8192",
        ),
    ];
    for (f, text) in cases {
        let err = std::panic::catch_unwind(f).unwrap_err();
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(msg.contains(text), "{msg:?} should contain {text:?}");
    }
    // Very large limits are fine: they mean "no limit".
    let _ = Hardened::new()
        .total(Duration::MAX)
        .response_headers(Duration::MAX)
        .max_waiting(usize::MAX);
}

#[test]
fn public_types_are_send_sync_clone() {
    assert_send_sync::<Hardened>();
    assert_clone::<Hardened>();
    assert_send_sync::<HardenedLayer>();
    assert_clone::<HardenedLayer>();
    assert_send_sync::<HardenedService<Inner>>();
    assert_clone::<HardenedService<Inner>>();
    assert_send_sync::<HardenedClient<http_body_util::Empty<Bytes>>>();
    assert_clone::<HardenedClient<http_body_util::Empty<Bytes>>>();
}

#[tokio::test]
async fn a_configure_on_the_pool_is_kept_by_client() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let called = Arc::new(AtomicBool::new(false));
    let seen = called.clone();
    let preset =
        Hardened::new().pool_with(|p| p.configure(move |_b| seen.store(true, Ordering::SeqCst)));
    let _client = preset.client::<http_body_util::Empty<Bytes>>();
    assert!(
        called.load(Ordering::SeqCst),
        "the user's configure was replaced by the preset's own"
    );
}

#[test]
fn pool_with_and_drain_with_keep_the_defaults_they_do_not_set() {
    let preset = Hardened::new()
        .pool_with(|p| p.idle_timeout(Duration::from_secs(60)))
        .drain_with(|d| d.max_drain_bytes(1 << 20));
    let c = preset.pool.connector_layer();
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.max_conns_per_host, Some(128), "connections per host kept");
    assert_eq!(c.acquire_timeout, Duration::from_secs(10), "acquire kept");
    assert_eq!(
        c.write_stall,
        Some(Duration::from_secs(10)),
        "write stall kept"
    );
    assert!(format!("{:?}", preset.pool).contains("max_idle_per_host: 16"));
    assert_eq!(preset.drain.get_max_drain_bytes(), 1 << 20);
    assert_eq!(
        preset.drain.get_leak_threshold(),
        Some(Duration::from_secs(60)),
        "held-body report kept"
    );
    // `pool` and `drain` replace them whole, as documented.
    let replaced = Hardened::new().drain(DrainOnDropLayer::new());
    assert_eq!(replaced.drain.get_leak_threshold(), None);
}

#[test]
fn acquire_and_request_write_reach_the_pool() {
    let preset = Hardened::new()
        .acquire_timeout(Duration::from_secs(60))
        .request_write(Duration::from_secs(3));
    let c = preset.pool.connector_layer();
    assert_eq!(c.acquire_timeout, Duration::from_secs(60));
    assert_eq!(c.write_stall, Some(Duration::from_secs(3)));
}

#[test]
#[should_panic(expected = "Hardened::max_in_flight must be at most")]
fn a_limit_too_large_is_refused_by_its_setter() {
    let _ = Hardened::new().max_in_flight(usize::MAX);
}

#[test]
#[should_panic(expected = "Hardened::max_requests_per_host must be at most")]
fn a_per_host_limit_too_large_is_refused_by_its_setter() {
    let _ = Hardened::new().max_requests_per_host(usize::MAX);
}

/// One `Hardened` value is one set of limits: two services of one layer, and layers made twice
/// from one preset or from its clones, all count against the same permits.
#[tokio::test(start_paused = true)]
async fn every_layer_and_service_of_one_preset_shares_its_limits() {
    let preset = Hardened::new().max_in_flight(2).max_requests_per_host(2);
    let global = preset.limit_handle();
    let per_host = preset.per_host_handle();
    let (inner_a, mut handle_a) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let (inner_b, mut handle_b) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let (inner_c, mut handle_c) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let layer = preset.layer();
    let mut a = layer.layer(inner_a);
    let mut b = layer.layer(inner_b);
    let mut c = preset.clone().layer().layer(inner_c);

    let mut first = task::spawn(a.call(get()));
    assert_pending!(first.poll());
    let mut second = task::spawn(b.call(get()));
    assert_pending!(second.poll());
    let (_r1, _s1) = handle_a.next_request().await.unwrap();
    let (_r2, _s2) = handle_b.next_request().await.unwrap();
    assert_eq!(
        global.in_flight(),
        2,
        "two services of one layer share one limit"
    );
    assert_eq!(per_host.in_flight(), 2);

    // A third service, from a clone of the preset, waits for those two permits.
    let mut third = task::spawn(c.call(get()));
    assert_pending!(third.poll());
    assert!(handle_c.poll_request().is_pending());
    assert_eq!(
        per_host.waiting(),
        1,
        "the clone's request queues on the same host limit"
    );
    drop(first);
    assert!(third.is_woken());
    assert_pending!(third.poll());
    assert!(handle_c.next_request().await.is_some());
    assert_eq!(global.in_flight(), 2);
    drop((second, third));
    assert_eq!((global.in_flight(), per_host.in_flight()), (0, 0));
}

#[tokio::test]
async fn two_clients_of_one_preset_share_its_limits() {
    let preset = Hardened::new().max_in_flight(1);
    let global = preset.limit_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri: http::Uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    // Accepts and never answers: each request holds its permit until it is dropped.
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let one = preset.client::<http_body_util::Empty<Bytes>>();
    let two = preset.client::<http_body_util::Empty<Bytes>>();
    let req = || {
        Request::get(uri.clone())
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    let mut first = task::spawn(one.oneshot(req()));
    assert_pending!(first.poll());
    assert_eq!(global.in_flight(), 1);
    let mut second = task::spawn(two.oneshot(req()));
    assert_pending!(second.poll());
    assert_eq!(
        (global.in_flight(), global.waiting()),
        (1, 1),
        "the second client waits for the first client's permit"
    );
    drop(first);
    assert!(second.is_woken());
    assert_pending!(second.poll());
    assert_eq!((global.in_flight(), global.waiting()), (1, 0));
    drop(second);
    assert_eq!(global.in_flight(), 0);
}

#[test]
fn a_limit_setter_makes_a_new_set_of_limits() {
    let preset = Hardened::new();
    let before = preset.limit_handle();
    let preset = preset.max_in_flight(3);
    assert_eq!(preset.limit_handle().limit(), 3);
    assert_eq!(before.limit(), Hardened::DEFAULT_MAX_IN_FLIGHT);
    let preset = preset.max_requests_per_host(5);
    assert_eq!(preset.per_host_handle().limit(), 5);
    // A setter that is not about limits keeps them.
    let handle = preset.limit_handle();
    let preset = preset.total(Duration::from_secs(1));
    assert!(std::sync::Arc::ptr_eq(
        &handle.gate,
        &preset.limit_handle().gate
    ));
}
