// The fault matrix, included by `tests/preset.rs` in `on_transport` and `on_legacy` (each
// defines `http_rig`, `client_with` and `idle_timeout` for its client).

#[tokio::test]
async fn hanging_connect_is_connect_and_leaves_no_socket_behind() {
    let hanging = hanging_listener().await;
    let syn_sent = || {
        tcp_states_to(hanging.addr)
            .iter()
            .filter(|s| **s == SYN_SENT)
            .count()
    };
    assert!(eventually(ms(2000), || syn_sent() == 0).await);
    // A response-header limit shorter than the connect's: its clock waits for the connection.
    let rig = http_rig(preset().response_headers(ms(100)));
    let uri: Uri = format!("http://{}/ok", hanging.addr).parse().unwrap();

    let start = Instant::now();
    let err = fetch(&rig, get(uri)).await.expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::Connect))),
        "{err}"
    );
    assert_fired_at(start.elapsed(), ms(300), "connect");
    let snap = rig.stats.snapshot();
    assert_eq!(snap.timeouts(Phase::Connect), 1);
    assert_eq!(snap.timeouts_total(), 1);
    // The half-open connect was abandoned, not left hanging in the kernel.
    assert!(
        eventually(ms(2000), || syn_sent() == 0).await,
        "{} sockets still connecting",
        syn_sent()
    );
    rig.finish("hanging connect", syn_sent).await;
}

mod tls {
    use super::*;

    use hyper_rustls::HttpsConnectorBuilder;
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio_rustls::rustls::ClientConfig;
    use tower_layer::Layer;

    use support::{silent_listener_apart, tls_configs};

    /// `tls_layer(hyper-rustls(connect_layer(HttpConnector)))` under the preset, HTTP/1 and 2.
    fn https_rig(hardened: Hardened, cfg: ClientConfig) -> Rig<super::HttpsClient> {
        let tasks_before = live_tasks().unwrap();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let tcp = hardened.connect_layer().layer(http);
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let connector = hardened.tls_layer().layer(tls);
        let client = super::client_with(&hardened, connector);
        Rig::new(client, &hardened, tasks_before)
    }

    #[tokio::test]
    async fn https_through_the_preset_pools_one_connection() {
        let (server_cfg, client_cfg) = tls_configs();
        let server = TestServer::start_tls_apart(server_cfg).await;
        let rig = https_rig(preset(), client_cfg);
        for _ in 0..3 {
            let resp = rig.send(get(server.https_uri("/ok"))).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2, "ALPN went through");
            assert_eq!(read_all(resp.into_body()).await.unwrap(), 2);
        }
        assert_eq!(server.requests(), 3);
        assert_eq!(server.accepted(), 1, "one pooled TLS connection");
        let snap = rig.stats.snapshot();
        assert_eq!(snap.connections_opened, 1);
        assert_eq!(snap.timeouts_total(), 0);
        rig.finish("https", || server.open()).await;
    }

    #[tokio::test]
    async fn a_huge_header_cap_is_not_wrapped_for_http2() {
        let (server_cfg, client_cfg) = tls_configs();
        let server = TestServer::start_tls_apart(server_cfg).await;
        // Accepted by the setter; HTTP/2's setting is a u32 and must saturate, not wrap to 0.
        let rig = https_rig(preset().max_response_header_bytes(1usize << 32), client_cfg);
        let resp = rig.send(get(server.https_uri("/ok"))).await;
        assert!(resp.is_ok(), "{:?}", resp.err());
    }

    #[tokio::test]
    async fn stalled_tls_handshake_is_tls_handshake_and_closes_our_socket() {
        let (addr, counters) = silent_listener_apart().await;
        let ours = || {
            tcp_states_to(addr)
                .iter()
                .filter(|s| **s == ESTABLISHED)
                .count()
        };
        let (_, client_cfg) = tls_configs();
        let rig = https_rig(preset(), client_cfg);
        let uri: Uri = format!("https://{addr}/").parse().unwrap();

        let start = Instant::now();
        let err = fetch(&rig, get(uri)).await.expect_err("must time out");
        assert_eq!(
            typed(&err),
            Some((ErrorKind::Timeout, Some(Phase::TlsHandshake))),
            "{err}"
        );
        assert_fired_at(start.elapsed(), ms(300), "TLS handshake");
        assert_eq!(
            counters.accepted.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        let snap = rig.stats.snapshot();
        assert_eq!(snap.timeouts(Phase::TlsHandshake), 1);
        assert_eq!(snap.timeouts(Phase::Connect), 0);
        // The silent server holds its end forever; ours is closed at once.
        assert!(
            eventually(ms(2000), || ours() == 0).await,
            "{} established client sockets left",
            ours()
        );
        rig.finish("stalled TLS handshake", ours).await;
    }
}

#[tokio::test]
async fn stalled_headers_are_response_headers_and_the_connection_closes() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());
    let start = Instant::now();
    let err = fetch(&rig, get(server.uri("/stall-headers")))
        .await
        .expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::ResponseHeaders))),
        "{err}"
    );
    assert_fired_at(start.elapsed(), ms(300), "response headers");
    assert_eq!(rig.stats.snapshot().timeouts(Phase::ResponseHeaders), 1);
    // A connection with a half-done exchange cannot be reused: closed, client or no client.
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    rig.finish("stalled headers", || server.open()).await;
}

#[tokio::test]
async fn stalled_body_is_body_idle_and_the_connection_closes() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());
    let resp = rig.send(get(server.uri("/stall-body"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let start = Instant::now();
    let err = read_all(resp.into_body()).await.expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::BodyIdle))),
        "{err}"
    );
    assert_fired_at(start.elapsed(), ms(300), "body idle");
    assert_eq!(rig.stats.snapshot().timeouts(Phase::BodyIdle), 1);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    rig.finish("stalled body", || server.open()).await;
}

#[tokio::test]
async fn slow_chunks_are_body_idle_while_a_steady_drip_passes_and_reuses_its_connection() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());

    // 6 chunks 100 ms apart: 600 ms in all, twice the idle limit, and no gap reaches it.
    for _ in 0..2 {
        let start = Instant::now();
        let n = fetch(&rig, get(server.uri("/slow-chunks/100/6"))).await;
        assert_eq!(n.map_err(|e| e.to_string()), Ok(6 * 16));
        assert!(start.elapsed() >= ms(500));
    }
    assert_eq!(server.accepted(), 1, "the drip's connection was reused");
    assert_eq!(server.open(), 1, "and is pooled");
    let snap = rig.stats.snapshot();
    assert_eq!((snap.connections_opened, snap.connections_reused), (1, 1));
    assert_eq!(snap.timeouts_total(), 0);
    rig.assert_settled("steady drip").await;

    // 3 chunks 700 ms apart: the first gap is too long.
    let resp = rig
        .send(get(server.uri("/slow-chunks/700/3")))
        .await
        .unwrap();
    let start = Instant::now();
    let err = read_all(resp.into_body()).await.expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::BodyIdle))),
        "{err}"
    );
    assert_fired_at(start.elapsed(), ms(300), "body idle");
    assert_eq!(rig.stats.snapshot().timeouts(Phase::BodyIdle), 1);
    // The slow body was on the pooled connection: cut, so closed.
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    rig.finish("slow chunks", || server.open()).await;
}

#[tokio::test]
async fn endless_bodies_are_cut_by_the_total_deadline() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());
    // A drip that never idles long enough for the idle limit, and a firehose, at once.
    let (drip, firehose) = tokio::join!(
        async {
            let start = Instant::now();
            (
                fetch(&rig, get(server.uri("/drip/20"))).await,
                start.elapsed(),
            )
        },
        async {
            let start = Instant::now();
            (
                fetch(&rig, get(server.uri("/endless"))).await,
                start.elapsed(),
            )
        },
    );
    for (what, (result, took)) in [("drip", drip), ("endless", firehose)] {
        let err = result.expect_err(what);
        assert_eq!(
            typed(&err),
            Some((ErrorKind::Timeout, Some(Phase::Total))),
            "{what}: {err}"
        );
        assert_fired_at(took, ms(1500), what);
    }
    assert_eq!(rig.stats.snapshot().timeouts(Phase::Total), 2);
    // Neither keeps streaming: both connections closed with the client still alive.
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    assert_eq!(server.active(), 0);
    rig.finish("endless bodies", || server.open()).await;
}

#[tokio::test]
async fn stalled_upload_is_request_write_and_the_upload_stops() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());
    // The server reads nothing for 1 s, then reads until the client stops sending; the client
    // sends an endless body, so only a stopped upload lets the connection close.
    let upload = support::endless_upload(64 * 1024)
        .map_err(BoxError::from)
        .boxed();
    let req = Request::post(server.uri("/upload-stall/1000"))
        .body(upload)
        .unwrap();
    let start = Instant::now();
    let err = fetch(&rig, req).await.expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::RequestWrite))),
        "{err}"
    );
    assert!(start.elapsed() >= ms(300), "{:?}", start.elapsed());
    assert!(
        start.elapsed() < ms(1500),
        "before the deadline: {:?}",
        start.elapsed()
    );
    assert_eq!(rig.stats.snapshot().timeouts(Phase::RequestWrite), 1);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    assert_eq!(server.accepted(), 1);
    rig.finish("stalled upload", || server.open()).await;
}

#[tokio::test]
async fn resets_are_hyper_errors_without_a_phase_and_leave_nothing() {
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());

    let err = fetch(&rig, get(server.uri("/reset-headers")))
        .await
        .expect_err("reset before headers");
    assert_eq!(typed(&err), None, "not ours: {err}");
    assert!(has_hyper_error(&err), "a hyper error: {err:?}");
    rig.assert_settled("reset before headers").await;

    let resp = rig.send(get(server.uri("/reset-body"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let err = read_all(resp.into_body())
        .await
        .expect_err("reset mid-body");
    assert_eq!(typed(&err), None, "not ours: {err}");
    assert!(has_hyper_error(&err), "a hyper error: {err:?}");

    assert_eq!(rig.stats.snapshot().timeouts_total(), 0);
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    rig.finish("resets", || server.open()).await;
}

#[tokio::test]
async fn bodies_over_max_response_body_are_body_too_large() {
    const CAP: u64 = 64 * 1024;
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset().max_response_body(CAP));

    // Exactly the cap passes.
    let n = fetch(&rig, get(server.uri(&format!("/bytes/{CAP}")))).await;
    assert_eq!(n.map_err(|e| e.to_string()), Ok(CAP));

    for path in ["/bytes/1048576", "/endless"] {
        let start = Instant::now();
        let err = fetch(&rig, get(server.uri(path))).await.expect_err(path);
        let found = Error::find(&*err).unwrap_or_else(|| panic!("{path}: not ours: {err}"));
        assert_eq!(found.kind(), ErrorKind::BodyTooLarge, "{path}: {err}");
        assert_eq!(found.phase(), None, "{path}");
        assert!(
            start.elapsed() < ms(1000),
            "{path}: cut by the cap, not a timer: {:?}",
            start.elapsed()
        );
    }
    assert_eq!(rig.stats.snapshot().timeouts_total(), 0);
    // The endless body cannot be drained: its connection is closed, not left streaming.
    assert!(
        eventually(Duration::from_secs(5), || server.active() == 0).await,
        "{} responses still being sent",
        server.active()
    );
    rig.finish("body too large", || server.open()).await;
}

#[tokio::test]
async fn dropped_64k_bodies_give_their_connections_back() {
    const N: usize = 100;
    let server = TestServer::start_apart().await;
    let rig = http_rig(preset());
    for _ in 0..N {
        let resp = rig.send(get(server.uri("/bytes/65536"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        drop(resp);
    }
    rig.assert_settled("dropped bodies").await;
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = rig.stats.snapshot();
            s.drains_finished + s.drains_abandoned(tower_hardened::DrainAbandon::Time)
                >= s.drains_started
        })
        .await
    );
    let snap = rig.stats.snapshot();
    assert!(snap.drains_started > 0, "no body was drained: {snap:?}");
    assert_eq!(server.requests(), N);
    assert!(
        server.accepted() <= 4,
        "{N} dropped bodies opened {} connections; {snap:?}",
        server.accepted()
    );
    // The transport gives up a dial when the connection it waited for came back first: the
    // server may have accepted it, the pool never counted it open.
    assert!(
        snap.connections_opened as usize <= server.accepted(),
        "{snap:?}"
    );
    assert!(snap.connections_reused as usize >= N - 4, "{snap:?}");
    assert_eq!(snap.timeouts_total(), 0);
    rig.finish("dropped bodies", || server.open()).await;
}

#[tokio::test]
async fn a_flood_at_a_stalled_server_is_bounded() {
    const FLOOD: usize = 16;
    const PER_HOST: usize = 4;
    const WAITING: usize = 4;
    let server = TestServer::start_apart().await;
    // Header limit beyond the deadline, so the stalled requests meet the deadline; the acquire
    // limit below it, so the queued ones give up waiting first.
    let rig = http_rig(
        preset()
            .response_headers(Duration::from_secs(10))
            .max_requests_per_host(PER_HOST)
            .max_waiting(WAITING)
            .acquire_timeout(ms(800)),
    );
    // Sent at once from this task (no spawned tasks, so the live-task count is the client's).
    let flood = (0..FLOOD)
        .map(|_| async {
            let start = Instant::now();
            let err = fetch(&rig, get(server.uri("/stall-headers")))
                .await
                .expect_err("a stalled server cannot answer");
            (typed(&err), start.elapsed())
        })
        .collect();
    let (outcomes, (in_flight, waiting)) = tokio::join!(join_all(flood), async {
        // While the flood is on: the per-host limit holds PER_HOST, queues WAITING.
        eventually(Duration::from_secs(1), || {
            rig.per_host.in_flight() == PER_HOST
        })
        .await;
        (rig.per_host.in_flight(), rig.per_host.waiting())
    });
    assert_eq!((in_flight, waiting), (PER_HOST, WAITING));

    let (mut overloaded, mut acquire, mut total) = (0, 0, 0);
    for (kind, took) in outcomes {
        match kind {
            Some((ErrorKind::Overloaded, Some(Phase::Acquire))) => {
                assert!(took < ms(700), "overloaded must answer at once: {took:?}");
                overloaded += 1;
            }
            Some((ErrorKind::Timeout, Some(Phase::Acquire))) => {
                assert_fired_at(took, ms(800), "acquire");
                acquire += 1;
            }
            Some((ErrorKind::Timeout, Some(Phase::Total))) => {
                assert_fired_at(took, ms(1500), "total");
                total += 1;
            }
            other => panic!("unexpected outcome {other:?} after {took:?}"),
        }
    }
    assert_eq!(
        (overloaded, acquire, total),
        (FLOOD - PER_HOST - WAITING, WAITING, PER_HOST)
    );
    let snap = rig.stats.snapshot();
    assert_eq!(snap.overloads as usize, FLOOD - PER_HOST - WAITING);
    assert_eq!(snap.timeouts(Phase::Acquire) as usize, WAITING);
    assert_eq!(snap.timeouts(Phase::Total) as usize, PER_HOST);
    assert!(
        server.peak_open() <= PER_HOST,
        "peak {}",
        server.peak_open()
    );
    assert_eq!(
        server.peak_active(),
        PER_HOST,
        "the stalled requests were served at once"
    );
    assert_eq!(server.requests(), PER_HOST);
    // Every stalled exchange was abandoned: its connection closed with the client alive.
    assert!(server.wait_open_at_most(0, Duration::from_secs(5)).await);
    rig.finish("flood", || server.open()).await;
}

#[tokio::test]
async fn idle_connections_are_reaped_by_the_pool() {
    const CONNS: usize = 3;
    let idle = ms(300);
    let server = TestServer::start_apart().await;
    let rig = http_rig(idle_timeout(preset(), idle));
    // Overlapping requests, so each needs a connection of its own.
    let all = (0..CONNS)
        .map(|_| fetch(&rig, get(server.uri("/slow-chunks/100/3"))))
        .collect();
    let done = join_all(all).await;
    for n in done {
        assert_eq!(n.map_err(|e| e.to_string()), Ok(48));
    }
    assert_eq!(server.accepted(), CONNS);
    assert_eq!(server.open(), CONNS, "pooled after use");
    let idle_since = Instant::now();

    // Reaped with the client alive and untouched: between the idle timeout and twice that.
    assert!(
        server.wait_open_at_most(0, Duration::from_secs(5)).await,
        "{} idle connections never reaped",
        server.open()
    );
    let reaped_after = idle_since.elapsed();
    assert!(
        reaped_after >= idle && reaped_after < 2 * idle + Duration::from_millis(250),
        "reaped after {reaped_after:?}, idle timeout {idle:?}"
    );
    let snap = rig.stats.snapshot();
    assert_eq!(
        snap.connections_closed(CloseReason::Idle) as usize,
        CONNS,
        "{snap:?}"
    );
    assert_eq!(snap.connections_open, 0);
    rig.finish("idle reaping", || server.open()).await;
}
