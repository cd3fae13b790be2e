//! The HTML report: one self-contained page (inline CSS, inline SVG, no script, no external
//! URL) with the run comparison, cost, the incident and decision timeline, a per-service
//! table, and for each key service its load, replicas and p99 latency over time.

use std::collections::BTreeSet;
use std::fmt::{self, Write};

use super::model::{Report, RunReport, ServiceSeries, ServiceTotals};
use super::svg::{self, CostBar, Esc, Lane, RunSeries};
use super::table::{fixed, Comparison, Tone};

/// System fonts only: the page must read offline, so nothing is fetched.
const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;\
color:#1f2328;background:#fff;max-width:1000px;margin:0 auto;padding:16px 24px}\
h1{font-size:22px;margin:8px 0 4px}\
h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}\
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
.meta,.note,footer{color:#57606a}\
.note{font-size:12px}\
ul.runs{list-style:none;padding:0;margin:8px 0}\
ul.runs li{margin:2px 0}\
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}\
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}\
th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eaeef2;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}\
thead th{border-bottom:1px solid #8c959f}\
tr.group th{text-align:left;font-size:12px;color:#57606a;padding-top:10px}\
tr.key td:first-child{font-weight:600}\
.change{color:#57606a}\
.better{color:#1a7f37}\
.worse{color:#cf222e}\
svg.chart{display:block;max-width:100%;height:auto;margin:12px 0}\
.chart text{font-size:11px;fill:#57606a}\
.chart text.title{font-size:13px;font-weight:600;fill:#1f2328}\
.chart .legend text{font-size:12px;fill:#1f2328}\
.chart text.on-bar{fill:#fff}\
footer{margin:32px 0 8px;font-size:12px}";

/// Renders `report` as one self-contained HTML page.
///
/// Per key service there are three charts (load and replicas, p99 against the SLO,
/// incidents and decisions), after a cost chart and a fleet-wide timeline: `3 × key
/// services + 2` inline `<svg>` elements. Every line is downsampled to at most 1,000
/// points, so a page for 3 runs × 3 services × 10k samples stays a few hundred kB. Output
/// depends only on the report, so the same report gives the same bytes.
pub fn render_html(report: &Report) -> String {
    let mut out = String::with_capacity(256 * 1024);
    write_page(&mut out, report).expect("writing to a String cannot fail");
    out
}

fn write_page(out: &mut String, report: &Report) -> fmt::Result {
    let scenario = Esc(&report.scenario);
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">")?;
    writeln!(out, "<head>")?;
    writeln!(out, "<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>Conclave simulation: {scenario}</title>")?;
    writeln!(out, "<style>{CSS}</style>")?;
    writeln!(out, "</head>")?;
    writeln!(out, "<body>")?;
    write_header(out, report)?;
    writeln!(out, "<main>")?;

    let left = plot_left(report);
    let t_max = time_span(report);

    writeln!(out, "<section>\n<h2>Comparison</h2>")?;
    write_comparison(out, &Comparison::of(report))?;
    writeln!(out, "</section>")?;

    writeln!(out, "<section>\n<h2>Cost</h2>")?;
    let bars: Vec<CostBar<'_>> = report
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| CostBar {
            name: &r.name,
            color: svg::run_color(i),
            cost: r.totals.cost,
            replica_hours: r.totals.replica_hours,
        })
        .collect();
    svg::cost_chart(out, left, &bars)?;
    writeln!(out, "\n</section>")?;

    writeln!(out, "<section>\n<h2>Incidents and decisions</h2>")?;
    let lanes: Vec<Lane<'_>> = report
        .runs
        .iter()
        .map(|r| Lane {
            name: &r.name,
            incidents: r.incidents.iter().collect(),
            decisions: r.decisions.iter().collect(),
        })
        .collect();
    svg::timeline_chart(
        out,
        left,
        "All services: incidents and decisions",
        &lanes,
        t_max,
    )?;
    writeln!(
        out,
        "\n<p class=\"note\">An incident is two or more services breaching their SLO at once. \
         Ticks are decisions, colored by outcome; the report keeps each run's first 2,000.</p>"
    )?;
    writeln!(out, "</section>")?;

    writeln!(out, "<section>\n<h2>Services</h2>")?;
    write_services(out, report)?;
    writeln!(out, "</section>")?;

    for service in &report.key_services {
        write_key_service(out, report, service, left, t_max)?;
    }

    writeln!(out, "</main>")?;
    writeln!(
        out,
        "<footer>Rendered by <code>conclave simulate</code> from the same data as <code>report.json</code>.</footer>"
    )?;
    writeln!(out, "</body>")?;
    writeln!(out, "</html>")
}

fn write_header(out: &mut String, report: &Report) -> fmt::Result {
    writeln!(out, "<header>")?;
    writeln!(
        out,
        "<h1>Simulation <code>{}</code></h1>",
        Esc(&report.scenario)
    )?;
    writeln!(
        out,
        "<p class=\"meta\">seed {} &middot; {} simulated ({} s) &middot; step {} s &middot; {} {}</p>",
        report.seed,
        svg::clock(report.duration_s),
        trimmed(report.duration_s),
        trimmed(report.step_s),
        report.runs.len(),
        if report.runs.len() == 1 { "run" } else { "runs" }
    )?;
    writeln!(out, "<ul class=\"runs\">")?;
    for (i, run) in report.runs.iter().enumerate() {
        writeln!(
            out,
            "<li><span class=\"swatch\" style=\"background:{}\"></span><b>{}</b>: {}</li>",
            svg::run_color(i),
            Esc(&run.name),
            Esc(&run.description)
        )?;
    }
    writeln!(out, "</ul>")?;
    writeln!(out, "</header>")
}

/// `v` with thousands separators and one decimal, the decimal dropped when it is `.0`.
fn trimmed(v: f64) -> String {
    let text = fixed(v, 1);
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => text,
    }
}

fn write_comparison(out: &mut String, comparison: &Comparison) -> fmt::Result {
    writeln!(out, "<table class=\"comparison\">")?;
    out.push_str("<thead><tr><th>metric</th>");
    let mut run_index = 0;
    for column in &comparison.columns {
        if column.is_change {
            write!(out, "<th class=\"change\">{}</th>", Esc(&column.title))?;
        } else {
            write!(
                out,
                "<th><span class=\"swatch\" style=\"background:{}\"></span>{}</th>",
                svg::run_color(run_index),
                Esc(&column.title)
            )?;
            run_index += 1;
        }
    }
    writeln!(out, "</tr></thead>")?;
    for group in &comparison.groups {
        writeln!(
            out,
            "<tbody><tr class=\"group\"><th colspan=\"{}\">{}</th></tr>",
            comparison.columns.len() + 1,
            Esc(group.title)
        )?;
        for row in &group.rows {
            write!(out, "<tr><td>{}</td>", Esc(&row.label))?;
            for (cell, column) in row.cells.iter().zip(&comparison.columns) {
                let class = match (column.is_change, cell.tone) {
                    (_, Tone::Better) => " class=\"better\"",
                    (_, Tone::Worse) => " class=\"worse\"",
                    (true, Tone::Plain) => " class=\"change\"",
                    (false, Tone::Plain) => "",
                };
                write!(out, "<td{class}>{}</td>", Esc(&cell.text))?;
            }
            writeln!(out, "</tr>")?;
        }
        writeln!(out, "</tbody>")?;
    }
    writeln!(out, "</table>")?;
    if comparison.columns.iter().any(|c| c.is_change) {
        writeln!(
            out,
            "<p class=\"note\">&ldquo;vs none&rdquo; is the change relative to the run with no agents; \
             green is better, red is worse.</p>"
        )?;
    }
    Ok(())
}

/// A per-service column group: its title and how a service's value is written.
type Measure = (&'static str, fn(&ServiceTotals) -> String);

/// Per-service totals, one column per run for each measure.
fn write_services(out: &mut String, report: &Report) -> fmt::Result {
    let names: BTreeSet<&str> = report
        .runs
        .iter()
        .flat_map(|r| r.services.iter().map(|s| s.name.as_str()))
        .collect();
    if names.is_empty() {
        return writeln!(out, "<p class=\"note\">No per-service totals.</p>");
    }
    let measures: [Measure; 4] = [
        ("SLO-violation minutes", |s| {
            fixed(s.slo_violation_minutes, 1)
        }),
        ("worst p99 ms", |s| fixed(s.worst_p99_ms, 1)),
        ("peak replicas", |s| fixed(f64::from(s.peak_replicas), 0)),
        ("replica-hours", |s| fixed(s.replica_hours, 1)),
    ];
    let runs = report.runs.len().max(1);
    writeln!(out, "<table class=\"services\">")?;
    out.push_str("<thead><tr><th rowspan=\"2\">service</th><th rowspan=\"2\">SLO p99 ms</th>");
    for (title, _) in &measures {
        write!(out, "<th colspan=\"{runs}\">{}</th>", Esc(title))?;
    }
    out.push_str("</tr><tr>");
    for _ in &measures {
        for run in &report.runs {
            write!(out, "<th>{}</th>", Esc(&run.name))?;
        }
    }
    writeln!(out, "</tr></thead>")?;
    writeln!(out, "<tbody>")?;
    for name in names {
        let totals: Vec<_> = report
            .runs
            .iter()
            .map(|r| r.services.iter().find(|s| s.name == name))
            .collect();
        let slo = totals
            .iter()
            .flatten()
            .next()
            .map_or_else(|| "-".to_owned(), |s| fixed(s.slo_p99_ms, 0));
        let class = if report.key_services.iter().any(|k| k == name) {
            " class=\"key\""
        } else {
            ""
        };
        write!(out, "<tr{class}><td>{}</td><td>{}</td>", Esc(name), slo)?;
        for (_, measure) in &measures {
            for t in &totals {
                let text = t.map_or_else(|| "-".to_owned(), measure);
                write!(out, "<td>{}</td>", Esc(&text))?;
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</tbody>\n</table>")?;
    if report.key_services.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<p class=\"note\">Key services, charted below, are in bold.</p>"
    )
}

fn write_key_service(
    out: &mut String,
    report: &Report,
    service: &str,
    left: f64,
    t_max: f64,
) -> fmt::Result {
    writeln!(
        out,
        "<section class=\"service\">\n<h2>Service <code>{}</code></h2>",
        Esc(service)
    )?;
    let runs: Vec<RunSeries<'_>> = report
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| RunSeries {
            name: &r.name,
            color: svg::run_color(i),
            series: find_series(r, service),
        })
        .collect();
    let slo = runs
        .iter()
        .find_map(|r| r.series.map(|s| s.slo_p99_ms))
        .or_else(|| {
            report
                .runs
                .iter()
                .flat_map(|r| &r.services)
                .find(|s| s.name == service)
                .map(|s| s.slo_p99_ms)
        })
        .unwrap_or(f64::NAN);
    svg::load_chart(out, left, service, &runs, t_max)?;
    out.push('\n');
    svg::latency_chart(out, left, service, slo, &runs, t_max)?;
    out.push('\n');
    let lanes: Vec<Lane<'_>> = report
        .runs
        .iter()
        .map(|r| Lane {
            name: &r.name,
            incidents: r
                .incidents
                .iter()
                .filter(|i| i.services.iter().any(|s| s == service))
                .collect(),
            decisions: r.decisions.iter().filter(|d| d.target == service).collect(),
        })
        .collect();
    svg::timeline_chart(
        out,
        left,
        &format!("{service}: incidents involving it and decisions on it"),
        &lanes,
        t_max,
    )?;
    writeln!(out, "\n</section>")
}

fn find_series<'a>(run: &'a RunReport, service: &str) -> Option<&'a ServiceSeries> {
    run.series.iter().find(|s| s.name == service)
}

/// The plots' left edge: room for the longest run name in the lane charts (at about 7 px
/// a character), the same for every chart so their time axes line up.
fn plot_left(report: &Report) -> f64 {
    let longest = report
        .runs
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    (7.0 * longest as f64 + 20.0).clamp(64.0, 200.0)
}

/// The time axis span: the simulated duration, or when it is missing, the latest time any
/// series, incident or decision mentions.
fn time_span(report: &Report) -> f64 {
    if report.duration_s.is_finite() && report.duration_s > 0.0 {
        return report.duration_s;
    }
    report
        .runs
        .iter()
        .flat_map(|r| {
            r.series
                .iter()
                .filter_map(|s| s.t_s.last().copied())
                .chain(r.incidents.iter().map(|i| i.end_s))
                .chain(r.decisions.iter().map(|d| d.t_s))
        })
        .filter(|t| t.is_finite())
        .fold(1.0, f64::max)
}
