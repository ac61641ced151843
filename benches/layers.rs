//! Per-layer overhead: each layer of this crate around a ready in-memory service, against the
//! bare service, one request and its whole body per iteration; then the whole request-side stack
//! of the preset (`Hardened::layer()`).
//!
//! Every subject is **paired** with the bare service: each criterion sample runs the bare service
//! and the layered one back to back (alternating which goes first), so a shared machine's load
//! hits both alike; the table at the end gives the median over those pairs. A bare-against-bare
//! pair calibrates the method (it must come out at 1.00x).
//!
//! ```text
//! cargo bench --bench layers -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Every layer is built with limits that never fire (30 s, 1024 permits, `u64::MAX` bytes), so
//! what is measured is the machinery on the success path: timers that are set up lazily,
//! permits taken and moved into the body, the deadline put into the request's extensions.

mod common;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, BoxError, ConcurrencyLimitLayer, DeadlineLayer, DrainOnDropLayer,
    Hardened, PerHostLimitLayer, RequestWriteTimeoutLayer, ResponseBodyLimitLayer,
    ResponseHeaderTimeoutLayer,
};

#[derive(Clone, Copy)]
struct Echo;

impl<B> Service<Request<B>> for Echo {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(
            b"hello world",
        )))))
    }
}

/// `iters` requests through `svc`, each response body read to its end.
async fn requests<S, RB>(mut svc: S, uri: Uri, iters: u64)
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    for _ in 0..iters {
        let req = Request::get(uri.clone())
            .body(Full::new(Bytes::from_static(b"up")))
            .unwrap();
        let resp = svc.ready().await.map_err(Into::into).unwrap().call(req);
        let resp = resp.await.map_err(Into::into).unwrap();
        let body = resp.into_body().collect().await.unwrap();
        std::hint::black_box(body);
    }
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let uri: Uri = "http://127.0.0.1:8080/".parse().unwrap();
    let d = Duration::from_secs(30);
    let mut g = c.benchmark_group("layers");
    macro_rules! pair {
        ($name:expr, $svc:expr) => {{
            let svc = $svc;
            let (u1, u2) = (uri.clone(), uri.clone());
            common::paired(
                &mut g,
                &rt,
                (concat!("bare (vs ", $name, ")"), move |n| {
                    requests(Echo, u1.clone(), n)
                }),
                ($name, move |n| requests(svc.clone(), u2.clone(), n)),
            );
        }};
    }
    pair!("bare_again", Echo);
    pair!("deadline", DeadlineLayer::new(d).layer(Echo));
    pair!(
        "response_headers",
        ResponseHeaderTimeoutLayer::new(d).layer(Echo)
    );
    pair!("body_idle", BodyIdleTimeoutLayer::new(d).layer(Echo));
    pair!(
        "request_write",
        RequestWriteTimeoutLayer::new(d).layer(Echo)
    );
    pair!(
        "concurrency_limit",
        ConcurrencyLimitLayer::new(1024).layer(Echo)
    );
    pair!("per_host_limit", PerHostLimitLayer::new(1024).layer(Echo));
    pair!("drain_on_drop", DrainOnDropLayer::new().layer(Echo));
    pair!(
        "drain_on_drop_leak_detection",
        DrainOnDropLayer::new()
            .leak_threshold(Duration::from_secs(60))
            .layer(Echo)
    );
    pair!(
        "response_body_limit",
        ResponseBodyLimitLayer::new(u64::MAX).layer(Echo)
    );
    let timeouts = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(d))
        .layer(ResponseHeaderTimeoutLayer::new(d))
        .layer(BodyIdleTimeoutLayer::new(d))
        .layer(RequestWriteTimeoutLayer::new(d))
        .service(Echo);
    pair!("all_request_timeouts", timeouts);
    // Built inside the runtime: the drain layer's leak watchdog needs one to start its sweeper.
    let preset = rt.block_on(async { Hardened::new().layer().layer(Echo) });
    pair!("hardened_layer (whole stack)", preset);
    g.finish();
}

criterion_group!(benches, layers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let names = [
        "bare_again",
        "deadline",
        "response_headers",
        "body_idle",
        "request_write",
        "concurrency_limit",
        "per_host_limit",
        "drain_on_drop",
        "drain_on_drop_leak_detection",
        "response_body_limit",
        "all_request_timeouts",
        "hardened_layer (whole stack)",
    ];
    let rows: Vec<(String, &str)> = names
        .iter()
        .map(|n| (format!("bare (vs {n})"), *n))
        .collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(b, s)| (b.as_str(), *s)).collect();
    common::print_paired("per-layer overhead over an in-memory service", &rows);
}
