//! The stale keep-alive race: a server that closes connections idle for 150 ms (nginx's
//! `keepalive_timeout`, shortened), and callers that reuse their connections right then.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Service, ServiceExt};
use tower_hardened::{BoxError, Hardened};

use crate::Row;

const IDLE_CLOSE: Duration = Duration::from_millis(150);
const CALLERS: usize = 16;
const ROUNDS: usize = 12;

/// An HTTP/1 server that answers every request with "ok" and closes a connection once it has
/// waited `IDLE_CLOSE` for the next request. Returns its address and its accept count.
fn idle_closing_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    tower_hardened_test_server::on_own_thread(|| async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                count.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let idle_since = tokio::time::Instant::now();
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            let deadline = idle_since + IDLE_CLOSE;
                            match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
                                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                _ => return, // idle too long, or the client went away
                            }
                        }
                        buf.clear(); // GETs only: the head is the whole request
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if sock.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    })
}

/// `CALLERS` in lock step for `ROUNDS`: a GET each, then the same gap for all, within 3 ms of
/// the server's timeout. The failures and the first error.
async fn race<S, B>(svc: S, uri: http::Uri) -> (usize, Option<String>)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // The same gaps for both clients: a fixed spread within ±3 ms of 148 ms.
    let gaps: Arc<Vec<Duration>> = Arc::new(
        (0..ROUNDS)
            .map(|i| Duration::from_micros(145_000 + (i as u64 * 3_700) % 6_000))
            .collect(),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (svc, uri, gaps, barrier) =
                (svc.clone(), uri.clone(), gaps.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for gap in gaps.iter() {
                    barrier.wait().await;
                    let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
                    let svc = svc.clone();
                    let res = async move {
                        let resp = svc.oneshot(req).await.map_err(Into::into)?;
                        resp.into_body().collect().await.map_err(Into::into)?;
                        Ok::<_, BoxError>(())
                    };
                    if let Err(e) = res.await {
                        errors.push(crate::describe(&*e).0);
                    }
                    tokio::time::sleep(*gap).await;
                }
                errors
            })
        })
        .collect();
    let mut failed = 0;
    let mut first = None;
    for t in tasks {
        let errors = t.await.unwrap();
        failed += errors.len();
        if first.is_none() {
            first = errors.into_iter().next();
        }
    }
    (failed, first)
}

async fn row<S, B>(client: &'static str, svc: S, replays: impl Fn() -> u64) -> Row
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (addr, accepted) = idle_closing_server();
    let probe = crate::Probe::start();
    let mut row = Row::new("server closes idle conns (150ms)", client);
    let start = Instant::now();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let (failed, first) = race(svc.clone(), uri).await;
    row.time = Some(start.elapsed());
    let n = CALLERS * ROUNDS;
    row.outcome = match (first, replays()) {
        (Some(e), _) => format!("{failed} of {n} failed: {e}"),
        (None, _) if client == "bare" => format!("0 of {n} failed"),
        (None, r) => format!("0 of {n} failed, {r} replayed"),
    };
    drop(svc);
    probe.finish(&mut row, None).await;
    row.opened = Some(accepted.load(SeqCst));
    row
}

pub async fn rows() -> Vec<Row> {
    let bare = tower_hardened_test_server::bare_client::<Empty<Bytes>>();
    let bare_row = row("bare", bare, || 0).await;
    let preset = Hardened::new();
    let stats = preset.stats_handle();
    let hardened = preset.client::<Empty<Bytes>>();
    drop(preset); // its clients keep what they need; the row counts the client's tasks alone
    let hardened_row = row("hardened", hardened, move || stats.snapshot().replays).await;
    vec![bare_row, hardened_row]
}
