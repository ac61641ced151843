//! Body-held concurrency limits through a real hyper-util client against the misbehaving
//! loopback server: what the server sees (requests, open connections), not just what the
//! client returns.
use tower_hardened_test_server as support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_hardened::{
    ConcurrencyLimitLayer, DeadlineLayer, Error, ErrorKind, PerHostLimitLayer, Phase,
    RequestDeadline, Stats,
};

use support::{bare_client, eventually, TestServer};

fn get(uri: http::Uri) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

/// The tests of this file run one at a time: they measure process-wide numbers (RSS, live
/// tasks) and time, which other tests running alongside would disturb.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_limit_one_the_second_request_waits_for_the_first_body() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let limit = ConcurrencyLimitLayer::new(1);
    let handle = limit.handle();
    let svc = limit.layer(bare_client::<Empty<Bytes>>());

    // The first response's headers and first chunk arrive; the rest of its body never does.
    let first = svc
        .clone()
        .oneshot(get(server.uri("/stall-body")))
        .await
        .unwrap();
    let mut first = first.into_body();
    let chunk = first.frame().await.unwrap().unwrap();
    assert_eq!(chunk.into_data().unwrap().len(), 16);

    let second = tokio::spawn(svc.clone().oneshot(get(server.uri("/ok"))));
    assert!(eventually(Duration::from_secs(5), || handle.waiting() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "must wait while the first body lives"
    );
    assert_eq!(server.requests(), 1, "the server has not seen the second");
    assert_eq!((handle.in_flight(), handle.waiting()), (1, 1));

    // Dropping the first body lets the second run at once.
    let dropped = Instant::now();
    drop(first);
    let resp = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("second runs after the first body is dropped")
        .unwrap()
        .unwrap();
    let waited = dropped.elapsed();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(server.requests(), 2);
    assert!(waited < Duration::from_secs(2), "ran {waited:?} after");
    assert_eq!((handle.in_flight(), handle.waiting()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_limit_of_one_lets_a_second_request_past_a_held_body() {
    let _serial = SERIAL.lock().await;
    // The contrast, measured here rather than claimed: tower's permit ends at the headers.
    let server = TestServer::start().await;
    let svc = tower::limit::ConcurrencyLimitLayer::new(1).layer(bare_client::<Empty<Bytes>>());
    let first = svc
        .clone()
        .oneshot(get(server.uri("/stall-body")))
        .await
        .unwrap();
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        svc.clone().oneshot(get(server.uri("/ok"))),
    )
    .await
    .expect("tower does not hold the permit for the body")
    .unwrap();
    assert_eq!(server.requests(), 2);
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_without_reaching_the_server() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let stats = Stats::new();
    let svc = ConcurrencyLimitLayer::new(1)
        .max_waiting(0)
        .stats(stats.clone())
        .layer(bare_client::<Empty<Bytes>>());
    let first = svc
        .clone()
        .oneshot(get(server.uri("/stall-body")))
        .await
        .unwrap();
    let start = Instant::now();
    let err = svc
        .clone()
        .oneshot(get(server.uri("/ok")))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    let err = Error::find(&*err).expect("typed");
    assert_eq!(
        (err.kind(), err.phase()),
        (ErrorKind::Overloaded, Some(Phase::Acquire))
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(stats.snapshot().overloads, 1);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_a_silent_server_fails_on_time_with_bounded_connections() {
    let _serial = SERIAL.lock().await;
    const FLOOD: usize = 2_000;
    const LIMIT: usize = 20;
    let server = TestServer::start().await;
    let stats = Stats::new();
    let limit = ConcurrencyLimitLayer::new(LIMIT)
        .max_waiting(FLOOD)
        .stats(stats.clone());
    let handle = limit.handle();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(800)).stats(stats.clone()))
        .layer(limit)
        .service(bare_client::<Empty<Bytes>>());

    let rss_before = support::rss_kib().expect("RSS from /proc/self/status");
    let tasks_before = support::live_tasks().expect("live task count");
    let start = Instant::now();
    // 2,000 requests issued at one moment with one 800 ms budget: the deadline is put in each
    // request (DeadlineLayer keeps an earlier one already there), so every request, waiting or
    // not, has the same instant. Each response future runs in its own task.
    let deadline = RequestDeadline::after(Duration::from_millis(800));
    let mut caller = svc.clone();
    let calls: Vec<_> = (0..FLOOD)
        .map(|_| {
            let mut req = get(server.uri("/stall-headers"));
            req.extensions_mut().insert(deadline);
            let fut = caller.call(req);
            tokio::spawn(async move { (fut.await.map(|_| ()), Instant::now()) })
        })
        .collect();
    drop(caller);
    let mut peak_waiting = 0;
    let mut last = start;
    let mut phases = std::collections::HashMap::new();
    for c in calls {
        peak_waiting = peak_waiting.max(handle.waiting());
        let (res, at) = c.await.unwrap();
        let err = res.expect_err("the server never answers");
        *phases
            .entry(Error::find(&*err).and_then(Error::phase))
            .or_insert(0) += 1;
        last = last.max(at);
    }
    let took = last - start;
    let rss_after = support::rss_kib().expect("RSS from /proc/self/status");

    // Every request failed with the deadline, waiting ones included, in about a second.
    assert_eq!(phases.get(&Some(Phase::Total)), Some(&FLOOD), "{phases:?}");
    assert!(
        took >= Duration::from_millis(790) && took < Duration::from_millis(2_500),
        "the flood took {took:?}"
    );
    assert_eq!(stats.snapshot().timeouts(Phase::Total), FLOOD as u64);
    // Only the permitted requests reached the server, each on its own connection; nobody
    // started an exchange after the shared deadline.
    assert!(server.requests() <= LIMIT, "{} requests", server.requests());
    assert!(
        server.accepted() <= LIMIT,
        "{} connections",
        server.accepted()
    );
    assert!(server.peak_open() <= LIMIT, "peak {}", server.peak_open());
    assert_eq!((handle.in_flight(), handle.waiting()), (0, 0));
    let snap = stats.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (0, 0));

    // Memory: a few KiB per queued request at most, and the tasks are gone.
    let grew = rss_after.saturating_sub(rss_before);
    assert!(
        grew < 32 * 1024,
        "RSS grew by {grew} KiB for {FLOOD} requests"
    );
    eprintln!("flood of {FLOOD}: {took:?}, RSS +{grew} KiB, peak open {}, server requests {}, peak waiting {peak_waiting}",
        server.peak_open(), server.requests());
    drop(svc);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    assert!(
        eventually(Duration::from_secs(5), || support::live_tasks().unwrap()
            <= tasks_before)
        .await,
        "live tasks: {:?} > {tasks_before}",
        support::live_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_limits_are_seen_by_each_server() {
    let _serial = SERIAL.lock().await;
    const HOSTS: usize = 8;
    const PER_HOST: usize = 2;
    const REQUESTS: usize = 200;
    let mut servers = Vec::new();
    for _ in 0..HOSTS {
        servers.push(TestServer::start().await);
    }
    let limit = PerHostLimitLayer::new(PER_HOST).max_waiting(REQUESTS);
    let handle = limit.handle();
    let svc = limit.layer(bare_client::<Empty<Bytes>>());
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let svc = svc.clone();
            // Each body takes ~20 ms to stream, so requests to one host overlap unless held back.
            let uri = servers[i % HOSTS].uri("/slow-chunks/10/2");
            tokio::spawn(async move {
                let resp = svc.oneshot(get(uri)).await?;
                let body = resp.into_body().collect().await?;
                Ok::<_, tower_hardened::BoxError>(body.to_bytes().len())
            })
        })
        .collect();
    let mut peak_hosts = 0;
    for c in calls {
        peak_hosts = peak_hosts.max(handle.hosts());
        assert_eq!(c.await.unwrap().unwrap(), 32);
    }
    for s in &servers {
        // Requests being served at once, as the server counts them (open connections would
        // also count idle pooled ones).
        assert!(
            s.peak_active() <= PER_HOST,
            "a server served {} at once",
            s.peak_active()
        );
        assert_eq!(s.requests(), REQUESTS / HOSTS);
    }
    // The bound was reached, not just respected by a load too light to test it: requests to
    // one host did overlap up to the limit, and several hosts were busy at once.
    assert!(
        servers.iter().any(|s| s.peak_active() == PER_HOST),
        "no server ever had {PER_HOST} requests at once"
    );
    assert!(peak_hosts >= 2, "hosts never overlapped");
    assert_eq!(
        (handle.hosts(), handle.in_flight(), handle.waiting()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_thousand_distinct_hosts_leave_no_state_behind() {
    let _serial = SERIAL.lock().await;
    // Distinct authorities against an in-memory inner service (resolving 100,000 names is not
    // the point); the bodies are held in waves of 1,000 so that many hosts are live at once.
    const HOSTS: usize = 100_000;
    const WAVE: usize = 1_000;
    let limit = PerHostLimitLayer::new(1).max_waiting(0);
    let handle = limit.handle();
    let inner = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"x"))))
    });
    let mut svc = limit.layer(inner);
    let rss_before = support::rss_kib().expect("RSS from /proc/self/status");
    let mut wave = Vec::with_capacity(WAVE);
    for i in 0..HOSTS {
        let uri = format!("http://host-{i}.example:{}/", 1 + i % 60_000);
        let req = Request::get(uri).body(()).unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        assert!(resp.body().holds_permit());
        wave.push(resp);
        if wave.len() == WAVE {
            assert_eq!(handle.hosts(), WAVE);
            assert_eq!(handle.in_flight(), WAVE);
            wave.clear();
            assert_eq!(handle.hosts(), 0);
        }
    }
    assert_eq!((handle.hosts(), handle.in_flight()), (0, 0));
    let after = support::rss_kib().expect("RSS from /proc/self/status");
    let grew = after.saturating_sub(rss_before);
    eprintln!("{HOSTS} hosts: RSS +{grew} KiB");
    assert!(grew < 8 * 1024, "RSS grew by {grew} KiB over {HOSTS} hosts");
}
