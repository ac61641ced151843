//! Request-side misbehaviours: stalled headers, stalled, slow or endless bodies, stalled uploads,
//! resets.

use std::time::Duration;

use http::Request;
use tower_hardened::Hardened;

use crate::{exchange, fresh_server, Probe, Row};
use tower_hardened_test_server::{bare_client, endless_upload, ScriptBody, Then};

/// How long the bare client is given before we call it hung.
const PATIENCE: Duration = Duration::from_secs(3);

/// The preset with short limits, so the table prints in seconds.
pub fn preset() -> Hardened {
    Hardened::new()
        .total(Duration::from_secs(2))
        .response_headers(Duration::from_secs(1))
        .body_idle(Duration::from_millis(500))
        .request_write(Duration::from_millis(500))
}

pub async fn rows() -> Vec<Row> {
    let cases: [(&'static str, &str, bool); 7] = [
        ("stalled headers", "/stall-headers", false),
        ("stalled body", "/stall-body", false),
        ("slow chunks (1 per 800ms)", "/slow-chunks/800/3", false),
        ("steady drip (20 x 50ms)", "/slow-chunks/50/20", false),
        ("endless body", "/endless", false),
        ("stalled upload", "/upload-stall", true),
        ("reset mid-body", "/reset-body", false),
    ];
    let mut rows = Vec::new();
    // The deadline bounds time, not bytes: at loopback speed 2 s of an endless body is hundreds
    // of MB, all in memory for a caller that collects it. The byte cap bounds the bytes.
    {
        let server = fresh_server();
        let mut row = Row::new("endless body, 8 MiB byte cap", "hardened");
        let probe = Probe::start();
        let empty = ScriptBody::new(Default::default(), Some(0), None, Then::End);
        let req = Request::get(server.uri("/endless")).body(empty).unwrap();
        let client = preset()
            .max_response_body(8 * 1024 * 1024)
            .client::<ScriptBody>();
        exchange(client, req, PATIENCE, &mut row).await;
        probe.finish(&mut row, Some(&server)).await;
        rows.push(row);
    }
    for (scenario, path, upload) in cases {
        for client in ["bare", "hardened"] {
            let server = fresh_server();
            let req = if upload {
                Request::post(server.uri(path))
                    .body(endless_upload(64 * 1024))
                    .unwrap()
            } else {
                let empty = ScriptBody::new(Default::default(), Some(0), None, Then::End);
                Request::get(server.uri(path)).body(empty).unwrap()
            };
            let mut row = Row::new(scenario, client);
            let probe = Probe::start();
            if client == "bare" {
                exchange(bare_client::<ScriptBody>(), req, PATIENCE, &mut row).await;
            } else {
                exchange(preset().client::<ScriptBody>(), req, PATIENCE, &mut row).await;
            }
            probe.finish(&mut row, Some(&server)).await;
            rows.push(row);
        }
    }
    rows
}
