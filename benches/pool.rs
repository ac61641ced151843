//! Cost of the pool machinery per request: hyper-util's legacy client over loopback, bare vs
//! built by `PoolClientBuilder` (per-host cap, lifetime tagging, capture + retire check), one
//! pooled connection, sequential GETs of a 2-byte body. Read the ratio, not the absolute numbers.
//!
//! ```text
//! cargo bench --bench pool -- --warm-up-time 1 --measurement-time 3
//! ```

use tower_hardened_test_server as support;

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};
use tower_hardened::PoolClientBuilder;

async fn one<S, B>(svc: &mut S, uri: &http::Uri)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get(uri.clone()).body(Empty::new()).unwrap())
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap();
    assert_eq!(body.to_bytes().len(), 2);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(support::TestServer::start());
    let uri = server.uri("/ok");

    let mut group = c.benchmark_group("pool");
    let mut bare = support::bare_client::<Empty<Bytes>>();
    group.bench_function("bare hyper-util client", |b| {
        b.iter(|| rt.block_on(one(&mut bare, &uri)))
    });
    let mut hardened = PoolClientBuilder::new()
        .max_conns_per_host(10)
        .max_lifetime(Duration::from_secs(3600))
        .build_http::<Empty<Bytes>>();
    group.bench_function("PoolClientBuilder client", |b| {
        b.iter(|| rt.block_on(one(&mut hardened, &uri)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
