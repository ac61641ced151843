//! A real scrape of `examples/prometheus.rs`: its code, its server and its load; the page read
//! with an HTTP request, every metric of the crate found under the exporter's names with the
//! values the load must have caused.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tower::ServiceExt;

#[path = "../examples/prometheus.rs"]
#[allow(dead_code)]
mod example;

use example::Seen;
use tower_hardened_test_server::scrape::{find, parse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_every_metric_under_the_exporters_names() {
    let handle = example::install();
    let server = example::misbehaving_server().await;
    let addr = example::serve_metrics(handle).await;
    let client = example::client();
    let seen = example::load(&client, server, 2).await;

    // The load did what it is meant to, from the caller's side.
    let count = |s: Seen| seen.iter().filter(|x| **x == s).count();
    assert_eq!(count(Seen::Failed("overloaded")), 4, "{seen:?}");
    assert_eq!(count(Seen::Failed("response_headers")), 2);
    assert_eq!(count(Seen::Failed("body_idle")), 2);
    assert_eq!(count(Seen::Failed("_OTHER")), 2, "the cut bodies");
    assert_eq!(count(Seen::Dropped), 4);
    assert_eq!(count(Seen::Ok), 12 + 2 * 6);

    // A real HTTP request for the page.
    let scraper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/metrics").parse().unwrap();
    let resp = scraper
        .clone()
        .oneshot(http::Request::get(uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let page = parse(&text);
    let port = server.port().to_string();
    let here = [
        ("server_address", "127.0.0.1"),
        ("server_port", port.as_str()),
    ];

    // Every histogram as buckets, sum and count.
    for h in [
        "http_client_request_duration",
        "http_client_connection_duration",
        "http_client_request_time_in_queue",
    ] {
        let (buckets, _) = find(&page, &format!("{h}_bucket"), &here);
        assert!(
            buckets > example::BUCKETS.len(),
            "{h}: {buckets} buckets\n{text}"
        );
        let (_, count) = find(&page, &format!("{h}_count"), &here);
        assert!(count > 0.0, "{h}_count\n{text}");
        let (_, sum) = find(&page, &format!("{h}_sum"), &here);
        assert!(sum > 0.0, "{h}_sum");
        let (_, inf) = find(&page, &format!("{h}_bucket"), &[("le", "+Inf")]);
        assert_eq!(
            inf,
            find(&page, &format!("{h}_count"), &[]).1,
            "{h}: +Inf is the count"
        );
    }
    let duration = "http_client_request_duration_count";
    let ok = [
        ("http_response_status_code", "200"),
        ("http_request_method", "GET"),
    ];
    assert!(find(&page, duration, &ok).1 >= 24.0, "{text}");
    for (et, n) in [
        ("overloaded", 4.0),
        ("response_headers", 2.0),
        ("body_idle", 2.0),
        ("_OTHER", 2.0),
    ] {
        assert_eq!(
            find(&page, duration, &[("error_type", et)]).1,
            n,
            "error_type={et}\n{text}"
        );
    }
    // The slow bodies took their time: every /slow read to its end took 500 ms or more, so at
    // least that many requests are above the 0.5 s bucket.
    let (_, under_half) = find(
        &page,
        "http_client_request_duration_bucket",
        &[("le", "0.5"), ("http_response_status_code", "200")],
    );
    let (_, all_ok) = find(&page, duration, &[("http_response_status_code", "200")]);
    assert!(
        all_ok - under_half >= 12.0 + 4.0,
        "slow reads above 0.5 s\n{text}"
    );

    // Gauges: the load is over, nothing is active; the kept-alive connections are idle.
    assert_eq!(
        find(&page, "http_client_active_requests", &here),
        (1, 0.0),
        "{text}"
    );
    let open = "http_client_open_connections";
    assert_eq!(
        find(&page, open, &[("http_connection_state", "active")]).1,
        0.0
    );
    assert!(
        find(&page, open, &[("http_connection_state", "idle")]).1 >= 1.0,
        "{text}"
    );

    // The crate's counters, by label.
    let timeouts = "tower_hardened_timeouts";
    assert_eq!(
        find(&page, timeouts, &[("phase", "response_headers")]).1,
        2.0
    );
    assert_eq!(find(&page, timeouts, &[("phase", "body_idle")]).1, 2.0);
    assert_eq!(
        find(&page, timeouts, &[("phase", "connect")]),
        (1, 0.0),
        "registered at zero"
    );
    assert_eq!(find(&page, "tower_hardened_overloads", &[]), (1, 4.0));
    assert!(
        find(&page, "tower_hardened_drains", &[("outcome", "finished")]).1 >= 2.0,
        "the /big drops\n{text}"
    );
    assert_eq!(
        find(&page, "tower_hardened_drains", &[]).0,
        6,
        "one series per outcome"
    );
    assert_eq!(
        find(&page, "tower_hardened_leaks", &[]),
        (1, 2.0),
        "the held /slow bodies"
    );
    assert_eq!(
        find(&page, "tower_hardened_replays", &[]),
        (1, 0.0),
        "no replay path yet"
    );
    let closed = "tower_hardened_connections_closed";
    assert_eq!(find(&page, closed, &[]).0, 5, "one series per reason");
    assert!(
        find(&page, closed, &[]).1 >= 4.0,
        "timed-out and cut connections\n{text}"
    );

    // Bounded attributes: host and port, never a path.
    for (name, labels, _) in &page {
        assert!(
            labels.values().all(|v| !v.contains('/')),
            "{name} {labels:?}"
        );
    }
}
