//! What the telemetry layer costs with the `metrics` feature: `TelemetryLayer` around a bare
//! hyper-util client against the bare client, in the same run (the preset's own stack is opaque,
//! so it cannot be measured without its telemetry layer).
//!
//! - `*/telemetry+prometheus` records every series into a real `metrics-exporter-prometheus`
//!   recorder (the duration histogram with buckets set, as `examples/prometheus.rs` does);
//! - `*/telemetry+no_recorder` is the same layer with no recorder installed: the span (disabled,
//!   no subscriber), the wrappers and the facade's no-op calls.
//!
//! One or eight callers each send GET `/ok` and read the 2-byte body to its end. The server runs
//! on its own thread and runtime; the clients on one current-thread runtime, the recorder local
//! to it. Pairs and the method: `benches/common/mod.rs`.
//!
//! ```text
//! cargo bench --bench metrics --features metrics -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(unreachable_pub)]

mod common;
use tower_hardened_test_server as support;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tower::Layer;
use tower::{Service, ServiceExt};
use tower_hardened::TelemetryLayer;

/// `rounds` GETs from each of `callers` concurrent callers, each body read to its end.
async fn load<S, B>(svc: S, uri: Uri, callers: usize, rounds: u64)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let caller = move |mut svc: S, uri: Uri| async move {
        for _ in 0..rounds {
            let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
            let resp = svc.ready().await.unwrap().call(req).await.unwrap();
            assert!(resp.status().is_success());
            resp.into_body().collect().await.unwrap();
        }
    };
    if callers == 1 {
        return caller(svc, uri).await;
    }
    let tasks: Vec<_> = (0..callers)
        .map(|_| tokio::spawn(caller(svc.clone(), uri.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn recorder() -> &'static PrometheusRecorder {
    let buckets = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    Box::leak(Box::new(
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration".into()), &buckets)
            .unwrap()
            .build_recorder(),
    ))
}

fn bench(c: &mut Criterion) {
    let server = support::on_own_thread(support::TestServer::start);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorder = recorder();
    let (without, with) = rt.block_on(async {
        // The preset's own stack cannot be taken apart (its types are opaque): the layer's cost
        // is measured around a bare hyper-util client.
        let bare =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<Bytes>>();
        (bare.clone(), TelemetryLayer::new().layer(bare))
    });
    let uri = server.uri("/ok");
    let mut rows = Vec::new();
    for (group, callers) in [("ok_x1", 1), ("ok_x8", 8)] {
        let mut g = c.benchmark_group("metrics");
        let base = format!("{group}/bare");
        for (name, local) in [
            (format!("{group}/telemetry+prometheus"), Some(recorder)),
            (format!("{group}/telemetry+no_recorder"), None),
        ] {
            let base_name = format!("{base} (vs {})", &name[group.len() + 1..]);
            let (w, u) = (without.clone(), uri.clone());
            let (s, u2) = (with.clone(), uri.clone());
            common::paired(
                &mut g,
                &rt,
                (&base_name, move |n| load(w.clone(), u.clone(), callers, n)),
                (&name, move |n| {
                    let (s, u2) = (s.clone(), u2.clone());
                    async move {
                        // Held over the whole run on this thread: the callers' tasks and the
                        // connection tasks record into it too.
                        let _local = local.map(|r| metrics::set_default_local_recorder(r));
                        load(s, u2, callers, n).await
                    }
                }),
            );
            rows.push((base_name, name));
        }
        g.finish();
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    common::print_paired(
        "loopback, /ok read to end: the preset with its telemetry layer vs without it",
        &rows,
    );
    // The subject really recorded: the page has the requests it sent.
    let page = recorder.handle().render();
    let count = page
        .lines()
        .find(|l| l.starts_with("http_client_request_duration_count{"))
        .unwrap_or("none");
    println!("\nrecorded by the prometheus subject: {count}");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
