//! Feature drift: the population stability index (PSI) of each live feature against the
//! reference statistics a model carries in its `metadata_props` (`reference_stats`).
//!
//! Definition (the same as `agents/models/scaler.features.json`, `reference_stats`):
//! a value's bin is the number of decile edges `e` with `e <= x` (0..=9, so equal edges
//! give empty bins); over the last `window` rows, `p_live[i]` is the share of values in
//! bin `i`; `PSI = sum_i (p_live[i] - p_ref[i]) * ln(p_live[i] / p_ref[i])`, each
//! proportion floored at `1e-4`. A feature drifted when its PSI exceeds the threshold
//! (0.2 by default, the usual "significant shift").

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Floor for both proportions in the PSI, so an empty bin gives a large but finite term.
pub const PSI_FLOOR: f64 = 1e-4;

/// One feature's reference statistics, as in a model's `reference_stats` metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// The feature's name.
    pub name: String,
    /// Mean over the training features.
    pub mean: f64,
    /// Population standard deviation over the training features.
    pub std: f64,
    /// Bin edges, non-decreasing (9 decile edges for the scaler model).
    pub decile_edges: Vec<f64>,
    /// Share of training values per bin; one more than the edges.
    pub proportions: Vec<f64>,
}

impl FeatureStats {
    /// Checks the shape of the statistics: finite, edges non-decreasing, one more
    /// proportion than edges, proportions in `[0, 1]`.
    ///
    /// # Errors
    /// What is wrong, as text.
    pub fn validate(&self) -> Result<(), String> {
        if self.proportions.len() != self.decile_edges.len() + 1 {
            return Err(format!(
                "feature `{}`: {} edges need {} proportions, found {}",
                self.name,
                self.decile_edges.len(),
                self.decile_edges.len() + 1,
                self.proportions.len()
            ));
        }
        if self.decile_edges.iter().any(|e| !e.is_finite()) {
            return Err(format!("feature `{}`: an edge is not finite", self.name));
        }
        if self.decile_edges.windows(2).any(|w| w[1] < w[0]) {
            return Err(format!("feature `{}`: edges are not sorted", self.name));
        }
        if self
            .proportions
            .iter()
            .any(|p| !p.is_finite() || *p < 0.0 || *p > 1.0)
        {
            return Err(format!(
                "feature `{}`: a proportion is outside [0, 1]",
                self.name
            ));
        }
        Ok(())
    }

    /// The bin of `x`: the number of edges `e <= x`.
    pub fn bin(&self, x: f64) -> usize {
        self.decile_edges.partition_point(|e| *e <= x)
    }
}

/// Settings of a [`DriftMonitor`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftConfig {
    /// Rows in the rolling window.
    pub window: usize,
    /// PSI above which a feature drifted.
    pub threshold: f64,
    /// Rows needed before drift can be flagged (PSI on a handful of rows is noise).
    pub min_rows: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            window: 1_000,
            threshold: 0.2,
            min_rows: 200,
        }
    }
}

/// A row the monitor cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    /// The row has the wrong number of features.
    #[error("expected a row of {expected} features, found {found}")]
    Width {
        /// Features in the reference statistics.
        expected: usize,
        /// Values in the row.
        found: usize,
    },
    /// A flat batch is not a whole number of rows.
    #[error("a batch of {len} values is not a whole number of rows of {width}")]
    Batch {
        /// Features per row.
        width: usize,
        /// Values in the batch.
        len: usize,
    },
    /// A value is NaN or infinite.
    #[error("feature `{feature}` is not finite ({value})")]
    NonFinite {
        /// The feature's name.
        feature: String,
        /// The value.
        value: f32,
    },
    /// The reference statistics are unusable.
    #[error("invalid reference statistics: {0}")]
    Reference(String),
    /// The configuration is unusable.
    #[error("invalid drift configuration: {0}")]
    Config(String),
}

/// One feature's PSI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeaturePsi {
    /// The feature's name.
    pub name: String,
    /// Its PSI over the window.
    pub psi: f64,
    /// Whether it exceeds the threshold.
    pub drifted: bool,
}

/// The drift state over the current window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Rows in the window.
    pub rows: usize,
    /// Per feature, in the reference order.
    pub features: Vec<FeaturePsi>,
    /// Whether any feature drifted (never before `min_rows` rows).
    pub drifted: bool,
}

impl DriftReport {
    /// The feature with the largest PSI.
    pub fn worst(&self) -> Option<&FeaturePsi> {
        self.features.iter().max_by(|a, b| a.psi.total_cmp(&b.psi))
    }
}

/// Rolling-window PSI of each feature against its reference statistics.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    reference: Vec<FeatureStats>,
    config: DriftConfig,
    /// Bin of each feature for each row in the window (oldest first).
    window: VecDeque<Vec<u8>>,
    /// counts[feature][bin] over the window.
    counts: Vec<Vec<u32>>,
}

impl DriftMonitor {
    /// A monitor for rows with one value per reference feature, in that order.
    ///
    /// # Errors
    /// [`DriftError::Reference`] for invalid statistics (or more than 255 bins),
    /// [`DriftError::Config`] for an empty window or a non-finite threshold.
    pub fn new(reference: Vec<FeatureStats>, config: DriftConfig) -> Result<Self, DriftError> {
        if config.window == 0 {
            return Err(DriftError::Config(
                "the window must hold at least one row".into(),
            ));
        }
        if !config.threshold.is_finite() || config.threshold < 0.0 {
            return Err(DriftError::Config(format!(
                "the threshold must be a finite PSI >= 0, found {}",
                config.threshold
            )));
        }
        if reference.is_empty() {
            return Err(DriftError::Reference("no features".into()));
        }
        for stats in &reference {
            stats.validate().map_err(DriftError::Reference)?;
            if stats.proportions.len() > usize::from(u8::MAX) {
                return Err(DriftError::Reference(format!(
                    "feature `{}` has more than 255 bins",
                    stats.name
                )));
            }
        }
        let counts = reference
            .iter()
            .map(|s| vec![0; s.proportions.len()])
            .collect();
        Ok(DriftMonitor {
            reference,
            config,
            window: VecDeque::with_capacity(config.window),
            counts,
        })
    }

    /// The configuration.
    pub fn config(&self) -> DriftConfig {
        self.config
    }

    /// Rows in the window.
    pub fn rows(&self) -> usize {
        self.window.len()
    }

    /// Adds one row, dropping the oldest when the window is full.
    ///
    /// # Errors
    /// [`DriftError::Width`] or [`DriftError::NonFinite`]; the row is then not counted.
    pub fn observe(&mut self, row: &[f32]) -> Result<(), DriftError> {
        if row.len() != self.reference.len() {
            return Err(DriftError::Width {
                expected: self.reference.len(),
                found: row.len(),
            });
        }
        if let Some((i, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(DriftError::NonFinite {
                feature: self.reference[i].name.clone(),
                value: *v,
            });
        }
        if self.window.len() == self.config.window {
            if let Some(old) = self.window.pop_front() {
                for (f, bin) in old.into_iter().enumerate() {
                    self.counts[f][usize::from(bin)] -= 1;
                }
            }
        }
        let bins: Vec<u8> = row
            .iter()
            .zip(&self.reference)
            .map(|(x, stats)| u8::try_from(stats.bin(f64::from(*x))).unwrap_or(u8::MAX))
            .collect();
        for (f, bin) in bins.iter().enumerate() {
            self.counts[f][usize::from(*bin)] += 1;
        }
        self.window.push_back(bins);
        Ok(())
    }

    /// Adds `rows` rows of a flat row-major batch.
    ///
    /// # Errors
    /// As [`observe`](Self::observe), at the first bad row (earlier rows are counted).
    pub fn observe_batch(&mut self, flat: &[f32]) -> Result<(), DriftError> {
        let width = self.reference.len();
        if !flat.len().is_multiple_of(width) {
            return Err(DriftError::Batch {
                width,
                len: flat.len(),
            });
        }
        flat.chunks_exact(width)
            .try_for_each(|row| self.observe(row))
    }

    /// Empties the window (after a human cleared a drift signal, say).
    pub fn reset(&mut self) {
        self.window.clear();
        for c in &mut self.counts {
            c.iter_mut().for_each(|n| *n = 0);
        }
    }

    /// PSI per feature over the window, and the drift flag.
    pub fn report(&self) -> DriftReport {
        let rows = self.window.len();
        let enough = rows >= self.config.min_rows.max(1);
        let features = self
            .reference
            .iter()
            .zip(&self.counts)
            .map(|(stats, counts)| {
                let psi = if rows == 0 {
                    0.0
                } else {
                    psi(&stats.proportions, counts, rows)
                };
                FeaturePsi {
                    name: stats.name.clone(),
                    psi,
                    drifted: enough && psi > self.config.threshold,
                }
            })
            .collect::<Vec<_>>();
        let drifted = features.iter().any(|f| f.drifted);
        DriftReport {
            rows,
            features,
            drifted,
        }
    }
}

/// `sum_i (p_live - p_ref) ln(p_live / p_ref)`, both floored at [`PSI_FLOOR`].
pub fn psi(reference: &[f64], counts: &[u32], rows: usize) -> f64 {
    let n = rows as f64;
    reference
        .iter()
        .zip(counts)
        .map(|(p_ref, c)| {
            let p_ref = p_ref.max(PSI_FLOOR);
            let p_live = (f64::from(*c) / n).max(PSI_FLOOR);
            (p_live - p_ref) * (p_live / p_ref).ln()
        })
        .sum()
}
