//! The deadline and the request-side phase timeouts against a real misbehaving server, through
//! hyper-util's legacy client. Errors are found with `Error::find` through hyper-util's wrapping.
use tower_hardened_test_server as support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_hardened::{
    BodyIdleTimeoutLayer, BoxError, DeadlineLayer, Error, Phase, RequestWriteTimeoutLayer,
    ResponseHeaderTimeoutLayer,
};

use support::TestServer;

/// Sends a GET through `svc` and reads the body to the end; the phase of the error, if any.
async fn get<S, B>(svc: S, uri: http::Uri) -> Result<usize, (Option<Phase>, String)>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>, Error = BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let fail = |e: BoxError| (Error::find(&*e).and_then(Error::phase), e.to_string());
    let resp = svc
        .oneshot(Request::get(uri).body(Empty::new()).unwrap())
        .await
        .map_err(fail)?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(body.to_bytes().len())
}

#[tokio::test]
async fn endless_and_dripping_bodies_are_cut_by_the_total_deadline() {
    let server = TestServer::start().await;
    for path in ["/endless", "/drip/20"] {
        let svc = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_millis(300)))
            .service(support::bare_client::<Empty<Bytes>>());
        let start = Instant::now();
        let err = get(svc, server.uri(path)).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.0, Some(Phase::Total), "{path}: {}", err.1);
        assert!(
            took >= Duration::from_millis(300),
            "{path}: cut early, {took:?}"
        );
        assert!(took < Duration::from_secs(5), "{path}: cut late, {took:?}");
    }
    // The cut bodies' connections are closed, not left streaming.
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn stalled_headers_fail_with_response_headers() {
    let server = TestServer::start().await;
    let client = support::bare_client::<Empty<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_millis(200)))
        .service(client.clone());
    let err = get(svc, server.uri("/stall-headers")).await.unwrap_err();
    assert_eq!(err.0, Some(Phase::ResponseHeaders), "{}", err.1);
    assert_eq!(err.1, "no response headers within 200ms");

    // With a deadline shorter than the phase limit, the deadline is what fires and is named.
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(150)))
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(10)))
        .service(client.clone());
    let err = get(svc, server.uri("/stall-headers")).await.unwrap_err();
    assert_eq!(err.0, Some(Phase::Total), "{}", err.1);
    drop(client);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn slow_chunks_fail_with_body_idle_while_a_steady_drip_passes() {
    let server = TestServer::start().await;
    let client = support::bare_client::<Empty<Bytes>>();
    let svc = || {
        ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(20)))
            .layer(BodyIdleTimeoutLayer::new(Duration::from_millis(250)))
            .service(client.clone())
    };
    // 15 chunks 20 ms apart: the body takes ~300 ms in all, longer than the idle limit, and passes.
    assert_eq!(
        get(svc(), server.uri("/slow-chunks/20/15")).await,
        Ok(15 * 16)
    );
    // 3 chunks 600 ms apart: the first gap is too long.
    let err = get(svc(), server.uri("/slow-chunks/600/3"))
        .await
        .unwrap_err();
    assert_eq!(err.0, Some(Phase::BodyIdle), "{}", err.1);
    assert_eq!(err.1, "no response body data for 250ms");
}

#[tokio::test]
async fn a_stalled_upload_fails_with_request_write_and_its_connection_closes() {
    let server = TestServer::start().await;
    let client = support::bare_client::<tower_hardened::RequestWriteBody<support::ScriptBody>>();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(20)))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_millis(300)))
        .service(client.clone());
    // The server reads nothing for 1.5 s, then reads on until the client stops sending.
    let req = Request::post(server.uri("/upload-stall/1500"))
        .body(support::endless_upload(64 * 1024))
        .unwrap();
    let start = Instant::now();
    let err: BoxError = svc.oneshot(req).await.map(|_: Response<_>| ()).unwrap_err();
    let found = Error::find(&*err).expect("our error in the chain");
    assert_eq!(found.phase(), Some(Phase::RequestWrite), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The stuck upload does not keep going: once the server reads again it finds the connection
    // closed (an upload still running would keep it open: the body is endless).
    assert!(server.wait_open_at_most(0, Duration::from_secs(8)).await);
    assert_eq!(server.accepted(), 1);
    drop(client);
}

#[tokio::test]
async fn a_normal_upload_and_download_pass_through_every_layer() {
    let server = TestServer::start().await;
    let client =
        support::bare_client::<tower_hardened::RequestWriteBody<http_body_util::Full<Bytes>>>();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(ResponseHeaderTimeoutLayer::new(Duration::from_secs(5)))
        .layer(BodyIdleTimeoutLayer::new(Duration::from_secs(5)))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(5)))
        .service(client);
    let body = http_body_util::Full::new(Bytes::from(vec![7u8; 300_000]));
    let resp: Response<_> = svc
        .oneshot(Request::post(server.uri("/echo")).body(body).unwrap())
        .await
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "300000");
    let _: Option<Incoming> = None;
}

/// A request body of one large frame (a `Full` body, the usual kind): hyper takes the frame into
/// its write queue at once and drops the body, but the upload is not done until the peer has
/// read it. The response-header clock must not run meanwhile, and a stall in it must be a
/// request-write stall.
#[tokio::test]
async fn a_one_frame_upload_is_watched_until_it_is_taken() {
    let server = TestServer::start().await;
    let svc = || {
        ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(20)))
            .layer(ResponseHeaderTimeoutLayer::new(Duration::from_millis(300)))
            .layer(RequestWriteTimeoutLayer::new(Duration::from_secs(5)))
            .service(support::bare_client::<
                tower_hardened::RequestWriteBody<http_body_util::Full<Bytes>>,
            >())
    };
    let big = || http_body_util::Full::new(Bytes::from(vec![7u8; 32 << 20]));
    // The server reads nothing for 1.5 s, then reads it all and answers: not a header stall.
    let req = Request::post(server.uri("/upload-stall/1500"))
        .body(big())
        .unwrap();
    let resp: Result<Response<_>, BoxError> = svc().oneshot(req).await;
    let resp = resp.unwrap_or_else(|e| panic!("a slow reader is not a header stall: {e}"));
    assert!(resp.status().is_success());

    // A server that never reads: the stall is the upload's, at the request-write limit.
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(3)))
        .layer(RequestWriteTimeoutLayer::new(Duration::from_millis(300)))
        .service(support::bare_client::<
            tower_hardened::RequestWriteBody<http_body_util::Full<Bytes>>,
        >());
    let req = Request::post(server.uri("/upload-stall"))
        .body(big())
        .unwrap();
    let err: BoxError = svc.oneshot(req).await.map(|_: Response<_>| ()).unwrap_err();
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::RequestWrite),
        "{err}"
    );
}

/// The same through the preset, whose response-header limit is shorter than the upload.
#[cfg(feature = "preset")]
#[tokio::test]
async fn the_preset_does_not_time_a_one_frame_upload_as_waiting_for_headers() {
    let server = TestServer::start().await;
    let client = tower_hardened::Hardened::new()
        .response_headers(Duration::from_millis(300))
        .client::<http_body_util::Full<Bytes>>();
    let body = http_body_util::Full::new(Bytes::from(vec![7u8; 32 << 20]));
    let req = Request::post(server.uri("/upload-stall/1500"))
        .body(body)
        .unwrap();
    let resp = client.oneshot(req).await;
    let resp = resp.unwrap_or_else(|e| panic!("a slow reader is not a header stall: {e}"));
    assert!(resp.status().is_success());
}

/// A peer that never reads the upload and never closes: after the request-write timeout, the
/// client's connection must not stay stuck flushing into a full socket.
#[cfg(feature = "preset")]
#[tokio::test]
async fn a_stalled_upload_to_a_peer_that_never_reads_leaves_no_task_behind() {
    let server = TestServer::start_on_own_thread();
    let baseline = support::live_tasks().unwrap();
    let preset = tower_hardened::Hardened::new().request_write(Duration::from_millis(300));
    let stats = preset.stats_handle();
    let client = preset.client::<support::ScriptBody>();
    let req = Request::post(server.uri("/upload-stall"))
        .body(support::endless_upload(64 * 1024))
        .unwrap();
    let err: BoxError = client.oneshot(req).await.map(|_| ()).unwrap_err();
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::RequestWrite),
        "{err}"
    );
    // The connection task ends and its socket closes: no task is left once it has had time to.
    // The preset (and with it the pool) goes first: the pool keeps one task of its own (the
    // reaper) while it lives, and a connection task stuck on the socket would outlive it.
    drop(preset);
    support::eventually(Duration::from_secs(5), || {
        support::live_tasks().unwrap() <= baseline
    })
    .await;
    assert_eq!(
        support::live_tasks().unwrap(),
        baseline,
        "a task is stuck on the dead upload"
    );
    assert_eq!(stats.snapshot().connections_open, 0);
}
