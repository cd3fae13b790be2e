//! Hand-built SVG for the HTML report: linear and log scales with round ticks, deterministic
//! downsampling, and the report's four chart kinds (load and replicas over time, p99 against
//! the SLO, the incident and decision timeline, cost per run).
//!
//! Every chart is one `<svg>` with presentation attributes on its marks, so it draws
//! correctly even without the page's stylesheet; the page's CSS only sets fonts and colors
//! of text. Numbers are written with at most one decimal, which keeps the file small and
//! the bytes stable.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write};

use super::model::{DecisionMark, Incident, ServiceSeries};
use super::table::{fixed, OUTCOMES};

/// Points per drawn line at most: about one per pixel of plot width, which is all a reader
/// can see, and it keeps 3 runs × 3 services × 10k samples far under 2 MB.
pub(crate) const MAX_POINTS: usize = 1_000;

/// Width of every chart, in SVG user units (the page scales it down on narrow screens).
const WIDTH: f64 = 960.0;
/// Right margin of every chart: room for the load axis, and the same for all charts so
/// their time axes line up on the page.
const RIGHT: f64 = 64.0;
const TITLE_Y: f64 = 20.0;
const LEGEND_Y: f64 = 40.0;
const LEGEND_ROW: f64 = 16.0;
/// Room under the plot for the x tick labels.
const BOTTOM: f64 = 26.0;
const PLOT_HEIGHT: f64 = 190.0;
/// Height of one run's lane in the timeline and cost charts.
const LANE: f64 = 26.0;
/// Average glyph width of the 11-12 px sans-serif labels, for laying out legends.
const GLYPH_WIDTH: f64 = 6.6;

/// Run colors, by run index: the Okabe-Ito palette (readable with color-vision
/// deficiencies), gray first because the first run is the `none` baseline.
const RUN_COLORS: &[&str] = &[
    "#6e7781", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];
const LOAD_COLOR: &str = "#9ecae1";
const SLO_COLOR: &str = "#D55E00";
const INCIDENT_COLOR: &str = "#D55E00";
const GRID_COLOR: &str = "#eaeef2";
const AXIS_COLOR: &str = "#8c959f";

/// The color of the run at `index`.
pub(crate) fn run_color(index: usize) -> &'static str {
    RUN_COLORS[index % RUN_COLORS.len()]
}

/// The color of a decision outcome's ticks.
pub(crate) fn outcome_color(outcome: &str) -> &'static str {
    match outcome {
        "enacted" => "#009E73",
        "modified" => "#56B4E9",
        "rejected" => "#D55E00",
        "pending" => "#E69F00",
        "advised" => "#CC79A7",
        "shadowed" => "#8c959f",
        "overridden" => "#000000",
        _ => "#6e7781",
    }
}

/// Text escaped for HTML and SVG, in content and in quoted attribute values.
pub(crate) struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let replacement = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(replacement)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// A coordinate, written with at most one decimal and never as `-0`.
pub(crate) struct C(pub f64);

impl Display for C {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = tenths(self.0);
        let sign = if tenths < 0 { "-" } else { "" };
        let abs = tenths.unsigned_abs();
        let (whole, tenth) = (abs / 10, abs % 10);
        if tenth == 0 {
            write!(f, "{sign}{whole}")
        } else {
            write!(f, "{sign}{whole}.{tenth}")
        }
    }
}

/// `v` in tenths, rounded; non-finite values (which callers filter out) become 0.
fn tenths(v: f64) -> i64 {
    if v.is_finite() {
        (v * 10.0).round() as i64
    } else {
        0
    }
}

/// Keeps at most `limit` of the finite `(t, y)` points, always the first and the last.
///
/// Lines with more points are cut into equal buckets by index, and each bucket keeps its
/// lowest and its highest point, in time order: a spike survives downsampling, which
/// matters for p99 latency. Integer bucket bounds make the choice deterministic.
pub(crate) fn downsample(t: &[f64], y: &[f64], limit: usize) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = t
        .iter()
        .zip(y)
        .filter(|(t, y)| t.is_finite() && y.is_finite())
        .map(|(&t, &y)| (t, y))
        .collect();
    let limit = limit.max(2);
    if points.len() <= limit {
        return points;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let inner = &points[1..points.len() - 1];
    let buckets = (limit - 2) / 2;
    let mut kept = Vec::with_capacity(limit);
    kept.push(first);
    for b in 0..buckets {
        let bucket = &inner[b * inner.len() / buckets..(b + 1) * inner.len() / buckets];
        let mut low = 0;
        let mut high = 0;
        for (i, p) in bucket.iter().enumerate() {
            if p.1 < bucket[low].1 {
                low = i;
            }
            if p.1 > bucket[high].1 {
                high = i;
            }
        }
        if bucket.is_empty() {
            continue;
        }
        kept.push(bucket[low.min(high)]);
        if low != high {
            kept.push(bucket[low.max(high)]);
        }
    }
    kept.push(last);
    kept
}

/// Maps data values onto a pixel range, linearly or by powers of ten.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    is_log: bool,
}

impl Scale {
    /// The scale for `axis` onto `from..to`.
    pub(crate) fn of(axis: &Axis, from: f64, to: f64) -> Self {
        Scale {
            lo: axis.lo,
            hi: axis.hi,
            from,
            to,
            is_log: axis.is_log,
        }
    }

    /// Where `v` goes; values outside the domain are clamped to its ends (and, on a log
    /// scale, values at or under zero go to the bottom).
    pub(crate) fn map(&self, v: f64) -> f64 {
        let f = |x: f64| {
            if self.is_log {
                x.max(self.lo).log10()
            } else {
                x
            }
        };
        let (a, b) = (f(self.lo), f(self.hi));
        let span = b - a;
        if !span.is_finite() || span.abs() < f64::EPSILON || !v.is_finite() {
            return self.from;
        }
        let r = ((f(v) - a) / span).clamp(0.0, 1.0);
        self.from + r * (self.to - self.from)
    }
}

/// An axis: its domain and labelled ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    /// Domain start.
    pub lo: f64,
    /// Domain end.
    pub hi: f64,
    /// Ticks, ascending.
    pub ticks: Vec<(f64, String)>,
    /// Whether the axis is logarithmic.
    pub is_log: bool,
}

/// A linear axis covering `lo..hi`, widened to round ticks (1, 2 or 5 × 10ⁿ apart), at
/// most about `max_ticks` of them.
pub(crate) fn linear_axis(lo: f64, hi: f64, max_ticks: usize) -> Axis {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let step = nice_step((hi - lo) / max_ticks.max(1) as f64);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    let ticks = (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            (v, tick_label(v, step))
        })
        .collect();
    Axis {
        lo: first as f64 * step,
        hi: last as f64 * step,
        ticks,
        is_log: false,
    }
}

/// 1, 2 or 5 × 10ⁿ, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * magnitude
}

/// Decimals needed to tell ticks `step` apart (`step` is 1, 2 or 5 × 10ⁿ).
fn decimals_for(step: f64) -> usize {
    if step >= 1.0 || step <= 0.0 {
        0
    } else {
        // The epsilon absorbs float noise: 0.1 may be 0.09999…
        (-step.log10() - 1e-9).ceil().max(0.0) as usize
    }
}

/// A tick label: `2,500`, `0.5`, `20k`, `1.5M`.
fn tick_label(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-9 {
        "0".to_owned()
    } else if step >= 1e6 {
        format!("{}M", fixed(v / 1e6, decimals_for(step / 1e6)))
    } else if step >= 1e4 {
        format!("{}k", fixed(v / 1e3, decimals_for(step / 1e3)))
    } else {
        fixed(v, decimals_for(step))
    }
}

/// A log axis from the power of ten at or under `min_positive` to the one at or over
/// `max`, with ticks at 1, 2, 5 × 10ⁿ over at most two decades and at 10ⁿ beyond.
pub(crate) fn log_axis(min_positive: f64, max: f64) -> Axis {
    let e0 = min_positive.log10().floor() as i32;
    let e1 = (max.log10().ceil() as i32).max(e0 + 1);
    let (lo, hi) = (10f64.powi(e0), 10f64.powi(e1));
    let multiples: &[f64] = if e1 - e0 <= 2 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    for e in e0..=e1 {
        let magnitude = 10f64.powi(e);
        for m in multiples {
            let v = m * magnitude;
            if v <= hi * (1.0 + 1e-9) {
                ticks.push((v, tick_label(v, magnitude)));
            }
        }
    }
    Axis {
        lo,
        hi,
        ticks,
        is_log: true,
    }
}

/// A time axis over `0..t_max` seconds, ticks at round clock intervals (`30s`, `5m`, `1h`).
pub(crate) fn time_axis(t_max: f64) -> Axis {
    const STEPS_S: &[f64] = &[
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0,
    ];
    const MAX_TICKS: f64 = 8.0;
    if !t_max.is_finite() || t_max < 1.0 {
        let mut axis = linear_axis(0.0, t_max, 5);
        for (_, label) in &mut axis.ticks {
            label.push('s');
        }
        return axis;
    }
    let step = STEPS_S
        .iter()
        .copied()
        .find(|s| t_max / s <= MAX_TICKS)
        .unwrap_or_else(|| (t_max / MAX_TICKS / 86400.0).ceil() * 86400.0);
    let count = (t_max / step + 1e-9).floor() as i64;
    let ticks = (0..=count)
        .map(|i| {
            let v = i as f64 * step;
            (v, clock(v))
        })
        .collect();
    Axis {
        lo: 0.0,
        hi: t_max,
        ticks,
        is_log: false,
    }
}

/// Seconds as a short clock label: `0`, `45s`, `5m`, `1h30m`, `26h`.
pub(crate) fn clock(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    if s == 0 {
        return "0".to_owned();
    }
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The plot area of a chart.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    height: f64,
}

impl Frame {
    fn x0(&self) -> f64 {
        self.left
    }
    fn x1(&self) -> f64 {
        WIDTH - RIGHT
    }
    fn y0(&self) -> f64 {
        self.top
    }
    fn y1(&self) -> f64 {
        self.height - BOTTOM
    }
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    Line(&'static str),
    Dashed(&'static str),
    Area(&'static str),
    Tick(&'static str),
    Band(&'static str),
}

struct LegendItem {
    label: String,
    swatch: Swatch,
}

/// Lays the legend out in rows that fit the plot width; returns each item's (x, row) and
/// the number of rows.
fn legend_layout(items: &[LegendItem], left: f64) -> (Vec<(f64, usize)>, usize) {
    let mut places = Vec::with_capacity(items.len());
    let (mut x, mut row) = (left, 0);
    for item in items {
        let width = 22.0 + GLYPH_WIDTH * item.label.chars().count() as f64 + 16.0;
        if x > left && x + width > WIDTH - RIGHT {
            x = left;
            row += 1;
        }
        places.push((x, row));
        x += width;
    }
    (places, if items.is_empty() { 0 } else { row + 1 })
}

/// Where the plot starts under a title and a legend of `rows` rows.
fn plot_top(rows: usize) -> f64 {
    LEGEND_Y + rows.saturating_sub(1) as f64 * LEGEND_ROW + 14.0
}

fn write_legend(out: &mut String, items: &[LegendItem], places: &[(f64, usize)]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    out.push_str("<g class=\"legend\">");
    for (item, &(x, row)) in items.iter().zip(places) {
        let y = LEGEND_Y + row as f64 * LEGEND_ROW;
        match item.swatch {
            Swatch::Line(color) => write!(
                out,
                r#"<path d="M{},{}h16" stroke="{color}" stroke-width="2" fill="none"/>"#,
                C(x),
                C(y - 4.0)
            )?,
            Swatch::Dashed(color) => write!(
                out,
                r#"<path d="M{},{}h16" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3" fill="none"/>"#,
                C(x),
                C(y - 4.0)
            )?,
            Swatch::Area(color) => write!(
                out,
                r#"<rect x="{}" y="{}" width="16" height="10" fill="{color}" fill-opacity="0.6"/>"#,
                C(x),
                C(y - 9.0)
            )?,
            Swatch::Tick(color) => write!(
                out,
                r#"<path d="M{},{}v12" stroke="{color}" stroke-width="2" fill="none"/>"#,
                C(x + 8.0),
                C(y - 10.0)
            )?,
            Swatch::Band(color) => write!(
                out,
                r#"<rect x="{}" y="{}" width="16" height="10" fill="{color}" fill-opacity="0.22"/>"#,
                C(x),
                C(y - 9.0)
            )?,
        }
        write!(
            out,
            r#"<text x="{}" y="{}">{}</text>"#,
            C(x + 22.0),
            C(y),
            Esc(&item.label)
        )?;
    }
    out.push_str("</g>");
    Ok(())
}

/// Opens a chart: the `<svg>` element, its title and its legend. Returns the plot frame.
fn open_chart(
    out: &mut String,
    left: f64,
    title: &str,
    legend: &[LegendItem],
    plot_height: f64,
) -> Result<Frame, fmt::Error> {
    let (places, rows) = legend_layout(legend, left);
    let top = plot_top(rows);
    let frame = Frame {
        left,
        top,
        height: top + plot_height + BOTTOM,
    };
    write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}">"#,
        w = C(WIDTH),
        h = C(frame.height),
        t = Esc(title)
    )?;
    write!(
        out,
        r#"<text class="title" x="{}" y="{}">{}</text>"#,
        C(left),
        C(TITLE_Y),
        Esc(title)
    )?;
    write_legend(out, legend, &places)?;
    Ok(frame)
}

/// A lane's name, right-aligned left of the frame, centred on the lane.
fn write_lane_label(out: &mut String, frame: &Frame, top: f64, name: &str) -> fmt::Result {
    write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        C(frame.x0() - 8.0),
        C(top + LANE / 2.0 + 4.0),
        Esc(name)
    )
}

/// A horizontal axis (time, or cost): vertical grid lines, the base line and the tick
/// labels.
fn write_x_axis(out: &mut String, frame: &Frame, axis: &Axis) -> fmt::Result {
    let sx = Scale::of(axis, frame.x0(), frame.x1());
    write_vertical_grid(out, frame, axis, &sx)?;
    write!(
        out,
        r#"<g class="axis"><path d="M{},{}H{}" stroke="{AXIS_COLOR}" fill="none"/>"#,
        C(frame.x0()),
        C(frame.y1()),
        C(frame.x1())
    )?;
    for (v, label) in &axis.ticks {
        write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            C(sx.map(*v)),
            C(frame.y1() + 16.0),
            Esc(label)
        )?;
    }
    out.push_str("</g>");
    Ok(())
}

fn write_vertical_grid(out: &mut String, frame: &Frame, axis: &Axis, sx: &Scale) -> fmt::Result {
    out.push_str("<path class=\"grid\" d=\"");
    for (v, _) in &axis.ticks {
        write!(
            out,
            "M{},{}V{}",
            C(sx.map(*v)),
            C(frame.y0()),
            C(frame.y1())
        )?;
    }
    write!(out, r#"" stroke="{GRID_COLOR}" fill="none"/>"#)
}

/// Which side a value axis is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A value axis: tick labels, optional horizontal grid lines, and the axis title along it.
fn write_value_axis(
    out: &mut String,
    frame: &Frame,
    axis: &Axis,
    side: Side,
    title: &str,
    has_grid: bool,
) -> fmt::Result {
    let sy = Scale::of(axis, frame.y1(), frame.y0());
    if has_grid {
        out.push_str("<path class=\"grid\" d=\"");
        for (v, _) in &axis.ticks {
            write!(
                out,
                "M{},{}H{}",
                C(frame.x0()),
                C(sy.map(*v)),
                C(frame.x1())
            )?;
        }
        write!(out, r#"" stroke="{GRID_COLOR}" fill="none"/>"#)?;
    }
    out.push_str("<g class=\"axis\">");
    let (x, anchor) = match side {
        Side::Left => (frame.x0() - 6.0, "end"),
        Side::Right => (frame.x1() + 6.0, "start"),
    };
    for (v, label) in &axis.ticks {
        write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
            C(x),
            C(sy.map(*v) + 4.0),
            Esc(label)
        )?;
    }
    let title_x = match side {
        Side::Left => 14.0,
        Side::Right => WIDTH - 8.0,
    };
    let mid = (frame.y0() + frame.y1()) / 2.0;
    write!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="middle" transform="rotate(-90 {x} {y})">{t}</text>"#,
        x = C(title_x),
        y = C(mid),
        t = Esc(title)
    )?;
    out.push_str("</g>");
    Ok(())
}

/// A polyline through `points`, skipping points that land on the same tenth of a pixel.
fn write_line(
    out: &mut String,
    points: &[(f64, f64)],
    sx: &Scale,
    sy: &Scale,
    color: &str,
) -> fmt::Result {
    if points.is_empty() {
        return Ok(());
    }
    out.push_str("<path d=\"M");
    let mut previous = None;
    for &(t, v) in points {
        let (x, y) = (sx.map(t), sy.map(v));
        let key = (tenths(x), tenths(y));
        if previous == Some(key) {
            continue;
        }
        if previous.is_some() {
            out.push(' ');
        }
        previous = Some(key);
        write!(out, "{},{}", C(x), C(y))?;
    }
    write!(
        out,
        r#"" stroke="{color}" stroke-width="1.5" stroke-linejoin="round" fill="none"/>"#
    )
}

/// A step line: each value holds until the next point (replica counts change in steps).
fn write_step_line(
    out: &mut String,
    points: &[(f64, f64)],
    sx: &Scale,
    sy: &Scale,
    color: &str,
) -> fmt::Result {
    let Some(&(t0, v0)) = points.first() else {
        return Ok(());
    };
    let mut y = tenths(sy.map(v0));
    write!(out, "<path d=\"M{},{}", C(sx.map(t0)), C(sy.map(v0)))?;
    let mut last_x = sx.map(t0);
    for &(t, v) in &points[1..] {
        let (xt, yt) = (sx.map(t), sy.map(v));
        last_x = xt;
        if tenths(yt) != y {
            write!(out, "H{}V{}", C(xt), C(yt))?;
            y = tenths(yt);
        }
    }
    write!(
        out,
        r#"H{}" stroke="{color}" stroke-width="1.5" fill="none"/>"#,
        C(last_x)
    )
}

/// A filled area from the bottom of the plot up to `points`.
fn write_area(
    out: &mut String,
    points: &[(f64, f64)],
    sx: &Scale,
    sy: &Scale,
    base_y: f64,
    color: &str,
) -> fmt::Result {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(());
    };
    write!(out, "<path d=\"M{},{}L", C(sx.map(first.0)), C(base_y))?;
    let mut previous = None;
    for &(t, v) in points {
        let (x, y) = (sx.map(t), sy.map(v));
        let key = (tenths(x), tenths(y));
        if previous == Some(key) {
            continue;
        }
        previous = Some(key);
        write!(out, "{},{} ", C(x), C(y))?;
    }
    write!(
        out,
        r#"{},{}Z" fill="{color}" fill-opacity="0.6" stroke="none"/>"#,
        C(sx.map(last.0)),
        C(base_y)
    )
}

fn write_no_data(out: &mut String, frame: &Frame, what: &str) -> fmt::Result {
    write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        C((frame.x0() + frame.x1()) / 2.0),
        C((frame.y0() + frame.y1()) / 2.0),
        Esc(what)
    )
}

/// The largest finite value, if any.
fn finite_max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::max)
}

/// One run's series for a chart.
pub(crate) struct RunSeries<'a> {
    /// Run name.
    pub name: &'a str,
    /// Line color.
    pub color: &'static str,
    /// The service's series in this run, if the run recorded it.
    pub series: Option<&'a ServiceSeries>,
}

/// Load (shaded, right axis) and replicas per run (step lines, left axis) over time.
pub(crate) fn load_chart(
    out: &mut String,
    left: f64,
    service: &str,
    runs: &[RunSeries<'_>],
    t_max: f64,
) -> fmt::Result {
    // Every run sees the same load, so the first recorded one stands for all.
    let load = runs.iter().find_map(|r| r.series);
    let mut legend = Vec::new();
    if load.is_some() {
        legend.push(LegendItem {
            label: "load, req/s (right axis)".to_owned(),
            swatch: Swatch::Area(LOAD_COLOR),
        });
    }
    for run in runs.iter().filter(|r| r.series.is_some()) {
        legend.push(LegendItem {
            label: format!("{} replicas", run.name),
            swatch: Swatch::Line(run.color),
        });
    }
    let frame = open_chart(
        out,
        left,
        &format!("{service}: load and replicas"),
        &legend,
        PLOT_HEIGHT,
    )?;
    let max_replicas = finite_max(
        runs.iter()
            .filter_map(|r| r.series)
            .flat_map(|s| s.replicas.iter().copied()),
    )
    .unwrap_or(0.0);
    let max_load = finite_max(load.iter().flat_map(|s| s.load.iter().copied())).unwrap_or(0.0);
    let replicas_axis = linear_axis(0.0, max_replicas.max(1.0), 5);
    let load_axis = linear_axis(0.0, if max_load > 0.0 { max_load } else { 1.0 }, 5);
    let time = time_axis(t_max);
    write_value_axis(out, &frame, &replicas_axis, Side::Left, "replicas", true)?;
    write_value_axis(out, &frame, &load_axis, Side::Right, "req/s", false)?;
    write_x_axis(out, &frame, &time)?;

    let sx = Scale::of(&time, frame.x0(), frame.x1());
    let Some(load) = load else {
        write_no_data(out, &frame, "no series recorded for this service")?;
        return out.write_str("</svg>");
    };
    let sy_load = Scale::of(&load_axis, frame.y1(), frame.y0());
    let points = downsample(&load.t_s, &load.load, MAX_POINTS);
    write_area(out, &points, &sx, &sy_load, frame.y1(), LOAD_COLOR)?;
    let sy = Scale::of(&replicas_axis, frame.y1(), frame.y0());
    for run in runs {
        if let Some(series) = run.series {
            let points = downsample(&series.t_s, &series.replicas, MAX_POINTS);
            write_step_line(out, &points, &sx, &sy, run.color)?;
        }
    }
    out.write_str("</svg>")
}

/// p99 latency per run against the SLO; log scale when the values span a wide range.
pub(crate) fn latency_chart(
    out: &mut String,
    left: f64,
    service: &str,
    slo_ms: f64,
    runs: &[RunSeries<'_>],
    t_max: f64,
) -> fmt::Result {
    /// Beyond this max/min ratio a linear axis squashes normal latency into the floor.
    const LOG_RATIO: f64 = 20.0;
    let slo = slo_ms.is_finite() && slo_ms > 0.0;
    let mut legend: Vec<LegendItem> = runs
        .iter()
        .filter(|r| r.series.is_some())
        .map(|r| LegendItem {
            label: r.name.to_owned(),
            swatch: Swatch::Line(r.color),
        })
        .collect();
    if slo {
        legend.push(LegendItem {
            label: format!("SLO {} ms", fixed(slo_ms, decimals_for(slo_ms))),
            swatch: Swatch::Dashed(SLO_COLOR),
        });
    }
    let frame = open_chart(
        out,
        left,
        &format!("{service}: p99 latency"),
        &legend,
        PLOT_HEIGHT,
    )?;
    let values = || {
        runs.iter()
            .filter_map(|r| r.series)
            .flat_map(|s| s.p99_ms.iter().copied())
            .chain(slo.then_some(slo_ms))
            .filter(|v| v.is_finite())
    };
    let max = finite_max(values()).unwrap_or(0.0);
    let min_positive = values().filter(|v| *v > 0.0).reduce(f64::min);
    let axis = match min_positive {
        Some(min) if max / min >= LOG_RATIO => log_axis(min, max),
        _ => linear_axis(0.0, if max > 0.0 { max * 1.05 } else { 1.0 }, 5),
    };
    let title = if axis.is_log {
        "p99 ms (log)"
    } else {
        "p99 ms"
    };
    write_value_axis(out, &frame, &axis, Side::Left, title, true)?;
    let time = time_axis(t_max);
    write_x_axis(out, &frame, &time)?;
    let sx = Scale::of(&time, frame.x0(), frame.x1());
    let sy = Scale::of(&axis, frame.y1(), frame.y0());
    if slo {
        let y = sy.map(slo_ms);
        // The breach zone, lightly shaded so lines above the SLO stand out.
        write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{SLO_COLOR}" fill-opacity="0.05"/>"#,
            C(frame.x0()),
            C(frame.y0()),
            C(frame.x1() - frame.x0()),
            C(y - frame.y0())
        )?;
    }
    if runs.iter().all(|r| r.series.is_none()) {
        write_no_data(out, &frame, "no series recorded for this service")?;
    }
    for run in runs {
        if let Some(series) = run.series {
            let points = downsample(&series.t_s, &series.p99_ms, MAX_POINTS);
            write_line(out, &points, &sx, &sy, run.color)?;
        }
    }
    if slo {
        // Over the lines, so busy latency never hides the threshold.
        write!(
            out,
            r#"<path d="M{},{}H{}" stroke="{SLO_COLOR}" stroke-width="1.5" stroke-dasharray="6 4" fill="none"/>"#,
            C(frame.x0()),
            C(sy.map(slo_ms)),
            C(frame.x1())
        )?;
    }
    out.write_str("</svg>")
}

/// One run's lane on a timeline.
pub(crate) struct Lane<'a> {
    /// Run name.
    pub name: &'a str,
    /// Incidents to draw as bands.
    pub incidents: Vec<&'a Incident>,
    /// Decisions to draw as ticks.
    pub decisions: Vec<&'a DecisionMark>,
}

/// Outcomes in display order: the known ones first, others by name.
fn outcome_rank(outcome: &str) -> (usize, &str) {
    (
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len()),
        outcome,
    )
}

/// Incidents as bands and decisions as ticks colored by outcome, one lane per run.
pub(crate) fn timeline_chart(
    out: &mut String,
    left: f64,
    title: &str,
    lanes: &[Lane<'_>],
    t_max: f64,
) -> fmt::Result {
    let mut outcomes: Vec<&str> = lanes
        .iter()
        .flat_map(|l| l.decisions.iter().map(|d| d.outcome.as_str()))
        .collect();
    outcomes.sort_by_key(|o| outcome_rank(o));
    outcomes.dedup();
    let mut legend = vec![LegendItem {
        label: "incident".to_owned(),
        swatch: Swatch::Band(INCIDENT_COLOR),
    }];
    legend.extend(outcomes.iter().map(|o| LegendItem {
        label: (*o).to_owned(),
        swatch: Swatch::Tick(outcome_color(o)),
    }));
    let frame = open_chart(out, left, title, &legend, LANE * lanes.len().max(1) as f64)?;
    let time = time_axis(t_max);
    write_x_axis(out, &frame, &time)?;
    let sx = Scale::of(&time, frame.x0(), frame.x1());
    for (i, lane) in lanes.iter().enumerate() {
        let top = frame.y0() + i as f64 * LANE;
        write_lane_label(out, &frame, top, lane.name)?;
        write!(
            out,
            r#"<path d="M{},{}H{}" stroke="{GRID_COLOR}" fill="none"/>"#,
            C(frame.x0()),
            C(top + LANE),
            C(frame.x1())
        )?;
        for incident in &lane.incidents {
            let (x0, x1) = (sx.map(incident.start_s), sx.map(incident.end_s));
            write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{INCIDENT_COLOR}" fill-opacity="0.22"><title>{}: incident {} to {} ({})</title></rect>"#,
                C(x0),
                C(top + 3.0),
                C((x1 - x0).max(1.0)),
                C(LANE - 6.0),
                Esc(lane.name),
                clock(incident.start_s),
                clock(incident.end_s),
                Esc(&incident.services.join(", "))
            )?;
        }
        let mut by_outcome: BTreeMap<(usize, &str), Vec<i64>> = BTreeMap::new();
        for d in &lane.decisions {
            if d.t_s.is_finite() {
                by_outcome
                    .entry(outcome_rank(&d.outcome))
                    .or_default()
                    .push(tenths(sx.map(d.t_s)));
            }
        }
        // Rarer outcomes first, so enacted ticks end up on top where they overlap.
        for ((_, outcome), mut xs) in by_outcome.into_iter().rev() {
            let count = xs.len();
            // Ticks on the same tenth of a pixel draw as one.
            xs.sort_unstable();
            xs.dedup();
            out.push_str("<path d=\"");
            for x in xs {
                write!(
                    out,
                    "M{},{}v{}",
                    C(x as f64 / 10.0),
                    C(top + 5.0),
                    C(LANE - 10.0)
                )?;
            }
            write!(
                out,
                r#"" stroke="{}" stroke-width="1.5" fill="none"><title>{}: {} {}</title></path>"#,
                outcome_color(outcome),
                Esc(lane.name),
                fixed(count as f64, 0),
                Esc(outcome)
            )?;
        }
    }
    out.write_str("</svg>")
}

/// One run's bar in the cost chart.
pub(crate) struct CostBar<'a> {
    /// Run name.
    pub name: &'a str,
    /// Bar color.
    pub color: &'static str,
    /// Cost over the run.
    pub cost: f64,
    /// Replica-hours over the run.
    pub replica_hours: f64,
}

/// Total cost per run as horizontal bars.
pub(crate) fn cost_chart(out: &mut String, left: f64, bars: &[CostBar<'_>]) -> fmt::Result {
    let frame = open_chart(
        out,
        left,
        "Cost per run",
        &[],
        LANE * bars.len().max(1) as f64,
    )?;
    let max = finite_max(bars.iter().map(|b| b.cost)).unwrap_or(0.0);
    let axis = linear_axis(0.0, if max > 0.0 { max } else { 1.0 }, 6);
    let sx = Scale::of(&axis, frame.x0(), frame.x1());
    write_x_axis(out, &frame, &axis)?;
    for (i, bar) in bars.iter().enumerate() {
        let top = frame.y0() + i as f64 * LANE;
        let label = fixed(bar.cost, 2);
        let end = sx.map(bar.cost.max(0.0));
        let width = end - frame.x0();
        write_lane_label(out, &frame, top, bar.name)?;
        write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: cost {}, {} replica-hours</title></rect>"#,
            C(frame.x0()),
            C(top + 4.0),
            C(width),
            C(LANE - 8.0),
            bar.color,
            Esc(bar.name),
            label,
            fixed(bar.replica_hours, 1)
        )?;
        // The value sits inside a bar long enough to hold it, else just after the bar.
        let label_width = GLYPH_WIDTH * label.len() as f64 + 8.0;
        let (x, anchor, class) = if width > label_width {
            (end - 4.0, "end", " class=\"on-bar\" fill=\"#ffffff\"")
        } else {
            (end + 4.0, "start", "")
        };
        write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}"{class}>{}</text>"#,
            C(x),
            C(top + LANE / 2.0 + 4.0),
            label
        )?;
    }
    out.write_str("</svg>")
}
