//! A load driver for measuring what this crate costs per request, in CPU instructions, with
//! `valgrind --tool=callgrind` (deterministic: the same count run after run, unlike time on a
//! shared machine). Not a showcase: see `BENCHMARKS.md` for how its numbers are used.
//!
//! ```text
//! cargo build --release --example overhead
//! valgrind --tool=callgrind target/release/examples/overhead preset 1000   # -> "Collected : A"
//! valgrind --tool=callgrind target/release/examples/overhead preset 3000   # -> "Collected : B"
//! # instructions per request: (B - A) / 2000 (start-up cost cancels out)
//! ```
//!
//! Arguments: `bare | floor | pool | layers | preset | preset_legacy | telemetry | reqwest | tower |
//! transport | floor_transport | layers_transport`
//! (and the tracing and Prometheus modes below), the number of requests, the number of
//! concurrent callers (default 1), the path on the test server (default `/ok`). With `DROP=1`
//! in the environment each body is dropped unread instead of read to its end; with `METHOD=POST`
//! (any method) the requests use that method instead of GET.
//! - `bare`: hyper-util's legacy client as `Client::builder(TokioExecutor::new()).build_http()`.
//! - `floor`: not this crate but the floor of `benches/stack.rs` around a bare client (one clock
//!   read, one extension, one timer armed when the response is not ready at once, one permit
//!   held by the body): what that much machinery costs.
//! - `pool`: [`PoolClientBuilder`](tower_hardened::PoolClientBuilder) with the preset's pool
//!   settings and header buffer, and no request layers.
//! - `layers`: `Hardened::layer()` around a bare client.
//! - `preset`: `Hardened::new().client()` (the preset on the crate's transport);
//!   `preset_legacy`: `Hardened::new().legacy_client()` (on hyper-util's legacy client).
//! - `replay`, `deadline`, `limit`, `per_host`, `drain`, `body_limit`, `header_timeout`,
//!   `body_idle`, `write_timeout`: one request-side layer of the preset alone around a bare
//!   client, with the preset's defaults (compare with `bare`).
//! - `telemetry`: [`TelemetryLayer`](tower_hardened::TelemetryLayer) alone around a bare
//!   client (compare with `bare`).
//! - `preset_tracing`: `preset` under `tracing-subscriber`'s `fmt` layer at `info`; with
//!   `LEVEL=debug`, `tower_hardened=debug` (the telemetry layer's spans kept).
//! - `preset_prometheus` (with `--features metrics`): `preset` recording into a
//!   `metrics-exporter-prometheus` recorder.
//! - `reqwest`, `tower`: the peers of `benches/stack.rs` (reqwest 0.12 with the preset's
//!   timeouts and pool settings as far as it has them; `tower::timeout` +
//!   `tower::limit::ConcurrencyLimit` + tower-http's `ResponseBodyTimeout` around a bare client).
//! - `floor_transport`, `layers_transport`: the floor and `Hardened::layer()` around the bare
//!   transport (compare with `transport`).
//! - `transport` (with `--features transport`): the bare
//!   [`Transport`](tower_hardened::Transport) with its defaults, no request layers.
//!
//! The server is the crate's test server (`tower_hardened_test_server`, `tests/server/`) on its
//! own thread; the count covers both, and the server's share is the same for every mode. Also prints wall time and the client thread's CPU
//! time per request (Linux), which are noisy.
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, ConcurrencyLimitLayer, DeadlineLayer, DrainOnDropLayer, Hardened,
    HardenedRequestBody, PerHostLimitLayer, PoolClientBuilder, ReplayBody, ReplayLayer,
    RequestWriteBody, RequestWriteTimeoutLayer, ResponseBodyLimitLayer, ResponseHeaderTimeoutLayer,
    Stats,
};
use tower_hardened_test_server::TestServer;

// The floor and the peers are the benches' own, so both measure the same thing.
#[path = "../benches/common/floor.rs"]
mod floor;
#[path = "../benches/common/peers.rs"]
mod peers;

async fn run<S, B>(svc: S, uri: http::Uri, n: usize, callers: usize, drop_unread: bool)
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (mut svc, uri) = (svc.clone(), uri.clone());
            // `METHOD=POST` (any method) instead of GET, e.g. for what a non-replayable request
            // costs the replay layer.
            let method = std::env::var("METHOD")
                .ok()
                .map(|m| http::Method::from_bytes(m.as_bytes()).expect("METHOD"));
            tokio::spawn(async move {
                for _ in 0..n / callers {
                    let req = match &method {
                        None => http::Request::get(uri.clone()),
                        Some(m) => http::Request::builder().method(m.clone()).uri(uri.clone()),
                    };
                    let req = req.body(Empty::new()).unwrap();
                    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
                    if drop_unread {
                        drop(resp);
                    } else {
                        resp.into_body().collect().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// CPU time of the calling thread, from `/proc` (Linux), in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: overhead bare|floor|reqwest|tower|pool|layers|preset|preset_legacy|replay|deadline|limit|per_host|drain|body_limit|header_timeout|body_idle|write_timeout|telemetry|preset_tracing|preset_prometheus|transport|floor_transport|layers_transport REQUESTS [CALLERS] [PATH]";
    let mode = args.next().expect(usage);
    let n: usize = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let callers: usize = args.next().map_or(1, |s| s.parse().expect(usage));
    let path = args.next().unwrap_or_else(|| "/ok".into());
    let drop_unread = std::env::var_os("DROP").is_some();

    let server = TestServer::start_on_own_thread();
    let uri = server.uri(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (cpu, wall) = (thread_cpu_ns(), std::time::Instant::now());
        match mode.as_str() {
            "bare" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            "floor" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                run(floor::floor(c), uri, n, callers, drop_unread).await
            }
            "reqwest" => run(peers::reqwest(), uri, n, callers, drop_unread).await,
            "tower" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                run(peers::tower_stack(c), uri, n, callers, drop_unread).await
            }
            "pool" => {
                let c = PoolClientBuilder::new()
                    .max_idle_per_host(16)
                    .max_conns_per_host(128)
                    .configure(|b| {
                        b.http1_max_buf_size(400 * 1024);
                    })
                    .build_http::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            "layers" => {
                let c = Client::builder(TokioExecutor::new())
                    .build_http::<HardenedRequestBody<Empty<Bytes>>>();
                run(
                    Hardened::new().layer().layer(c),
                    uri,
                    n,
                    callers,
                    drop_unread,
                )
                .await
            }
            "preset" => {
                let c = Hardened::new().client::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            "preset_legacy" => {
                let c = Hardened::new().legacy_client::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            // One layer of the preset at a time around a bare client, with the preset's
            // defaults (compare with `bare`).
            "replay" => {
                let c =
                    Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
                let c = ReplayLayer::new().stats(Stats::new()).layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "deadline" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = DeadlineLayer::new(Hardened::DEFAULT_TOTAL)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "limit" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = ConcurrencyLimitLayer::new(Hardened::DEFAULT_MAX_IN_FLIGHT)
                    .max_waiting(Hardened::DEFAULT_MAX_WAITING)
                    .acquire_timeout(Hardened::DEFAULT_ACQUIRE_TIMEOUT)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "per_host" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = PerHostLimitLayer::new(Hardened::DEFAULT_MAX_REQUESTS_PER_HOST)
                    .max_waiting(Hardened::DEFAULT_MAX_WAITING)
                    .acquire_timeout(Hardened::DEFAULT_ACQUIRE_TIMEOUT)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "drain" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = DrainOnDropLayer::new()
                    .leak_threshold(Hardened::DEFAULT_LEAK_THRESHOLD)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "body_limit" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = ResponseBodyLimitLayer::new(Hardened::DEFAULT_MAX_RESPONSE_BODY).layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "header_timeout" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = ResponseHeaderTimeoutLayer::new(Hardened::DEFAULT_RESPONSE_HEADERS)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "body_idle" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = BodyIdleTimeoutLayer::new(Hardened::DEFAULT_BODY_IDLE)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "write_timeout" => {
                let c = Client::builder(TokioExecutor::new())
                    .build_http::<RequestWriteBody<Empty<Bytes>>>();
                let c = RequestWriteTimeoutLayer::new(Hardened::DEFAULT_REQUEST_WRITE)
                    .stats(Stats::new())
                    .layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "telemetry" => {
                let c = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let c = tower_hardened::TelemetryLayer::new().layer(c);
                run(c, uri, n, callers, drop_unread).await
            }
            "preset_tracing" => {
                // An application's subscriber: `info` for everything; with `LEVEL=debug`, the
                // debug spans and events of this crate too.
                use tracing_subscriber::layer::SubscriberExt;
                let ours = match std::env::var("LEVEL").as_deref() {
                    Ok("debug") => tracing::Level::DEBUG,
                    _ => tracing::Level::INFO,
                };
                let subscriber = tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer())
                    .with(
                        tracing_subscriber::filter::Targets::new()
                            .with_default(tracing::Level::INFO)
                            .with_target("tower_hardened", ours),
                    );
                tracing::subscriber::set_global_default(subscriber).unwrap();
                let c = Hardened::new().client::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            #[cfg(feature = "metrics")]
            "preset_prometheus" => {
                let buckets = [
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ];
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("duration".into()),
                        &buckets,
                    )
                    .unwrap()
                    .install_recorder()
                    .unwrap();
                let c = Hardened::new().client::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            #[cfg(feature = "transport")]
            "transport" => {
                let c = tower_hardened::Transport::builder().build::<Empty<Bytes>>();
                run(c, uri, n, callers, drop_unread).await
            }
            #[cfg(feature = "transport")]
            "floor_transport" => {
                let c = tower_hardened::Transport::builder().build::<Empty<Bytes>>();
                run(floor::floor(c), uri, n, callers, drop_unread).await
            }
            #[cfg(feature = "transport")]
            "layers_transport" => {
                let c = tower_hardened::Transport::builder()
                    .build::<HardenedRequestBody<Empty<Bytes>>>();
                run(
                    Hardened::new().layer().layer(c),
                    uri,
                    n,
                    callers,
                    drop_unread,
                )
                .await
            }
            _ => panic!("{usage}"),
        }
        let per = |ns: f64| ns / 1e3 / n as f64;
        let cpu = cpu.zip(thread_cpu_ns()).map(|(a, b)| per((b - a) as f64));
        println!(
            "{mode}: {n} requests, {callers} callers, {path}: {:.2} µs/request wall, client \
             thread CPU {} µs/request, {} connections",
            per(wall.elapsed().as_nanos() as f64),
            cpu.map_or("?".into(), |c| format!("{c:.2}")),
            server.accepted(),
        );
    });
}
