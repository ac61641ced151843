//! `DrainOnDropLayer` against the real loopback server, through hyper-util's client.
#![cfg(feature = "drain")]
use tower_hardened_test_server as support;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_hardened::{DrainAbandon, DrainOnDropLayer, Stats};

use support::{eventually, TestServer};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

fn get(server: &TestServer, path: &str) -> Request<Empty<Bytes>> {
    Request::get(server.uri(path)).body(Empty::new()).unwrap()
}

/// Sends `n` requests one after the other through `svc` and drops every body unread.
/// Returns the requests per second.
async fn drop_unread<S, B>(svc: &mut S, server: &TestServer, path: &str, n: usize) -> f64
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..n {
        let resp = svc
            .ready()
            .await
            .unwrap()
            .call(get(server, path))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        drop(resp);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test]
async fn dropped_64k_bodies_keep_their_connections() {
    const N: usize = 200;

    // Bare hyper-util: hyper reads once on drop, then closes the connection.
    let bare_server = TestServer::start().await;
    let mut bare: Client = support::bare_client();
    let bare_rps = drop_unread(&mut bare, &bare_server, "/bytes/65536", N).await;
    let bare_conns = bare_server.accepted();

    // The same client behind the layer, with its defaults.
    let server = TestServer::start().await;
    let stats = Stats::new();
    let mut hardened = ServiceBuilder::new()
        .layer(DrainOnDropLayer::new().stats(stats.clone()))
        .service(support::bare_client::<Empty<Bytes>>());
    let rps = drop_unread(&mut hardened, &server, "/bytes/65536", N).await;
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = stats.snapshot();
            s.drains_finished + s.drains_abandoned(DrainAbandon::Time) == N as u64
        })
        .await
    );
    let conns = server.accepted();
    let s = stats.snapshot();
    eprintln!(
        "{N} x 64 KiB dropped unread: bare {bare_conns} connections ({bare_rps:.0} req/s), \
         drained {conns} connections ({rps:.0} req/s); {s:?}"
    );
    assert_eq!(bare_server.requests(), N);
    assert_eq!(server.requests(), N);
    assert!(
        bare_conns >= N * 3 / 4,
        "bare hyper-util is expected to lose (nearly) every connection: {bare_conns}"
    );
    assert!(conns <= 5, "a handful of connections, got {conns}");
    assert_eq!(s.drains_started, N as u64);
    assert!(s.drains_finished >= N as u64 - 5, "{s:?}");
}

#[tokio::test]
async fn endless_bodies_are_abandoned_within_the_time_cap_and_their_connections_close() {
    const N: usize = 4;
    let cap = Duration::from_millis(100);
    let server = TestServer::start().await;
    let stats = Stats::new();
    // No byte cap, so only the time cap can stop a drain of an endless body.
    let layer = DrainOnDropLayer::new()
        .max_drain_bytes(u64::MAX)
        .max_drain_time(cap)
        .stats(stats.clone());
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(support::bare_client::<Empty<Bytes>>());
    let base = support::live_tasks().unwrap();

    for path in ["/endless", "/drip/5"] {
        for _ in 0..N / 2 {
            let mut resp = svc
                .ready()
                .await
                .unwrap()
                .call(get(&server, path))
                .await
                .unwrap();
            // Read a little, then walk away.
            resp.body_mut().frame().await.unwrap().unwrap();
            drop(resp);
        }
    }
    let dropped = Instant::now();
    assert_eq!(stats.snapshot().drains_started, N as u64);
    assert_eq!(
        server.accepted(),
        N,
        "a drained body keeps its connection busy"
    );
    assert!(
        eventually(Duration::from_secs(5), || stats
            .snapshot()
            .drains_abandoned(DrainAbandon::Time)
            == N as u64)
        .await
    );
    let took = dropped.elapsed();
    eprintln!("{N} never-ending bodies abandoned {took:?} after the drops (cap {cap:?})");
    assert!(took >= cap - Duration::from_millis(5), "{took:?}");
    assert!(took < cap + Duration::from_secs(2), "{took:?}");
    assert_eq!(stats.snapshot().drains_finished, 0);
    assert_eq!(layer.drains_running(), 0);

    // The server sees every one of those connections close, while the client lives on.
    assert!(
        server.wait_open_at_most(0, Duration::from_secs(5)).await,
        "open at the server: {}",
        server.open()
    );
    // And no task is left behind: drains, client connections, server connections all ended.
    assert!(
        eventually(Duration::from_secs(5), || support::live_tasks().unwrap()
            <= base)
        .await,
        "live tasks {} > {base}",
        support::live_tasks().unwrap()
    );
    drop(svc);
}

#[tokio::test]
async fn endless_bodies_hit_the_default_byte_cap_first() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let mut svc = ServiceBuilder::new()
        .layer(DrainOnDropLayer::new().stats(stats.clone()))
        .service(support::bare_client::<Empty<Bytes>>());
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server, "/endless"))
        .await
        .unwrap();
    drop(resp);
    assert!(
        eventually(Duration::from_secs(5), || stats
            .snapshot()
            .drains_abandoned(DrainAbandon::Bytes)
            == 1)
        .await,
        "{:?}",
        stats.snapshot()
    );
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn http2_bodies_are_dropped_and_the_connection_is_kept() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let mut svc = ServiceBuilder::new()
        .layer(DrainOnDropLayer::new().stats(stats.clone()))
        .service(client);
    drop_unread(&mut svc, &server, "/bytes/65536", 20).await;
    let s = stats.snapshot();
    assert_eq!(s.drains_started, 0, "HTTP/2 is never drained");
    assert_eq!(
        DrainAbandon::ALL
            .iter()
            .map(|&w| s.drains_abandoned(w))
            .collect::<Vec<_>>(),
        [0; 5],
        "and not counted as abandoned"
    );
    assert_eq!(server.accepted(), 1, "a stream reset keeps the connection");
}

/// A response body that never sends a byte and never ends.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

/// 10,000 responses dropped in a burst. The inner service is in memory (a loopback server
/// would spend its time opening 10,000 connections, not testing the cap); its bodies never
/// end, the worst case: every drain that starts runs until its time cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_drops_keeps_live_tasks_within_the_drain_cap() {
    const N: u64 = 10_000;
    let stats = Stats::new();
    let layer = DrainOnDropLayer::new().stats(stats.clone());
    let cap = layer.get_max_concurrent_drains();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Stalled))
        }));
    let base = support::live_tasks().unwrap();
    let mut peak_tasks = 0;
    let mut peak_running = 0;
    for _ in 0..N {
        let resp = svc.clone().oneshot(Request::new(())).await.unwrap();
        drop(resp);
        peak_tasks = peak_tasks.max(support::live_tasks().unwrap().saturating_sub(base));
        peak_running = peak_running.max(layer.drains_running());
    }
    let s = stats.snapshot();
    eprintln!("{N} drops: peak {peak_tasks} extra live tasks, peak {peak_running} drains, {s:?}");
    assert!(peak_tasks <= cap, "{peak_tasks} tasks > cap {cap}");
    assert!(peak_running <= cap);
    assert!(s.drains_started >= cap as u64, "the cap was reached");
    assert_eq!(
        s.drains_started + s.drains_abandoned(DrainAbandon::Concurrency),
        N,
        "every drop either started a drain or was refused one at once"
    );
    // Every started drain ends at its time cap, and takes its task with it.
    assert!(
        eventually(Duration::from_secs(5), || stats
            .snapshot()
            .drains_abandoned(DrainAbandon::Time)
            == s.drains_started)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || support::live_tasks().unwrap()
            <= base)
        .await
    );
    assert_eq!(layer.drains_running(), 0);
}

#[tokio::test]
async fn a_held_body_is_reported_while_nobody_polls_it() {
    let threshold = Duration::from_millis(200);
    let server = TestServer::start().await;
    let stats = Stats::new();
    let mut svc = ServiceBuilder::new()
        .layer(
            DrainOnDropLayer::new()
                .leak_threshold(threshold)
                .stats(stats.clone()),
        )
        .service(support::bare_client::<Empty<Bytes>>());
    // Taken before the call: the body is registered when its headers arrive, after this.
    let asked = Instant::now();
    let mut held = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server, "/stall-body"))
        .await
        .unwrap();
    held.body_mut().frame().await.unwrap().unwrap();
    // A body read to its end on the side is never reported.
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server, "/ok"))
        .await
        .unwrap();
    assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "ok");

    assert!(eventually(Duration::from_secs(5), || stats.snapshot().leaks == 1).await);
    let after = asked.elapsed();
    assert!(after >= threshold, "reported after {after:?}");
    tokio::time::sleep(threshold * 2).await;
    assert_eq!(stats.snapshot().leaks, 1, "once");
    drop(held);
}
