//! Dials that end in unusual ways, against the crate's transport: a connector that panics, a
//! dial whose runtime goes away, and a burst to a new HTTP/2 host (ALPN) whose extra dials must
//! not each become a connection. (Found by review; each test failed before its fix.)
#![cfg(feature = "transport")]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tower_hardened::{BoxError, Transport};

/// A dial whose task dies with its runtime (one transport used from two runtimes) reports
/// itself failed: the request queued behind it on the other runtime fails at once, saying so,
/// instead of waiting for it forever, and its slot under `max_conns_per_host` comes back for
/// the next request.
#[test]
fn a_dial_that_dies_with_its_runtime_frees_its_slot_for_the_next_request() {
    // A server in its own runtime thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_r| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    });
    let addr = addr_rx.recv().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // The first dial hangs (a slow connect); later ones connect.
    let connector = tower::service_fn(move |_uri: Uri| {
        let n = c.fetch_add(1, SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            let s = TcpStream::connect(addr).await?;
            Ok::<_, BoxError>(TokioIo::new(s))
        }
    });
    let transport: Transport<Empty<Bytes>> = Transport::builder()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_millis(200))
        .build_with_connector(connector);
    let uri: Uri = format!("http://{addr}/").parse().unwrap();

    let rt_a = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt_a.block_on(async {
        let t = transport.clone();
        let u = uri.clone();
        tokio::spawn(async move {
            let _ = t.oneshot(Request::get(u).body(Empty::new()).unwrap()).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert_eq!(transport.open_connections(&uri), 1, "one dial in flight");
    let rt_b = tokio::runtime::Runtime::new().unwrap();
    // A request on runtime B queues behind runtime A's dial (covered by it).
    let t = transport.clone();
    let u = uri.clone();
    let b = rt_b.spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(3),
            t.oneshot(Request::get(u).body(Empty::new()).unwrap()),
        )
        .await
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(rt_a);
    let res = rt_b.block_on(b).unwrap();
    let err = res
        .expect("the request hung 3 s, past its 200 ms acquire timeout")
        .unwrap_err();
    assert!(
        err.to_string().contains("the dial ended without a result"),
        "{err}"
    );
    assert_eq!(transport.open_connections(&uri), 0, "the slot came back");
    let next = rt_b.block_on(async {
        let resp = transport
            .clone()
            .oneshot(Request::get(uri.clone()).body(Empty::new()).unwrap())
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    });
    assert_eq!(next, "ok");
    assert_eq!(calls.load(SeqCst), 2, "a second dial, in the freed slot");
}

/// A connector that panics (a bug in user code): the dial's task dies, the dial reports itself
/// failed, its request gets an error at once and its slot comes back.
#[tokio::test]
async fn a_panicking_connector_fails_its_request_and_frees_its_slot() {
    let connector = tower::service_fn(|_uri: Uri| async move {
        let fail = true;
        if fail {
            panic!("connector bug");
        }
        TcpStream::connect("127.0.0.1:9")
            .await
            .map(TokioIo::new)
            .map_err(BoxError::from)
    });
    let transport: Transport<Empty<Bytes>> = Transport::builder()
        .max_conns_per_host(1)
        .acquire_timeout(Duration::from_millis(200))
        .build_with_connector(connector);
    let uri: Uri = "http://127.0.0.1:9/".parse().unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(3),
        transport
            .clone()
            .oneshot(Request::get(uri.clone()).body(Empty::new()).unwrap()),
    )
    .await;
    let err = res
        .expect("hung 3 s past a 200 ms acquire timeout")
        .unwrap_err();
    assert!(
        err.to_string().contains("the dial ended without a result"),
        "{err}"
    );
    assert_eq!(transport.open_connections(&uri), 0, "the slot came back");
}

/// IO that says ALPN chose h2 (as TLS would), over plain TCP to an h2c server.
struct FakeH2(TokioIo<TcpStream>);
impl hyper_util::client::legacy::connect::Connection for FakeH2 {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new().negotiated_h2()
    }
}
impl hyper::rt::Read for FakeH2 {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}
impl hyper::rt::Write for FakeH2 {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A burst to an HTTP/2-by-ALPN host before its first connection: one dial per request
/// (expected capacity 1 until the first connection says 100). Once the first connection
/// serves them all, the other dials are given up at once (a dial nobody waits for keeps going
/// only for HTTP/1), instead of each becoming an HTTP/2 connection nobody needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alpn_h2_burst_to_a_new_host_opens_one_connection() {
    let server = tower_hardened_test_server::TestServer::start().await;
    let addr: std::net::SocketAddr = server
        .uri("/ok")
        .authority()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let dials = n.clone();
    let connector = tower::service_fn(move |_uri: Uri| {
        let i = n.fetch_add(1, SeqCst) as u64;
        async move {
            // DNS + TCP + TLS on a LAN: 30 ms (plus 5 ms per dial before) before the server sees anything.
            tokio::time::sleep(Duration::from_millis(30 + 5 * i)).await;
            let s = TcpStream::connect(addr).await?;
            Ok::<_, BoxError>(FakeH2(TokioIo::new(s)))
        }
    });
    let stats = tower_hardened::Stats::new();
    let transport: Transport<Empty<Bytes>> = Transport::builder()
        .stats(stats.clone())
        .build_with_connector(connector);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let t = transport.clone();
        let u = server.uri("/ok");
        tasks.push(tokio::spawn(async move {
            let resp = t
                .oneshot(Request::get(u).body(Empty::new()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            resp.into_body().collect().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Past the orphan grace: whatever was kept has finished by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = stats.snapshot();
    assert!(dials.load(SeqCst) > 1, "the burst started several dials");
    assert!(
        server.accepted() <= 2 && s.connections_opened <= 2,
        "64 requests to one HTTP/2 host opened {} connections ({s:?})",
        server.accepted()
    );
}
