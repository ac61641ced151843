//! The showcase: starts a misbehaving server on loopback and, for each misbehaviour, runs a bare
//! hyper-util client next to the hardened stack, then prints one table.
//!
//! ```text
//! cargo run --release --example showcase
//! ```
//!
//! Each scenario lives in its own module and returns rows; `main` only runs them and prints.
#![allow(unreachable_pub)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod connect;
mod drain;
mod limit;
mod pool;
mod request;

use std::time::Duration;

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
    let mut rows = Vec::new();
    rows.extend(request::rows().await);
    rows.extend(connect::rows().await);
    rows.extend(limit::rows().await);
    rows.extend(drain::rows().await);
    rows.extend(pool::rows().await);
    print(&rows);
}
