//! The misbehaving server does what it says, seen through a bare hyper-util client.
use tower_hardened_test_server as support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use support::TestServer;

#[tokio::test]
async fn ok_and_bytes_paths_answer_and_connections_are_counted() {
    let server = TestServer::start().await;
    let client = support::bare_client::<Empty<Bytes>>();
    let resp = client.get(server.uri("/ok")).await.unwrap();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    let resp = client.get(server.uri("/bytes/70000")).await.unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes().len(),
        70000
    );
    let resp = client.get(server.uri("/slow-chunks/1/3")).await.unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes().len(),
        48
    );
    assert_eq!(
        server.accepted(),
        1,
        "one pooled connection for three requests"
    );
    assert_eq!(server.open(), 1);
    assert_eq!(server.requests(), 3);
    drop(client);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn stalls_stall_and_resets_fail() {
    let server = TestServer::start().await;
    let client = support::bare_client::<Empty<Bytes>>();
    let headers = tokio::time::timeout(
        Duration::from_millis(200),
        client.get(server.uri("/stall-headers")),
    )
    .await;
    assert!(headers.is_err(), "no headers in 200ms");
    let resp = client.get(server.uri("/stall-body")).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap().len(), 16);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), body.frame())
            .await
            .is_err()
    );
    assert!(client.get(server.uri("/reset-headers")).await.is_err());
    let resp = client.get(server.uri("/reset-body")).await.unwrap();
    assert!(resp.into_body().collect().await.is_err());
}

/// The helpers every "nothing left behind" check relies on must see what is there: each is
/// checked here against a case where the answer is not zero.
#[tokio::test]
async fn the_measuring_helpers_see_what_is_there() {
    let server = TestServer::start().await;
    let client = support::bare_client::<Empty<Bytes>>();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut body = client
            .get(server.uri("/stall-body"))
            .await
            .unwrap()
            .into_body();
        body.frame().await.unwrap().unwrap();
        held.push(body);
    }
    assert_eq!((server.active(), server.peak_active()), (3, 3));
    assert_eq!((server.open(), server.peak_open()), (3, 3));
    let established = support::tcp_states_to(server.addr)
        .iter()
        .filter(|s| **s == 1)
        .count();
    assert_eq!(
        established, 3,
        "our three sockets to the server, established"
    );

    let base = support::live_tasks().unwrap();
    let task = tokio::spawn(std::future::pending::<()>());
    assert_eq!(support::live_tasks().unwrap(), base + 1);
    task.abort();

    assert!(support::rss_kib().expect("RSS from /proc/self/status") > 0);

    let hanging = support::hanging_listener().await;
    let dial = tokio::spawn(tokio::net::TcpStream::connect(hanging.addr));
    let syn_sent = support::eventually(Duration::from_secs(2), || {
        support::tcp_states_to(hanging.addr).contains(&2)
    })
    .await;
    assert!(syn_sent, "a connect that hangs is seen in SYN_SENT");
    dial.abort();
    drop(held);
}
