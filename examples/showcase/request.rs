//! Request-side misbehaviours: stalled headers, stalled or endless bodies, slow drips.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_hardened::DeadlineLayer;

use crate::support::{bare_client, TestServer};
use crate::{describe, Row};

/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);

/// Sends a GET and reads the whole body, giving up after `PATIENCE`.
async fn run<S, B>(mut svc: S, uri: http::Uri, row: &mut Row)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: Into<tower_hardened::BoxError>,
    B: http_body::Body,
    B::Error: Into<tower_hardened::BoxError>,
{
    let start = Instant::now();
    let exchange = async {
        let resp = svc
            .ready()
            .await
            .map_err(Into::into)?
            .call(Request::get(uri).body(Empty::new()).unwrap())
            .await
            .map_err(Into::into)?;
        let body = resp.into_body().collect().await.map_err(Into::into)?;
        Ok::<_, tower_hardened::BoxError>(body.to_bytes().len())
    };
    match tokio::time::timeout(PATIENCE, exchange).await {
        Err(_) => row.outcome = format!("still waiting after {PATIENCE:?}"),
        Ok(Ok(n)) => row.outcome = format!("ok, {n} bytes"),
        Ok(Err(e)) => {
            let (text, phase) = describe(&*e);
            row.outcome = text;
            row.phase = phase;
        }
    }
    row.time = Some(start.elapsed());
}

pub async fn rows() -> Vec<Row> {
    let server = TestServer::start().await;
    let cases: [(&'static str, &str); 3] = [
        ("stalled headers", "/stall-headers"),
        ("stalled body", "/stall-body"),
        ("endless body", "/endless"),
    ];
    let mut rows = Vec::new();
    for (scenario, path) in cases {
        let mut bare = Row::new(scenario, "bare");
        run(bare_client::<Empty<Bytes>>(), server.uri(path), &mut bare).await;
        rows.push(bare);

        let mut hardened = Row::new(scenario, "hardened");
        let svc = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(1)))
            .service(bare_client::<Empty<Bytes>>());
        run(svc, server.uri(path), &mut hardened).await;
        rows.push(hardened);
    }
    rows
}
