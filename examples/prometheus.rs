//! The preset's metrics on a Prometheus page, under load from a server that misbehaves.
//!
//! ```text
//! cargo run --example prometheus --features metrics               # load, then print the page
//! cargo run --example prometheus --features metrics -- --serve 60 # and serve /metrics for 60 s
//! ```
//!
//! Everything runs on 127.0.0.1: a small server that stalls, drips, cuts and sends big bodies
//! (written here, so the example can be copied whole), the one-line preset with short limits
//! sending a mix of requests at it, and `/metrics` rendered by `metrics-exporter-prometheus`
//! with histogram buckets set. The page is written as the exporter writes it: dots become
//! underscores (`http_client_request_duration`), and each histogram gets `_bucket`, `_sum` and
//! `_count` series.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_hardened::{Error, Hardened, HardenedClient};

/// Histogram buckets in seconds for the three duration histograms: OpenTelemetry's advice for
/// `http.client.request.duration`.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Installs the Prometheus recorder as the global `metrics` recorder, with [`BUCKETS`] for
/// every metric whose name ends in `duration` or `time_in_queue` (without buckets the exporter
/// writes summaries).
pub fn install() -> PrometheusHandle {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration".into()), &BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("time_in_queue".into()), &BUCKETS))
        .expect("buckets are not empty")
        .install_recorder()
        .expect("no other global recorder")
}

/// Serves the page of `handle` at `http://ADDR/metrics` on loopback (other paths: 404), and
/// runs the exporter's upkeep every 5 s.
pub async fn serve_metrics(handle: PrometheusHandle) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            let page = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = if req.uri().path() == "/metrics" {
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(handle.render())))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::default())
                };
                async move { Ok::<_, Infallible>(resp.unwrap()) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), page),
            );
        }
    });
    addr
}

/// A server on loopback that misbehaves on purpose:
/// `/ok` (2 bytes), `/slow` (5 chunks, 100 ms apart), `/stall` (no headers for a minute),
/// `/stall-body` (one chunk, then nothing for a minute), `/big` (64 KiB), `/cut` (one chunk,
/// then the connection is cut).
pub async fn misbehaving_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(misbehave)),
            );
        }
    });
    addr
}

async fn misbehave(
    req: Request<Incoming>,
) -> Result<Response<Channel<Bytes, std::io::Error>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/stall" {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let (mut tx, body) = Channel::new(1);
    tokio::spawn(async move {
        let chunk = Bytes::from_static(b"0123456789abcdef");
        match path.as_str() {
            "/ok" => drop(tx.send_data(Bytes::from_static(b"ok")).await),
            "/big" => drop(tx.send_data(Bytes::from(vec![b'x'; 64 * 1024])).await),
            "/slow" => {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if tx.send_data(chunk.clone()).await.is_err() {
                        return;
                    }
                }
            }
            "/stall-body" => {
                let _ = tx.send_data(chunk).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            "/cut" => {
                let _ = tx.send_data(chunk).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.abort(std::io::Error::other("cut on purpose"));
            }
            _ => {}
        }
    });
    Ok(Response::new(body))
}

/// The one-line preset with limits short enough for the load to hit them in a second.
pub fn client() -> HardenedClient<Empty<Bytes>> {
    Hardened::new()
        .total(Duration::from_secs(2))
        .response_headers(Duration::from_millis(300))
        .body_idle(Duration::from_millis(300))
        .max_in_flight(8)
        .max_waiting(4)
        .drain_with(|d| d.leak_threshold(Duration::from_millis(700)))
        .client()
}

/// What one request did, from the caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seen {
    /// Read to its end.
    Ok,
    /// Dropped unread (drained in the background) or held, then dropped.
    Dropped,
    /// Failed: `error.type` as the telemetry layer records it.
    Failed(&'static str),
}

async fn one(client: HardenedClient<Empty<Bytes>>, uri: http::Uri, hold: Option<Duration>) -> Seen {
    let req = Request::get(uri).body(Empty::new()).unwrap();
    let failed = |e: &tower_hardened::BoxError| {
        Seen::Failed(match Error::find(&**e) {
            Some(e) if e.is_timeout() => e.phase().map_or("timeout", |p| p.as_str()),
            Some(e) => e.kind().as_str(),
            None => "_OTHER",
        })
    };
    let resp = match client.oneshot(req).await {
        Ok(resp) => resp,
        Err(e) => return failed(&e),
    };
    match hold {
        Some(d) => {
            tokio::time::sleep(d).await;
            Seen::Dropped
        }
        None => match resp.into_body().collect().await {
            Ok(_) => Seen::Ok,
            Err(e) => failed(&e),
        },
    }
}

/// Sends `rounds` rounds of mixed requests at `server`, each round at once: four `/ok`, two
/// `/slow`, one each of `/stall`, `/stall-body` and `/cut`, a `/big` dropped unread, a `/slow`
/// held past the held-body threshold; and, first, a burst of 16 `/slow` at a limit of 8 in
/// flight and 4 waiting. Returns what each request did.
pub async fn load(
    client: &HardenedClient<Empty<Bytes>>,
    server: SocketAddr,
    rounds: usize,
) -> Vec<Seen> {
    let uri = |path: &str| -> http::Uri { format!("http://{server}{path}").parse().unwrap() };
    let mut seen = Vec::new();
    let run = |batch: Vec<(&str, Option<Duration>)>| {
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|(path, hold)| tokio::spawn(one(client.clone(), uri(path), hold)))
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    seen.extend(run(vec![("/slow", None); 16]).await);
    for _ in 0..rounds {
        let mut batch = vec![("/ok", None); 4];
        batch.extend([
            ("/slow", None),
            ("/slow", None),
            ("/stall", None),
            ("/stall-body", None),
            ("/cut", None),
            ("/big", Some(Duration::ZERO)),
            ("/slow", Some(Duration::from_secs(1))),
        ]);
        seen.extend(run(batch).await);
    }
    seen
}

#[tokio::main]
async fn main() {
    let serve: u64 = std::env::args()
        .skip_while(|a| a != "--serve")
        .nth(1)
        .map_or(0, |s| s.parse().expect("--serve SECONDS"));
    let handle = install();
    let server = misbehaving_server().await;
    let page = serve_metrics(handle.clone()).await;
    let client = client();

    let mut seen = load(&client, server, 3).await;
    seen.sort();
    seen.dedup_by(|a, b| a == b);
    println!("outcomes seen: {seen:?}\n");
    for line in handle.render().lines() {
        // Skip the series still at zero, and all but a few buckets, to keep it short.
        let zero = line.ends_with(" 0");
        let bucket = line.contains("_bucket{") && !line.contains("le=\"0.5\"");
        if !line.starts_with('#') && !line.is_empty() && !zero && !bucket {
            println!("{line}");
        }
    }
    if serve > 0 {
        println!("\nserving http://{page}/metrics for {serve} s, under load");
        let until = tokio::time::Instant::now() + Duration::from_secs(serve);
        while tokio::time::Instant::now() < until {
            load(&client, server, 1).await;
        }
    }
}
