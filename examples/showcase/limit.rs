//! A flood of requests at a server that never answers: the bare client opens a connection per
//! request and waits forever; the hardened stack sends at most `LIMIT` at once, queues the rest
//! (bounded), and fails every one of them at the deadline — waiting ones included.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tower::Service;
use tower_hardened::Hardened;

use crate::{describe, Row};
use tower_hardened_test_server::{bare_client, live_tasks, rss_kib, TestServer};

const FLOOD: usize = 500;
const LIMIT: usize = 20;
/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);
const SCENARIO: &str = "flood of 500 at a stalled server";

/// Sends `FLOOD` requests to `/stall-headers` at once and waits for all of them (up to
/// `PATIENCE`), filling in the row.
async fn flood<S>(mut svc: S, server: &TestServer, row: &mut Row)
where
    S: Service<Request<Empty<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower_hardened::BoxError> + Send,
    S::Response: Send,
{
    let tasks_before = live_tasks();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut calls = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        std::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .map_err(Into::into)
            .expect("ready");
        let req = Request::get(server.uri("/stall-headers"))
            .body(Empty::new())
            .unwrap();
        let fut = svc.call(req);
        calls.push(tokio::spawn(async move { fut.await.map_err(Into::into) }));
    }
    let mut failed = 0;
    let mut pending = 0;
    let mut last_error = None;
    for call in calls {
        let left = PATIENCE.saturating_sub(start.elapsed());
        let mut call = call;
        match tokio::time::timeout(left, &mut call).await {
            Err(_) => {
                pending += 1;
                call.abort();
            }
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => {
                failed += 1;
                last_error = Some(e);
            }
            Ok(Err(join)) => panic!("{join}"),
        }
    }
    row.time = Some(start.elapsed());
    row.rss_kib = match (rss_before, rss_kib()) {
        (Some(b), Some(a)) => Some(a as i64 - b as i64),
        _ => None,
    };
    row.opened = Some(server.accepted());
    row.peak_open = Some(server.peak_open());
    row.outcome = if pending > 0 {
        format!("{pending}/{FLOOD} still waiting after {PATIENCE:?}")
    } else {
        let (text, phase) = last_error
            .as_deref()
            .map(|e| describe(e))
            .unwrap_or_else(|| ("ok".into(), None));
        row.phase = phase;
        format!("{failed}/{FLOOD} failed: {text}")
    };
    drop(svc);
    // Give aborted requests and closed connections a moment to wind down, then count tasks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    row.tasks_left = match (tasks_before, live_tasks()) {
        (Some(b), Some(a)) => Some(a as i64 - b as i64),
        _ => None,
    };
}

pub async fn rows() -> Vec<Row> {
    let mut rows = Vec::new();

    let server = crate::fresh_server();
    let mut bare = Row::new(SCENARIO, "bare");
    flood(bare_client::<Empty<Bytes>>(), &server, &mut bare).await;
    rows.push(bare);

    let server = crate::fresh_server();
    let mut hardened = Row::new(SCENARIO, "hardened");
    let svc = Hardened::new()
        .total(Duration::from_secs(1))
        .max_in_flight(LIMIT)
        .max_requests_per_host(LIMIT)
        .client::<Empty<Bytes>>();
    flood(svc, &server, &mut hardened).await;
    rows.push(hardened);
    rows
}
