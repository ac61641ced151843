//! The telemetry layer of the preset against a real loopback server: connections counted
//! `active` while a request uses them and `idle` after, the time in queue of each request,
//! connection durations, the crate's counters. Read from a Prometheus recorder local to the test
//! thread (the client and its connection tasks run on it; the server has a thread of its own).

use tower_hardened_test_server as support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::ServiceExt;
use tower_hardened::{Error, Hardened, Phase};

use support::{eventually, TestServer};

/// One sample of a rendered page: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include every pair of `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn connections_are_active_while_used_and_idle_after() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = TestServer::start_apart().await;
    let port = server.addr.port().to_string();
    let at = |state: &'static str| {
        [
            ("server_address", "127.0.0.1"),
            ("server_port", port.as_str()),
            ("http_connection_state", state),
        ]
    };
    let client = Hardened::new()
        .response_headers(Duration::from_millis(300))
        .client::<Empty<Bytes>>();

    // A body that takes 2 x 100 ms: the connection is active while it is read.
    let req = Request::get(server.uri("/slow-chunks/100/2"))
        .body(Empty::new())
        .unwrap();
    let resp = client.clone().oneshot(req).await.unwrap();
    let page = parse(&handle.render());
    let open = "http_client_open_connections";
    assert_eq!(value(&page, open, &at("active")), 1.0, "{page:?}");
    assert_eq!(value(&page, open, &at("idle")), 0.0);
    assert_eq!(value(&page, "http_client_active_requests", &[]), 1.0);
    resp.into_body().collect().await.unwrap();
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 0.0);
    assert_eq!(value(&page, open, &at("idle")), 1.0);
    assert_eq!(value(&page, "http_client_active_requests", &[]), 0.0);

    // Reused for a second request: still one connection, two waits for it.
    let req = Request::get(server.uri("/ok")).body(Empty::new()).unwrap();
    let resp = client.clone().oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(server.accepted(), 1);
    let page = parse(&handle.render());
    let queue = "http_client_request_time_in_queue_count";
    assert_eq!(value(&page, queue, &[("http_request_method", "GET")]), 2.0);
    let duration = "http_client_request_duration_count";
    let ok = [("http_response_status_code", "200"), ("server_port", &port)];
    assert_eq!(value(&page, duration, &ok), 2.0);

    // Stalled headers, on the idle connection: the request fails with its phase, the connection
    // (active for it) is closed.
    let req = Request::get(server.uri("/stall-headers"))
        .body(Empty::new())
        .unwrap();
    let err = client.clone().oneshot(req).await.unwrap_err();
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::ResponseHeaders)
    );
    assert!(server.wait_open_at_most(0, Duration::from_secs(3)).await);
    assert!(
        eventually(Duration::from_secs(3), || {
            let page = parse(&handle.render());
            value(&page, "http_client_connection_duration_count", &[]) == 1.0
        })
        .await
    );
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 0.0, "{page:?}");
    assert_eq!(value(&page, open, &at("idle")), 0.0);
    let failed = [("error_type", "response_headers")];
    assert_eq!(value(&page, duration, &failed), 1.0);
    assert_eq!(
        value(
            &page,
            "tower_hardened_timeouts",
            &[("phase", "response_headers")]
        ),
        1.0
    );
    assert_eq!(value(&page, "tower_hardened_timeouts", &[]), 1.0);
    assert_eq!(
        value(&page, "tower_hardened_connections_closed", &[]),
        1.0,
        "{page:?}"
    );
    for (name, labels, _) in &page {
        for v in labels.values() {
            assert!(!v.contains('/'), "no path in {name} {labels:?}");
        }
    }

    // A new connection, idle after its request; the client gone, it closes too.
    let req = Request::get(server.uri("/ok")).body(Empty::new()).unwrap();
    let resp = client.clone().oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(server.accepted(), 2);
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("idle")), 1.0);
    drop(client);
    assert!(
        eventually(Duration::from_secs(3), || {
            let page = parse(&handle.render());
            value(&page, open, &[]) == 0.0
                && value(&page, "http_client_connection_duration_count", &[]) == 2.0
        })
        .await
    );
}

/// The crate's own transport records what the legacy path does: the time in queue of each
/// request when its pool hands it a connection, and the connection `active` while a request
/// uses it, `idle` after.
#[cfg(feature = "transport")]
#[tokio::test]
async fn the_transport_records_queue_time_and_active_connections() {
    use tower::ServiceBuilder;
    use tower_hardened::{TelemetryLayer, Transport};

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = TestServer::start_apart().await;
    let port = server.addr.port().to_string();
    let at = |state: &'static str| {
        [
            ("server_address", "127.0.0.1"),
            ("server_port", port.as_str()),
            ("http_connection_state", state),
        ]
    };
    let transport = Transport::builder().build::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(TelemetryLayer::new())
        .service(transport.clone());

    let req = Request::get(server.uri("/slow-chunks/100/2"))
        .body(Empty::new())
        .unwrap();
    let resp = client.clone().oneshot(req).await.unwrap();
    let open = "http_client_open_connections";
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 1.0, "{page:?}");
    assert_eq!(value(&page, open, &at("idle")), 0.0);
    resp.into_body().collect().await.unwrap();
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 0.0);
    assert_eq!(value(&page, open, &at("idle")), 1.0);

    let req = Request::get(server.uri("/ok")).body(Empty::new()).unwrap();
    let resp = client.clone().oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(server.accepted(), 1, "reused");
    let page = parse(&handle.render());
    let queue = "http_client_request_time_in_queue_count";
    assert_eq!(value(&page, queue, &[("http_request_method", "GET")]), 2.0);

    // The transport gone, its connection closes: counted no more, its duration recorded.
    drop((client, transport));
    assert!(
        eventually(Duration::from_secs(3), || {
            let page = parse(&handle.render());
            value(&page, open, &[]) == 0.0
                && value(&page, "http_client_connection_duration_count", &[]) == 1.0
        })
        .await
    );
}
