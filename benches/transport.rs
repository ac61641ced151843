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
//! - `*/preset_transport` vs `*/preset_legacy`: the whole preset on each, `Hardened::new()`'s
//!   `client()` (the transport) against its `legacy_client()`. Goal (issue 12): 1.0x or more on
//!   every row, less the calibration's spread.
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
use common::{client_rt, load};
use tower_hardened_test_server as support;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http_body_util::Empty;
use tower_hardened::{Hardened, Transport};

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

const WORKLOADS: [(&str, &str, usize, Option<usize>); 4] = [
    ("ok_x1", "/ok", 1, Some(2)),
    ("ok_x8", "/ok", 8, Some(2)),
    ("64KiB_x8", "/bytes/65536", 8, Some(65536)),
    ("drop_unread_64KiB_x8", "/bytes/65536", 8, None),
];

fn transport_vs_legacy(c: &mut Criterion) {
    let rt = client_rt();
    let (legacy, twin, transport, preset_legacy, preset_transport) = rt.block_on(async {
        (
            support::bare_client::<Empty<Bytes>>(),
            support::bare_client::<Empty<Bytes>>(),
            Transport::builder().build::<Empty<Bytes>>(),
            Hardened::new().legacy_client::<Empty<Bytes>>(),
            Hardened::new().client::<Empty<Bytes>>(),
        )
    });
    let mut g = c.benchmark_group("bare");
    let mut churn = Vec::new();
    for (name, path, callers, expect) in WORKLOADS {
        // Servers of their own for each client and workload, so that connection churn on one
        // side does not slow the other's accepts, and each counts its own connections.
        let mut s = servers(5);
        let (legacy_server, twin_server, transport_server) =
            (s.remove(0), s.remove(0), s.remove(0));
        let (preset_legacy_server, preset_transport_server) = (s.remove(0), s.remove(0));
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
        let (l, lu) = (preset_legacy.clone(), preset_legacy_server.uri(path));
        let (t, tu) = (preset_transport.clone(), preset_transport_server.uri(path));
        common::paired(
            &mut g,
            &rt,
            (&format!("{name}/preset_legacy"), move |n| {
                load(l.clone(), lu.clone(), callers, n, expect)
            }),
            (&format!("{name}/preset_transport"), move |n| {
                load(t.clone(), tu.clone(), callers, n, expect)
            }),
        );
        churn.push((name, legacy_server, transport_server));
        churn.push((name, preset_legacy_server, preset_transport_server));
    }
    g.finish();
    let mut rows = Vec::new();
    for (name, ..) in WORKLOADS {
        rows.push((
            format!("{name}/legacy (calibration)"),
            format!("{name}/legacy_again"),
        ));
        rows.push((format!("{name}/legacy"), format!("{name}/transport")));
        rows.push((
            format!("{name}/preset_legacy"),
            format!("{name}/preset_transport"),
        ));
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    common::print_paired(
        "loopback: bare Transport vs bare hyper-util legacy client, and the preset on each",
        &rows,
    );
    let per_k = |s: &TestServer| 1000.0 * s.accepted() as f64 / s.requests().max(1) as f64;
    for (name, legacy_server, transport_server) in churn {
        println!(
            "{name}: connections per 1,000 requests: legacy {:.1}, transport {:.1} (bare, then preset)",
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
