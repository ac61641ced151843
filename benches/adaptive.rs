//! Adaptive against static concurrency limits, on loopback, against a real hyper server whose
//! capacity changes during the run.
//!
//! The server answers a request in `BASE` (40 ms, a sleep, so the loaded machine's CPU does not
//! set the latency) while at most `C` requests are being served, and in `BASE × n / C` when
//! `n > C` are (processor sharing: its throughput stays `C / BASE`, its latency grows). The
//! time is spent in the **body**: headers come at once, the body's one chunk after the delay,
//! so a limiter that measured latency at the headers would see none. `C` is 24 for the first
//! phase, 12 for the second, 24 again for the third (`ADAPTIVE_PHASE_SECS` each, default 3).
//!
//! The client (hyper-util's legacy client, one runtime) sends requests open-loop at 1.5 × the
//! largest capacity (900 per second), each with a 2 s deadline, through one limiter with no
//! queue (`max_waiting(0)`: a request finding the limit full is refused at once, so latency is
//! the server's, not a queue's). Limiters: `Gradient` and `Aimd` (defaults, initial limit 20,
//! limits 1..=500), a static limit tuned for the first `C` (24) and one 4x too high (96).
//!
//! Reported per phase: goodput (bodies read to the end, per second, over the whole phase, and
//! as a ratio to the best static limit of that phase), p99 latency of the requests started
//! outside the 2 s after each change (and after the start), as a multiple of `BASE`, and the
//! time to follow the change: from the change until the limit is within ±25 % of the best
//! static limit for the new `C` (`C` itself: on this server any limit below `C` loses
//! throughput and any above it only adds latency) and stays there for 500 ms.
//!
//! Criterion does not fit: this is one run of a control loop over time, not a routine timed
//! over many iterations. A plain `main` (`harness = false`), bounded in time:
//!
//! ```text
//! cargo bench --bench adaptive                          # about 40 s
//! ADAPTIVE_PHASE_SECS=5 cargo bench --bench adaptive    # longer phases
//! ```
#![allow(unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_hardened::{
    AdaptiveLimitHandle, AdaptiveLimitLayer, Aimd, ConcurrencyLimitLayer, DeadlineLayer, Gradient,
};

const BASE: Duration = Duration::from_millis(40);
const C_HIGH: usize = 24;
const C_LOW: usize = 12;
/// Offered load: 1.5 × the largest capacity.
const RATE: f64 = 1.5 * C_HIGH as f64 / 0.040;
/// p99 is measured outside this long after each change.
const SETTLE: Duration = Duration::from_secs(2);
/// "Followed" means inside the band for this long (or to the end of the phase).
const HOLD: Duration = Duration::from_millis(500);

// ---- The server ----

#[derive(Default)]
struct ServerState {
    capacity: AtomicUsize,
    serving: AtomicUsize,
}

/// Counts a request as served until its body is sent or dropped.
struct Serving(Arc<ServerState>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, SeqCst);
    }
}

/// One chunk after the delay, then the end.
struct SlowBody {
    sleep: Pin<Box<Sleep>>,
    serving: Option<Serving>,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.serving.is_none() {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.serving = None;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"ok")))))
    }

    fn is_end_stream(&self) -> bool {
        self.serving.is_none()
    }
}

/// Starts the server on its own thread and runtime; returns its address and state.
fn start_server() -> (std::net::SocketAddr, Arc<ServerState>) {
    let state = Arc::new(ServerState::default());
    state.capacity.store(C_HIGH, SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req: Request<_>| {
                        let st = st.clone();
                        async move {
                            let n = st.serving.fetch_add(1, SeqCst) + 1;
                            let c = st.capacity.load(SeqCst);
                            let delay = BASE.mul_f64((n as f64 / c as f64).max(1.0));
                            let body = SlowBody {
                                sleep: Box::pin(tokio::time::sleep(delay)),
                                serving: Some(Serving(st)),
                            };
                            Ok::<_, Infallible>(Response::new(body))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (rx.recv().unwrap(), state)
}

// ---- The load ----

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ok,
    Refused,
    Failed,
}

#[derive(Clone, Copy)]
struct Rec {
    start: Duration,
    end: Duration,
    kind: Kind,
}

struct Run {
    recs: Vec<Rec>,
    /// (time, limit) every 10 ms.
    limits: Vec<(Duration, usize)>,
}

async fn drive<S, RB>(svc: S, limit: impl Fn() -> usize, uri: Uri, phase: Duration) -> Run
where
    S: Service<Request<Empty<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<tower_hardened::BoxError> + Send,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<tower_hardened::BoxError>,
{
    let recs = Arc::new(Mutex::new(Vec::new()));
    let mut limits = Vec::new();
    let t0 = Instant::now();
    let end = phase * 3;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut owed = 0.0;
    let mut last = t0;
    let mut next_sample = Duration::ZERO;
    let mut spawned = 0;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let t = now - t0;
        if t >= end {
            break;
        }
        if t >= next_sample {
            limits.push((t, limit()));
            next_sample += Duration::from_millis(10);
        }
        owed += RATE * (now - last).as_secs_f64();
        last = now;
        while owed >= 1.0 {
            owed -= 1.0;
            spawned += 1;
            let svc = svc.clone();
            let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
            let recs = recs.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let kind = match svc.oneshot(req).await {
                    Ok(resp) => match resp.into_body().collect().await {
                        Ok(_) => Kind::Ok,
                        Err(_) => Kind::Failed,
                    },
                    Err(e) => {
                        let e: tower_hardened::BoxError = e.into();
                        match tower_hardened::Error::find(&*e) {
                            Some(e) if e.is_overloaded() => Kind::Refused,
                            _ => Kind::Failed,
                        }
                    }
                };
                let rec = Rec {
                    start: start - t0,
                    end: Instant::now() - t0,
                    kind,
                };
                recs.lock().unwrap().push(rec);
            });
        }
    }
    // Let the last requests finish (each is bounded by its 2 s deadline).
    let drained = Instant::now() + Duration::from_millis(2100);
    while recs.lock().unwrap().len() < spawned && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recs = std::mem::take(&mut *recs.lock().unwrap());
    Run { recs, limits }
}

// ---- The report ----

struct PhaseResult {
    goodput: f64,
    p99: Option<Duration>,
    follow: Option<Duration>,
    mean_limit: f64,
    refused: usize,
    failed: usize,
}

fn capacity(p: usize) -> usize {
    if p == 1 {
        C_LOW
    } else {
        C_HIGH
    }
}

fn analyse(run: &Run, phase: Duration) -> Vec<PhaseResult> {
    (0..3)
        .map(|p| {
            let (from, to) = (phase * p as u32, phase * (p as u32 + 1));
            let ok = run
                .recs
                .iter()
                .filter(|r| r.kind == Kind::Ok && r.end >= from && r.end < to)
                .count();
            let mut lat: Vec<Duration> = run
                .recs
                .iter()
                .filter(|r| r.kind == Kind::Ok && r.start >= from + SETTLE && r.start < to)
                .map(|r| r.end - r.start)
                .collect();
            lat.sort();
            let p99 = (!lat.is_empty()).then(|| lat[(lat.len() * 99 / 100).min(lat.len() - 1)]);
            let c = capacity(p) as f64;
            let band = |l: usize| (l as f64) >= 0.75 * c && (l as f64) <= 1.25 * c;
            let samples: Vec<_> = run
                .limits
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .collect();
            let follow = samples.iter().enumerate().find_map(|(i, (t, _))| {
                let held = samples[i..]
                    .iter()
                    .take_while(|(u, _)| *u < *t + HOLD)
                    .all(|(_, l)| band(*l));
                held.then(|| *t - from)
            });
            let last: Vec<_> = samples
                .iter()
                .filter(|(t, _)| *t >= to.saturating_sub(Duration::from_secs(1)))
                .map(|(_, l)| *l as f64)
                .collect();
            PhaseResult {
                goodput: ok as f64 / phase.as_secs_f64(),
                p99,
                follow,
                mean_limit: last.iter().sum::<f64>() / last.len().max(1) as f64,
                refused: run
                    .recs
                    .iter()
                    .filter(|r| r.kind == Kind::Refused && r.start >= from && r.start < to)
                    .count(),
                failed: run
                    .recs
                    .iter()
                    .filter(|r| r.kind == Kind::Failed && r.start >= from && r.start < to)
                    .count(),
            }
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn run_one(name: &str, phase: Duration) -> Run {
    let (addr, server) = start_server();
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let client: Client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http();
    let deadline = DeadlineLayer::new(Duration::from_secs(2));
    // The capacity changes at each phase boundary.
    let switch = {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            server.capacity.store(C_LOW, SeqCst);
            tokio::time::sleep(phase).await;
            server.capacity.store(C_HIGH, SeqCst);
        })
    };
    let adaptive = |layer: AdaptiveLimitLayer| {
        let layer = layer.max_waiting(0);
        let handle: AdaptiveLimitHandle = layer.handle();
        let svc = ServiceBuilder::new()
            .layer(deadline.clone())
            .layer(layer)
            .service(client.clone());
        (svc, handle)
    };
    let run = match name {
        "Gradient" => {
            let (svc, h) = adaptive(AdaptiveLimitLayer::new(Gradient::new(), 1..=500));
            drive(svc, move || h.limit(), uri, phase).await
        }
        "Aimd" => {
            let (svc, h) = adaptive(AdaptiveLimitLayer::new(Aimd::new(), 1..=500));
            drive(svc, move || h.limit(), uri, phase).await
        }
        _ => {
            let limit = if name.contains("4x") {
                4 * C_HIGH
            } else {
                C_HIGH
            };
            let svc = deadline.layer(
                ConcurrencyLimitLayer::new(limit)
                    .max_waiting(0)
                    .layer(client.clone()),
            );
            drive(svc, move || limit, uri, phase).await
        }
    };
    switch.abort();
    run
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else: run only
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = std::env::var("ADAPTIVE_PHASE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(3, 20);
    let phase = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = [
        "Gradient",
        "Aimd",
        "static 24 (tuned for C=24)",
        "static 96 (4x)",
    ];
    let load_before = loadavg();
    let mut results = Vec::new();
    for name in names {
        let run = rt.block_on(run_one(name, phase));
        if name == "Gradient" {
            let line: Vec<String> = run
                .limits
                .iter()
                .step_by(25)
                .map(|(t, l)| format!("{:.2}s:{l}", t.as_secs_f64()))
                .collect();
            println!("Gradient limit every 250 ms: {}", line.join(" "));
        }
        results.push((name, analyse(&run, phase)));
    }
    let load_after = loadavg();

    println!(
        "\nserver: base {} ms, capacity {C_HIGH} -> {C_LOW} -> {C_HIGH}, phases of {secs} s; \
         offered {RATE:.0} req/s; load average before {load_before}, after {load_after}",
        BASE.as_millis()
    );
    let best: Vec<f64> = (0..3)
        .map(|p| {
            results
                .iter()
                .filter(|(n, _)| n.starts_with("static"))
                .map(|(_, r)| r[p].goodput)
                .fold(0.0, f64::max)
        })
        .collect();
    println!(
        "\n| limiter | phase (C) | goodput req/s | vs best static | p99 ms (x base) | follow | limit (last 1 s) | refused | failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, r) in &results {
        for (p, x) in r.iter().enumerate() {
            let p99 = x.p99.map_or("-".into(), |d| {
                format!(
                    "{:.0} ({:.2}x)",
                    d.as_secs_f64() * 1e3,
                    d.as_secs_f64() / BASE.as_secs_f64()
                )
            });
            let follow = if p == 0 {
                x.follow
                    .map_or("never".into(), |d| format!("({:.2} s)", d.as_secs_f64()))
            } else {
                x.follow
                    .map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
            };
            println!(
                "| {name} | {} ({}) | {:.0} | {:.2}x | {p99} | {follow} | {:.1} | {} | {} |",
                p + 1,
                capacity(p),
                x.goodput,
                x.goodput / best[p],
                x.mean_limit,
                x.refused,
                x.failed
            );
        }
    }
    println!(
        "\nideal goodput: {:.0} / {:.0} / {:.0} req/s (C / base); follow = time from the change \
         until the limit is within ±25 % of C for {} ms (phase 1: from the start)",
        C_HIGH as f64 / BASE.as_secs_f64(),
        C_LOW as f64 / BASE.as_secs_f64(),
        C_HIGH as f64 / BASE.as_secs_f64(),
        HOLD.as_millis()
    );
}
