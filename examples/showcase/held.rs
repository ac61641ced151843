//! Bodies held unread, measured as requests go out: the Go lesson's chart. A caller sends GETs
//! for 64 KiB in batches and keeps every response it gets without reading it; after each batch,
//! the process's resident memory and the connections open at the server.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};
use tower_hardened::{BoxError, Hardened};

/// Requests sent in all, and at once.
pub const REQUESTS: usize = 1000;
pub const BATCH: usize = 50;

/// One measurement, after a batch.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Requests sent so far.
    pub sent: usize,
    /// Resident memory growth of this process (client and loopback server) since the start, MiB.
    pub rss_mib: f64,
    /// Connections open at the server.
    pub open: usize,
}

/// One client's curve and what became of its requests.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    pub points: Vec<Point>,
    pub held: usize,
    pub failed: usize,
    pub first_error: Option<String>,
}

async fn measure<S, B>(svc: S) -> Curve
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
{
    let server = crate::fresh_server();
    // One request read to its end first, so one-time costs (the resolver's thread, the first
    // connection's buffers) are not counted as growth.
    let req = Request::get(server.uri("/ok")).body(Empty::new()).unwrap();
    if let Ok(resp) = svc.clone().oneshot(req).await {
        let _ = resp.into_body().collect().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = tower_hardened_test_server::rss_kib().unwrap_or(0);
    let mut curve = Curve::default();
    let mut held = Vec::new();
    curve.points.push(Point {
        sent: 0,
        rss_mib: 0.0,
        open: 0,
    });
    for batch in 0..REQUESTS / BATCH {
        let calls: Vec<_> = (0..BATCH)
            .map(|_| {
                let req = Request::get(server.uri("/bytes/65536"))
                    .body(Empty::new())
                    .unwrap();
                let svc = svc.clone();
                tokio::spawn(async move { svc.oneshot(req).await.map_err(Into::into) })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                Ok(resp) => held.push(resp),
                Err(e) => {
                    curve.failed += 1;
                    curve
                        .first_error
                        .get_or_insert_with(|| crate::describe(&*e).0);
                }
            }
        }
        // Let the connections settle before reading the numbers.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let rss = tower_hardened_test_server::rss_kib().unwrap_or(start);
        curve.points.push(Point {
            sent: (batch + 1) * BATCH,
            rss_mib: (rss as f64 - start as f64) / 1024.0,
            open: server.open(),
        });
    }
    curve.held = held.len();
    drop(held);
    curve
}

/// The bare hyper-util client and the preset, each with bodies held unread: `(bare,
/// hardened)`. The preset goes first, while the process is fresh (memory freed by one client
/// is reused by the next without growing the RSS, which would flatter the second). Its acquire
/// timeout is cut to 100 ms so the chart is drawn in seconds: a request that finds its host's
/// 64 permits held waits that long, then fails with `Acquire`.
pub async fn curves() -> (Curve, Curve) {
    let client = Hardened::new()
        .acquire_timeout(Duration::from_millis(100))
        .client::<Empty<Bytes>>();
    let hardened = measure(client).await;
    let bare = measure(tower_hardened_test_server::bare_client::<Empty<Bytes>>()).await;
    (bare, hardened)
}
