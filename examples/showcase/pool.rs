//! Pool misbehaviours: idle connections never reaped, bursts opening a connection per request.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};
use tower_hardened::{BoxError, Hardened};

use crate::Row;

const IDLE: Duration = Duration::from_millis(300);
const BURST: usize = 200;
const CAP: usize = 10;

/// Sends `n` GETs at once and reads every body; how many failed and the first error.
async fn burst<S, B>(svc: S, uri: http::Uri, n: usize) -> (usize, Option<String>)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let svc = svc.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                let resp = svc
                    .oneshot(Request::get(uri).body(Empty::new()).unwrap())
                    .await
                    .map_err(Into::into)?;
                resp.into_body().collect().await.map_err(Into::into)?;
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    let mut failed = 0;
    let mut first = None;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failed += 1;
            first.get_or_insert_with(|| crate::describe(&*e).0);
        }
    }
    (failed, first)
}

async fn idle_row<S, B>(client: &'static str, svc: S) -> Row
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let server = crate::fresh_server();
    let probe = crate::Probe::start();
    let mut row = Row::new("idle conns, 300ms idle timeout", client);
    let start = Instant::now();
    let (failed, _) = burst(svc.clone(), server.uri("/slow-chunks/50/2"), 5).await;
    tokio::time::sleep(4 * IDLE).await;
    row.outcome = format!(
        "{} of 5 ok; {} still open after {:?} idle",
        5 - failed,
        server.open(),
        4 * IDLE
    );
    row.time = Some(start.elapsed());
    drop(svc);
    probe.finish(&mut row, Some(&server)).await;
    row
}

async fn cap_row<S, B>(client: &'static str, svc: S) -> Row
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let server = crate::fresh_server();
    let probe = crate::Probe::start();
    let mut row = Row::new("burst of 200, cap 10 per host", client);
    let start = Instant::now();
    let (failed, first) = burst(svc, server.uri("/slow-chunks/10/2"), BURST).await;
    row.time = Some(start.elapsed());
    row.outcome = match first {
        None => format!("all {BURST} ok"),
        Some(e) => format!("{failed} failed: {e}"),
    };
    probe.finish(&mut row, Some(&server)).await;
    row
}

pub async fn rows() -> Vec<Row> {
    let bare_idle =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .build_http::<Empty<Bytes>>();
    let hardened_idle = Hardened::new()
        .transport_with(|t| t.idle_timeout(IDLE))
        .client::<Empty<Bytes>>();
    let hardened_cap = Hardened::new()
        .max_requests_per_host(BURST)
        .transport_with(|t| t.max_conns_per_host(CAP).max_idle_per_host(CAP))
        .client::<Empty<Bytes>>();
    vec![
        idle_row("bare", bare_idle).await,
        idle_row("hardened", hardened_idle).await,
        cap_row(
            "bare",
            tower_hardened_test_server::bare_client::<Empty<Bytes>>(),
        )
        .await,
        cap_row("hardened", hardened_cap).await,
    ]
}
