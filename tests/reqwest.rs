//! `Hardened::reqwest` around a real `reqwest::Client` (0.12, no default features) against the
//! misbehaving loopback server of `tests/server`, which counts the connections it sees.
//!
//! Covered: reqwest's own types and methods at the edges (`json()`, `error_for_status()`,
//! `url()`); a per-host limit held until the body ends; dropped bodies whose connections are
//! reused (counted by the server, against a bare reqwest client as the positive case); typed
//! phases from the stack (response headers, body idle, total from a per-request `timeout`,
//! overload) and from `ConnectTimeoutLayer` inside reqwest's `connector_layer`; reqwest's
//! `is_timeout()` for the errors reqwest makes; and nothing held or left afterwards.
#![cfg(feature = "reqwest")]

use tower_hardened_test_server as support;

use std::time::{Duration, Instant};

use tower_hardened::{BoxError, Error, ErrorKind, Hardened, Phase};

use support::{eventually, hanging_listener, live_tasks, wait_tasks_at_most, TestServer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn preset() -> Hardened {
    Hardened::new()
        .total(ms(3000))
        .connect(ms(300))
        .response_headers(ms(300))
        .body_idle(ms(300))
        .request_write(ms(300))
        .acquire_timeout(ms(2000))
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Our error's kind and phase in `e`.
fn typed(e: &(dyn std::error::Error + 'static)) -> Option<(ErrorKind, Option<Phase>)> {
    Error::find(e).map(|ours| (ours.kind(), ours.phase()))
}

fn assert_nothing_held(hardened: &Hardened) {
    let snap = hardened.stats_handle().snapshot();
    assert_eq!(snap.in_flight, 0, "{snap:?}");
    assert_eq!(snap.waiting, 0, "{snap:?}");
    assert_eq!(hardened.limit_handle().in_flight(), 0);
    assert_eq!(hardened.per_host_handle().hosts(), 0);
}

/// The preset with a response-header limit shorter than the connect's (its clock waits for the
/// connect), and a reqwest client connecting through the preset's connect layer.
fn with_connect_layer() -> (Hardened, reqwest::Client) {
    let hardened = preset().response_headers(ms(100));
    let inner = reqwest::Client::builder()
        .no_proxy()
        .connector_layer(hardened.connect_layer())
        .build()
        .unwrap();
    (hardened, inner)
}

/// A GET of `/stall-headers`, which answers nothing: how long it took to fail, and the error.
async fn stalled_headers(
    client: &tower_hardened::reqwest::HardenedReqwest,
    server: &TestServer,
) -> (Duration, BoxError) {
    let start = Instant::now();
    let url = server.uri("/stall-headers").to_string();
    let err = client.send(client.client().get(url)).await.unwrap_err();
    (start.elapsed(), err)
}

fn assert_took(took: Duration, limit: Duration, what: &str) {
    assert!(took >= limit, "{what}: fired early, after {took:?}");
    assert!(
        took < limit + Duration::from_secs(2),
        "{what}: fired late, after {took:?}"
    );
}

#[tokio::test]
async fn reqwest_types_and_methods_keep_working() {
    let server = TestServer::start_apart().await;
    let hardened = preset();
    let client = hardened.reqwest(reqwest_client());

    // `/echo` answers the length of the body it read: "5" is JSON.
    let url = format!("http://{}/echo", server.addr);
    let resp = client
        .send(client.client().post(&url).body("hello"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().as_str(), url);
    assert_eq!(resp.content_length(), Some(1));
    let n: u64 = resp.error_for_status().unwrap().json().await.unwrap();
    assert_eq!(n, 5);

    // `execute` takes a built `reqwest::Request`.
    let req = client
        .client()
        .get(server.uri("/ok").to_string())
        .build()
        .unwrap();
    assert_eq!(
        client.execute(req).await.unwrap().text().await.unwrap(),
        "ok"
    );

    // error_for_status names the status and the URL.
    let url = format!("http://{}/nope", server.addr);
    let resp = client.send(client.client().get(&url)).await.unwrap();
    let err = resp.error_for_status().unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::NOT_FOUND));
    assert_eq!(err.url().map(|u| u.as_str()), Some(url.as_str()));
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn the_per_host_limit_is_held_until_the_body_ends() {
    let server = TestServer::start_apart().await;
    let hardened = preset().max_requests_per_host(1).total(ms(5000));
    let client = hardened.reqwest(reqwest_client());
    let per_host = hardened.per_host_handle();
    let host: http::Uri = server.uri("/");

    // Five chunks 100 ms apart: the headers come at once, the body takes half a second.
    let url = format!("http://{}/slow-chunks/100/5", server.addr);
    let first = client.send(client.client().get(&url)).await.unwrap();
    assert_eq!(per_host.in_flight_for(&host), 1, "held by the unread body");

    let second = {
        let client = client.clone();
        let url = server.uri("/ok").to_string();
        tokio::spawn(async move { client.send(client.client().get(url)).await })
    };
    assert!(eventually(Duration::from_secs(2), || per_host.waiting() == 1).await);
    tokio::time::sleep(ms(200)).await;
    assert!(!second.is_finished(), "the second request did not wait");
    assert_eq!(
        server.requests(),
        1,
        "the second request reached the server"
    );

    // The first body read to its end releases the permit; only then does the second go.
    let body = first.bytes().await.unwrap();
    assert_eq!(body.len(), 5 * 16);
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.text().await.unwrap(), "ok");
    assert_eq!(server.requests(), 2);
    assert_eq!(server.peak_active(), 1, "never two at once at the server");
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn dropped_bodies_give_their_connection_back() {
    const N: usize = 12;
    let url = |server: &TestServer| format!("http://{}/bytes/65536", server.addr);

    // Positive case: a bare reqwest client closes the connection of every dropped body.
    let bare_server = TestServer::start_apart().await;
    let bare = reqwest_client();
    for _ in 0..N {
        let resp = bare.get(url(&bare_server)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
        // Give the pool the same time to get the connection back as below.
        tokio::time::sleep(ms(20)).await;
    }
    assert!(
        bare_server.accepted() >= N - 1,
        "the bare client reused dropped connections: {} for {N}",
        bare_server.accepted()
    );
    drop(bare);

    let server = TestServer::start_apart().await;
    let tasks_before = live_tasks().unwrap();
    let hardened = preset();
    let stats = hardened.stats_handle();
    let client = hardened.reqwest(reqwest_client());
    for i in 0..N {
        let resp = client
            .send(client.client().get(url(&server)))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp); // unread: drained in the background, the connection goes back
        assert!(
            eventually(Duration::from_secs(2), || stats.snapshot().drains_finished
                == (i + 1) as u64)
            .await,
            "drain {i} did not finish: {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(server.requests(), N);
    assert_eq!(
        server.accepted(),
        1,
        "every request on the one drained connection"
    );
    assert_nothing_held(&hardened);

    drop((client, hardened));
    assert!(
        server.wait_open_at_most(0, Duration::from_secs(3)).await,
        "{} connections still open at the server",
        server.open()
    );
    let left = wait_tasks_at_most(tasks_before).await;
    assert!(
        left <= tasks_before,
        "{left} live tasks, {tasks_before} before"
    );
}

#[tokio::test]
async fn stalled_headers_are_a_typed_response_headers_error() {
    let server = TestServer::start_apart().await;
    let hardened = preset();
    let client = hardened.reqwest(reqwest_client());
    let (took, err) = stalled_headers(&client, &server).await;
    assert_took(took, ms(300), "response headers");
    assert_eq!(
        typed(&*err),
        Some((ErrorKind::Timeout, Some(Phase::ResponseHeaders)))
    );
    assert!(Error::find(&*err).unwrap().is_timeout());
    assert_nothing_held(&hardened);
    assert!(eventually(Duration::from_secs(3), || server.active() == 0).await);
}

#[tokio::test]
async fn a_stalled_body_is_body_idle_and_reqwest_calls_it_a_timeout() {
    let server = TestServer::start_apart().await;
    let hardened = preset();
    let client = hardened.reqwest(reqwest_client());
    let resp = client
        .send(client.client().get(server.uri("/stall-body").to_string()))
        .await
        .unwrap();
    let start = Instant::now();
    let err: reqwest::Error = resp.bytes().await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "body idle");
    assert!(err.is_timeout(), "reqwest's is_timeout: {err:?}");
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::BodyIdle)))
    );
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn a_per_request_timeout_is_an_earlier_deadline_for_headers_and_body() {
    let server = TestServer::start_apart().await;
    let hardened = preset().total(Duration::from_secs(10));
    let client = hardened.reqwest(reqwest_client());

    // A drip every 50 ms is never idle: only the request's own 400 ms can end it.
    let start = Instant::now();
    let resp = client
        .send(
            client
                .client()
                .get(server.uri("/drip/50").to_string())
                .timeout(ms(400)),
        )
        .await
        .unwrap();
    let err = resp.bytes().await.unwrap_err();
    assert_took(start.elapsed(), ms(400), "the request's timeout");
    assert!(err.is_timeout(), "{err:?}");
    let ours = Error::find(&err).expect("ours inside reqwest's");
    assert_eq!(ours.phase(), Some(Phase::Total));
    assert_eq!(ours.to_string(), "request deadline of 400ms exceeded");

    // Before the headers, too.
    let start = Instant::now();
    let err = client
        .send(
            client
                .client()
                .get(server.uri("/stall-headers").to_string())
                .timeout(ms(150)),
        )
        .await
        .unwrap_err();
    assert_took(start.elapsed(), ms(150), "the request's timeout");
    assert_eq!(typed(&*err), Some((ErrorKind::Timeout, Some(Phase::Total))));

    // A longer one does not lengthen the preset's total.
    let hardened = preset().total(ms(300)).response_headers(ms(5000));
    let client = hardened.reqwest(reqwest_client());
    let start = Instant::now();
    let err = client
        .send(
            client
                .client()
                .get(server.uri("/stall-headers").to_string())
                .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap_err();
    assert_took(start.elapsed(), ms(300), "the preset's total");
    assert_eq!(
        Error::find(&*err).unwrap().to_string(),
        "request deadline of 300ms exceeded"
    );
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn a_full_queue_is_overloaded_at_once() {
    let server = TestServer::start_apart().await;
    let hardened = preset().max_requests_per_host(1).max_waiting(0);
    let client = hardened.reqwest(reqwest_client());
    let held = client
        .send(client.client().get(server.uri("/stall-body").to_string()))
        .await
        .unwrap();
    let start = Instant::now();
    let err = client
        .send(client.client().get(server.uri("/ok").to_string()))
        .await
        .unwrap_err();
    assert!(start.elapsed() < ms(250), "refused at once");
    assert_eq!(
        typed(&*err),
        Some((ErrorKind::Overloaded, Some(Phase::Acquire)))
    );
    drop(held);
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn connect_timeout_layer_in_reqwests_connector_layer_is_a_typed_connect_timeout() {
    let hanging = hanging_listener().await;
    let (hardened, inner) = with_connect_layer();
    let client = hardened.reqwest(inner.clone());
    let url = format!("http://{}/", hanging.addr);

    let start = Instant::now();
    let err = client.send(client.client().get(&url)).await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "connect");
    assert_eq!(
        typed(&*err),
        Some((ErrorKind::Timeout, Some(Phase::Connect)))
    );
    let theirs = err
        .downcast_ref::<reqwest::Error>()
        .expect("reqwest made this one");
    assert!(theirs.is_connect(), "{theirs:?}");
    assert!(theirs.is_timeout(), "{theirs:?}");
    assert_eq!(
        hardened.stats_handle().snapshot().timeouts(Phase::Connect),
        1
    );

    // The same layer on a plain reqwest client, without the rest of the stack.
    let start = Instant::now();
    let err = inner.get(&url).send().await.unwrap_err();
    assert_took(start.elapsed(), ms(300), "connect");
    assert!(err.is_connect() && err.is_timeout(), "{err:?}");
    assert_eq!(
        Error::find(&err).and_then(Error::phase),
        Some(Phase::Connect)
    );

    // Once connected, the response-header clock runs.
    let server = TestServer::start_apart().await;
    let (took, err) = stalled_headers(&client, &server).await;
    assert_took(took, ms(100), "response headers");
    assert_eq!(
        typed(&*err),
        Some((ErrorKind::Timeout, Some(Phase::ResponseHeaders)))
    );
    assert_nothing_held(&hardened);
}

#[tokio::test]
async fn a_response_held_unread_is_reported_and_dropping_it_releases_everything() {
    let server = TestServer::start_apart().await;
    let hardened = preset().drain_with(|d| d.leak_threshold(ms(200)));
    let stats = hardened.stats_handle();
    let client = hardened.reqwest(reqwest_client());
    let held = client
        .send(client.client().get(server.uri("/stall-body").to_string()))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || stats.snapshot().leaks == 1).await,
        "the held body was not reported: {:?}",
        stats.snapshot()
    );
    assert_eq!(stats.snapshot().in_flight, 1);
    drop(held);
    assert_nothing_held(&hardened);
    assert_eq!(stats.snapshot().leaks, 1, "reported once");
}

/// A redirect to a host whose connect hangs: reqwest follows it inside the same request, and
/// the second connect stops the response-header clock again.
#[tokio::test]
async fn a_redirect_to_a_hanging_connect_is_a_connect_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hanging = hanging_listener().await;
    let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let from = redirector.local_addr().unwrap();
    let to = format!("http://{}/", hanging.addr);
    let server = tokio::spawn(async move {
        let (mut s, _) = redirector.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let resp = format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n");
        s.write_all(resp.as_bytes()).await.unwrap();
        // Kept open until the test ends.
        tokio::time::sleep(ms(5000)).await;
    });
    let (hardened, inner) = with_connect_layer();
    let client = hardened.reqwest(inner);
    let start = Instant::now();
    let err = client
        .send(client.client().get(format!("http://{from}/")))
        .await
        .unwrap_err();
    assert_took(start.elapsed(), ms(300), "the redirect's connect");
    assert_eq!(
        typed(&*err),
        Some((ErrorKind::Timeout, Some(Phase::Connect)))
    );
    server.abort();
    assert_nothing_held(&hardened);
}
