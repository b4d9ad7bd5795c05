//! A hand-rolled SVG of the results: latency distributions (box plots on a log axis) and
//! the concurrency curve. Plain string building: no plotting stack needed to regenerate.

use std::fmt::Write;

use crate::report::Results;
use crate::scenarios::{DensityVariant, Samples};
use crate::stats::Summary;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 40.0;
const ROW: f64 = 18.0;
const OURS: &str = "#1b7837";
const REFERENCE: &str = "#b2182b";
const FLOOR: &str = "#4d4d4d";

struct Row {
    label: String,
    color: &'static str,
    summary: Summary,
}

fn rows(results: &Results, add: bool) -> Vec<Row> {
    let pick = |s: &Samples| Summary::of(if add { &s.add } else { &s.del });
    let mut rows = Vec::new();
    for lat in &results.latency {
        rows.push(Row {
            label: format!("{} — ours", lat.name),
            color: OURS,
            summary: pick(&lat.sides[0]),
        });
        rows.push(Row {
            label: format!("{} — reference", lat.name),
            color: REFERENCE,
            summary: pick(&lat.sides[1]),
        });
        if let Some(floor) = &lat.floor_ip {
            rows.push(Row {
                label: "kernel floor: ip -batch".into(),
                color: FLOOR,
                summary: pick(floor),
            });
        }
        if let Some(floor) = &lat.floor_netlink {
            rows.push(Row {
                label: "kernel floor: in-process netlink".into(),
                color: FLOOR,
                summary: pick(floor),
            });
        }
    }
    for scale in &results.scaling {
        for (i, side) in ["ours", "reference"].iter().enumerate() {
            rows.push(Row {
                label: format!("host-local, {} leases — {side}", scale.leases),
                color: if i == 0 { OURS } else { REFERENCE },
                summary: pick(&scale.sides[i]),
            });
        }
        rows.push(Row {
            label: format!("host-local, {} leases — ours, own store", scale.leases),
            color: OURS,
            summary: pick(&scale.own_store),
        });
    }
    rows
}

/// Log-scale x position of `ms` between `lo` and `hi`.
fn x_of(ms: f64, lo: f64, hi: f64) -> f64 {
    let t = (ms.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln());
    LEFT + t.clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
}

fn box_panel(svg: &mut String, top: f64, title: &str, rows: &[Row]) -> f64 {
    let lo = 0.1;
    let hi = rows
        .iter()
        .map(|r| r.summary.p99)
        .fold(1.0, f64::max)
        .mul_add(1.3, 0.0);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" font-weight="bold">{title}</text>"#,
        top + 14.0
    );
    let plot_top = top + 24.0;
    let bottom = plot_top + ROW * rows.len() as f64;
    for tick in [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
    ] {
        if tick > hi {
            break;
        }
        let x = x_of(tick, lo, hi);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{plot_top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="10">{tick} ms</text>"##,
            bottom + 12.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = plot_top + ROW * i as f64 + ROW / 2.0;
        let s = row.summary;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            row.label
        );
        if s.n == 0 {
            continue;
        }
        let (x_min, x25, x50, x75, x95, x99) = (
            x_of(s.min, lo, hi),
            x_of(s.p25, lo, hi),
            x_of(s.median, lo, hi),
            x_of(s.p75, lo, hi),
            x_of(s.p95, lo, hi),
            x_of(s.p99, lo, hi),
        );
        let c = row.color;
        let _ = writeln!(
            svg,
            r#"<line x1="{x_min:.1}" y1="{y}" x2="{x95:.1}" y2="{y}" stroke="{c}"/><rect x="{x25:.1}" y="{}" width="{:.1}" height="{}" fill="{c}" fill-opacity="0.35" stroke="{c}"/><line x1="{x50:.1}" y1="{}" x2="{x50:.1}" y2="{}" stroke="{c}" stroke-width="2"/><circle cx="{x99:.1}" cy="{y}" r="2" fill="{c}"/><text x="{}" y="{}" font-size="10" fill="{c}">{:.2}</text>"#,
            y - 6.0,
            (x75 - x25).max(1.0),
            12.0,
            y - 7.0,
            y + 7.0,
            x99 + 5.0,
            y + 4.0,
            s.median
        );
    }
    bottom + 24.0
}

/// One line of a line plot: its legend, colour, dash pattern (`None`: solid) and one y value
/// (ms) per x position.
struct Series {
    name: String,
    color: &'static str,
    dash: Option<&'static str>,
    points: Vec<f64>,
}

/// A line plot of `series` over the categorical x positions `x_labels`, linear y in ms from 0,
/// legend at the top left. Returns the y below it.
fn line_panel(
    svg: &mut String,
    top: f64,
    title: &str,
    x_labels: &[String],
    series: &[Series],
) -> f64 {
    let height = 220.0;
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" font-weight="bold">{title}</text>"#,
        top + 14.0
    );
    if x_labels.is_empty() {
        return top + 30.0;
    }
    let plot_top = top + 30.0;
    let bottom = plot_top + height;
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .fold(1.0, f64::max)
        * 1.1;
    let count = x_labels.len();
    let x_at = |i: usize| LEFT + (WIDTH - LEFT - RIGHT) * (i as f64 + 0.5) / count as f64;
    let y_at = |ms: f64| bottom - height * ms / y_max;
    for frac in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let ms = y_max * frac;
        let y = y_at(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="10">{ms:.0} ms</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 3.0
        );
    }
    for (i, label) in x_labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{label}</text>"#,
            x_at(i),
            bottom + 14.0
        );
    }
    for (k, line) in series.iter().enumerate() {
        let color = line.color;
        let path: Vec<String> = line
            .points
            .iter()
            .enumerate()
            .map(|(i, ms)| format!("{:.1},{:.1}", x_at(i), y_at(*ms)))
            .collect();
        let dash = line
            .dash
            .map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (i, ms) in line.points.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x_at(i),
                y_at(*ms)
            );
        }
        let ly = plot_top + 14.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="20" y1="{ly}" x2="50" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="56" y="{}" font-size="11">{}</text>"#,
            ly + 4.0,
            line.name
        );
    }
    bottom + 30.0
}

fn side_name(side: usize) -> &'static str {
    if side == 0 { "ours" } else { "reference" }
}

fn side_color(side: usize) -> &'static str {
    if side == 0 { OURS } else { REFERENCE }
}

fn concurrency_panel(svg: &mut String, top: f64, results: &Results) -> f64 {
    let series: Vec<Series> = [(0usize, true), (1, true), (0, false), (1, false)]
        .iter()
        .map(|&(side, add)| Series {
            name: format!("{} {}", side_name(side), if add { "ADD" } else { "DEL" }),
            color: side_color(side),
            dash: (!add).then_some("5,4"),
            points: (results.concurrency.iter())
                .map(|c| crate::report::median_wall(&c.rounds[side], add))
                .collect(),
        })
        .collect();
    let x_labels: Vec<String> = (results.concurrency.iter())
        .map(|c| format!("N = {}", c.n))
        .collect();
    line_panel(
        svg,
        top,
        "Concurrent bridge+host-local calls on one network: total wall time (median of rounds)",
        &x_labels,
        &series,
    )
}

/// The density plot's file name beside the main plot's (`BENCHMARKS.svg` →
/// `BENCHMARKS-density.svg`).
pub fn density_file_name(main: &str) -> String {
    let stem = main.strip_suffix(".svg").unwrap_or(main);
    format!("{stem}-density.svg")
}

/// ADD (or DEL) median against live attachments: one line per density variant and side.
fn density_panel(svg: &mut String, top: f64, results: &Results, add: bool) -> f64 {
    let mut levels: Vec<usize> = results.density.iter().map(|d| d.attachments).collect();
    levels.sort_unstable();
    levels.dedup();
    let mut series = Vec::new();
    for variant in DensityVariant::ALL {
        let dash = match variant {
            DensityVariant::MasqNftables => None,
            DensityVariant::MasqIptables => Some("6,4"),
            DensityVariant::SpoofCheck => Some("2,3"),
        };
        for side in 0..2 {
            let points: Vec<f64> = (levels.iter())
                .filter_map(|&level| {
                    let d = (results.density.iter())
                        .find(|d| d.variant == variant && d.attachments == level)?;
                    let s = &d.sides[side];
                    Some(Summary::of(if add { &s.add } else { &s.del }).median)
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            series.push(Series {
                name: format!("{} — {}", variant.label().replace('`', ""), side_name(side)),
                color: side_color(side),
                dash,
                points,
            });
        }
    }
    let floor: Vec<f64> = (levels.iter())
        .filter_map(|&level| {
            let d =
                (results.density.iter()).find(|d| d.attachments == level && d.floor.is_some())?;
            let s = d.floor.as_ref()?;
            Some(Summary::of(if add { &s.add } else { &s.del }).median)
        })
        .collect();
    if !floor.is_empty() {
        series.push(Series {
            name: "kernel floor".into(),
            color: FLOOR,
            dash: None,
            points: floor,
        });
    }
    let x_labels: Vec<String> = levels.iter().map(|l| format!("{l} live")).collect();
    let verb = if add { "ADD" } else { "DEL" };
    let title = format!("bridge+host-local {verb} median against live attachments on the bridge");
    line_panel(svg, top, &title, &x_labels, &series)
}

/// The density figure: ADD and DEL medians against live attachments.
pub fn render_density(results: &Results) -> String {
    figure(
        "Green: ours, red: Go reference 1.1.1 (iptables in both ipMasq rows). Grey: kernel floor. Solid: ipMasq nftables, long dashes: ipMasq iptables, short dashes: macspoofchk.",
        |body, y| {
            let y = density_panel(body, y, results, true);
            density_panel(body, y, results, false)
        },
    )
}

/// A figure: one legend line, then the panels `panels` draws from the given height down
/// (it returns the height below them).
fn figure(legend: &str, panels: impl FnOnce(&mut String, f64) -> f64) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        r#"<text x="10" y="20" font-size="11">{legend}</text>"#
    );
    let height = panels(&mut body, 30.0);
    document(&body, height)
}

fn document(body: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}

/// The whole figure.
pub fn render(results: &Results) -> String {
    figure(
        "Box: p25–p75, thick line: median (value printed), whisker: min–p95, dot: p99. Log scale. Green: ours, red: Go reference 1.1.1, grey: kernel floor.",
        |body, y| {
            let y = box_panel(body, y, "ADD latency (ms)", &rows(results, true));
            let y = box_panel(body, y, "DEL latency (ms)", &rows(results, false));
            concurrency_panel(body, y, results)
        },
    )
}
