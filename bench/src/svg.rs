//! A hand-rolled SVG of the results: latency distributions (box plots on a log axis) and
//! the concurrency curve. Plain string building: no plotting stack needed to regenerate.

use std::fmt::Write;

use crate::report::Results;
use crate::scenarios::Samples;
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

/// One line of the concurrency plot: name, colour, ADD (solid) or DEL (dashed), points.
type Series = (String, &'static str, bool, Vec<(usize, f64)>);

fn concurrency_panel(svg: &mut String, top: f64, results: &Results) -> f64 {
    let height = 220.0;
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" font-weight="bold">Concurrent bridge+host-local calls on one network: total wall time (median of rounds)</text>"#,
        top + 14.0
    );
    if results.concurrency.is_empty() {
        return top + 30.0;
    }
    let plot_top = top + 30.0;
    let bottom = plot_top + height;
    let series: Vec<Series> = [(0usize, true), (1, true), (0, false), (1, false)]
        .iter()
        .map(|&(side, add)| {
            let points = results
                .concurrency
                .iter()
                .map(|c| (c.n, crate::report::median_wall(&c.rounds[side], add)))
                .collect();
            let name = format!(
                "{} {}",
                if side == 0 { "ours" } else { "reference" },
                if add { "ADD" } else { "DEL" }
            );
            (name, if side == 0 { OURS } else { REFERENCE }, add, points)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|s| s.3.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let count = results.concurrency.len();
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
    for (i, c) in results.concurrency.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">N = {}</text>"#,
            x_at(i),
            bottom + 14.0,
            c.n
        );
    }
    for (k, (name, color, add, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x_at(i), y_at(p.1)))
            .collect();
        let dash = if *add {
            ""
        } else {
            r#" stroke-dasharray="5,4""#
        };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (i, p) in points.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x_at(i),
                y_at(p.1)
            );
        }
        let ly = plot_top + 14.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="20" y1="{ly}" x2="50" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="56" y="{}" font-size="11">{name}</text>"#,
            ly + 4.0
        );
    }
    bottom + 30.0
}

/// The whole figure.
pub fn render(results: &Results) -> String {
    let mut body = String::new();
    let mut y = 10.0;
    let _ = writeln!(
        body,
        r#"<text x="10" y="{}" font-size="11">Box: p25–p75, thick line: median (value printed), whisker: min–p95, dot: p99. Log scale. Green: ours, red: Go reference 1.1.1, grey: kernel floor.</text>"#,
        y + 10.0
    );
    y += 20.0;
    y = box_panel(&mut body, y, "ADD latency (ms)", &rows(results, true));
    y = box_panel(&mut body, y, "DEL latency (ms)", &rows(results, false));
    y = concurrency_panel(&mut body, y, results);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}
