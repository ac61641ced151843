use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body, SizeHint};
use http_body_util::BodyExt;
use tokio::time::advance;
use tokio_test::assert_ready;
use tower::ServiceExt;
use tower_test::mock;

use super::*;
use crate::test_util::*;
use crate::{DrainAbandon, Stats, StatsSnapshot};

type Mock = mock::Mock<Request<()>, Response<ChannelBody>>;
type Handle = mock::Handle<Request<()>, Response<ChannelBody>>;
type Resp = Response<DrainOnDropBody<ChannelBody>>;

/// Lets spawned tasks (drains, the sweeper) run until they wait again; time does not move.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

fn snap(stats: &Stats) -> StatsSnapshot {
    stats.snapshot()
}

fn abandons(stats: &Stats) -> u64 {
    DrainAbandon::ALL
        .iter()
        .map(|w| snap(stats).drains_abandoned(*w))
        .sum()
}

struct Setup {
    svc: mock::Spawn<DrainOnDrop<Mock>>,
    handle: Handle,
}

impl Setup {
    fn new(layer: &DrainOnDropLayer) -> Setup {
        let (svc, handle) = mock::spawn_layer(layer.clone());
        Setup { svc, handle }
    }

    /// One exchange: a request to `uri`, answered with a scripted body of `version` and `hint`.
    async fn respond_to(&mut self, uri: &str, version: Version, hint: SizeHint) -> (BodyTx, Resp) {
        assert_ready!(self.svc.poll_ready()).unwrap();
        let req = Request::get(uri).body(()).unwrap();
        let fut = self.svc.call(req);
        let (_req, send) = self.handle.next_request().await.unwrap();
        let (tx, body) = ChannelBody::new();
        send.send_response(
            Response::builder()
                .version(version)
                .body(body.with_hint(hint))
                .unwrap(),
        );
        (tx, fut.await.unwrap())
    }

    async fn respond(&mut self) -> (BodyTx, Resp) {
        self.respond_to("http://example.com/x", Version::HTTP_11, SizeHint::new())
            .await
    }
}

async fn read_one(resp: &mut Resp) -> Bytes {
    resp.body_mut()
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn dropped_body_is_drained_to_its_end_under_the_caps() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .max_drain_bytes(1000)
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, mut resp) = s.respond().await;
    // Bytes the caller read do not count against the cap: only what is left does.
    tx.send(Ok(Bytes::from(vec![b'a'; 900]))).unwrap();
    assert_eq!(read_one(&mut resp).await.len(), 900);
    drop(resp);
    assert_eq!(snap(&stats).drains_started, 1);
    assert_eq!(layer.drains_running(), 1);

    tx.send(Ok(Bytes::from(vec![b'b'; 600]))).unwrap();
    tx.send(Ok(Bytes::from(vec![b'c'; 400]))).unwrap();
    settle().await;
    assert!(
        !tx.is_closed(),
        "1000 bytes read, still waiting for the end"
    );
    assert_eq!(snap(&stats).drains_finished, 0);
    drop(tx); // the end of the body, exactly at the cap
    settle().await;
    assert_eq!(snap(&stats).drains_finished, 1);
    assert_eq!(abandons(&stats), 0);
    assert_eq!(layer.drains_running(), 0, "the permit is back");
}

#[tokio::test(start_paused = true)]
async fn drain_ends_when_the_body_says_it_ended() {
    // A body that reports `is_end_stream` after its last data frame is finished without
    // waiting for a `None` that may never be polled for.
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let svc = tower_layer::Layer::layer(
        &layer,
        tower::service_fn(|_req: Request<()>| async {
            let body = http_body_util::Full::new(Bytes::from("hello"));
            Ok::<_, std::convert::Infallible>(Response::new(body))
        }),
    );
    let resp = svc.oneshot(Request::new(())).await.unwrap();
    assert!(!resp.body().is_end_stream());
    drop(resp);
    settle().await;
    assert_eq!(snap(&stats).drains_started, 1);
    assert_eq!(snap(&stats).drains_finished, 1);
}

#[tokio::test(start_paused = true)]
async fn abandoned_past_the_byte_cap() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .max_drain_bytes(1000)
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s.respond().await;
    drop(resp);
    tx.send(Ok(Bytes::from(vec![b'a'; 1000]))).unwrap();
    settle().await;
    assert!(!tx.is_closed());
    tx.send(Ok(Bytes::from_static(b"!"))).unwrap();
    settle().await;
    assert!(tx.is_closed(), "the body was dropped at 1001 bytes");
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Bytes), 1);
    assert_eq!(snap(&stats).drains_finished, 0);
    assert_eq!(layer.drains_running(), 0);
}

#[tokio::test(start_paused = true)]
async fn abandoned_at_once_when_the_size_hint_is_over_the_byte_cap() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .max_drain_bytes(1000)
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s
        .respond_to(
            "http://example.com/big",
            Version::HTTP_11,
            SizeHint::with_exact(1001),
        )
        .await;
    assert_eq!(resp.body().size_hint().exact(), Some(1001));
    drop(resp);
    assert!(tx.is_closed(), "dropped in place, no task");
    assert_eq!(snap(&stats).drains_started, 0);
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Bytes), 1);

    // Exactly at the cap is drained.
    let (tx, resp) = s
        .respond_to(
            "http://example.com/fits",
            Version::HTTP_11,
            SizeHint::with_exact(1000),
        )
        .await;
    drop(resp);
    assert_eq!(snap(&stats).drains_started, 1);
    drop(tx);
    settle().await;
    assert_eq!(snap(&stats).drains_finished, 1);
}

#[tokio::test(start_paused = true)]
async fn abandoned_exactly_at_the_time_cap() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .max_drain_time(Duration::from_millis(100))
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s.respond().await;
    advance(Duration::from_millis(500)).await; // held before the drop: not counted
    drop(resp);
    settle().await;
    tx.send(Ok(Bytes::from_static(b"trickle"))).unwrap();
    advance(Duration::from_millis(99)).await;
    settle().await;
    assert!(!tx.is_closed());
    assert_eq!(abandons(&stats), 0);
    advance(Duration::from_millis(1)).await;
    settle().await;
    assert!(tx.is_closed(), "dropped at 100 ms");
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Time), 1);
    assert_eq!(snap(&stats).drains_finished, 0);
    assert_eq!(layer.drains_running(), 0);
}

#[tokio::test(start_paused = true)]
async fn abandoned_at_the_concurrency_cap_without_queueing() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .max_concurrent_drains(2)
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx1, r1) = s.respond().await;
    let (_tx2, r2) = s.respond().await;
    let (tx3, r3) = s.respond().await;
    drop(r1);
    drop(r2);
    assert_eq!(layer.drains_running(), 2);
    drop(r3);
    assert!(tx3.is_closed(), "the third is dropped in place");
    assert_eq!(snap(&stats).drains_started, 2);
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Concurrency), 1);

    // A finished drain gives its permit back to the next drop.
    drop(tx1);
    settle().await;
    assert_eq!(snap(&stats).drains_finished, 1);
    let (_tx4, r4) = s.respond().await;
    drop(r4);
    assert_eq!(snap(&stats).drains_started, 3);
    assert_eq!(layer.drains_running(), 2);

    // Zero turns draining off.
    let off = DrainOnDropLayer::new()
        .max_concurrent_drains(0)
        .stats(stats.clone());
    let (tx5, r5) = Setup::new(&off).respond().await;
    drop(r5);
    assert!(tx5.is_closed());
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Concurrency), 2);
}

#[tokio::test(start_paused = true)]
async fn abandoned_when_the_body_fails() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s.respond().await;
    drop(resp);
    tx.send(Err("cut".into())).unwrap();
    settle().await;
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::Error), 1);
    assert!(tx.is_closed());
}

#[tokio::test(start_paused = true)]
async fn plain_drop_without_a_runtime() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s.respond().await;
    std::thread::spawn(move || drop(resp)).join().unwrap();
    assert!(tx.is_closed());
    assert_eq!(snap(&stats).drains_started, 0);
    assert_eq!(snap(&stats).drains_abandoned(DrainAbandon::NoRuntime), 1);
}

#[tokio::test(start_paused = true)]
async fn no_drain_when_the_body_already_ended() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let mut s = Setup::new(&layer);

    // Read to `None`, then dropped.
    let (tx, mut resp) = s.respond().await;
    tx.send(Ok(Bytes::from_static(b"all"))).unwrap();
    drop(tx);
    assert_eq!(read_one(&mut resp).await, "all");
    assert!(resp.body_mut().frame().await.is_none());
    assert!(resp.body().is_end_stream());
    drop(resp);

    // Failed, then dropped.
    let (tx, mut resp) = s.respond().await;
    tx.send(Err("boom".into())).unwrap();
    assert!(resp.body_mut().frame().await.unwrap().is_err());
    assert!(resp.body().is_end_stream());
    drop(resp);

    // Empty from the start (HEAD, 204, 304).
    let svc = tower_layer::Layer::layer(
        &layer,
        tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        }),
    );
    let resp = svc.oneshot(Request::new(())).await.unwrap();
    assert!(resp.body().is_end_stream());
    drop(resp);

    settle().await;
    assert_eq!(snap(&stats).drains_started, 0);
    assert_eq!(abandons(&stats), 0);
}

#[tokio::test(start_paused = true)]
async fn http2_bodies_are_not_drained() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (tx, resp) = s
        .respond_to("http://example.com/h2", Version::HTTP_2, SizeHint::new())
        .await;
    drop(resp);
    assert!(tx.is_closed(), "dropped in place: a stream reset is free");
    assert_eq!(snap(&stats).drains_started, 0);
    assert_eq!(abandons(&stats), 0, "nothing lost, nothing to count");
}

#[tokio::test(start_paused = true)]
async fn body_forwards_size_hint_and_end_of_stream() {
    let layer = DrainOnDropLayer::new();
    let mut s = Setup::new(&layer);
    let (_tx, resp) = s
        .respond_to("http://h/", Version::HTTP_11, SizeHint::with_exact(5))
        .await;
    assert_eq!(resp.body().size_hint().exact(), Some(5));
    assert!(!resp.body().is_end_stream());

    let mut hint = SizeHint::new();
    hint.set_lower(3);
    hint.set_upper(9);
    let (_tx, resp) = s.respond_to("http://h/", Version::HTTP_11, hint).await;
    assert_eq!(resp.body().size_hint().lower(), 3);
    assert_eq!(resp.body().size_hint().upper(), Some(9));
    assert_eq!(resp.body().get_ref().size_hint().upper(), Some(9));

    let svc = tower_layer::Layer::layer(
        &layer,
        tower::service_fn(|_req: Request<()>| async {
            let body = http_body_util::Full::new(Bytes::from("hello"));
            Ok::<_, std::convert::Infallible>(Response::new(body))
        }),
    );
    let mut resp = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(resp.body().size_hint().exact(), Some(5));
    assert!(!resp.body().is_end_stream());
    resp.body_mut().frame().await.unwrap().unwrap();
    assert!(resp.body().is_end_stream());
    assert_eq!(resp.body().size_hint().exact(), Some(0));
}

/// Collects what `tracing` writes while the guard lives (this thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .finish();
        // Keep a second dispatcher alive for the whole process: with exactly one live scoped
        // dispatcher, tracing-core takes its "just one" path, and a callsite first hit on another
        // test's thread (no subscriber there) is cached as `never`, losing this test's events.
        static KEEP: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        KEEP.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn held_body_is_reported_once_exactly_at_the_threshold() {
    let (logs, _guard) = Logs::capture();
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .leak_threshold(Duration::from_secs(10))
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let (_tx, held) = s
        .respond_to(
            "http://example.com/held?id=7",
            Version::HTTP_11,
            SizeHint::new(),
        )
        .await;
    settle().await;
    // Nobody polls `held` from here on: the report comes from the sweeper alone.
    advance(Duration::from_millis(9_999)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 0);
    assert!(logs.text().is_empty());
    advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 1);
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("method=GET"), "{text}");
    assert!(text.contains("uri=http://example.com/held?…"), "{text}");
    assert!(!text.contains("id=7"), "the query is not logged: {text}");
    assert!(text.contains("age=10s"), "{text}");

    // Once only, however long it is held.
    advance(Duration::from_secs(600)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 1);
    assert_eq!(logs.text().matches("WARN").count(), 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn finished_or_dropped_bodies_are_never_reported() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .leak_threshold(Duration::from_secs(10))
        .stats(stats.clone());
    let registry = layer.shared.leaks.clone().unwrap();
    let mut s = Setup::new(&layer);

    // Read to its end and still held: not pinning anything.
    let (tx, mut finished) = s.respond().await;
    drop(tx);
    assert!(finished.body_mut().frame().await.is_none());
    // Dropped unread before the threshold (drained in the background: not the caller's leak).
    let (_tx, dropped) = s.respond().await;
    advance(Duration::from_secs(9)).await;
    drop(dropped);
    // Failed.
    let (tx, mut failed) = s.respond().await;
    tx.send(Err("cut".into())).unwrap();
    assert!(failed.body_mut().frame().await.unwrap().is_err());
    assert_eq!(registry.live(), 0);

    advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 0);
    drop((finished, failed));
}

#[tokio::test(start_paused = true)]
async fn every_held_body_is_reported_within_a_tenth_of_the_threshold() {
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new()
        .leak_threshold(Duration::from_secs(10))
        .stats(stats.clone());
    let mut s = Setup::new(&layer);
    let mut held = Vec::new();
    // One body every 100 ms: their deadlines are 100 ms apart, sweeps at least 1 s apart.
    for _ in 0..30 {
        held.push(s.respond().await);
        advance(Duration::from_millis(100)).await;
    }
    // Now at 3 s; the first is due at 10 s, the last at 12.9 s.
    advance(Duration::from_millis(6_999)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 0);
    advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 1, "the first, exactly at 10 s");
    // Every body is reported no later than its own deadline + 1 s.
    for k in 1..30u64 {
        advance(Duration::from_millis(100)).await;
        settle().await;
        // Body k is due at 10 s + k × 100 ms; by then at least every body due 1 s earlier is in.
        let due_a_second_ago = (k + 1).saturating_sub(10);
        assert!(
            snap(&stats).leaks >= due_a_second_ago.max(1),
            "at body {k}: {}",
            snap(&stats).leaks
        );
        assert!(snap(&stats).leaks <= k + 1);
    }
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(snap(&stats).leaks, 30);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn one_sweeper_per_layer_ending_with_the_layer_and_its_bodies() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let layer = DrainOnDropLayer::new().leak_threshold(Duration::from_secs(10));
    let registry = Arc::downgrade(layer.shared.leaks.as_ref().unwrap());
    let mut s = Setup::new(&layer);
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(s.respond().await);
    }
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        base + 1,
        "one sweeper, no task per body"
    );

    // Registration reuses slots: 1000 short-lived bodies leave the registry as it was.
    for _ in 0..1000 {
        let (tx, mut resp) = s.respond().await;
        drop(tx);
        assert!(resp.body_mut().frame().await.is_none());
    }
    assert_eq!(registry.upgrade().unwrap().live(), 100);

    // The layer and the service gone, the bodies keep the sweeper...
    drop(s);
    drop(layer);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), base + 1);
    // ...and it ends with the last of them.
    drop(held);
    settle().await;
    assert!(registry.upgrade().is_none());
    assert_eq!(metrics.num_alive_tasks(), base);
}

#[test]
#[should_panic(expected = "DrainOnDropLayer max_drain_time must be greater than zero")]
fn zero_drain_time_is_rejected_at_construction() {
    let _ = DrainOnDropLayer::new().max_drain_time(Duration::ZERO);
}

#[test]
#[should_panic(expected = "DrainOnDropLayer leak_threshold must be greater than zero")]
fn zero_leak_threshold_is_rejected_at_construction() {
    let _ = DrainOnDropLayer::new().leak_threshold(Duration::ZERO);
}

#[test]
fn defaults_and_setters() {
    let layer = DrainOnDropLayer::default();
    assert_eq!(layer.get_max_drain_bytes(), 256 * 1024);
    assert_eq!(layer.get_max_drain_time(), Duration::from_millis(100));
    assert_eq!(layer.get_max_concurrent_drains(), 64);
    assert_eq!(layer.get_leak_threshold(), None);
    let layer = layer
        .leak_threshold(Duration::from_secs(5))
        .max_concurrent_drains(3);
    assert_eq!(layer.get_leak_threshold(), Some(Duration::from_secs(5)));
    assert_eq!(layer.get_max_concurrent_drains(), 3);
    assert_eq!(layer.no_leak_detection().get_leak_threshold(), None);
}

#[test]
fn public_types_are_send_sync_clone() {
    type Svc = DrainOnDrop<Mock>;
    assert_send_sync::<Svc>();
    assert_clone::<Svc>();
    assert_send_sync::<DrainOnDropLayer>();
    assert_clone::<DrainOnDropLayer>();
    assert_send_sync::<DrainOnDropFuture<<Mock as tower_service::Service<Request<()>>>::Future>>();
    assert_send_sync::<DrainOnDropBody<ChannelBody>>();
}

#[test]
fn a_huge_drain_cap_is_taken_as_the_largest_one() {
    let layer = crate::DrainOnDropLayer::new().max_concurrent_drains(usize::MAX);
    assert_eq!(
        layer.get_max_concurrent_drains(),
        tokio::sync::Semaphore::MAX_PERMITS
    );
    assert_eq!(layer.drains_running(), 0);
}
