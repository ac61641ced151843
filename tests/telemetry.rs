//! The telemetry layer of the preset against a real loopback server: connections counted
//! `active` while a request uses them and `idle` after, the time in queue of each request,
//! connection durations, the crate's counters. Read from a Prometheus recorder local to the test
//! thread (the client and its connection tasks run on it; the server has a thread of its own).

use tower_hardened_test_server as support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tower::ServiceExt;
use tower_hardened::{Error, Hardened, Phase};

use support::scrape::{parse, value};
use support::{eventually, TestServer};

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

/// A request replayed on a new connection (its reused one was closed by the server before the
/// response) counts that new connection active while its body is read, and the lost one no
/// more.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn a_replayed_request_counts_its_new_connection_active() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceBuilder;
    use tower_hardened::{ReplayBody, ReplayLayer, TelemetryLayer, Transport};

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    // Answers the first request of each connection (the body 300 ms after the head on every
    // connection but the first), and closes a connection at its second request, unanswered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut conns = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            conns += 1;
            let slow = conns > 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut requests = 0;
                loop {
                    let mut chunk = [0u8; 1024];
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        requests += 1;
                        if requests == 2 {
                            return; // closed with the request unanswered
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                            .await;
                        if slow {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        let _ = s.write_all(b"ok").await;
                    }
                }
            });
        }
    });
    let port = addr.port().to_string();
    let at = |state: &'static str| {
        [
            ("server_address", "127.0.0.1"),
            ("server_port", port.as_str()),
            ("http_connection_state", state),
        ]
    };
    let transport = Transport::builder().build::<ReplayBody<Empty<Bytes>>>();
    let client = ServiceBuilder::new()
        .layer(TelemetryLayer::new())
        .layer(ReplayLayer::new())
        .service(transport.clone());
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let get = || Request::get(uri.clone()).body(Empty::new()).unwrap();
    let resp = client.clone().oneshot(get()).await.unwrap();
    resp.into_body().collect().await.unwrap();

    // Lost on the reused connection, replayed on a new one whose body takes 300 ms.
    let resp = client.clone().oneshot(get()).await.unwrap();
    let open = "http_client_open_connections";
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 1.0, "{page:?}");
    assert_eq!(value(&page, open, &at("idle")), 0.0, "{page:?}");
    resp.into_body().collect().await.unwrap();
    let page = parse(&handle.render());
    assert_eq!(value(&page, open, &at("active")), 0.0, "{page:?}");
    assert_eq!(value(&page, open, &at("idle")), 1.0, "{page:?}");
}
