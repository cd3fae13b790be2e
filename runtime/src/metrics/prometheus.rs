//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` per
//! family, one line per sample, histograms as cumulative `_bucket{le=..}` lines plus
//! `_sum` and `_count`. Label values escape `\`, `"` and newlines; help text escapes `\`
//! and newlines.

use std::fmt::Write as _;

use super::catalog::{Kind, Value};
use super::MetricsSnapshot;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus reads it (`+Inf`, `-Inf`, `NaN`; shortest round-trip decimal
/// otherwise).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// `{a="x",b="y"}` (with `extra` last), or nothing without labels.
fn labels(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{}\"", escape_label(v)));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// The snapshot in the text format.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for family in &snapshot.families {
        let def = family.def;
        let name = def.prometheus_name();
        let kind = match def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {}", escape_help(def.help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in &family.samples {
            match &sample.value {
                Value::Counter(v) => {
                    let l = labels(def.labels, &sample.labels, None);
                    let _ = writeln!(out, "{name}{l} {v}");
                }
                Value::Gauge(v) => {
                    let l = labels(def.labels, &sample.labels, None);
                    let _ = writeln!(out, "{name}{l} {}", float(*v));
                }
                Value::Histogram(h) => {
                    let mut cumulative = 0u64;
                    for b in &h.buckets {
                        cumulative += b.count;
                        let le = float(b.le);
                        let l = labels(def.labels, &sample.labels, Some(("le", &le)));
                        let _ = writeln!(out, "{name}_bucket{l} {cumulative}");
                    }
                    let l = labels(def.labels, &sample.labels, None);
                    let _ = writeln!(out, "{name}_sum{l} {}", float(h.sum()));
                    let _ = writeln!(out, "{name}_count{l} {cumulative}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::catalog::{MetricDef, Readings, Sample};
    use crate::metrics::{Bucket, Family, HistogramSnapshot};

    fn none(_: &Readings) -> Vec<Sample> {
        Vec::new()
    }

    const COUNTER: MetricDef = MetricDef {
        name: "conclave.test.things",
        help: "Things, with a \\ backslash\nand a newline.",
        unit: "{thing}",
        kind: Kind::Counter,
        labels: &["agent", "reason"],
        buckets: &[],
        read: none,
    };
    const GAUGE: MetricDef = MetricDef {
        name: "conclave.test.depth",
        help: "Depth.",
        unit: "{item}",
        kind: Kind::Gauge,
        labels: &[],
        buckets: &[],
        read: none,
    };
    const HISTOGRAM: MetricDef = MetricDef {
        name: "conclave.test.duration",
        help: "Durations.",
        unit: "s",
        kind: Kind::Histogram,
        labels: &["model"],
        buckets: &[0.001, 1.0],
        read: none,
    };

    fn sample(labels: &[&str], value: Value) -> Sample {
        Sample {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            value,
        }
    }

    #[test]
    fn text_format_0_0_4() {
        let snapshot = MetricsSnapshot {
            families: vec![
                Family {
                    def: &COUNTER,
                    samples: vec![
                        sample(&["scaler", "timeout"], Value::Counter(3)),
                        sample(&["we\"ird\\", "new\nline"], Value::Counter(0)),
                    ],
                },
                Family {
                    def: &GAUGE,
                    samples: vec![sample(&[], Value::Gauge(2.5))],
                },
                Family {
                    def: &HISTOGRAM,
                    samples: vec![sample(
                        &["m"],
                        Value::Histogram(HistogramSnapshot {
                            buckets: vec![
                                Bucket {
                                    le: 0.001,
                                    count: 2,
                                    sum: 0.0015,
                                },
                                Bucket {
                                    le: 1.0,
                                    count: 1,
                                    sum: 0.25,
                                },
                                Bucket {
                                    le: f64::INFINITY,
                                    count: 0,
                                    sum: 0.0,
                                },
                            ],
                        }),
                    )],
                },
            ],
        };
        let want = r#"# HELP conclave_test_things_total Things, with a \\ backslash\nand a newline.
# TYPE conclave_test_things_total counter
conclave_test_things_total{agent="scaler",reason="timeout"} 3
conclave_test_things_total{agent="we\"ird\\",reason="new\nline"} 0
# HELP conclave_test_depth Depth.
# TYPE conclave_test_depth gauge
conclave_test_depth 2.5
# HELP conclave_test_duration_seconds Durations.
# TYPE conclave_test_duration_seconds histogram
conclave_test_duration_seconds_bucket{model="m",le="0.001"} 2
conclave_test_duration_seconds_bucket{model="m",le="1"} 3
conclave_test_duration_seconds_bucket{model="m",le="+Inf"} 3
conclave_test_duration_seconds_sum{model="m"} 0.2515
conclave_test_duration_seconds_count{model="m"} 3
"#;
        assert_eq!(render(&snapshot), want);
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-7, 3.0];
        assert_eq!(
            specials.map(float),
            ["NaN", "+Inf", "-Inf", "0.0000001", "3"].map(String::from)
        );
    }

    #[test]
    fn a_fresh_registry_renders_every_family() {
        let text = render(&crate::metrics::Metrics::new().snapshot());
        for def in crate::metrics::ALL {
            let name = def.prometheus_name();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("conclave_telemetry_received_total 0\n"));
        assert!(text.contains("conclave_dead_letters_total{reason=\"malformed_json\"} 0\n"));
    }
}
