//! What the connector timeouts cost per new connection, against the same connector without them,
//! measured in the same run and **paired**: each sample alternates bare and layered connects (in
//! alternating order), so the load of a shared machine hits both alike. A bare-against-bare pair
//! calibrates the method (it must come out at 1.0x).
//!
//! - `overhead/*`: a connector that is ready after one yield (so the timers are really made: the
//!   worst case), bare vs. `ConnectTimeout` vs. the split `TlsHandshakeTimeout(ConnectTimeout(..))`.
//! - `loopback/*`: a real `HttpConnector` TCP connect to 127.0.0.1, bare vs. `ConnectTimeout`.
//!
//! ```text
//! cargo bench --bench connect -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceExt};
use tower_hardened::{BoxError, ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};
use tower_layer::Layer;

fn rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Benches `name` (connects through `layered`) while timing `base` connects interleaved with it,
/// recorded as `base_name`; the ratio of the two is the cost under the same load.
fn paired<B, L>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    uri: &Uri,
    (base_name, base): (&str, B),
    (name, layered): (&str, L),
) where
    B: Service<Uri> + Clone,
    B::Error: Into<BoxError>,
    L: Service<Uri> + Clone,
    L::Error: Into<BoxError>,
{
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut spent_base = Duration::ZERO;
            for i in 0..iters {
                // Which goes first alternates: the second of a pair pays for cleaning up after
                // the first (measured: 2.2x for bare against bare when the order is fixed).
                for layered_turn in [i % 2 == 1, i % 2 == 0] {
                    let t = Instant::now();
                    if layered_turn {
                        let conn = rt.block_on(layered.clone().oneshot(black_box(uri.clone())));
                        spent += t.elapsed();
                        drop(black_box(conn.map_err(Into::into).unwrap()));
                    } else {
                        let conn = rt.block_on(base.clone().oneshot(black_box(uri.clone())));
                        spent_base += t.elapsed();
                        drop(black_box(conn.map_err(Into::into).unwrap()));
                    }
                }
            }
            common::record(base_name, iters, spent_base);
            common::record(name, iters, spent)
        })
    });
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
    paired(
        &mut g,
        &rt,
        &uri,
        ("overhead/bare", conn),
        ("overhead/connect_timeout", connect.layer(conn)),
    );
    paired(
        &mut g,
        &rt,
        &uri,
        ("overhead/bare (2)", conn),
        (
            "overhead/tls_over_connect_timeout",
            tls.layer(connect.layer(conn)),
        ),
    );
    g.finish();
    common::print_ratios(
        "synthetic connector, timers made",
        "overhead/bare",
        &["overhead/connect_timeout"],
    );
    common::print_ratios(
        "synthetic connector, timers made",
        "overhead/bare (2)",
        &["overhead/tls_over_connect_timeout"],
    );
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
    paired(
        &mut g,
        &rt,
        &uri,
        ("loopback/bare", HttpConnector::new()),
        (
            "loopback/connect_timeout",
            ConnectTimeoutLayer::new(Duration::from_secs(5)).layer(HttpConnector::new()),
        ),
    );
    // Calibration: the same bare connector on both sides of the pair must come out at 1.0x.
    paired(
        &mut g,
        &rt,
        &uri,
        ("loopback/bare (2)", HttpConnector::new()),
        ("loopback/bare_again", HttpConnector::new()),
    );
    g.finish();
    common::print_ratios(
        "real TCP connect on loopback",
        "loopback/bare",
        &["loopback/connect_timeout"],
    );
    common::print_ratios(
        "calibration of the pairing",
        "loopback/bare (2)",
        &["loopback/bare_again"],
    );
}

criterion_group!(benches, overhead, loopback);
criterion_main!(benches);
