//! The fault matrix of the loopback server (`tests/server`), end to end through the
//! [`Hardened`] preset, twice: on the crate's transport (`Hardened::client`, module
//! `on_transport`) and on hyper-util's legacy client (`Hardened::legacy_client`, module
//! `on_legacy`); the tests are `tests/preset/matrix.rs`, included in both. Each fault ends in the
//! typed error of its phase (found with `Error::find` through the client's wrapping), and after
//! each one nothing is left behind, measured:
//!
//! - the preset's stats: nothing in flight, nothing waiting;
//! - both limiters (read through `Hardened::limit_handle` and `Hardened::per_host_handle`):
//!   every permit available, no host with state;
//! - the server's open connections: back to 0 where the fault must close the connection, while
//!   the client still exists, and always once it is dropped; the pool's own count of open
//!   connections back to 0;
//! - live tokio tasks of the test's runtime back to the count taken before the client existed.
//!   The servers run on a runtime and thread of their own (`support::apart`), so their
//!   per-connection tasks are not counted: the count is the client's alone.
//!
//! Limits are small (total 1.5 s, every phase 300 ms) so the file runs in a few seconds; real-time
//! bounds are generous (the machine is loaded), exact ones live in the unit tests.
#![cfg(feature = "preset")]

use tower_hardened_test_server as support;

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceExt};
use tower_hardened::{
    BoxError, CloseReason, ConnectTimeout, Error, ErrorKind, Hardened, HardenedClient,
    HardenedConnector, HardenedRequestBody, HardenedService, LimitHandle, PerHostHandle, Phase,
    PoolClient, Stats, TlsHandshakeTimeout,
};

use support::{eventually, hanging_listener, live_tasks, tcp_states_to, TestServer};

/// One request body type for every test: empty GETs and endless uploads alike.
type ReqBody = BoxBody<Bytes, BoxError>;

const SYN_SENT: u8 = 2;
const ESTABLISHED: u8 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The preset with the small limits of this file. Every phase has the same limit, as in the
/// preset's defaults: each stall must still be named by its own phase (the response-header
/// clock does not run while connecting, handshaking or uploading).
fn preset() -> Hardened {
    Hardened::new()
        .total(ms(1500))
        .connect(ms(300))
        .tls_handshake(ms(300))
        .response_headers(ms(300))
        .body_idle(ms(300))
        .request_write(ms(300))
        .max_in_flight(8)
        .max_requests_per_host(8)
        .max_waiting(8)
        .acquire_timeout(ms(1000))
}

fn get(uri: Uri) -> Request<ReqBody> {
    let empty = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    Request::get(uri).body(empty).unwrap()
}

/// The kind and phase of this crate's error inside `e`, if there is one.
fn typed(e: &BoxError) -> Option<(ErrorKind, Option<Phase>)> {
    Error::find(&**e).map(|found| (found.kind(), found.phase()))
}

/// Whether a `hyper::Error` is somewhere in the source chain of `e`.
fn has_hyper_error(e: &BoxError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&**e);
    while let Some(err) = next {
        if err.is::<hyper::Error>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// Fired no earlier than `limit` and not absurdly late (a loaded machine: 2 s of slack).
fn assert_fired_at(took: Duration, limit: Duration, what: &str) {
    assert!(took >= limit, "{what}: fired early, after {took:?}");
    assert!(
        took < limit + Duration::from_secs(2),
        "{what}: fired late, after {took:?}"
    );
}

/// Reads a body to its end, dropping the data; the byte count.
async fn read_all<B>(body: B) -> Result<u64, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        n += frame.data_ref().map_or(0, |d| d.remaining() as u64);
    }
    Ok(n)
}

/// A preset client and the handles that measure what it leaves behind.
struct Rig<T> {
    client: Option<T>,
    stats: Stats,
    global: LimitHandle,
    per_host: PerHostHandle,
    tasks_before: usize,
}

impl<T> Rig<T>
where
    T: Service<Request<ReqBody>, Error = BoxError> + Clone,
{
    fn new(client: T, hardened: &Hardened, tasks_before: usize) -> Self {
        Rig {
            client: Some(client),
            stats: hardened.stats_handle(),
            global: hardened.limit_handle(),
            per_host: hardened.per_host_handle(),
            tasks_before,
        }
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<T::Response, BoxError> {
        self.client.clone().unwrap().oneshot(req).await
    }

    fn settled(&self) -> bool {
        let s = self.stats.snapshot();
        s.in_flight == 0
            && s.waiting == 0
            && self.global.in_flight() == 0
            && self.global.waiting() == 0
            && self.global.available() == self.global.limit()
            && self.per_host.in_flight() == 0
            && self.per_host.waiting() == 0
            && self.per_host.hosts() == 0
    }

    fn describe(&self) -> String {
        format!(
            "global: {} in flight, {} waiting, {}/{} available; per host: {} in flight, \
             {} waiting, {} hosts; {:?}",
            self.global.in_flight(),
            self.global.waiting(),
            self.global.available(),
            self.global.limit(),
            self.per_host.in_flight(),
            self.per_host.waiting(),
            self.per_host.hosts(),
            self.stats.snapshot()
        )
    }

    /// Nothing in flight, nothing waiting, every permit back (the client still exists).
    async fn assert_settled(&self, what: &str) {
        let ok = eventually(Duration::from_secs(5), || self.settled()).await;
        assert!(ok, "{what}: left behind: {}", self.describe());
    }

    /// Settled, then the client dropped: no task of ours left, no connection open at the
    /// server (`server_open`) nor in the pool's count.
    async fn finish(mut self, what: &str, server_open: impl Fn() -> usize) {
        self.assert_settled(what).await;
        drop(self.client.take());
        let before = self.tasks_before;
        let tasks_back =
            eventually(Duration::from_secs(5), || live_tasks().unwrap() <= before).await;
        assert!(
            tasks_back,
            "{what}: {} live tasks after the client was dropped, {before} before it existed",
            live_tasks().unwrap()
        );
        let closed = eventually(Duration::from_secs(5), || server_open() == 0).await;
        assert!(
            closed,
            "{what}: {} connections still open at the server after the client was dropped",
            server_open()
        );
        let pool_open = self.stats.snapshot().connections_open;
        assert_eq!(
            pool_open, 0,
            "{what}: the pool still counts open connections"
        );
    }
}

/// Reads the response to `req` to its end: the body's byte count or the error of either stage.
async fn fetch<T, B>(rig: &Rig<T>, req: Request<ReqBody>) -> Result<u64, BoxError>
where
    T: Service<Request<ReqBody>, Response = Response<B>, Error = BoxError> + Clone,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let resp = rig.send(req).await?;
    read_all(resp.into_body()).await
}

/// The HTTPS connector of the TLS tests: the preset's layers around hyper-rustls.
type Https = TlsHandshakeTimeout<
    hyper_rustls::HttpsConnector<
        ConnectTimeout<hyper_util::client::legacy::connect::HttpConnector>,
    >,
>;

/// With an adaptive per-host limit the preset runs its layered stack, over the same transport as
/// the fused one: the transport must still find the response-header clock (in the extensions
/// there) and hold it while it connects, so a hanging connect is `Connect`, not a response-header
/// timeout that counted the dial.
#[tokio::test]
async fn with_adaptive_limits_a_hanging_connect_is_still_connect() {
    use tower_hardened::{AdaptiveLimitLayer, Gradient};
    let hanging = hanging_listener().await;
    let hardened = preset()
        .response_headers(ms(100))
        .adaptive(AdaptiveLimitLayer::new(Gradient::new(), 4..=64));
    let client = hardened.client::<ReqBody>();
    let uri: Uri = format!("http://{}/ok", hanging.addr).parse().unwrap();
    let start = Instant::now();
    let err = client.oneshot(get(uri)).await.expect_err("must time out");
    assert_eq!(
        typed(&err),
        Some((ErrorKind::Timeout, Some(Phase::Connect))),
        "{err}"
    );
    assert_fired_at(start.elapsed(), ms(300), "connect");
}

/// The matrix on the crate's transport: what `Hardened::client()` returns.
mod on_transport {
    use super::*;

    /// The preset's client. The `Hardened` value is dropped here: only the client (and the
    /// stats handle) remain, so dropping the client must end everything.
    fn http_rig(hardened: Hardened) -> Rig<HardenedClient<ReqBody>> {
        let tasks_before = live_tasks().unwrap();
        let client = hardened.client::<ReqBody>();
        Rig::new(client, &hardened, tasks_before)
    }

    #[allow(dead_code)] // used by the TLS tests only
    type HttpsClient = HardenedClient<ReqBody>;

    #[allow(dead_code)] // used by the TLS tests only
    fn client_with(hardened: &Hardened, connector: Https) -> HttpsClient {
        hardened.client_with(connector)
    }

    fn idle_timeout(hardened: Hardened, idle: Duration) -> Hardened {
        hardened.transport_with(|t| t.idle_timeout(idle))
    }

    include!("preset/matrix.rs");
}

/// The same matrix on hyper-util's legacy client, as `Hardened::legacy_client()` builds it.
mod on_legacy {
    use super::*;

    type Legacy<C> = HardenedService<PoolClient<C, HardenedRequestBody<ReqBody>>>;

    fn http_rig(hardened: Hardened) -> Rig<Legacy<HardenedConnector>> {
        let tasks_before = live_tasks().unwrap();
        let client = hardened.legacy_client::<ReqBody>();
        Rig::new(client, &hardened, tasks_before)
    }

    #[allow(dead_code)] // used by the TLS tests only
    type HttpsClient = Legacy<Https>;

    #[allow(dead_code)] // used by the TLS tests only
    fn client_with(hardened: &Hardened, connector: Https) -> HttpsClient {
        hardened.legacy_client_with(connector)
    }

    fn idle_timeout(hardened: Hardened, idle: Duration) -> Hardened {
        hardened.pool_with(|p| p.idle_timeout(idle))
    }

    include!("preset/matrix.rs");
}

/// Awaits every future on this task, concurrently, in order.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
