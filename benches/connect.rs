//! What the connector timeouts cost per new connection, against the same connector without them,
//! measured in the same run:
//!
//! - `overhead/*`: a connector that is ready after one yield (so the timers are really made:
//!   the worst case), bare vs. `ConnectTimeout` vs. the full split
//!   `TlsHandshakeTimeout(ConnectTimeout(..))`.
//! - `loopback/*`: a real `HttpConnector` TCP connect to 127.0.0.1, bare vs. `ConnectTimeout`.
//!
//! ```text
//! cargo bench --bench connect -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::{service_fn, ServiceExt};
use tower_hardened::{ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};
use tower_layer::Layer;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn overhead(c: &mut Criterion) {
    let rt = rt();
    let uri: Uri = "http://127.0.0.1:1/".parse().unwrap();
    // Pending once, then connected: the timers of both layers get made and polled.
    let conn = service_fn(|_: Uri| async {
        tokio::task::yield_now().await;
        Ok::<_, std::io::Error>(7u32)
    });
    let connect = ConnectTimeoutLayer::new(Duration::from_secs(5));
    let tls = TlsHandshakeTimeoutLayer::new(Duration::from_secs(5));

    let mut g = c.benchmark_group("overhead");
    g.bench_function("bare", |b| {
        b.iter(|| {
            rt.block_on(conn.clone().oneshot(black_box(uri.clone())))
                .unwrap()
        })
    });
    g.bench_function("connect_timeout", |b| {
        let svc = connect.layer(conn.clone());
        b.iter(|| {
            rt.block_on(svc.clone().oneshot(black_box(uri.clone())))
                .unwrap()
        })
    });
    g.bench_function("tls_over_connect_timeout", |b| {
        let svc = tls.layer(connect.layer(conn.clone()));
        b.iter(|| {
            rt.block_on(svc.clone().oneshot(black_box(uri.clone())))
                .unwrap()
        })
    });
    g.finish();
}

fn loopback(c: &mut Criterion) {
    let rt = rt();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    // Accept and close at once, so the accept queue never fills.
    rt.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let mut g = c.benchmark_group("loopback");
    g.bench_function("bare", |b| {
        let svc = HttpConnector::new();
        b.iter(|| {
            rt.block_on(svc.clone().oneshot(black_box(uri.clone())))
                .unwrap()
        })
    });
    g.bench_function("connect_timeout", |b| {
        let svc = ConnectTimeoutLayer::new(Duration::from_secs(5)).layer(HttpConnector::new());
        b.iter(|| {
            rt.block_on(svc.clone().oneshot(black_box(uri.clone())))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, overhead, loopback);
criterion_main!(benches);
