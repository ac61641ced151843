//! Dropped and held response bodies: connections lost to unread drops, and a body held forever.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tower::{Service, ServiceExt};
use tower_hardened::{Hardened, Stats};

use crate::Row;
use tower_hardened_test_server::{bare_client, TestServer};

const CALLERS: usize = 8;
const PER_CALLER: usize = 100;

/// `CALLERS` concurrent callers each send `PER_CALLER` requests for 64 KiB and drop every body
/// unread.
async fn drop_unread<S, B>(svc: S, row: &mut Row)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Send + 'static,
{
    let server = crate::fresh_server();
    let probe = crate::Probe::start();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let mut svc = svc.clone();
        let uri = server.uri("/bytes/65536");
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_CALLER {
                let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
                drop(svc.ready().await.unwrap().call(req).await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    let n = CALLERS * PER_CALLER;
    row.outcome = format!(
        "{n} dropped unread, {:.0} req/s",
        n as f64 / took.as_secs_f64()
    );
    row.time = Some(took);
    drop(svc);
    probe.finish(row, Some(&server)).await;
}

/// Takes the headers of `/stall-body`, reads one chunk and then holds the body, never polling it.
async fn hold<S, B>(mut svc: S, server: &TestServer, stats: Option<&Stats>, row: &mut Row)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    let req = Request::get(server.uri("/stall-body"))
        .body(Empty::new())
        .unwrap();
    let held = svc.ready().await.unwrap().call(req).await.unwrap();
    let patience = Duration::from_secs(2);
    let mut reported = None;
    while start.elapsed() < patience && reported.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if stats.is_some_and(|s| s.snapshot().leaks > 0) {
            reported = Some(start.elapsed());
        }
    }
    row.outcome = match reported {
        Some(t) => format!("leak reported (warn!: GET /stall-body, age) after {t:.2?}"),
        None => format!("held {patience:?}: nobody noticed"),
    };
    row.time = Some(start.elapsed());
    drop(held);
}

pub async fn rows() -> Vec<Row> {
    let mut rows = Vec::new();

    let mut bare = Row::new("dropped 64 KiB bodies", "bare");
    drop_unread(bare_client::<Empty<Bytes>>(), &mut bare).await;
    rows.push(bare);
    let mut hardened = Row::new("dropped 64 KiB bodies", "hardened");
    // Bound first: a temporary `Hardened` would live until the end of the statement, `.await`
    // included, and with it its drain layer's held-body sweeper task (counted as left over).
    let client = Hardened::new().client::<Empty<Bytes>>();
    drop_unread(client, &mut hardened).await;
    rows.push(hardened);

    let server = crate::fresh_server();
    let mut bare = Row::new("held body", "bare");
    hold(bare_client::<Empty<Bytes>>(), &server, None, &mut bare).await;
    rows.push(bare);
    let mut hardened = Row::new("held body", "hardened");
    let preset = Hardened::new()
        .drain_with(|d| d.leak_threshold(Duration::from_millis(500)))
        .body_idle(Duration::from_secs(30));
    let stats = preset.stats_handle();
    hold(
        preset.client::<Empty<Bytes>>(),
        &server,
        Some(&stats),
        &mut hardened,
    )
    .await;
    rows.push(hardened);
    rows
}
