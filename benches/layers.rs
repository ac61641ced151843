//! Per-layer overhead: each layer around a ready in-memory service, against the bare service,
//! one request and its whole body per iteration.
//!
//! ```text
//! cargo bench --bench layers
//! ```

mod common;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, BoxError, DeadlineLayer, RequestWriteTimeoutLayer,
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

fn run<S, RB>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, svc: S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    let name = name.to_owned();
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let mut svc = svc.clone();
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let req = Request::new(Full::new(Bytes::from_static(b"up")));
                    let resp = svc.ready().await.map_err(Into::into).unwrap().call(req);
                    let resp = resp.await.map_err(Into::into).unwrap();
                    let body = resp.into_body().collect().await.unwrap();
                    std::hint::black_box(body);
                }
                common::record(&name, iters, start.elapsed())
            })
        })
    });
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let d = Duration::from_secs(30);
    run(c, &rt, "bare", Echo);
    run(c, &rt, "deadline", DeadlineLayer::new(d).layer(Echo));
    run(
        c,
        &rt,
        "response_headers",
        ResponseHeaderTimeoutLayer::new(d).layer(Echo),
    );
    run(
        c,
        &rt,
        "body_idle",
        BodyIdleTimeoutLayer::new(d).layer(Echo),
    );
    run(
        c,
        &rt,
        "request_write",
        RequestWriteTimeoutLayer::new(d).layer(Echo),
    );
    let stack = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(d))
        .layer(ResponseHeaderTimeoutLayer::new(d))
        .layer(BodyIdleTimeoutLayer::new(d))
        .layer(RequestWriteTimeoutLayer::new(d))
        .service(Echo);
    run(c, &rt, "all_request_timeouts", stack);
}

criterion_group!(benches, layers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    common::print_ratios(
        "per-layer overhead over an in-memory service",
        "bare",
        &[
            "deadline",
            "response_headers",
            "body_idle",
            "request_write",
            "all_request_timeouts",
        ],
    );
}
