use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_err, task};
use tower::{Service, ServiceExt};
use tower_layer::Layer;
use tower_test::mock;

use super::*;
use crate::deadline::RequestDeadline;
use crate::drain::DrainOnDropLayer;
use crate::test_util::*;
use crate::timeout::RequestWriteBody;
use crate::Phase;

type Up = crate::HardenedRequestBody<http_body_util::Empty<Bytes>>;
type Inner = mock::Mock<Request<Up>, Response<ChannelBody>>;

fn get() -> Request<http_body_util::Empty<Bytes>> {
    Request::get("http://a.test/")
        .body(http_body_util::Empty::new())
        .unwrap()
}

type Handle = mock::Handle<Request<Up>, Response<ChannelBody>>;
type Sent = (
    task::Spawn<HardenedFuture<Inner, http_body_util::Empty<Bytes>, ChannelBody>>,
    mock::SendResponse<Response<ChannelBody>>,
);

/// The preset's stack over a mock client.
fn over_mock(preset: &Hardened) -> (HardenedService<Inner>, Handle) {
    let (inner, handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    (preset.layer().layer(inner), handle)
}

/// Sends a GET through `svc` and takes it at the mock: the pending response future, and how to
/// answer it.
async fn sent(svc: &mut HardenedService<Inner>, handle: &mut Handle) -> Sent {
    let mut fut = task::spawn(svc.call(get()));
    assert_pending!(fut.poll());
    let (_req, send) = handle.next_request().await.unwrap();
    (fut, send)
}

#[tokio::test(start_paused = true)]
async fn a_request_first_polled_late_is_timed_for_its_headers_from_that_poll() {
    let preset = Hardened::new()
        .total(Duration::from_secs(60))
        .response_headers(Duration::from_millis(500));
    let (mut svc, mut handle) = over_mock(&preset);
    // Made, then awaited only after other work took longer than the header limit.
    let mut fut = task::spawn(svc.ready().await.unwrap().call(get()));
    advance(Duration::from_millis(700)).await;
    assert_pending!(fut.poll());
    let (_req, _send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(499)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
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
            |_req: Request<crate::HardenedRequestBody<ChannelBody>>| async {
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
fn public_types_are_send_sync_clone() {
    assert_send_sync::<Hardened>();
    assert_clone::<Hardened>();
    assert_send_sync::<HardenedLayer>();
    assert_clone::<HardenedLayer>();
    assert_send_sync::<HardenedService<Inner>>();
    assert_clone::<HardenedService<Inner>>();
    assert_send_sync::<HardenedClient<http_body_util::Empty<Bytes>>>();
    assert_clone::<HardenedClient<http_body_util::Empty<Bytes>>>();
    // A request body that is neither `Clone` nor `Sync` still gives a `Clone` client.
    assert_clone::<
        HardenedClient<http_body_util::combinators::UnsyncBoxBody<Bytes, crate::BoxError>>,
    >();
    assert_send_sync::<HardenedFuture<Inner, http_body_util::Empty<Bytes>, ChannelBody>>();
    assert_send_sync::<HardenedBody<ChannelBody>>();
    assert_send_sync::<HardenedClientFuture<http_body_util::Empty<Bytes>>>();
    assert_send_sync::<HardenedClientBody>();
    // The body the client under the preset gets: what hyper and reqwest ask of a body.
    assert_send_sync::<crate::HardenedRequestBody<http_body_util::Full<Bytes>>>();
    fn assert_static<T: 'static>() {}
    assert_static::<crate::HardenedRequestBody<http_body_util::Full<Bytes>>>();
    // `Unpin`, so callers can poll them by `&mut` (`select!`, `poll_unpin`) without pinning.
    fn assert_unpin<T: Unpin>() {}
    assert_unpin::<HardenedFuture<Inner, http_body_util::Empty<Bytes>, ChannelBody>>();
    assert_unpin::<HardenedBody<ChannelBody>>();
    assert_unpin::<HardenedClientFuture<http_body_util::Empty<Bytes>>>();
    assert_unpin::<HardenedClientBody>();
    assert_unpin::<crate::HardenedRequestBody<ChannelBody>>();
    assert_unpin::<
        crate::timeout::ResponseHeaderTimeoutFuture<
            std::future::Ready<Result<Response<ChannelBody>, crate::BoxError>>,
        >,
    >();
}

/// The inner service a layer was given comes back out of the stack, and `get_mut` reaches it.
#[test]
fn the_inner_service_is_reachable_through_the_stack() {
    #[derive(Debug, Clone, PartialEq)]
    struct Named(u32);
    let mut svc = Hardened::new().layer().layer(Named(1));
    assert_eq!(svc.get_ref(), &Named(1));
    svc.get_mut().0 = 2;
    assert_eq!(svc.get_ref(), &Named(2));
    assert_eq!(svc.clone().into_inner(), Named(2));
}

/// `HardenedBody` forwards both hints of the inner body: the size (exact or a range), and the
/// end of the stream, before and after the last frame.
#[tokio::test(start_paused = true)]
async fn hardened_body_forwards_size_hint_and_is_end_stream() {
    let preset = Hardened::new();
    let full = |req: Request<crate::HardenedRequestBody<ChannelBody>>| async move {
        let body = match req.uri().path() {
            "/five" => http_body_util::Full::new(Bytes::from("hello")),
            _ => http_body_util::Full::new(Bytes::new()),
        };
        Ok::<_, std::convert::Infallible>(Response::new(body))
    };
    let mut svc = preset.layer().layer(tower::service_fn(full));
    let req = |path: &str| {
        let (tx, up) = ChannelBody::new();
        drop(tx);
        Request::get(format!("http://a.test{path}"))
            .body(up)
            .unwrap()
    };

    let mut five: HardenedBody<_> = svc
        .ready()
        .await
        .unwrap()
        .call(req("/five"))
        .await
        .unwrap()
        .into_body();
    assert_eq!(five.size_hint().exact(), Some(5));
    assert!(!five.is_end_stream());
    let frame = five.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hello");
    assert!(five.is_end_stream(), "ended after its only frame");
    assert_eq!(five.size_hint().exact(), Some(0));

    let empty = svc
        .ready()
        .await
        .unwrap()
        .call(req("/"))
        .await
        .unwrap()
        .into_body();
    assert!(
        empty.is_end_stream(),
        "an empty body is over before its first poll"
    );
    assert_eq!(empty.size_hint().exact(), Some(0));

    // A range is forwarded as it is, and so is "not over yet" on a streaming body.
    let mut hint = http_body::SizeHint::new();
    hint.set_lower(3);
    hint.set_upper(10);
    let (tx, streaming) = ChannelBody::new();
    let streaming = streaming.with_hint(hint);
    // The inner service must be `Clone` (the limits send on clones): share the one body.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(streaming)));
    let svc = preset.layer().layer(tower::service_fn(
        move |_req: Request<crate::HardenedRequestBody<ChannelBody>>| {
            let body = slot.lock().unwrap().take().unwrap();
            async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
        },
    ));
    let mut body = svc.oneshot(req("/")).await.unwrap().into_body();
    assert_eq!(
        (body.size_hint().lower(), body.size_hint().upper()),
        (3, Some(10))
    );
    assert!(!body.is_end_stream());
    drop(tx);
    assert!(body.frame().await.is_none());
    assert!(body.is_end_stream(), "ended once the inner body said so");
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
fn transport_with_and_max_idle_keep_the_defaults_they_do_not_set() {
    let preset = Hardened::new()
        .transport_with(|t| t.idle_timeout(Duration::from_secs(60)))
        .max_idle(7);
    let t = format!("{:?}", preset.transport);
    assert!(t.contains("idle_timeout: Some(60s)"), "{t}");
    assert!(t.contains("max_idle: 7,"), "{t}");
    assert!(
        t.contains("max_conns_per_host: 128"),
        "connections per host kept: {t}"
    );
    assert!(t.contains("acquire_timeout: 10s"), "acquire kept: {t}");
    assert!(
        t.contains("stats: true"),
        "the preset's stats handle given: {t}"
    );
}

#[test]
fn acquire_and_request_write_reach_the_pool() {
    let preset = Hardened::new()
        .acquire_timeout(Duration::from_secs(60))
        .request_write(Duration::from_secs(3));
    let c = preset.pool.connector_layer();
    assert_eq!(c.acquire_timeout, Duration::from_secs(60));
    assert_eq!(c.write_stall, Some(Duration::from_secs(3)));
    let t = format!("{:?}", preset.transport);
    assert!(t.contains("acquire_timeout: 60s"), "{t}");
    assert!(t.contains("write_stall_timeout: 3s"), "{t}");
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

/// The defaults table of the module docs shows the values of the constants it links to, and
/// those are the values a new preset runs with.
#[test]
fn the_defaults_table_shows_the_constants_and_the_preset_uses_them() {
    use crate::pool::{PoolClientBuilder, PoolConnectorLayer};
    fn time(d: Duration) -> String {
        match (d.as_secs(), d.subsec_nanos()) {
            (s, 0) if s >= 600 && s % 60 == 0 => format!("{} min", s / 60),
            (s, 0) => format!("{s} s"),
            _ => format!("{} ms", d.as_millis()),
        }
    }
    fn kib(n: u64) -> String {
        assert_eq!(n % 1024, 0);
        format!("{} KiB", n / 1024)
    }
    let shown = |target: &str| -> String {
        match target {
            "Hardened::DEFAULT_TOTAL" => time(Hardened::DEFAULT_TOTAL),
            "Hardened::DEFAULT_CONNECT" => time(Hardened::DEFAULT_CONNECT),
            "Hardened::DEFAULT_TLS_HANDSHAKE" => time(Hardened::DEFAULT_TLS_HANDSHAKE),
            "Hardened::DEFAULT_RESPONSE_HEADERS" => time(Hardened::DEFAULT_RESPONSE_HEADERS),
            "Hardened::DEFAULT_BODY_IDLE" => time(Hardened::DEFAULT_BODY_IDLE),
            "Hardened::DEFAULT_REQUEST_WRITE" => time(Hardened::DEFAULT_REQUEST_WRITE),
            "Hardened::DEFAULT_MAX_IN_FLIGHT" => Hardened::DEFAULT_MAX_IN_FLIGHT.to_string(),
            "Hardened::DEFAULT_MAX_REQUESTS_PER_HOST" => {
                Hardened::DEFAULT_MAX_REQUESTS_PER_HOST.to_string()
            }
            "Hardened::DEFAULT_MAX_WAITING" => Hardened::DEFAULT_MAX_WAITING.to_string(),
            "Hardened::DEFAULT_ACQUIRE_TIMEOUT" => time(Hardened::DEFAULT_ACQUIRE_TIMEOUT),
            "crate::DrainOnDropLayer::DEFAULT_MAX_DRAIN_BYTES" => {
                kib(DrainOnDropLayer::DEFAULT_MAX_DRAIN_BYTES)
            }
            "crate::DrainOnDropLayer::DEFAULT_MAX_DRAIN_TIME" => {
                time(DrainOnDropLayer::DEFAULT_MAX_DRAIN_TIME)
            }
            "crate::DrainOnDropLayer::DEFAULT_MAX_CONCURRENT_DRAINS" => {
                DrainOnDropLayer::DEFAULT_MAX_CONCURRENT_DRAINS.to_string()
            }
            "Hardened::DEFAULT_LEAK_THRESHOLD" => time(Hardened::DEFAULT_LEAK_THRESHOLD),
            "Hardened::DEFAULT_IDLE_TIMEOUT" => time(Hardened::DEFAULT_IDLE_TIMEOUT),
            "Hardened::DEFAULT_MAX_IDLE_PER_HOST" => {
                Hardened::DEFAULT_MAX_IDLE_PER_HOST.to_string()
            }
            "Hardened::DEFAULT_MAX_CONNS_PER_HOST" => {
                Hardened::DEFAULT_MAX_CONNS_PER_HOST.to_string()
            }
            "crate::PoolClientBuilder::DEFAULT_MAX_LIFETIME" => {
                time(PoolClientBuilder::DEFAULT_MAX_LIFETIME)
            }
            "crate::PoolConnectorLayer::DEFAULT_JITTER" => {
                format!("{} %", PoolConnectorLayer::DEFAULT_JITTER * 100.0)
            }
            "Hardened::DEFAULT_MAX_IDLE" => Hardened::DEFAULT_MAX_IDLE.to_string(),
            "crate::PoolBuilder::DEFAULT_MAX_LIFETIME" => {
                time(crate::PoolBuilder::DEFAULT_MAX_LIFETIME)
            }
            "crate::PoolBuilder::DEFAULT_JITTER" => {
                format!("{} %", crate::PoolBuilder::DEFAULT_JITTER * 100.0)
            }
            "Hardened::DEFAULT_MAX_RESPONSE_HEADER_BYTES" => {
                kib(Hardened::DEFAULT_MAX_RESPONSE_HEADER_BYTES as u64)
            }
            "Hardened::DEFAULT_MAX_RESPONSE_BODY" => {
                assert_eq!(Hardened::DEFAULT_MAX_RESPONSE_BODY, u64::MAX);
                "unlimited".to_string()
            }
            other => panic!("the defaults table links to {other}, which this test does not know"),
        }
    };
    let docs = include_str!("mod.rs");
    let table = docs
        .split("# Defaults")
        .nth(1)
        .unwrap()
        .split("\n//!\n")
        .nth(1)
        .unwrap();
    let mut rows = 0;
    for row in table.lines().skip(2) {
        // `//! | knob | [value](target) | from | change with |`
        let value = row.split('|').nth(2).unwrap().trim();
        let (text, target) = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(')'))
            .and_then(|v| v.split_once("]("))
            .unwrap_or_else(|| panic!("{row:?}: the default is not a link to its constant"));
        assert_eq!(text, shown(target), "{row:?}");
        rows += 1;
    }
    assert_eq!(
        rows, 22,
        "a row was added or lost: teach this test its constant"
    );

    // And a new preset runs with them (the `Hardened::DEFAULT_*` ones are set by `new()`).
    let preset = Hardened::new();
    assert_eq!(
        preset.drain.get_max_drain_bytes(),
        DrainOnDropLayer::DEFAULT_MAX_DRAIN_BYTES
    );
    assert_eq!(
        preset.drain.get_max_drain_time(),
        DrainOnDropLayer::DEFAULT_MAX_DRAIN_TIME
    );
    assert_eq!(
        preset.drain.get_max_concurrent_drains(),
        DrainOnDropLayer::DEFAULT_MAX_CONCURRENT_DRAINS
    );
    assert_eq!(
        preset.drain.get_leak_threshold(),
        Some(Hardened::DEFAULT_LEAK_THRESHOLD)
    );
    let c = preset.pool.connector_layer();
    assert_eq!(c.idle_timeout, Some(Hardened::DEFAULT_IDLE_TIMEOUT));
    assert!(
        format!("{:?}", preset.pool).contains(&format!(
            "idle_timeout: {:?}",
            Hardened::DEFAULT_IDLE_TIMEOUT
        )),
        "the client's pool uses it too"
    );
    assert_eq!(
        c.max_lifetime,
        Some(PoolClientBuilder::DEFAULT_MAX_LIFETIME)
    );
    assert_eq!(c.jitter, PoolConnectorLayer::DEFAULT_JITTER);
    assert_eq!(
        c.max_conns_per_host,
        Some(Hardened::DEFAULT_MAX_CONNS_PER_HOST)
    );
    assert_eq!(c.acquire_timeout, Hardened::DEFAULT_ACQUIRE_TIMEOUT);
    assert_eq!(c.write_stall, Some(Hardened::DEFAULT_REQUEST_WRITE));
    let pool = format!("{:?}", preset.pool);
    assert!(
        pool.contains(&format!(
            "max_idle_per_host: {}",
            Hardened::DEFAULT_MAX_IDLE_PER_HOST
        )),
        "{pool}"
    );
    // The transport of `client()` runs with them too.
    let transport = format!("{:?}", preset.transport);
    for bound in [
        format!("max_idle: {}", Hardened::DEFAULT_MAX_IDLE),
        format!("max_idle_per_host: {}", Hardened::DEFAULT_MAX_IDLE_PER_HOST),
        format!("idle_timeout: Some({:?})", Hardened::DEFAULT_IDLE_TIMEOUT),
        format!(
            "max_lifetime: Some({:?})",
            crate::PoolBuilder::DEFAULT_MAX_LIFETIME
        ),
        format!("jitter: {}", crate::PoolBuilder::DEFAULT_JITTER),
        format!(
            "max_conns_per_host: {}",
            Hardened::DEFAULT_MAX_CONNS_PER_HOST
        ),
        format!("acquire_timeout: {:?}", Hardened::DEFAULT_ACQUIRE_TIMEOUT),
        format!("write_stall_timeout: {:?}", Hardened::DEFAULT_REQUEST_WRITE),
    ] {
        assert!(transport.contains(&bound), "{bound} not in {transport}");
    }
    assert_eq!(
        preset.max_response_body,
        Hardened::DEFAULT_MAX_RESPONSE_BODY
    );
    assert_eq!(
        preset.limit_handle().limit(),
        Hardened::DEFAULT_MAX_IN_FLIGHT
    );
    assert_eq!(
        preset.per_host_handle().limit(),
        Hardened::DEFAULT_MAX_REQUESTS_PER_HOST
    );
}

/// A body dropped just before the deadline is drained in the background; the deadline passing
/// during that drain ends the drain (`DrainAbandon::Error`), and is not a timeout of the
/// request, whose caller saw none. (The flaky `endless_bodies_are_cut_by_the_total_deadline` was this:
/// the outer deadline cut a frame the inner idle timer had let through, and the drain of the
/// dropped body then counted a second `Total`.)
#[tokio::test(start_paused = true)]
async fn a_background_drain_counts_no_timeout_of_the_request() {
    let preset = Hardened::new().total(Duration::from_secs(1));
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(get()));
    assert_pending!(fut.poll());
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let mut body = assert_ready!(fut.poll()).unwrap().into_body();
    tx.send(Ok(Bytes::from("x"))).unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "x");
    advance(Duration::from_millis(950)).await;
    // Dropped 50 ms before the deadline, within the drain's 100 ms: the drain outlives it.
    drop(body);
    assert_eq!(stats.snapshot().drains_started, 1);
    advance(Duration::from_millis(200)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let snap = stats.snapshot();
    assert_eq!(
        snap.drains_started,
        snap.drains_finished
            + crate::stats::DrainAbandon::ALL
                .iter()
                .map(|&why| snap.drains_abandoned(why))
                .sum::<u64>(),
        "the drain is over"
    );
    assert_eq!(snap.timeouts_total(), 0, "{snap:?}");
    drop(tx);
}

/// With `adaptive`, each host gets its own adaptive limit under the static global cap: a host
/// whose requests fail has its limit lowered, the other host's is not, and a request in flight
/// counts once in the stats (the global limiter counts it, the adaptive one does not).
#[tokio::test(start_paused = true)]
async fn adaptive_per_host_limits_fall_for_the_failing_host_only() {
    use crate::limit::{AdaptiveLimitLayer, Aimd};
    let preset = Hardened::new().adaptive(
        AdaptiveLimitLayer::new(Aimd::new(), 1..=16)
            .initial_limit(8)
            .update_interval(Duration::from_millis(100)),
    );
    let stats = preset.stats_handle();
    let adaptive = preset.adaptive_handle().expect("adaptive is on");
    let svc = preset
        .layer()
        .layer(tower::service_fn(|req: Request<Up>| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if req.uri().host() == Some("bad.test") {
                Err::<Response<http_body_util::Full<Bytes>>, crate::BoxError>(
                    "refused by the peer".into(),
                )
            } else {
                Ok(Response::new(http_body_util::Full::new(Bytes::from("ok"))))
            }
        }));
    let good: http::Uri = "http://good.test/".parse().unwrap();
    let bad: http::Uri = "http://bad.test/".parse().unwrap();
    let send = |uri: &http::Uri| {
        let req = Request::get(uri.clone())
            .body(http_body_util::Empty::new())
            .unwrap();
        svc.clone().oneshot(req)
    };
    // While a request is in flight it counts once, not once per limiter.
    let mut held = task::spawn(send(&good));
    assert_pending!(held.poll());
    assert_eq!(stats.snapshot().in_flight, 1);
    assert!(
        adaptive.limit_for(&good).is_some(),
        "the host has its own limit"
    );
    assert_eq!(adaptive.in_flight(), 1);
    drop(held);
    for _ in 0..30 {
        // Eight at once per host, so neither host is app-limited.
        let mut calls = Vec::new();
        for _ in 0..8 {
            calls.push(send(&good));
            calls.push(send(&bad));
        }
        for resp in futures_join(calls).await.into_iter().flatten() {
            resp.into_body().collect().await.unwrap();
        }
        advance(Duration::from_millis(100)).await;
    }
    let (good_limit, bad_limit) = (
        adaptive.limit_for(&good).unwrap(),
        adaptive.limit_for(&bad).unwrap(),
    );
    assert_eq!(bad_limit, 1, "the failing host's limit fell to its minimum");
    assert!(
        good_limit >= 4,
        "the healthy host's limit stayed up: {good_limit}"
    );
    let snap = stats.snapshot();
    assert_eq!(snap.in_flight, 0);
    assert_eq!(snap.adaptive_limit, (good_limit + bad_limit) as u64);
}

/// Runs the futures to completion concurrently on this task.
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

// The fused outer stack: the deadline arms no timer of its own while something inside bounds
// the wait by it, and arms one where nothing does. Each of these fails if that bound goes.

#[tokio::test(start_paused = true)]
async fn a_head_that_never_comes_is_cut_at_the_deadline_before_the_header_timeout() {
    let preset = Hardened::new()
        .total(Duration::from_secs(2))
        .response_headers(Duration::from_secs(10));
    let stats = preset.stats_handle();
    let (mut svc, mut handle) = over_mock(&preset);
    let (mut fut, _send) = sent(&mut svc, &mut handle).await;
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    let snap = stats.snapshot();
    assert_eq!(
        (
            snap.timeouts(Phase::Total),
            snap.timeouts_total(),
            snap.in_flight
        ),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_service_that_is_never_ready_is_cut_at_the_deadline() {
    let preset = Hardened::new().total(Duration::from_secs(2));
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    handle.allow(0);
    let mut svc = preset.layer().layer(inner);
    let mut fut = task::spawn(svc.call(get()));
    assert_pending!(fut.poll());
    assert_eq!(
        stats.snapshot().in_flight,
        1,
        "admitted, waiting for the service"
    );
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    let snap = stats.snapshot();
    assert_eq!((snap.timeouts(Phase::Total), snap.in_flight), (1, 0));
    assert_pending!(handle.poll_request());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_gone_on_arrival_takes_no_permit_and_sends_nothing() {
    let preset = Hardened::new().max_in_flight(1);
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let mut req = get();
    req.extensions_mut()
        .insert(RequestDeadline::until(tokio::time::Instant::now()));
    let mut fut = task::spawn(svc.call(req));
    assert_eq!(stats.snapshot().in_flight, 0);
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    assert_eq!(stats.snapshot().timeouts(Phase::Total), 1);
    assert_pending!(handle.poll_request());
    // The one permit is free for the next request.
    let mut next = task::spawn(svc.call(get()));
    assert_pending!(next.poll());
    let (_req, _send) = handle.next_request().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_either_permit_is_cut_at_the_deadline() {
    for per_host in [true, false] {
        let preset = Hardened::new()
            .total(Duration::from_secs(2))
            .acquire_timeout(Duration::from_secs(10));
        let preset = if per_host {
            preset.max_requests_per_host(1)
        } else {
            preset.max_in_flight(1)
        };
        let stats = preset.stats_handle();
        let (mut svc, mut handle) = over_mock(&preset);
        let (mut first, _send) = sent(&mut svc, &mut handle).await;
        advance(Duration::from_secs(1)).await;
        let mut second = task::spawn(svc.call(get()));
        assert_pending!(second.poll());
        assert_eq!(stats.snapshot().waiting, 1);
        // The second request's deadline is a second after the first's.
        advance(Duration::from_secs(1)).await;
        let err = assert_ready_err!(first.poll());
        assert_eq!(phase_of(&err), Some(Phase::Total));
        // The first's permit went to the second, which now waits for its head.
        assert_pending!(second.poll());
        let (_req, _send2) = handle.next_request().await.unwrap();
        advance(Duration::from_secs(1)).await;
        let err = assert_ready_err!(second.poll());
        assert_eq!(phase_of(&err), Some(Phase::Total), "per host: {per_host}");
        let snap = stats.snapshot();
        assert_eq!(
            (snap.in_flight, snap.waiting),
            (0, 0),
            "per host: {per_host}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_wait_past_the_deadline_is_total_and_gives_its_place_back() {
    let preset = Hardened::new()
        .total(Duration::from_secs(2))
        .acquire_timeout(Duration::from_secs(10))
        .max_in_flight(1);
    let stats = preset.stats_handle();
    let (mut svc, mut handle) = over_mock(&preset);
    let (mut first, send) = sent(&mut svc, &mut handle).await;
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    // The first holds the permit with its body, longer than the second may wait.
    let resp = assert_ready!(first.poll()).unwrap();
    let mut second = task::spawn(svc.call(get()));
    assert_pending!(second.poll());
    advance(Duration::from_secs(2)).await;
    let err = assert_ready_err!(second.poll());
    assert_eq!(phase_of(&err), Some(Phase::Total));
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (1, 0));
    drop(resp);
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_the_host_permit_then_for_the_global_one() {
    // Host a and host b share one global permit; a has one of its own.
    let preset = Hardened::new().max_in_flight(1).max_requests_per_host(1);
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<Up>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let to = |host: &str| {
        Request::get(format!("http://{host}/"))
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    let mut first = task::spawn(svc.call(to("a.test")));
    assert_pending!(first.poll());
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(first.poll()).unwrap();
    // Waits for a's permit.
    let mut second = task::spawn(svc.call(to("a.test")));
    assert_pending!(second.poll());
    // Has b's permit, waits for the global one.
    let mut third = task::spawn(svc.call(to("b.test")));
    assert_pending!(third.poll());
    assert_eq!(stats.snapshot().waiting, 2);
    drop(tx);
    drop(resp);
    // The global permit goes to the third, first in its queue; the second got a's permit and
    // now queues for the global one.
    assert_pending!(third.poll());
    assert_pending!(second.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.uri().host(), Some("b.test"));
    assert_eq!(stats.snapshot().waiting, 1);
    send.send_response(Response::new(ChannelBody::new().1));
    let resp = assert_ready!(third.poll()).unwrap();
    assert_pending!(second.poll());
    drop(resp);
    assert!(second.is_woken());
    assert_pending!(second.poll());
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.uri().host(), Some("a.test"));
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_body_stalled_past_the_deadline_is_total_before_body_idle() {
    let preset = Hardened::new()
        .total(Duration::from_secs(3))
        .body_idle(Duration::from_secs(30));
    let stats = preset.stats_handle();
    let (mut svc, mut handle) = over_mock(&preset);
    let (mut fut, send) = sent(&mut svc, &mut handle).await;
    advance(Duration::from_secs(1)).await;
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    assert!(body.enter(|cx, b| b.poll_frame(cx)).is_pending());
    assert_eq!(stats.snapshot().in_flight, 1, "the body holds the permit");
    advance(Duration::from_secs(2)).await;
    let err = match body.enter(|cx, b| b.poll_frame(cx)) {
        std::task::Poll::Ready(Some(Err(e))) => e,
        _ => panic!("cut at the deadline"),
    };
    assert_eq!(phase_of(&err), Some(Phase::Total));
    let snap = stats.snapshot();
    assert_eq!((snap.timeouts(Phase::Total), snap.in_flight), (1, 0));
}

/// Reads one frame of a body from the preset, then drops it: what is left goes to the drain.
async fn drop_after_one_frame(preset: &Hardened) -> crate::test_util::BodyTx {
    let (mut svc, mut handle) = over_mock(preset);
    let (mut fut, send) = sent(&mut svc, &mut handle).await;
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let mut body = assert_ready!(fut.poll()).unwrap().into_body();
    tx.send(Ok(Bytes::from("x"))).unwrap();
    body.frame().await.unwrap().unwrap();
    advance(Duration::from_millis(950)).await;
    drop(body);
    assert_eq!(preset.stats_handle().snapshot().drains_started, 1);
    tx
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_still_bounds_the_drain_of_a_dropped_body() {
    let preset = Hardened::new()
        .total(Duration::from_secs(1))
        .drain_with(|d| d.max_drain_time(Duration::from_secs(10)));
    let _tx = drop_after_one_frame(&preset).await;
    advance(Duration::from_millis(100)).await;
    settle().await;
    let snap = preset.stats_handle().snapshot();
    assert_eq!(
        snap.drains_abandoned(crate::stats::DrainAbandon::Error),
        1,
        "cut at the deadline, not at the drain's 10 s: {snap:?}"
    );
    assert_eq!(snap.timeouts_total(), 0, "{snap:?}");
}

#[tokio::test(start_paused = true)]
async fn the_body_cap_still_bounds_the_drain_of_a_dropped_body() {
    let preset = Hardened::new().max_response_body(1024);
    let tx = drop_after_one_frame(&preset).await;
    tx.send(Ok(Bytes::from(vec![0u8; 2000]))).unwrap();
    settle().await;
    let snap = preset.stats_handle().snapshot();
    assert_eq!(
        (
            snap.drains_abandoned(crate::stats::DrainAbandon::Error),
            snap.drains_finished
        ),
        (1, 0),
        "{snap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_that_stalls_while_the_response_streams_fails_the_body_as_request_write() {
    type UpCh = crate::HardenedRequestBody<ChannelBody>;
    let preset = Hardened::new().request_write(Duration::from_secs(2));
    let stats = preset.stats_handle();
    let (inner, mut handle) = mock::pair::<Request<UpCh>, Response<ChannelBody>>();
    let mut svc = preset.layer().layer(inner);
    let (up_tx, up) = ChannelBody::new();
    let req = Request::post("http://a.test/").body(up).unwrap();
    let mut fut = task::spawn(svc.call(req));
    assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    let mut upload = req.into_body();
    up_tx.send(Ok(Bytes::from("a"))).unwrap();
    // The client under it takes one frame, then writes no more (a stalled socket).
    assert_eq!(
        upload.frame().await.unwrap().unwrap().into_data().unwrap(),
        "a"
    );
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    assert!(body.enter(|cx, b| b.poll_frame(cx)).is_pending());
    advance(Duration::from_secs(2)).await;
    let err = match body.enter(|cx, b| b.poll_frame(cx)) {
        std::task::Poll::Ready(Some(Err(e))) => e,
        _ => panic!("the stalled upload ends the body"),
    };
    assert_eq!(phase_of(&err), Some(Phase::RequestWrite));
    let snap = stats.snapshot();
    assert_eq!((snap.timeouts(Phase::RequestWrite), snap.in_flight), (1, 0));
    drop((up_tx, upload));
}

/// A service whose clones share a log of which version of it (its tag) took each call and
/// whether the call was a replay; a first attempt fails as a lost connection.
#[derive(Clone)]
struct Tagged {
    tag: u32,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(u32, bool)>>>,
}

impl Service<Request<Up>> for Tagged {
    type Response = Response<ChannelBody>;
    type Error = crate::BoxError;
    type Future = std::future::Ready<Result<Response<ChannelBody>, crate::BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Up>) -> Self::Future {
        let replay = req
            .extensions()
            .get::<crate::replay::lost::FreshConnection>()
            .is_some();
        self.calls.lock().unwrap().push((self.tag, replay));
        std::future::ready(if replay {
            Ok(Response::new(ChannelBody::new().1))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                crate::replay::lost::LostConnection {
                    idle: Duration::from_secs(1),
                    source: None,
                },
            )
            .into())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn after_get_mut_replays_go_to_the_service_as_changed() {
    let calls = std::sync::Arc::default();
    let inner = Tagged {
        tag: 0,
        calls: std::sync::Arc::clone(&calls),
    };
    let mut svc = Hardened::new().layer().layer(inner);
    svc.call(get()).await.unwrap();
    svc.get_mut().tag = 1;
    svc.call(get()).await.unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        vec![(0, false), (0, true), (1, false), (1, true)]
    );
}

#[tokio::test(start_paused = true)]
async fn timers_handed_on_between_requests_fire_at_the_new_requests_instants() {
    let preset = Hardened::new()
        .total(Duration::from_secs(60))
        .response_headers(Duration::from_secs(2))
        .body_idle(Duration::from_secs(5));
    let (mut svc, mut handle) = over_mock(&preset);
    // Each round's header and body timers go back to the client's pool.
    for round in 0..3 {
        let (mut fut, send) = sent(&mut svc, &mut handle).await;
        advance(Duration::from_millis(500)).await;
        assert_pending!(fut.poll());
        let (tx, body) = ChannelBody::new();
        send.send_response(Response::new(body));
        let mut resp = assert_ready!(fut.poll()).unwrap();
        assert_eq!(
            svc.timers_kept(),
            1,
            "the header timer is back, round {round}"
        );
        assert!(poll_once(resp.body_mut()).is_pending());
        assert_eq!(svc.timers_kept(), 0, "the body took it, round {round}");
        advance(Duration::from_millis(4_999)).await;
        assert!(poll_once(resp.body_mut()).is_pending(), "round {round}");
        tx.send(Ok(Bytes::from("x"))).unwrap();
        drop(tx);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "x");
        assert_eq!(svc.timers_kept(), 1, "the body gave it back, round {round}");
    }
    // A stalled one, on a timer of the rounds before: it fires at its own instant.
    advance(Duration::from_secs(1)).await;
    let (mut fut, _send) = sent(&mut svc, &mut handle).await;
    advance(Duration::from_millis(1_999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
}

/// A busy task (many requests joined in one task) may poll a request twice with its coop
/// budget spent: tokio then registers no timer, and the request must not lose its bounds.
#[tokio::test(start_paused = true)]
async fn a_request_first_polled_without_coop_budget_still_times_out() {
    let preset = Hardened::new()
        .total(Duration::from_secs(4))
        .response_headers(Duration::from_secs(2));
    let (mut svc, _handle) = over_mock(&preset);
    let mut fut = svc.call(get());
    let mut polls = 0;
    let start = tokio::time::Instant::now();
    let polled = std::future::poll_fn(|cx| {
        polls += 1;
        if polls <= 2 {
            while let std::task::Poll::Ready(r) = tokio::task::coop::poll_proceed(cx) {
                r.made_progress();
            }
        }
        std::future::Future::poll(std::pin::Pin::new(&mut fut), cx)
    });
    let res = tokio::time::timeout(Duration::from_secs(60), polled).await;
    let err = res.expect("no timeout fired within 60 s").unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::ResponseHeaders));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

/// The counts of both limits at the moment the first of a request's two permits goes back.
fn counts_at_first_release(
    preset: &Hardened,
) -> std::rc::Rc<std::cell::Cell<Option<(usize, usize)>>> {
    let (global, per_host) = (preset.limit_handle(), preset.per_host_handle());
    let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    let s = seen.clone();
    crate::limit::hooks::at(crate::limit::Point::Release, move || {
        s.set(Some((global.in_flight(), per_host.in_flight())));
    });
    seen
}

/// The permits go back as the layers give them back: the global one, then the host's. Each
/// way a request's permits go: its body read to the end, its body dropped unread, its future
/// dropped before the response.
#[tokio::test(start_paused = true)]
async fn the_global_permit_goes_back_before_the_hosts() {
    let preset = Hardened::new().max_in_flight(4).max_requests_per_host(4);
    let (mut svc, mut handle) = over_mock(&preset);
    for how in ["read to its end", "dropped unread", "future dropped"] {
        let (mut fut, send) = sent(&mut svc, &mut handle).await;
        if how == "future dropped" {
            let seen = counts_at_first_release(&preset);
            drop(fut);
            assert!(crate::limit::hooks::ran(), "{how}");
            assert_eq!(seen.get(), Some((0, 1)), "{how}: (global, host) in flight");
            drop(send);
            continue;
        }
        let (tx, body) = ChannelBody::new();
        send.send_response(Response::new(body));
        let resp = assert_ready!(fut.poll()).unwrap();
        let seen = counts_at_first_release(&preset);
        if how == "read to its end" {
            tx.send(Ok(Bytes::from("x"))).unwrap();
            drop(tx);
            resp.into_body().collect().await.unwrap();
        } else {
            drop(resp);
            drop(tx);
        }
        assert!(crate::limit::hooks::ran(), "{how}");
        assert_eq!(seen.get(), Some((0, 1)), "{how}: (global, host) in flight");
    }
    assert_eq!(preset.limit_handle().in_flight(), 0);
    assert_eq!(preset.per_host_handle().in_flight(), 0);
}

/// On the crate's transport, a request whose body is over when sent has no body to carry its
/// header clock: the fused stack hands it to the transport's call, which takes it at once, and
/// the clock is alone again (so pooled) once the response is in.
#[tokio::test]
async fn on_the_transport_a_gets_clock_is_taken_by_the_call_and_pooled_after_it() {
    let server = tower_hardened_test_server::TestServer::start().await;
    let mut client = Hardened::new().client::<http_body_util::Empty<Bytes>>();
    for round in 0..3 {
        let req = Request::get(server.uri("/ok"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let fut = client.ready().await.unwrap().call(req);
        assert!(!crate::transport::clock_handed(), "round {round}");
        let resp = fut.await.unwrap();
        assert_eq!(
            client.service().clocks_kept(),
            1,
            "the clock is back, round {round}"
        );
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
}
