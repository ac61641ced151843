//! The showcase: starts a misbehaving server on loopback and, for each misbehaviour, runs a bare
//! hyper-util client next to the hardened stack, then prints one table.
//!
//! ```text
//! cargo run --release --example showcase
//! cargo run --release --example showcase -- --svg docs/showcase.svg   # the table, and a picture
//! ```
//!
//! The server is `tower_hardened_test_server` (`tests/server/` in this repository).
//! Each scenario lives in its own module and returns rows; `main` only runs them and prints.
//! The hardened side is always the one-line preset, `Hardened::new()`, with a few limits made
//! short so the table prints in seconds. Every server runs on its own runtime thread, so the
//! "tasks" column counts the client's tasks alone: live tokio tasks left after the scenario and
//! the client are gone. "rss KiB" is the growth of this process's resident memory over the row;
//! "conns" and "peak" are what the server saw.
#![allow(unreachable_pub)]

mod connect;
mod drain;
mod held;
mod keepalive;
mod limit;
mod pool;
mod request;
mod svg;

use std::time::Duration;

use tower_hardened_test_server::{live_tasks, rss_kib, TestServer};

/// One line of the table: one client facing one misbehaviour.
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// The misbehaviour.
    pub scenario: &'static str,
    /// `bare` or `hardened`.
    pub client: &'static str,
    /// What the caller saw, in a few words.
    pub outcome: String,
    /// Wall time for the caller.
    pub time: Option<Duration>,
    /// The phase named by the error, if any.
    pub phase: Option<String>,
    /// Connections the server accepted.
    pub opened: Option<usize>,
    /// Most connections open at once at the server.
    pub peak_open: Option<usize>,
    /// Resident memory growth over the scenario, KiB.
    pub rss_kib: Option<i64>,
    /// Live tokio tasks left when the scenario ended (beyond the baseline).
    pub tasks_left: Option<i64>,
}

impl Row {
    pub fn new(scenario: &'static str, client: &'static str) -> Self {
        Row {
            scenario,
            client,
            ..Row::default()
        }
    }
}

/// Starts a fresh misbehaving server on a runtime of its own (one thread), so its tasks are not
/// counted with the client's.
pub fn fresh_server() -> TestServer {
    TestServer::start_on_own_thread()
}

/// What a row measures around a scenario: resident memory and live tasks before it, and the
/// server's counts after it.
pub struct Probe {
    rss: Option<u64>,
    tasks: usize,
}

impl Probe {
    /// Takes the "before" numbers. Create it before the client.
    pub fn start() -> Probe {
        Probe {
            rss: rss_kib(),
            tasks: live_tasks().unwrap_or(0),
        }
    }

    /// Fills the resource columns of `row`. Call it after the client is dropped: it gives
    /// connection tasks up to 1.5 s to notice and end, then counts what is left.
    pub async fn finish(self, row: &mut Row, server: Option<&TestServer>) {
        let settle = std::time::Instant::now();
        while live_tasks().unwrap_or(0) > self.tasks
            && settle.elapsed() < Duration::from_millis(1500)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        row.tasks_left = live_tasks().map(|n| n as i64 - self.tasks as i64);
        row.rss_kib = match (self.rss, rss_kib()) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        if let Some(server) = server {
            row.opened = Some(server.accepted());
            row.peak_open = Some(server.peak_open());
        }
    }
}

/// Sends `req` through `svc` and reads the whole body, giving up after `patience`; fills the
/// outcome, phase and time of `row`.
pub async fn exchange<S, B, RB>(svc: S, req: http::Request<B>, patience: Duration, row: &mut Row)
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<tower_hardened::BoxError>,
    RB: http_body::Body,
    RB::Error: Into<tower_hardened::BoxError>,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let start = std::time::Instant::now();
    // Read like a streaming consumer: count the bytes and drop them, so the memory column shows
    // what the client keeps, not what this caller would have collected.
    let run = async {
        let resp = svc.oneshot(req).await.map_err(Into::into)?;
        let mut body = std::pin::pin!(resp.into_body());
        let mut n = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(Into::into)?;
            n += frame.data_ref().map_or(0, bytes::Buf::remaining);
        }
        Ok::<_, tower_hardened::BoxError>(n)
    };
    match tokio::time::timeout(patience, run).await {
        Err(_) => row.outcome = format!("still waiting after {patience:?}"),
        Ok(Ok(n)) => row.outcome = format!("ok, {n} bytes"),
        Ok(Err(e)) => {
            let (text, phase) = describe(&*e);
            row.outcome = text;
            row.phase = phase;
        }
    }
    row.time = Some(start.elapsed());
}

/// The phase of this crate's error anywhere in `err`'s chain, or a short description.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> (String, Option<String>) {
    match tower_hardened::Error::find(err) {
        Some(e) => (e.to_string(), e.phase().map(|p| p.to_string())),
        None => {
            let mut text = err.to_string();
            let mut src = err.source();
            while let Some(s) = src {
                text = s.to_string();
                src = s.source();
            }
            (format!("error: {text}"), None)
        }
    }
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn print(rows: &[Row]) {
    let header = [
        "scenario", "client", "outcome", "time", "phase", "conns", "peak", "rss KiB", "tasks",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.to_string(),
                r.client.to_string(),
                r.outcome.clone(),
                r.time
                    .map(|t| format!("{:.2?}", t))
                    .unwrap_or_else(|| "-".into()),
                fmt_opt(r.phase.clone()),
                fmt_opt(r.opened),
                fmt_opt(r.peak_open),
                fmt_opt(r.rss_kib),
                fmt_opt(r.tasks_left),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut out = String::new();
        for (i, s) in c.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", s, w = width[i]));
        }
        println!("{}", out.trim_end());
    };
    line(&header.map(String::from));
    println!(
        "{}",
        "-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1))
    );
    for (i, c) in cells.iter().enumerate() {
        if i > 0 && rows[i - 1].scenario != rows[i].scenario {
            println!();
        }
        line(c);
    }
}

#[tokio::main]
async fn main() {
    let svg: Option<std::path::PathBuf> = std::env::args()
        .skip_while(|a| a != "--svg")
        .nth(1)
        .map(Into::into);
    // Measured first, while the process is fresh (see `held::curves`); then its connections
    // and tasks are given time to go, so the table's columns do not count them.
    let curves = match &svg {
        Some(_) => {
            let tasks = live_tasks().unwrap_or(0);
            let curves = held::curves().await;
            tower_hardened_test_server::wait_tasks_at_most(tasks).await;
            Some(curves)
        }
        None => None,
    };
    let mut rows = Vec::new();
    rows.extend(request::rows().await);
    rows.extend(connect::rows().await);
    rows.extend(limit::rows().await);
    rows.extend(drain::rows().await);
    rows.extend(pool::rows().await);
    rows.extend(keepalive::rows().await);
    print(&rows);
    if let (Some(path), Some((bare, hardened))) = (svg, curves) {
        svg::write(&path, &rows, &bare, &hardened).expect("write the SVG");
        println!(
            "\nheld bodies: bare held {} (open at the end: {}), the preset held {} and refused \
             {} ({})",
            bare.held,
            bare.points.last().map_or(0, |p| p.open),
            hardened.held,
            hardened.failed,
            hardened.first_error.as_deref().unwrap_or("-"),
        );
        println!("wrote {}", path.display());
    }
}
