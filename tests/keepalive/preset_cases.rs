// The preset's keep-alive cases, included by `tests/keepalive.rs` in `on_transport` and
// `on_legacy` (each defines `client(&Hardened)` for its client).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_reused_as_the_server_closes_them_never_fail_under_the_preset() {
    let jitter = Duration::from_millis(3);
    let n = CALLERS * ROUNDS;

    let server = IdleServer::start(Config::closing_after(IDLE_CLOSE)).await;
    let bare = support::bare_client::<Empty<Bytes>>();
    let bare_failures = lock_step(bare, server.uri(), CALLERS, ROUNDS, AROUND, jitter).await;
    println!(
        "bare hyper-util: {} of {n} failed ({} connections, {} closed idle by the server)",
        bare_failures.len(),
        server.seen.accepted.load(SeqCst),
        server.seen.idle_closed.load(SeqCst),
    );
    for f in bare_failures.iter().take(3) {
        println!("  bare: {f}");
    }

    let server = IdleServer::start(Config::closing_after(IDLE_CLOSE)).await;
    let preset = Hardened::new();
    let stats = preset.stats_handle();
    let client = client::<Empty<Bytes>>(&preset);
    let failures = lock_step(client, server.uri(), CALLERS, ROUNDS, AROUND, jitter).await;
    let snap = stats.snapshot();
    println!(
        "preset: {} of {n} failed, {} replayed ({} connections, {} closed idle by the server)",
        failures.len(),
        snap.replays,
        server.seen.accepted.load(SeqCst),
        server.seen.idle_closed.load(SeqCst),
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // A lost request was not read by the server (it closed first), so each is counted once.
    let requests = server.seen.requests.load(SeqCst);
    assert!(
        (n..=n + snap.replays as usize).contains(&requests),
        "{requests} requests seen for {n} sent and {} replays",
        snap.replays
    );
    assert!(
        server.seen.reused.load(SeqCst) > 0,
        "connections were reused around the server's timeout"
    );
}

/// Sends `method` with a small body on the reused connection of a server that reads the second
/// request of each connection whole and closes without answering.
async fn second_request_closed(
    method: Method,
) -> (Result<(), tower_hardened::BoxError>, IdleServer, u64) {
    let server = IdleServer::start(Config {
        close_nth: Some(2),
        ..Config::closing_after(Duration::from_secs(30))
    })
    .await;
    let preset = Hardened::new();
    let stats = preset.stats_handle();
    let client = client::<Full<Bytes>>(&preset);
    let send = |m: Method| {
        let req = Request::builder()
            .method(m)
            .uri(server.uri())
            .body(Full::new(Bytes::from("order #1")))
            .unwrap();
        client.clone().oneshot(req)
    };
    let first = send(method.clone())
        .await
        .expect("the first request is answered");
    first.into_body().collect().await.unwrap();
    let res = match send(method).await {
        Ok(resp) => resp.into_body().collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    (res, server, stats.snapshot().replays)
}

#[tokio::test]
async fn a_post_lost_with_its_connection_is_not_replayed_and_says_why() {
    let (res, server, replays) = second_request_closed(Method::POST).await;
    let err = res.unwrap_err();
    let ours = Error::find(&*err).expect("our error");
    assert_eq!(ours.kind(), ErrorKind::ConnectionClosed, "{err}");
    let text = ours.to_string();
    assert!(
        text.starts_with(
            "connection closed by the peer before the response (a reused connection, idle for"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "not retried because POST is not idempotent (an Idempotency-Key header marks it safe to retry)"
        ),
        "{text}"
    );
    assert_eq!(replays, 0);
    assert_eq!(
        server.seen.requests.load(SeqCst),
        2,
        "the server had the POST whole: sending it again would have doubled it"
    );
    assert_eq!(server.seen.accepted.load(SeqCst), 1);

    // The same exchange as a GET is replayed, on a new connection.
    let (res, server, replays) = second_request_closed(Method::GET).await;
    res.expect("the GET is replayed and answered");
    assert_eq!(replays, 1);
    assert_eq!(server.seen.requests.load(SeqCst), 3);
    assert_eq!(server.seen.accepted.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_hint_retires_connections_before_the_server_closes_them() {
    // `timeout=1`: retired after 0.5 s idle (1 s less a margin of at most half the hint).
    let server = IdleServer::start(Config {
        hint: Some(1),
        ..Config::closing_after(Duration::from_secs(1))
    })
    .await;
    let retire_at = Duration::from_millis(500);
    let preset = Hardened::new();
    let stats = preset.stats_handle();
    let client = client::<Empty<Bytes>>(&preset);
    let mut gaps = Gaps::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let plan: Vec<Duration> = (0..5)
            .map(|_| gaps.next(Duration::from_millis(300), Duration::from_millis(900)))
            .collect();
        let (client, uri) = (client.clone(), server.uri());
        tasks.push(tokio::spawn(async move {
            for gap in plan {
                let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
                let resp = client.clone().oneshot(req).await.expect("no failures");
                resp.into_body().collect().await.unwrap();
                tokio::time::sleep(gap).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let max = server.max_reused_idle();
    println!(
        "longest idle before a reused request: {max:?}; {} requests, {} reused, {} connections, {} replays",
        server.seen.requests.load(SeqCst),
        server.seen.reused.load(SeqCst),
        server.seen.accepted.load(SeqCst),
        stats.snapshot().replays,
    );
    // The server's clock starts when it sent the response, the client's when it read it, and
    // the retirement runs on the connection's task: allow 50 ms of scheduling.
    assert!(max < retire_at + Duration::from_millis(50), "{max:?}");
    assert!(
        server.seen.reused.load(SeqCst) > 0,
        "short gaps still reuse"
    );
    assert!(server.seen.accepted.load(SeqCst) > 1, "long gaps dial anew");
    // A retired connection is closed by the pool's next checkout, or by the server when no
    // checkout comes first; either way it counts as closed for idleness.
    assert!(
        stats
            .snapshot()
            .connections_closed(tower_hardened::CloseReason::Idle)
            > 0
    );
}

#[tokio::test]
async fn a_replay_that_would_run_past_the_deadline_fails_as_total() {
    let server = IdleServer::start(Config {
        close_nth: Some(2),
        slow_new: Some(Duration::from_secs(5)),
        ..Config::closing_after(Duration::from_secs(30))
    })
    .await;
    let preset = Hardened::new();
    let stats = preset.stats_handle();
    let client = client::<Empty<Bytes>>(&preset);
    let get = || Request::get(server.uri()).body(Empty::new()).unwrap();
    let resp = client.clone().oneshot(get()).await.unwrap();
    resp.into_body().collect().await.unwrap();

    // The second request is lost with the connection; its replay goes to a new connection whose
    // answer takes 5 s, past the request's own 600 ms deadline.
    let mut req = get();
    req.extensions_mut()
        .insert(RequestDeadline::after(Duration::from_millis(600)));
    let started = Instant::now();
    let err = client.oneshot(req).await.unwrap_err();
    let took = started.elapsed();
    let ours = Error::find(&*err).expect("our error");
    assert_eq!(ours.phase(), Some(Phase::Total), "{err}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let snap = stats.snapshot();
    assert_eq!(snap.replays, 1);
    assert_eq!(snap.timeouts(Phase::Total), 1);
    assert_eq!(
        server.seen.accepted.load(SeqCst),
        2,
        "the replay dialed anew"
    );
}
