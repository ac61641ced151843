//! The showcase as a picture (`--svg PATH`): for each scenario, time to outcome and connections,
//! bare next to hardened; then memory and open connections against requests sent, for bodies
//! held unread. Drawn with plotters' SVG backend alone.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::held::{Curve, REQUESTS};
use crate::Row;

type Res = Result<(), Box<dyn std::error::Error>>;

const BARE: RGBColor = RGBColor(214, 39, 40);
const HARDENED: RGBColor = RGBColor(31, 119, 180);
const FONT: &str = "sans-serif";

/// One scenario: its name and its two rows.
struct Pair<'a> {
    name: &'a str,
    bare: &'a Row,
    hardened: &'a Row,
}

fn pairs(rows: &[Row]) -> Vec<Pair<'_>> {
    rows.iter()
        .filter(|r| r.client == "bare")
        .filter_map(|bare| {
            let hardened = rows
                .iter()
                .find(|r| r.client == "hardened" && r.scenario == bare.scenario)?;
            Some(Pair {
                name: bare.scenario,
                bare,
                hardened,
            })
        })
        .collect()
}

/// What a bar stands for when the caller got no outcome: still waiting, or a held body nobody
/// reported.
fn no_outcome(r: &Row) -> Option<&'static str> {
    if r.outcome.contains("still waiting") {
        Some("still hung")
    } else if r.outcome.contains("nobody noticed") {
        Some("nobody noticed")
    } else {
        None
    }
}

/// Writes the picture to `path`.
pub fn write(path: &Path, rows: &[Row], bare: &Curve, hardened: &Curve) -> Res {
    let pairs = pairs(rows);
    let row_h = 34;
    let top_h = 110 + row_h * pairs.len() as u32;
    let bottom_h = 460;
    let root = SVGBackend::new(path, (1280, top_h + bottom_h)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(top_h);
    let top = top.titled(
        "Each misbehaving server: bare hyper-util client (red) vs Hardened::new() (blue)",
        (FONT, 24).into_font().style(FontStyle::Bold),
    )?;
    let (left, right) = top.split_horizontally(820);
    time_chart(&left, &pairs)?;
    conn_chart(&right, &pairs)?;

    let bottom = bottom.titled(
        &format!(
            "{REQUESTS} requests for 64 KiB, every body held unread: bare held {}, \
             the preset held {} and refused {} (Acquire)",
            bare.held, hardened.held, hardened.failed
        ),
        (FONT, 22).into_font().style(FontStyle::Bold),
    )?;
    let (l, r) = bottom.split_horizontally(640);
    line_chart(
        &l,
        "resident memory growth, MiB (client + loopback server)",
        bare,
        hardened,
        |p| p.rss_mib,
    )?;
    line_chart(&r, "connections open at the server", bare, hardened, |p| {
        p.open as f64
    })?;
    root.present()?;
    Ok(())
}

/// Horizontal bars, two per scenario: bare on top, hardened below. First scenario at the top.
fn bars(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    pairs: &[Pair<'_>],
    x: std::ops::Range<f64>,
    value: impl Fn(&Row) -> Option<f64>,
    label: impl Fn(&Row) -> String,
    legend: bool,
) -> Res {
    let n = pairs.len();
    let x_min = x.start;
    let names: Vec<&str> = pairs.iter().map(|p| p.name).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(if legend { 250 } else { 10 })
        // Segments 0..=n-1: one per scenario.
        .build_cartesian_2d(x.log_scale(), (0..n - 1).into_segmented())?;
    let row_name = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < n => names[n - 1 - i].to_string(),
        _ => String::new(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_y_mesh()
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .y_labels(n)
        .label_style((FONT, 14));
    if legend {
        mesh.y_label_formatter(&row_name);
    } else {
        mesh.y_label_formatter(&|_| String::new());
    }
    mesh.draw()?;

    for (color, is_bare) in [(BARE, true), (HARDENED, false)] {
        let series = pairs.iter().enumerate().filter_map(|(i, p)| {
            let row = if is_bare { p.bare } else { p.hardened };
            let v = value(row)?;
            let y = n - 1 - i;
            let (lo, hi) = if is_bare {
                (SegmentValue::CenterOf(y), SegmentValue::Exact(y + 1))
            } else {
                (SegmentValue::Exact(y), SegmentValue::CenterOf(y))
            };
            let mut bar = Rectangle::new([(x_min, lo), (v, hi)], color.filled());
            bar.set_margin(
                if is_bare { 3 } else { 0 },
                if is_bare { 0 } else { 3 },
                0,
                0,
            );
            Some(bar)
        });
        let drawn = chart.draw_series(series)?;
        if legend {
            drawn
                .label(if is_bare {
                    "bare hyper-util"
                } else {
                    "Hardened::new()"
                })
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
        }
        let texts = pairs.iter().enumerate().filter_map(|(i, p)| {
            let row = if is_bare { p.bare } else { p.hardened };
            let v = value(row)?;
            let y = n - 1 - i;
            let at = if is_bare {
                SegmentValue::Exact(y + 1)
            } else {
                SegmentValue::CenterOf(y)
            };
            Some(Text::new(
                format!(" {}", label(row)),
                (v, at),
                (FONT, 13).into_font().color(&color.mix(0.95)),
            ))
        });
        chart.draw_series(texts)?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}

fn time_chart(area: &DrawingArea<SVGBackend<'_>, Shift>, pairs: &[Pair<'_>]) -> Res {
    bars(
        area,
        "time until the caller has an outcome (s, log scale)",
        pairs,
        0.005..30.0,
        |r| r.time.map(|t| t.as_secs_f64().max(0.005)),
        |r| {
            let t = r.time.map_or_else(String::new, |t| format!("{:.2?}", t));
            if let Some(what) = no_outcome(r) {
                format!("{t}, {what}")
            } else if let Some(phase) = &r.phase {
                format!("{t}, {phase}")
            } else {
                t
            }
        },
        true,
    )
}

fn conn_chart(area: &DrawingArea<SVGBackend<'_>, Shift>, pairs: &[Pair<'_>]) -> Res {
    bars(
        area,
        "connections the server accepted (log scale)",
        pairs,
        0.5..20_000.0,
        |r| r.opened.map(|n| (n as f64).max(0.5)),
        |r| r.opened.map_or_else(String::new, |n| n.to_string()),
        false,
    )
}

fn line_chart(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    bare: &Curve,
    hardened: &Curve,
    y: impl Fn(&crate::held::Point) -> f64,
) -> Res {
    let top = bare
        .points
        .iter()
        .chain(&hardened.points)
        .map(&y)
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..REQUESTS as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("requests sent")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    for (curve, color, name) in [
        (bare, BARE, "bare hyper-util"),
        (hardened, HARDENED, "Hardened::new()"),
    ] {
        let pts: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.sent as f64, y(p))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        if let Some(&(x, v)) = pts.last() {
            chart.draw_series(std::iter::once(Text::new(
                format!("{v:.0}"),
                (x * 0.93, v + top * 0.03),
                (FONT, 15).into_font().color(&color),
            )))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
