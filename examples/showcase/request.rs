//! Request-side misbehaviours: stalled headers, stalled, slow or endless bodies, stalled uploads.

use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, BoxError, DeadlineLayer, RequestWriteBody, RequestWriteTimeoutLayer,
    ResponseHeaderTimeoutLayer,
};

use crate::support::{bare_client, endless_upload, ScriptBody, TestServer};
use crate::{describe, Row};

/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);

/// Sends `req` and reads the whole response body, giving up after `PATIENCE`.
async fn run<S, B>(svc: S, req: Request<ScriptBody>, row: &mut Row)
where
    S: Service<Request<ScriptBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let start = Instant::now();
    let exchange = async {
        let resp = svc.oneshot(req).await.map_err(Into::into)?;
        let body = resp.into_body().collect().await.map_err(Into::into)?;
        Ok::<_, BoxError>(body.to_bytes().len())
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

fn get(server: &TestServer, path: &str) -> Request<ScriptBody> {
    Request::get(server.uri(path))
        .body(ScriptBody::new(
            Default::default(),
            Some(0),
            None,
            crate::support::Then::End,
        ))
        .unwrap()
}

pub async fn rows() -> Vec<Row> {
    let server = TestServer::start().await;
    let cases: [(&'static str, &str, bool); 7] = [
        ("stalled headers", "/stall-headers", false),
        ("stalled body", "/stall-body", false),
        ("slow chunks (1 per 800ms)", "/slow-chunks/800/3", false),
        ("steady drip (20 x 50ms)", "/slow-chunks/50/20", false),
        ("endless body", "/endless", false),
        ("stalled upload", "/upload-stall", true),
        ("reset mid-body", "/reset-body", false),
    ];
    let mut rows = Vec::new();
    for (scenario, path, upload) in cases {
        let req = || {
            if upload {
                Request::post(server.uri(path))
                    .body(endless_upload(64 * 1024))
                    .unwrap()
            } else {
                get(&server, path)
            }
        };
        let mut bare = Row::new(scenario, "bare");
        run(bare_client::<ScriptBody>(), req(), &mut bare).await;
        rows.push(bare);

        let mut hardened = Row::new(scenario, "hardened");
        let svc = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(2)))
            .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(1)))
            .layer(BodyIdleTimeoutLayer::new(Duration::from_millis(500)))
            .layer(RequestWriteTimeoutLayer::new(Duration::from_millis(500)))
            .service(bare_client::<RequestWriteBody<ScriptBody>>());
        run(svc, req(), &mut hardened).await;
        rows.push(hardened);
    }
    rows
}
