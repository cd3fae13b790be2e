//! The comparison table: one column per run, one row per metric, and after each run other
//! than the `none` baseline the change relative to it. `render_table` prints it as aligned
//! ASCII; the HTML report renders the same `Comparison`, so both always agree.

use super::model::{Report, Totals};

/// The run every other run is compared with.
const BASELINE: &str = "none";

/// Decision outcomes in the order a reader expects them (the runtime's `Outcome::name`s):
/// what was carried out, what was refused, what waits, then the rarer ones.
pub(crate) const OUTCOMES: &[&str] = &[
    "enacted",
    "modified",
    "rejected",
    "pending",
    "overridden",
    "advised",
    "shadowed",
];
/// Outcomes with a row even when no run has them, so the table keeps its shape.
const ALWAYS_SHOWN_OUTCOMES: &[&str] = &["enacted", "rejected", "pending"];

/// Renders `report` as a side-by-side ASCII table, one column per run, ending in a newline.
///
/// Runs other than `none` get a `vs none` column with the relative change where it means
/// something (`-72 %`); a cell that does not apply shows `-`. Output depends only on the
/// report, so the same report gives the same bytes.
pub fn render_table(report: &Report) -> String {
    let comparison = Comparison::of(report);
    let label_width = comparison
        .groups
        .iter()
        .flat_map(|g| g.rows.iter())
        .map(|r| r.label.len())
        .chain(std::iter::once("metric".len()))
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = comparison
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            comparison
                .groups
                .iter()
                .flat_map(|g| g.rows.iter())
                .map(|r| r.cells[i].text.len())
                .chain(std::iter::once(c.title.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();

    let mut out = String::new();
    let mut line = format!("{:<label_width$}", "metric");
    for (c, w) in comparison.columns.iter().zip(&widths) {
        line.push_str(&format!("  {:>w$}", c.title));
    }
    push_line(&mut out, &line);
    let mut rule = "-".repeat(label_width);
    for w in &widths {
        rule.push_str("  ");
        rule.push_str(&"-".repeat(*w));
    }
    push_line(&mut out, &rule);
    for (gi, group) in comparison.groups.iter().enumerate() {
        if gi > 0 {
            out.push('\n');
        }
        for row in &group.rows {
            let mut line = format!("{:<label_width$}", row.label);
            for (cell, w) in row.cells.iter().zip(&widths) {
                line.push_str(&format!("  {:>w$}", cell.text));
            }
            push_line(&mut out, &line);
        }
    }
    out
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The table's content, independent of how it is drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    /// Value columns (the label column is implicit).
    pub columns: Vec<Column>,
    /// Rows, in groups (reliability, capacity, decisions, compliance).
    pub groups: Vec<Group>,
}

/// A value column: a run, or a run's change against the baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    /// The header text.
    pub title: String,
    /// Whether the column holds relative changes rather than values.
    pub is_change: bool,
}

/// Rows that belong together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// What the rows measure.
    pub title: &'static str,
    /// The rows.
    pub rows: Vec<Row>,
}

/// One metric across the columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// The metric.
    pub label: String,
    /// One per column.
    pub cells: Vec<Cell>,
}

/// One value as shown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    /// The formatted value.
    pub text: String,
    /// Whether the change is an improvement (for change cells).
    pub tone: Tone,
}

/// How a change reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// A value, or a change that is neither better nor worse.
    Plain,
    /// Lower than the baseline on a lower-is-better metric.
    Better,
    /// Higher than the baseline on a lower-is-better metric.
    Worse,
}

/// How a metric's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Rounded to a whole number, thousands separated.
    Count,
    /// One decimal, thousands separated.
    Decimal,
    /// Two decimals, thousands separated.
    Money,
    /// A 0..1 ratio as a percentage with one decimal.
    Percent,
}

/// Whether a metric gets a relative change against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Lower is better: show the change and say whether it helps.
    LowerIsBetter,
    /// A change would mean nothing (decision counts: the baseline makes none).
    No,
}

impl Comparison {
    /// Builds the table for `report`.
    pub(crate) fn of(report: &Report) -> Self {
        let baseline = report.runs.iter().position(|r| r.name == BASELINE);
        let mut columns = Vec::new();
        // For each column: the run it reads, and whether it is that run's change column.
        let mut sources: Vec<(usize, bool)> = Vec::new();
        for (i, run) in report.runs.iter().enumerate() {
            columns.push(Column {
                title: run.name.clone(),
                is_change: false,
            });
            sources.push((i, false));
            if baseline.is_some() && baseline != Some(i) {
                columns.push(Column {
                    title: format!("vs {BASELINE}"),
                    is_change: true,
                });
                sources.push((i, true));
            }
        }
        let totals: Vec<&Totals> = report.runs.iter().map(|r| &r.totals).collect();
        let row = |label: &str,
                   format: Format,
                   compare: Compare,
                   value: &dyn Fn(&Totals) -> Option<f64>| {
            let values: Vec<Option<f64>> = totals.iter().map(|t| value(t)).collect();
            let base = baseline.and_then(|b| values[b]);
            let cells = sources
                .iter()
                .map(|&(run, is_change)| match (is_change, values[run]) {
                    (false, v) => Cell {
                        text: v.map_or_else(|| "-".to_owned(), |v| format_value(v, format)),
                        tone: Tone::Plain,
                    },
                    (true, Some(v)) if compare == Compare::LowerIsBetter => {
                        // A change is relative to the baseline as shown: a count shown as
                        // `0` (say 0.3 requests) is nothing, not a tiny denominator.
                        let shown = base.map(|b| {
                            if format == Format::Count && b.abs() < 0.5 {
                                0.0
                            } else {
                                b
                            }
                        });
                        change(shown, v)
                    }
                    (true, _) => Cell {
                        text: "-".to_owned(),
                        tone: Tone::Plain,
                    },
                })
                .collect();
            Row {
                label: label.to_owned(),
                cells,
            }
        };

        let lower = Compare::LowerIsBetter;
        let mut groups = vec![
            Group {
                title: "Reliability",
                rows: vec![
                    row("SLO-violation minutes", Format::Decimal, lower, &|t| {
                        Some(t.slo_violation_minutes)
                    }),
                    row("incidents", Format::Count, lower, &|t| {
                        Some(t.incidents as f64)
                    }),
                    row("requests arrived", Format::Count, Compare::No, &|t| {
                        Some(t.arrived)
                    }),
                    row("requests failed", Format::Count, lower, &|t| Some(t.failed)),
                    row("requests dropped", Format::Count, lower, &|t| {
                        Some(t.dropped)
                    }),
                    row("worst p99 ms", Format::Decimal, lower, &|t| {
                        Some(t.worst_p99_ms)
                    }),
                ],
            },
            Group {
                title: "Capacity",
                rows: vec![
                    row("replica-hours", Format::Decimal, lower, &|t| {
                        Some(t.replica_hours)
                    }),
                    row("cost", Format::Money, lower, &|t| Some(t.cost)),
                ],
            },
        ];

        let mut decisions = Vec::new();
        for outcome in OUTCOMES {
            if ALWAYS_SHOWN_OUTCOMES.contains(outcome)
                || totals.iter().any(|t| t.decisions.contains_key(*outcome))
            {
                decisions.push(row(
                    &format!("decisions {outcome}"),
                    Format::Count,
                    Compare::No,
                    &|t| Some(t.decisions.get(*outcome).copied().unwrap_or(0) as f64),
                ));
            }
        }
        // Outcomes this table does not know yet still show, after the known ones.
        let unknown: std::collections::BTreeSet<&String> = totals
            .iter()
            .flat_map(|t| t.decisions.keys())
            .filter(|k| !OUTCOMES.contains(&k.as_str()))
            .collect();
        for outcome in unknown {
            decisions.push(row(
                &format!("decisions {outcome}"),
                Format::Count,
                Compare::No,
                &|t| Some(t.decisions.get(outcome).copied().unwrap_or(0) as f64),
            ));
        }
        decisions.push(row("dead-lettered", Format::Count, lower, &|t| {
            Some(t.dead_lettered as f64)
        }));
        let fallbacks: std::collections::BTreeSet<&String> = totals
            .iter()
            .flat_map(|t| t.model_fallbacks.keys())
            .collect();
        for key in fallbacks {
            decisions.push(row(
                &format!("model fallbacks {key}"),
                Format::Count,
                Compare::No,
                &|t| Some(t.model_fallbacks.get(key).copied().unwrap_or(0) as f64),
            ));
        }
        groups.push(Group {
            title: "Decisions",
            rows: decisions,
        });

        if totals.iter().any(|t| t.compliance.is_some()) {
            groups.push(Group {
                title: "Compliance",
                rows: vec![
                    row("compliance violations", Format::Count, Compare::No, &|t| {
                        t.compliance.as_ref().map(|c| c.violations as f64)
                    }),
                    row("compliance recall", Format::Percent, Compare::No, &|t| {
                        t.compliance.as_ref().map(|c| c.recall)
                    }),
                    row("compliance precision", Format::Percent, Compare::No, &|t| {
                        t.compliance.as_ref().map(|c| c.precision)
                    }),
                    row("false positives", Format::Count, lower, &|t| {
                        t.compliance.as_ref().map(|c| c.false_positives as f64)
                    }),
                ],
            });
        }
        Comparison { columns, groups }
    }
}

/// The change from `base` to `value`, as a cell.
fn change(base: Option<f64>, value: f64) -> Cell {
    let plain = |text: &str| Cell {
        text: text.to_owned(),
        tone: Tone::Plain,
    };
    let Some(base) = base else {
        return plain("-");
    };
    if !base.is_finite() || !value.is_finite() {
        return plain("-");
    }
    if base == 0.0 {
        // No relative change from nothing; "0 %" when both are nothing.
        return plain(if value == 0.0 { "0 %" } else { "-" });
    }
    let pct = (value - base) / base.abs() * 100.0;
    let text = format_percent_change(pct);
    let tone = if text == "0 %" {
        Tone::Plain
    } else if pct < 0.0 {
        Tone::Better
    } else {
        Tone::Worse
    };
    Cell { text, tone }
}

/// `-72 %`, `+4.5 %`, `0 %`: whole percents from 10 up, one decimal below.
fn format_percent_change(pct: f64) -> String {
    let decimals = if pct.abs() >= 9.95 { 0 } else { 1 };
    let text = fixed(pct.abs(), decimals);
    if text.bytes().all(|b| b == b'0' || b == b'.') {
        return "0 %".to_owned();
    }
    let sign = if pct < 0.0 { '-' } else { '+' };
    let text = text.strip_suffix(".0").unwrap_or(&text).to_owned();
    format!("{sign}{text} %")
}

fn format_value(v: f64, format: Format) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    match format {
        Format::Count => fixed(v, 0),
        Format::Decimal => fixed(v, 1),
        Format::Money => fixed(v, 2),
        Format::Percent => format!("{} %", fixed(v * 100.0, 1)),
    }
}

/// `v` with `decimals` decimals and comma thousands separators: `1,234,567.8`. Never
/// `-0`; non-finite values are `-`.
pub(crate) fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let digits = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits.as_str(), None),
    };
    let is_zero = digits.bytes().all(|b| b == b'0' || b == b'.');
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 && !is_zero {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    out
}
