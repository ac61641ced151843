//! The bare [`Transport`] against a bare hyper-util legacy client, on loopback, against the same
//! real hyper server, paired in one run.
//!
//! - `ok_x1`, `ok_x8`, `64KiB_x8`: one or eight concurrent callers, each sending a GET and
//!   reading the response body to its end (`/ok`: 2 bytes; `/bytes/65536`: 64 KiB). One
//!   iteration is one request per caller.
//! - `drop_unread_64KiB_x8`: eight callers dropping every 64 KiB body unread. Neither side
//!   drains (that is `DrainOnDropLayer`'s job, above either): both close the connection and open
//!   a new one per request, so this row measures connection churn.
//! - `*/legacy_again`: a second legacy client paired with the first, the calibration: it shows
//!   the method's error between twins in this run.
//!
//! Method: as `benches/stack.rs` (the server on its own thread and runtime, the clients on one
//! current-thread runtime, every subject paired with its baseline, alternating order, median
//! over criterion's measured samples).
//!
//! ```text
//! cargo bench --features transport --bench transport -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Results, with the machine and its load: `BENCHMARKS.md`.
#![allow(unreachable_pub)]

mod common;
use tower_hardened_test_server as support;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};
use tower_hardened::Transport;

use support::TestServer;

fn servers(n: usize) -> Vec<TestServer> {
    support::on_own_thread(move || async move {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(TestServer::start().await);
        }
        v
    })
}

/// `rounds` requests from each of `callers` concurrent callers; each body read to its end of
/// `expect` bytes, or dropped unread when `expect` is `None`.
async fn load<S, B>(svc: S, uri: Uri, callers: usize, rounds: u64, expect: Option<usize>)
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
            match expect {
                Some(n) => {
                    let body = resp.into_body().collect().await.unwrap();
                    assert_eq!(body.to_bytes().len(), n);
                }
                None => drop(resp),
            }
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

fn client_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const WORKLOADS: [(&str, &str, usize, Option<usize>); 4] = [
    ("ok_x1", "/ok", 1, Some(2)),
    ("ok_x8", "/ok", 8, Some(2)),
    ("64KiB_x8", "/bytes/65536", 8, Some(65536)),
    ("drop_unread_64KiB_x8", "/bytes/65536", 8, None),
];

fn transport_vs_legacy(c: &mut Criterion) {
    let rt = client_rt();
    let (legacy, twin, transport) = rt.block_on(async {
        (
            support::bare_client::<Empty<Bytes>>(),
            support::bare_client::<Empty<Bytes>>(),
            Transport::builder().build::<Empty<Bytes>>(),
        )
    });
    let mut g = c.benchmark_group("bare");
    let mut churn = Vec::new();
    for (name, path, callers, expect) in WORKLOADS {
        // Servers of their own for each client and workload, so that connection churn on one
        // side does not slow the other's accepts, and each counts its own connections.
        let mut s = servers(3);
        let (legacy_server, twin_server, transport_server) =
            (s.remove(0), s.remove(0), s.remove(0));
        let (l, lu) = (legacy.clone(), legacy_server.uri(path));
        let (w, wu) = (twin.clone(), twin_server.uri(path));
        common::paired(
            &mut g,
            &rt,
            (&format!("{name}/legacy (calibration)"), move |n| {
                load(l.clone(), lu.clone(), callers, n, expect)
            }),
            (&format!("{name}/legacy_again"), move |n| {
                load(w.clone(), wu.clone(), callers, n, expect)
            }),
        );
        let (l, lu) = (legacy.clone(), legacy_server.uri(path));
        let (t, tu) = (transport.clone(), transport_server.uri(path));
        common::paired(
            &mut g,
            &rt,
            (&format!("{name}/legacy"), move |n| {
                load(l.clone(), lu.clone(), callers, n, expect)
            }),
            (&format!("{name}/transport"), move |n| {
                load(t.clone(), tu.clone(), callers, n, expect)
            }),
        );
        churn.push((name, legacy_server, transport_server));
    }
    g.finish();
    let mut rows = Vec::new();
    for (name, ..) in WORKLOADS {
        rows.push((
            format!("{name}/legacy (calibration)"),
            format!("{name}/legacy_again"),
        ));
        rows.push((format!("{name}/legacy"), format!("{name}/transport")));
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    common::print_paired(
        "loopback: bare Transport vs bare hyper-util legacy client",
        &rows,
    );
    let per_k = |s: &TestServer| 1000.0 * s.accepted() as f64 / s.requests().max(1) as f64;
    for (name, legacy_server, transport_server) in churn {
        println!(
            "{name}: connections per 1,000 requests: legacy {:.1}, transport {:.1}",
            per_k(&legacy_server),
            per_k(&transport_server)
        );
    }
}

criterion_group!(benches, transport_vs_legacy);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
