//! Report rendering: goldens for a small hand-built report, HTML well-formedness, escaping,
//! chart counts, determinism, size, downsampling and the number formats.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::svg::{self, downsample, linear_axis, log_axis, time_axis, Scale, C, MAX_POINTS};
use super::table::fixed;
use super::*;

/// Compares `actual` with `tests/golden/report/<name>` byte for byte, or rewrites the file
/// when `CONCLAVE_BLESS=1` (the convention of the top-level `tests/golden.rs`).
fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/report")
        .join(name);
    if std::env::var("CONCLAVE_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("golden path has a parent"))
            .expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with CONCLAVE_BLESS=1",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    // Report pages have long lines: show the first differing line, cut around the first
    // differing column.
    let window = |text: &str| {
        let l = text.lines().nth(line).unwrap_or("<end of file>");
        let column = expected
            .lines()
            .nth(line)
            .unwrap_or("")
            .bytes()
            .zip(actual.lines().nth(line).unwrap_or("").bytes())
            .position(|(e, a)| e != a)
            .unwrap_or(0);
        let start = (column.saturating_sub(200)..=column)
            .find(|&i| l.is_char_boundary(i))
            .unwrap_or(0)
            .min(l.len());
        let end = (column + 200..=l.len().max(column + 200))
            .find(|&i| i >= l.len() || l.is_char_boundary(i))
            .unwrap_or(l.len())
            .min(l.len());
        l[start..end].to_owned()
    };
    let show = |text: &str| {
        if text.len() <= 4_000 {
            text.to_owned()
        } else {
            window(text)
        }
    };
    panic!(
        "golden mismatch for report/{name} (first difference at line {})\n--- expected\n{}\n--- actual\n{}\n(run with CONCLAVE_BLESS=1 to accept)",
        line + 1,
        show(&expected),
        show(actual)
    );
}

fn series(
    name: &str,
    slo: f64,
    points: usize,
    step_s: f64,
    shape: impl Fn(usize) -> (f64, f64, f64),
) -> ServiceSeries {
    let mut s = ServiceSeries {
        name: name.to_owned(),
        slo_p99_ms: slo,
        t_s: Vec::with_capacity(points),
        load: Vec::with_capacity(points),
        replicas: Vec::with_capacity(points),
        p99_ms: Vec::with_capacity(points),
        error_rate: Vec::with_capacity(points),
    };
    for i in 0..points {
        let (load, replicas, p99) = shape(i);
        s.t_s.push(i as f64 * step_s);
        s.load.push(load);
        s.replicas.push(replicas);
        s.p99_ms.push(p99);
        s.error_rate.push(if p99 > slo { 0.02 } else { 0.0 });
    }
    s
}

fn service_totals(
    name: &str,
    minutes: f64,
    replica_hours: f64,
    peak: u32,
    worst: f64,
    slo: f64,
) -> ServiceTotals {
    ServiceTotals {
        name: name.to_owned(),
        slo_violation_minutes: minutes,
        replica_hours,
        peak_replicas: peak,
        worst_p99_ms: worst,
        slo_p99_ms: slo,
    }
}

fn mark(t_s: f64, target: &str, outcome: &str) -> DecisionMark {
    DecisionMark {
        t_s,
        agent: "scaler".to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        action: "scale to 6".to_owned(),
    }
}

fn incident(start_s: f64, end_s: f64, services: &[&str]) -> Incident {
    Incident {
        start_s,
        end_s,
        services: services.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A small report: three runs, two key services, an hour at one sample a minute.
fn small_report() -> Report {
    // Load ramps up and back; the `none` run stays at 4 replicas and its p99 blows up
    // during the peak, the policy scales out, the oracle scales ahead of the peak.
    let load = |i: usize| 120.0 + 12.0 * (i.min(60 - i.min(60))) as f64;
    let none = |svc_slo: f64| {
        move |i: usize| {
            let l = load(i);
            let p99 = if (25..=38).contains(&i) {
                svc_slo * (2.0 + (i - 25) as f64)
            } else {
                svc_slo * 0.4
            };
            (l, 4.0, p99)
        }
    };
    let policy = |svc_slo: f64| {
        move |i: usize| {
            let replicas = 4.0 + (i.saturating_sub(20) / 4).min(4) as f64;
            let p99 = if (25..=29).contains(&i) {
                svc_slo * 1.5
            } else {
                svc_slo * 0.35
            };
            (load(i), replicas, p99)
        }
    };
    let oracle = |svc_slo: f64| {
        move |i: usize| {
            let replicas = 4.0 + (i.saturating_sub(15) / 3).min(5) as f64;
            (load(i), replicas, svc_slo * 0.3)
        }
    };
    let services = |minutes: [f64; 2], rh: [f64; 2], peak: [u32; 2], worst: [f64; 2]| {
        vec![
            service_totals("checkout", minutes[0], rh[0], peak[0], worst[0], 250.0),
            service_totals("inventory", 0.0, 4.0, 2, 40.0, 100.0),
            service_totals("payments", minutes[1], rh[1], peak[1], worst[1], 400.0),
        ]
    };
    Report {
        scenario: "checkout-surge".to_owned(),
        seed: 42,
        duration_s: 3_600.0,
        step_s: 1.0,
        key_services: vec!["checkout".to_owned(), "payments".to_owned()],
        runs: vec![
            RunReport {
                name: "none".to_owned(),
                description: "static replicas, nothing intervenes".to_owned(),
                totals: Totals {
                    slo_violation_minutes: 184.5,
                    incidents: 3,
                    arrived: 1_254_300.0,
                    failed: 12_345.4,
                    dropped: 6_789.0,
                    worst_p99_ms: 4_000.0,
                    replica_hours: 12.0,
                    cost: 48.0,
                    decisions: BTreeMap::new(),
                    dead_lettered: 0,
                    compliance: Some(ComplianceScore {
                        violations: 40,
                        caught: 0,
                        false_positives: 0,
                        recall: 0.0,
                        precision: f64::NAN,
                    }),
                    shadow: None,
                    model_fallbacks: Default::default(),
                },
                services: services([14.0, 14.0], [4.0, 4.0], [4, 4], [3_750.0, 6_000.0]),
                series: vec![
                    series("checkout", 250.0, 61, 60.0, none(250.0)),
                    series("payments", 400.0, 61, 60.0, none(400.0)),
                ],
                incidents: vec![
                    incident(1_500.0, 1_740.0, &["checkout", "payments"]),
                    incident(1_800.0, 2_280.0, &["checkout", "payments", "inventory"]),
                    incident(3_000.0, 3_060.0, &["inventory", "search"]),
                ],
                decisions: vec![],
            },
            RunReport {
                name: "policy".to_owned(),
                description: "the policy's agents through the runtime".to_owned(),
                totals: Totals {
                    slo_violation_minutes: 51.2,
                    incidents: 1,
                    arrived: 1_254_300.0,
                    failed: 1_020.0,
                    dropped: 0.0,
                    worst_p99_ms: 600.0,
                    replica_hours: 15.25,
                    cost: 61.0,
                    decisions: BTreeMap::from([
                        ("enacted".to_owned(), 14),
                        ("modified".to_owned(), 2),
                        ("rejected".to_owned(), 3),
                        ("pending".to_owned(), 1),
                    ]),
                    dead_lettered: 2,
                    compliance: Some(ComplianceScore {
                        violations: 40,
                        caught: 36,
                        false_positives: 1,
                        recall: 0.9,
                        precision: 0.947_368,
                    }),
                    shadow: None,
                    model_fallbacks: Default::default(),
                },
                services: services([5.0, 0.0], [6.0, 5.25], [8, 6], [375.0, 140.0]),
                series: vec![
                    series("checkout", 250.0, 61, 60.0, policy(250.0)),
                    series("payments", 400.0, 61, 60.0, policy(400.0)),
                ],
                incidents: vec![incident(1_500.0, 1_740.0, &["checkout", "inventory"])],
                decisions: vec![
                    mark(1_260.0, "checkout", "enacted"),
                    mark(1_500.0, "checkout", "enacted"),
                    mark(1_500.0, "payments", "modified"),
                    mark(1_740.0, "checkout", "rejected"),
                    mark(1_980.0, "payments", "enacted"),
                    mark(2_400.0, "inventory", "pending"),
                ],
            },
            RunReport {
                name: "oracle".to_owned(),
                description: "knows the load in advance".to_owned(),
                totals: Totals {
                    slo_violation_minutes: 0.0,
                    incidents: 0,
                    arrived: 1_254_300.0,
                    failed: 0.0,
                    dropped: 0.0,
                    worst_p99_ms: 120.0,
                    replica_hours: 16.5,
                    cost: 66.0,
                    decisions: BTreeMap::from([("enacted".to_owned(), 9)]),
                    dead_lettered: 0,
                    compliance: None,
                    shadow: None,
                    model_fallbacks: Default::default(),
                },
                services: services([0.0, 0.0], [6.5, 6.0], [9, 9], [75.0, 120.0]),
                series: vec![
                    series("checkout", 250.0, 61, 60.0, oracle(250.0)),
                    series("payments", 400.0, 61, 60.0, oracle(400.0)),
                ],
                incidents: vec![],
                decisions: vec![
                    mark(900.0, "checkout", "enacted"),
                    mark(1_080.0, "payments", "enacted"),
                ],
            },
        ],
    }
}

/// A big report: 3 runs × 3 key services × 10k samples, 2,000 decisions and 100 incidents
/// per run, values from a fixed linear congruential generator.
fn big_report() -> Report {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let names = ["checkout", "payments", "search"];
    let mut runs = Vec::new();
    for run in ["none", "policy", "oracle"] {
        let series = names
            .iter()
            .map(|name| {
                let noise: Vec<f64> = (0..10_000).map(|_| next()).collect();
                series(name, 250.0, 10_000, 1.0, |i| {
                    let r = noise[i];
                    (
                        1_000.0 + 5_000.0 * r,
                        (4.0 + 20.0 * r).floor(),
                        20.0 + 3_000.0 * r * r * r,
                    )
                })
            })
            .collect();
        let decisions = (0..2_000)
            .map(|i| {
                mark(
                    i as f64 * 5.0,
                    names[i % 3],
                    ["enacted", "rejected", "modified", "pending"][i % 4],
                )
            })
            .collect();
        let incidents = (0..100)
            .map(|i| incident(i as f64 * 100.0, i as f64 * 100.0 + 40.0, &names))
            .collect();
        runs.push(RunReport {
            name: run.to_owned(),
            description: format!("the {run} run"),
            totals: Totals::default(),
            services: names
                .iter()
                .map(|n| service_totals(n, 1.0, 2.0, 3, 4.0, 250.0))
                .collect(),
            series,
            incidents,
            decisions,
        });
    }
    Report {
        scenario: "big".to_owned(),
        seed: 7,
        duration_s: 10_000.0,
        step_s: 1.0,
        key_services: names.iter().map(|n| (*n).to_owned()).collect(),
        runs,
    }
}

/// Checks that every element is closed in order: a tag stack over the whole document,
/// with HTML's void elements and `/>` self-closing tags.
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>').expect("every `<` has a `>`");
        let tag = &after[..close];
        rest = &after[close + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack.pop();
            assert_eq!(
                top,
                Some(name),
                "closing `</{name}>` does not match `{top:?}`"
            );
            continue;
        }
        let name = tag.split([' ', '/']).next().expect("a tag has a name");
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "odd tag `<{tag}>`"
        );
        if !tag.ends_with('/') && !VOID.contains(&name) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    for (open, close) in [("<svg ", "</svg>"), ("<g ", "</g>")] {
        assert_eq!(
            html.matches(open).count(),
            html.matches(close).count(),
            "{open} vs {close}"
        );
    }
    let paths = html.matches("<path ").count();
    let closed = html.matches("</path>").count();
    let self_closed = html
        .split("<path ")
        .skip(1)
        .filter(|p| p.split('>').next().is_some_and(|t| t.ends_with('/')))
        .count();
    assert_eq!(paths, closed + self_closed, "every <path> is closed");
}

#[test]
fn report_table_golden() {
    assert_golden("table.txt", &render_table(&small_report()));
}

#[test]
fn report_html_golden() {
    assert_golden("small.html", &render_html(&small_report()));
}

#[test]
fn report_html_is_well_formed() {
    assert_well_formed(&render_html(&small_report()));
    assert_well_formed(&render_html(&big_report()));
}

#[test]
fn report_html_is_self_contained() {
    let html = render_html(&big_report());
    let xmlns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(
        html.matches("http").count(),
        xmlns,
        "only the SVG namespace names a URL"
    );
    for banned in ["<script", "url(", "src=", "href=", "@import", "<link"] {
        assert!(
            !html.contains(banned),
            "`{banned}` in a self-contained page"
        );
    }
    assert!(html.is_ascii(), "entities keep the page ASCII");
}

#[test]
fn report_html_escapes_every_name() {
    let mut report = small_report();
    let odd = "a<b&c";
    report.scenario = "<script>alert(\"x\")</script>".to_owned();
    report.key_services = vec![odd.to_owned()];
    report.runs[1].name = "p\"o'l".to_owned();
    for run in &mut report.runs {
        run.series[0].name = odd.to_owned();
        run.services[0].name = odd.to_owned();
        for d in &mut run.decisions {
            d.target = odd.to_owned();
        }
        for i in &mut run.incidents {
            i.services[0] = odd.to_owned();
        }
    }
    let html = render_html(&report);
    assert_well_formed(&html);
    assert!(!html.contains(odd), "raw `{odd}` in the page");
    assert!(html.contains("a&lt;b&amp;c"));
    assert!(!html.contains("<script"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(html.contains("p&quot;o&#39;l"));
    // The renamed service still finds its series: the charts are not empty.
    assert!(!html.contains("no series recorded"));
}

#[test]
fn report_html_has_three_charts_per_key_service_plus_two() {
    let report = small_report();
    let names = ["checkout", "payments", "not-recorded"];
    for n in 0..=names.len() {
        let mut r = report.clone();
        r.key_services = names[..n].iter().map(|s| (*s).to_owned()).collect();
        let html = render_html(&r);
        assert_eq!(html.matches("<svg").count(), 3 * n + 2, "{n} key services");
    }
}

#[test]
fn report_html_handles_an_empty_report() {
    let report = Report {
        scenario: "empty".to_owned(),
        seed: 0,
        duration_s: 0.0,
        step_s: 0.0,
        key_services: vec!["ghost".to_owned()],
        runs: vec![],
    };
    let html = render_html(&report);
    assert_well_formed(&html);
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(!html.contains("NaN") && !html.contains("inf"));
    let table = render_table(&report);
    assert!(table.starts_with("metric\n-----"), "{table}");
    assert!(table.contains("\ndecisions enacted\n"), "{table}");
}

#[test]
fn report_rendering_is_deterministic() {
    let report = big_report();
    assert_eq!(render_html(&report), render_html(&report.clone()));
    assert_eq!(render_table(&report), render_table(&report.clone()));
    let small = small_report();
    assert_eq!(render_html(&small), render_html(&small));
}

#[test]
fn report_html_stays_small() {
    let html = render_html(&big_report());
    assert!(
        html.len() < 1_000_000,
        "{} bytes for 3 runs × 3 services × 10k points",
        html.len()
    );
    assert!(!html.contains("NaN"));
}

#[test]
fn report_lines_are_downsampled() {
    let html = render_html(&big_report());
    // Each line path holds at most MAX_POINTS coordinate pairs.
    for path in html.split("<path d=\"M").skip(1) {
        let d = path.split('"').next().expect("d ends with a quote");
        let pairs = d.matches(',').count();
        assert!(pairs <= 2 * MAX_POINTS + 2, "{pairs} points in one path");
    }
}

struct DownsampleCase {
    name: &'static str,
    len: usize,
    limit: usize,
}

const DOWNSAMPLE_CASES: &[DownsampleCase] = &[
    DownsampleCase {
        name: "empty",
        len: 0,
        limit: 1_000,
    },
    DownsampleCase {
        name: "one",
        len: 1,
        limit: 1_000,
    },
    DownsampleCase {
        name: "at_limit",
        len: 1_000,
        limit: 1_000,
    },
    DownsampleCase {
        name: "one_over",
        len: 1_001,
        limit: 1_000,
    },
    DownsampleCase {
        name: "ten_k",
        len: 10_000,
        limit: 1_000,
    },
    DownsampleCase {
        name: "odd_limit",
        len: 10_000,
        limit: 999,
    },
    DownsampleCase {
        name: "tiny_limit",
        len: 50,
        limit: 3,
    },
    DownsampleCase {
        name: "limit_below_two",
        len: 50,
        limit: 0,
    },
];

#[test]
fn report_downsampling_keeps_ends_and_limit() {
    for case in DOWNSAMPLE_CASES {
        let t: Vec<f64> = (0..case.len).map(|i| i as f64).collect();
        // A spike in the middle must survive.
        let y: Vec<f64> = (0..case.len)
            .map(|i| {
                if i == case.len / 2 {
                    1e6
                } else {
                    (i % 7) as f64
                }
            })
            .collect();
        let kept = downsample(&t, &y, case.limit);
        assert!(
            kept.len() <= case.limit.max(2),
            "{}: {} points",
            case.name,
            kept.len()
        );
        assert!(kept.len() <= case.len, "{}", case.name);
        if case.len > 0 {
            assert_eq!(kept.first(), Some(&(t[0], y[0])), "{}: first", case.name);
            let last = case.len - 1;
            assert_eq!(
                kept.last(),
                Some(&(t[last], y[last])),
                "{}: last",
                case.name
            );
        }
        if case.len > 0 && case.limit >= 4 {
            assert!(kept.iter().any(|p| p.1 == 1e6), "{}: spike kept", case.name);
        }
        assert!(
            kept.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: in time order",
            case.name
        );
        assert_eq!(
            kept,
            downsample(&t, &y, case.limit),
            "{}: deterministic",
            case.name
        );
    }
}

#[test]
fn report_downsampling_drops_non_finite_points() {
    let t = [0.0, 1.0, 2.0, f64::NAN, 4.0];
    let y = [1.0, f64::INFINITY, 3.0, 4.0, f64::NAN];
    assert_eq!(downsample(&t, &y, 10), vec![(0.0, 1.0), (2.0, 3.0)]);
}

struct ChangeCase {
    name: &'static str,
    base: f64,
    value: f64,
    expected: &'static str,
}

const CHANGE_CASES: &[ChangeCase] = &[
    ChangeCase {
        name: "big_drop",
        base: 184.5,
        value: 51.2,
        expected: "-72 %",
    },
    ChangeCase {
        name: "small_rise",
        base: 100.0,
        value: 104.5,
        expected: "+4.5 %",
    },
    ChangeCase {
        name: "tiny",
        base: 1_000.0,
        value: 1_000.4,
        expected: "0 %",
    },
    ChangeCase {
        name: "whole_small",
        base: 10.0,
        value: 9.0,
        expected: "-10 %",
    },
    ChangeCase {
        name: "both_zero",
        base: 0.0,
        value: 0.0,
        expected: "0 %",
    },
    ChangeCase {
        name: "from_zero",
        base: 0.0,
        value: 3.0,
        expected: "-",
    },
    ChangeCase {
        name: "all_gone",
        base: 12.0,
        value: 0.0,
        expected: "-100 %",
    },
];

#[test]
fn report_relative_changes() {
    for case in CHANGE_CASES {
        let mut report = small_report();
        report.runs.truncate(2);
        report.runs[0].totals.dead_lettered = case.base as u64;
        report.runs[0].totals.slo_violation_minutes = case.base;
        report.runs[1].totals.slo_violation_minutes = case.value;
        let table = render_table(&report);
        let row = table
            .lines()
            .find(|l| l.starts_with("SLO-violation minutes"))
            .expect("row present");
        assert!(
            row.trim_end().ends_with(&format!("  {}", case.expected)),
            "{}: `{row}`",
            case.name
        );
    }
}

#[test]
fn report_table_without_baseline_has_no_change_column() {
    let mut report = small_report();
    report.runs.remove(0);
    let table = render_table(&report);
    assert!(!table.contains("vs none"));
    report
        .runs
        .iter_mut()
        .for_each(|r| r.totals.compliance = None);
    assert!(!render_table(&report).contains("compliance"));
}

struct NumberCase {
    name: &'static str,
    value: f64,
    decimals: usize,
    expected: &'static str,
}

const NUMBER_CASES: &[NumberCase] = &[
    NumberCase {
        name: "zero",
        value: 0.0,
        decimals: 0,
        expected: "0",
    },
    NumberCase {
        name: "negative_zero",
        value: -0.04,
        decimals: 1,
        expected: "0.0",
    },
    NumberCase {
        name: "thousands",
        value: 1_234_567.89,
        decimals: 1,
        expected: "1,234,567.9",
    },
    NumberCase {
        name: "negative",
        value: -12_345.0,
        decimals: 0,
        expected: "-12,345",
    },
    NumberCase {
        name: "three_digits",
        value: 999.0,
        decimals: 2,
        expected: "999.00",
    },
    NumberCase {
        name: "rounds_up",
        value: 999.96,
        decimals: 1,
        expected: "1,000.0",
    },
    NumberCase {
        name: "nan",
        value: f64::NAN,
        decimals: 1,
        expected: "-",
    },
];

#[test]
fn report_number_formats() {
    for case in NUMBER_CASES {
        assert_eq!(
            fixed(case.value, case.decimals),
            case.expected,
            "{}",
            case.name
        );
    }
    for (v, expected) in [
        (0.0, "0"),
        (-0.04, "0"),
        (12.34, "12.3"),
        (-7.25, "-7.3"),
        (100.0, "100"),
    ] {
        assert_eq!(C(v).to_string(), expected, "coordinate {v}");
    }
    for (s, expected) in [
        (0.0, "0"),
        (45.0, "45s"),
        (300.0, "5m"),
        (5_400.0, "1h30m"),
        (93_600.0, "26h"),
    ] {
        assert_eq!(svg::clock(s), expected, "clock {s}");
    }
}

#[test]
fn report_axes_have_round_ticks() {
    let labels = |a: &svg::Axis| {
        a.ticks
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let a = linear_axis(0.0, 87.0, 5);
    assert_eq!((a.lo, a.hi), (0.0, 100.0));
    assert_eq!(labels(&a), "0 20 40 60 80 100");
    assert_eq!(labels(&linear_axis(0.0, 0.7, 5)), "0 0.2 0.4 0.6 0.8");
    assert_eq!(labels(&linear_axis(0.0, 52_000.0, 5)), "0 20k 40k 60k");
    assert_eq!(
        labels(&linear_axis(0.0, 4_200.0, 5)),
        "0 1,000 2,000 3,000 4,000 5,000"
    );
    let log = log_axis(3.0, 4_000.0);
    assert_eq!((log.lo, log.hi), (1.0, 10_000.0));
    assert_eq!(labels(&log), "1 10 100 1,000 10k");
    assert_eq!(labels(&log_axis(30.0, 900.0)), "10 20 50 100 200 500 1,000");
    assert_eq!(labels(&time_axis(3_600.0)), "0 10m 20m 30m 40m 50m 1h");
    assert_eq!(
        labels(&time_axis(86_400.0)),
        "0 3h 6h 9h 12h 15h 18h 21h 24h"
    );
    let s = Scale::of(&a, 100.0, 0.0);
    assert_eq!((s.map(0.0), s.map(50.0), s.map(1e9)), (100.0, 50.0, 0.0));
}
