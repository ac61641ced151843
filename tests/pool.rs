//! Bounded pools for hyper-util's legacy client against the real loopback server, counting the
//! connections the server sees.
use tower_hardened_test_server as support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use support::TestServer;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_hardened::{CloseReason, ConnectionInfo, PoolClientBuilder, Stats};

type Client =
    tower_hardened::PoolClient<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// GET `uri`, read the whole body; the connection's tag and the body length.
async fn get(client: &Client, uri: http::Uri) -> Result<(ConnectionInfo, usize), String> {
    let resp = client
        .clone()
        .oneshot(Request::get(uri).body(Empty::new()).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let info = resp.extensions().get::<ConnectionInfo>().unwrap().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok((info, body.to_bytes().len()))
}

async fn burst(
    client: &Client,
    uri: http::Uri,
    n: usize,
) -> Vec<Result<(ConnectionInfo, usize), String>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let uri = uri.clone();
            tokio::spawn(async move { get(&client, uri).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_within_the_idle_timeout_plus_the_reaper_period() {
    let idle = Duration::from_millis(300);
    let server = TestServer::start().await;
    let stats = Stats::new();
    let client = PoolClientBuilder::new()
        .idle_timeout(idle)
        .stats(stats.clone())
        .build_http::<Empty<Bytes>>();
    // Five overlapping requests: five connections.
    let results = burst(&client, server.uri("/slow-chunks/50/2"), 5).await;
    assert!(results.iter().all(|r| r.is_ok()));
    let went_idle = Instant::now();
    assert_eq!(server.accepted(), 5);
    assert_eq!(server.open(), 5);

    tokio::time::sleep(idle / 2).await;
    assert_eq!(server.open(), 5, "still open before the idle timeout");
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    let closed_after = went_idle.elapsed();
    // The reaper ticks every idle timeout: closed between 1x and 2x, plus scheduling slack
    // (a reaper at 3x or later fails this).
    assert!(closed_after >= idle, "{closed_after:?}");
    assert!(
        closed_after < 2 * idle + Duration::from_millis(250),
        "closed after {closed_after:?}"
    );
    let snap = stats.snapshot();
    assert_eq!(snap.connections_closed(CloseReason::Idle), 5, "{snap:?}");
    assert_eq!(snap.connections_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_client_with_an_idle_timeout_but_no_timer_keeps_them_open() {
    let server = TestServer::start().await;
    let bare = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_millis(300))
        .build_http::<Empty<Bytes>>();
    let resp = bare.get(server.uri("/ok")).await.unwrap();
    resp.into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        server.open(),
        1,
        "hyper #3640: never reaped without pool_timer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_with_a_cap_of_ten_never_open_more_than_ten() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let acquire = Duration::from_secs(1);
    let builder = PoolClientBuilder::new()
        .max_conns_per_host(10)
        .max_idle_per_host(10)
        .acquire_timeout(acquire)
        .stats(stats.clone());
    let client = builder.build_http::<Empty<Bytes>>();
    let tasks_before = support::live_tasks().unwrap();

    // Each response takes ~20 ms: 200 of them over 10 connections take ~0.4 s, well within
    // the acquire timeout even on a loaded machine.
    let uri = server.uri("/slow-chunks/10/2");
    let results = burst(&client, uri.clone(), 200).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(results.iter().all(|r| r.as_ref().unwrap().1 == 32));
    assert_eq!(server.requests(), 200);
    assert!(server.peak_open() <= 10, "peak {}", server.peak_open());
    assert!(builder.connector_layer().open_connections(&uri) <= 10);
    let snap = stats.snapshot();
    assert!(snap.connections_opened <= 10, "{snap:?}");
    assert!(snap.connections_reused >= 190, "{snap:?}");

    // hyper-util keeps dials that lost the race to a checkout running in the background; under
    // the cap they wait for a permit, and give up at the acquire timeout.
    tokio::time::sleep(acquire + Duration::from_millis(500)).await;
    let tasks_after = support::live_tasks().unwrap();
    // Left: 10 client connection tasks, 10 server ones, the idle reaper, slack for a few more.
    assert!(
        tasks_after <= tasks_before + 25,
        "{tasks_before} tasks before, {tasks_after} after"
    );
    assert!(server.peak_open() <= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_lifetime_new_connections_replace_old_ones_and_no_request_fails() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let life = Duration::from_millis(400);
    let client = PoolClientBuilder::new()
        .max_lifetime(life)
        .jitter(0.0)
        .stats(stats.clone())
        .build_http::<Empty<Bytes>>();
    let end = Instant::now() + Duration::from_millis(2000);
    let mut ids = Vec::new();
    while Instant::now() < end {
        let start = Instant::now();
        let (info, n) = get(&client, server.uri("/ok"))
            .await
            .expect("no request fails");
        assert_eq!(n, 2);
        // No request starts on a connection past its lifetime (small slack: the retirement
        // runs on the connection's task, which a loaded machine may schedule late).
        let age_at_start = start.saturating_duration_since(info.opened_at());
        assert!(
            age_at_start < life + Duration::from_millis(100),
            "{age_at_start:?}"
        );
        if ids.last() != Some(&info.id()) {
            ids.push(info.id());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 2 s of traffic over 400 ms connections: about five, one after the other.
    assert!(ids.len() >= 4, "{} connections", ids.len());
    assert_eq!(server.accepted(), ids.len());
    assert!(server.peak_open() <= 2, "peak {}", server.peak_open());
    let snap = stats.snapshot();
    assert!(
        snap.connections_closed(CloseReason::Lifetime) as usize >= ids.len() - 2,
        "{snap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_longer_than_the_lifetime_is_not_cut() {
    let server = TestServer::start().await;
    let client = PoolClientBuilder::new()
        .max_lifetime(Duration::from_millis(150))
        .jitter(0.0)
        .build_http::<Empty<Bytes>>();
    // Six chunks 100 ms apart: four lifetimes long.
    let (info, n) = get(&client, server.uri("/slow-chunks/100/6"))
        .await
        .unwrap();
    assert_eq!(n, 96);
    assert!(info.is_retired());
    assert!(
        server.wait_open_at_most(0, Duration::from_secs(5)).await,
        "closed after its exchange"
    );
    let (next, _) = get(&client, server.uri("/ok")).await.unwrap();
    assert_ne!(next.id(), info.id());
    assert_eq!(server.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_retirements() {
    let server = TestServer::start().await;
    let life = Duration::from_millis(1000);
    let client = PoolClientBuilder::new()
        .max_lifetime(life)
        .jitter(0.5)
        .max_idle_per_host(32)
        .build_http::<Empty<Bytes>>();
    let results = burst(&client, server.uri("/slow-chunks/30/2"), 20).await;
    let infos: Vec<ConnectionInfo> = results.into_iter().map(|r| r.unwrap().0).collect();
    let mut distinct: Vec<u64> = infos.iter().map(ConnectionInfo::id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 10, "{} connections", distinct.len());
    let conns: Vec<&ConnectionInfo> = distinct
        .iter()
        .map(|id| infos.iter().find(|i| i.id() == *id).unwrap())
        .collect();
    // Watch the idle connections being retired by their own timers.
    let start = Instant::now();
    let mut retired_at = vec![None; conns.len()];
    while start.elapsed() < life + Duration::from_millis(500) {
        for (i, c) in conns.iter().enumerate() {
            if retired_at[i].is_none() && c.is_retired() {
                retired_at[i] = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each is retired at its own age between half the lifetime and the lifetime (jitter 0.5),
    // give or take the 10 ms poll here and scheduling.
    let ages: Vec<Duration> = retired_at
        .iter()
        .zip(&conns)
        .map(|(t, c)| t.expect("every one retired") - c.opened_at())
        .collect();
    for age in &ages {
        assert!(
            *age >= life / 2 && *age <= life + Duration::from_millis(150),
            "retired at age {age:?}, outside [{:?}, {life:?}]: {ages:?}",
            life / 2
        );
    }
    let times: Vec<Duration> = retired_at
        .iter()
        .map(|t| t.expect("every one retired") - start)
        .collect();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    // Spread, not all at once.
    assert!(last - first >= Duration::from_millis(200), "{times:?}");
    let mut buckets: Vec<u128> = times.iter().map(|t| t.as_millis() / 50).collect();
    buckets.sort_unstable();
    buckets.dedup();
    assert!(buckets.len() >= 4, "{times:?}");
    // And the next request gets a fresh connection.
    let (next, _) = get(&client, server.uri("/ok")).await.unwrap();
    assert!(!distinct.contains(&next.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_are_shared_under_the_cap_and_retired_by_age() {
    let server = TestServer::start().await;
    let stats = Stats::new();
    let life = Duration::from_millis(300);
    let builder = PoolClientBuilder::new()
        .configure(|b| {
            b.http2_only(true);
        })
        .max_conns_per_host(1)
        .max_lifetime(life)
        .jitter(0.0)
        .stats(stats.clone());
    let builder_layer = builder.connector_layer().clone();
    let client = builder.build_http::<Empty<Bytes>>();
    // Twenty concurrent requests share one HTTP/2 connection.
    let first = burst(&client, server.uri("/slow-chunks/20/2"), 20).await;
    let ids: Vec<u64> = first.iter().map(|r| r.as_ref().unwrap().0.id()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(server.accepted(), 1);
    // Past its lifetime the idle connection is retired; the next requests get a new one and
    // the old one closes (with one permit, the new dial could only happen once it did).
    tokio::time::sleep(life + Duration::from_millis(100)).await;
    let second = burst(&client, server.uri("/ok"), 5).await;
    let new_id = second[0].as_ref().unwrap().0.id();
    assert_ne!(new_id, ids[0]);
    assert!(second.iter().all(|r| r.as_ref().unwrap().0.id() == new_id));
    assert_eq!(server.accepted(), 2);
    // The cap is the client's: its count never passes 1. The server may see the new connection
    // a moment before it reads the old one's close, so its own peak can briefly show 2.
    let open: usize = client_open(&builder_layer);
    assert!(open <= 1, "client-side open {open}");
    assert!(server.peak_open() <= 2, "peak {}", server.peak_open());
    assert_eq!(
        stats.snapshot().connections_closed(CloseReason::Lifetime),
        1
    );
}

/// Connections dialing or open, as the client's per-host cap counts them.
fn client_open(layer: &tower_hardened::PoolConnectorLayer) -> usize {
    layer.open_per_host().iter().map(|(_, _, n)| n).sum()
}
