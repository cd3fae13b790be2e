//! `settings.drift` of a learned agent, and the monitor that watches its feature rows.
//!
//! Every learned agent has the same `drift` block (threshold, what drift does, window,
//! rows before a verdict); the defaults are shared because a row is one target's feature
//! vector per new bucket for every model, and PSI needs the same few hundred rows to say
//! anything whichever model it is.

use conclave_runtime::models::{DriftConfig, DriftMonitor, DriftReport, FeatureStats, ModelHost};
use conclave_runtime::policy::SettingsProblem;
use serde::Deserialize;

use crate::settings::problem;

/// PSI above 0.2 is the usual "significant shift" (and the runtime's default).
const DEFAULT_THRESHOLD: f64 = 0.2;
/// Rows in the drift window: about 16 hours of one target at one row a minute.
const DEFAULT_WINDOW: u32 = 1_000;
/// Rows before drift can be flagged: PSI over a handful of rows is noise.
const DEFAULT_MIN_ROWS: u32 = 200;
/// A larger drift window is a typo (and memory: one byte per feature per row).
const MAX_WINDOW: u32 = 100_000;

/// What an agent does when its model's input features drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// Record `drift_psi_max` in the rationale and go on using the model (default).
    Record,
    /// Stop using the model (fallback reason `drift`) until the agent restarts.
    Rules,
}

/// `settings.drift`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrift {
    /// PSI above which a feature drifted, greater than 0 (default 0.2).
    pub threshold: Option<f64>,
    /// `record` (default) or `rules`.
    pub on_drift: Option<OnDrift>,
    /// Rows in the rolling window, `1..=100000` (default 1000).
    pub window: Option<u32>,
    /// Rows needed before drift is flagged, `1..=window` (default 200, or the window
    /// when smaller).
    pub min_rows: Option<u32>,
}

/// `settings.drift`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSettings {
    threshold: f64,
    on_drift: OnDrift,
    window: usize,
    min_rows: usize,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            threshold: DEFAULT_THRESHOLD,
            on_drift: OnDrift::Record,
            window: DEFAULT_WINDOW as usize,
            min_rows: DEFAULT_MIN_ROWS as usize,
        }
    }
}

impl DriftSettings {
    /// Checks `raw` (under `drift.` in problem paths); a bad value is a problem and its
    /// default stands.
    pub fn compile(raw: RawDrift, problems: &mut Vec<SettingsProblem>) -> DriftSettings {
        let mut out = DriftSettings::default();
        match raw.threshold {
            Some(t) if t.is_finite() && t > 0.0 => out.threshold = t,
            Some(t) => problems.push(problem(
                "drift.threshold",
                format!("expected a PSI greater than 0, found `{t}`"),
            )),
            None => {}
        }
        if let Some(on_drift) = raw.on_drift {
            out.on_drift = on_drift;
        }
        match raw.window {
            Some(w) if (1..=MAX_WINDOW).contains(&w) => out.window = w as usize,
            Some(w) => problems.push(problem(
                "drift.window",
                format!("expected an integer in 1..={MAX_WINDOW}, found `{w}`"),
            )),
            None => {}
        }
        match raw.min_rows {
            Some(m) if m >= 1 && m as usize <= out.window => out.min_rows = m as usize,
            Some(m) => problems.push(problem(
                "drift.min_rows",
                format!(
                    "expected an integer in 1..={} (the window), found `{m}`",
                    out.window
                ),
            )),
            None => out.min_rows = out.min_rows.min(out.window),
        }
        out
    }

    /// PSI above which a feature drifted.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// What drift does.
    pub fn on_drift(&self) -> OnDrift {
        self.on_drift
    }

    /// Rows in the rolling window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Rows needed before drift is flagged.
    pub fn min_rows(&self) -> usize {
        self.min_rows
    }
}

/// PSI of the monitored features of a model's rows against its reference statistics.
#[derive(Debug, Clone)]
pub(super) struct Drift {
    pub(super) monitor: DriftMonitor,
    /// Column of each monitored feature in the feature row.
    columns: Vec<usize>,
    row: Vec<f32>,
    /// The monitor's report as of the last [`refresh`](Self::refresh): computed once per
    /// tick with new rows, read by the drift stop, the metrics and the rationale.
    report: Option<DriftReport>,
    stale: bool,
}

impl Drift {
    /// Watches every feature with reference statistics except `excluded` (features whose
    /// live distribution differs from training by construction, such as warm-up flags).
    /// `None` when the model carries no usable reference statistics.
    pub(super) fn new(
        host: &ModelHost,
        feature_names: &[&str],
        excluded: &[&str],
        settings: DriftSettings,
    ) -> Option<Self> {
        let meta = host.metadata();
        let names: Vec<&str> = if meta.feature_names().is_empty() {
            feature_names.to_vec()
        } else {
            meta.feature_names().iter().map(String::as_str).collect()
        };
        let mut columns = Vec::new();
        let mut reference: Vec<FeatureStats> = Vec::new();
        for stats in meta.reference_stats() {
            if excluded.contains(&stats.name.as_str()) {
                continue;
            }
            let column = names.iter().position(|n| *n == stats.name)?;
            columns.push(column);
            reference.push(stats.clone());
        }
        let config = DriftConfig {
            window: settings.window,
            threshold: settings.threshold,
            min_rows: settings.min_rows,
        };
        let monitor = DriftMonitor::new(reference, config).ok()?;
        Some(Drift {
            row: Vec::with_capacity(columns.len()),
            monitor,
            columns,
            report: None,
            stale: false,
        })
    }

    pub(super) fn observe(&mut self, features: &[f32]) {
        self.row.clear();
        self.row.extend(
            self.columns
                .iter()
                .map(|c| features.get(*c).copied().unwrap_or(0.0)),
        );
        // Features are finite by construction and the width is the monitor's own.
        let _ = self.monitor.observe(&self.row);
        self.stale = true;
    }

    /// Recomputes the report if rows arrived since; `true` when it changed.
    pub(super) fn refresh(&mut self) -> bool {
        if !self.stale {
            return false;
        }
        self.stale = false;
        self.report = Some(self.monitor.report());
        true
    }

    /// The report as of the last refresh (`None` before the first row).
    pub(super) fn report(&self) -> Option<&DriftReport> {
        self.report.as_ref()
    }
}
