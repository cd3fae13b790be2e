//! Load generation: how many requests or messages per second arrive at a service, at any
//! time since the scenario start.
//!
//! A scenario writes a [`LoadSpec`]: either synthetic (a base rate with daily and weekly
//! seasonality, trend, noise and flash crowds) or a replay of a real trace
//! (`simulations/traces/*.csv`, scaled and time-shifted). [`LoadModel::compile`] checks it
//! and reports every problem at once; [`LoadModel::rate_at`] then answers for any time.
//!
//! Determinism: the rate is a pure function of (spec, seed, component name, scenario
//! start, time). Noise is drawn per time bucket from the component's own stream
//! ([`Seed::rng`]), positioned at the bucket, so asking for the same time twice, or in
//! any order, gives the same rate.

mod synthetic;
mod trace;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_runtime::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::seed::Seed;
pub use synthetic::{FlashCrowdSpec, SyntheticSpec};
pub use trace::{Interpolation, StartExpectation, Trace, TraceError, TRACE_HEADER};

use synthetic::{FlashCrowd, Synthetic};

/// A load, as written in a scenario: one of two kinds, keyed by name
/// (`{synthetic: {...}}` or `{trace: {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LoadSpec {
    /// Generated from parameters.
    Synthetic(SyntheticSpec),
    /// Replayed from a trace file.
    Trace(TraceSpec),
}

/// A trace replay, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The CSV file; relative paths resolve against [`LoadContext::trace_dir`].
    pub path: String,
    /// Every rate is multiplied by this, above 0 (default 1).
    pub scale: Option<f64>,
    /// Scenario time 0 replays trace time `time_shift_s` (default 0). Positive skips into
    /// the trace; negative delays it.
    pub time_shift_s: Option<f64>,
    /// Repeat the trace end to end (default false: the rate is 0 outside it).
    #[serde(rename = "loop")]
    pub looped: Option<bool>,
    /// Between bucket boundaries (default `step`).
    pub interpolation: Option<Interpolation>,
    /// Flash crowds laid over the replay, in scenario time.
    pub flash_crowds: Option<Vec<FlashCrowdSpec>>,
}

/// What compiling a load needs besides its spec.
#[derive(Debug, Clone, Copy)]
pub struct LoadContext<'a> {
    /// Where the spec sits in the scenario (`services.checkout.load`); prefixes errors.
    pub at: &'a str,
    /// The scenario seed.
    pub seed: Seed,
    /// Names this load's random stream (`load/checkout`); see [`Seed::rng`].
    pub component: &'a str,
    /// The scenario start: fixes the time of day and the weekday (UTC).
    pub start: Timestamp,
    /// Directory relative trace paths resolve against (usually `simulations/traces`).
    pub trace_dir: &'a Path,
}

/// A load spec that could not be compiled: each names the spec path, what was expected
/// and what was found.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A number outside its domain (NaN and infinities included).
    #[error("{at}: expected {expected}, found `{found}`")]
    OutOfRange {
        /// Spec path of the value.
        at: String,
        /// The domain.
        expected: &'static str,
        /// The value.
        found: f64,
    },
    /// A flash crowd's ramps overlap.
    #[error("{at}: expected a ramp of at most half of `duration_s` (`{max}`), found `{found}`")]
    RampTooLong {
        /// Spec path of `ramp_s`.
        at: String,
        /// Half the duration.
        max: f64,
        /// The ramp.
        found: f64,
    },
    /// A trace path that is empty.
    #[error("{at}: expected a trace file path, found an empty string")]
    EmptyPath {
        /// Spec path of `path`.
        at: String,
    },
    /// The trace file is missing or malformed.
    #[error("{at}: cannot use trace `{}`", .path.display())]
    Trace {
        /// Spec path of `path`.
        at: String,
        /// The resolved path.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: TraceError,
    },
}

/// Collects every problem of one spec.
struct Check {
    errors: Vec<LoadError>,
}

impl Check {
    /// `value` must be finite and `ok`.
    fn range(&mut self, at: &str, field: &str, value: f64, ok: bool, expected: &'static str) {
        if !(ok && value.is_finite()) {
            self.errors.push(LoadError::OutOfRange {
                at: format!("{at}.{field}"),
                expected,
                found: value,
            });
        }
    }

    fn ramp_too_long(&mut self, at: &str, max: f64, found: f64) {
        self.errors.push(LoadError::RampTooLong {
            at: at.to_string(),
            max,
            found,
        });
    }
}

/// A checked load, ready to answer [`LoadModel::rate_at`].
#[derive(Debug, Clone)]
pub struct LoadModel {
    source: Source,
    flash_crowds: Vec<FlashCrowd>,
}

#[derive(Debug, Clone)]
enum Source {
    /// Boxed: its noise stream's block buffer is several hundred bytes.
    Synthetic(Box<Synthetic>),
    Replay(Replay),
}

#[derive(Debug, Clone)]
struct Replay {
    trace: Trace,
    scale: f64,
    shift_s: f64,
    looped: bool,
    interpolation: Interpolation,
}

impl LoadModel {
    /// Checks every field of `spec`, reads its trace if it has one, then builds.
    ///
    /// # Errors
    /// Every problem, each with its spec path under `ctx.at`. A trace file is read only
    /// when its path is not empty.
    pub fn compile(spec: LoadSpec, ctx: &LoadContext<'_>) -> Result<LoadModel, Vec<LoadError>> {
        let mut check = Check { errors: Vec::new() };
        let (source, crowds, crowds_at) = match &spec {
            LoadSpec::Synthetic(s) => {
                let at = format!("{}.synthetic", ctx.at);
                let rng = ctx.seed.rng(ctx.component);
                let source = Source::Synthetic(Box::new(Synthetic::compile(
                    s, ctx.start, rng, &mut check, &at,
                )));
                (Some(source), &s.flash_crowds, at)
            }
            LoadSpec::Trace(t) => {
                let at = format!("{}.trace", ctx.at);
                (compile_replay(t, ctx, &mut check, &at), &t.flash_crowds, at)
            }
        };
        let flash_crowds = crowds
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                FlashCrowd::compile(c, &mut check, &format!("{crowds_at}.flash_crowds[{i}]"))
            })
            .collect();
        match source {
            Some(source) if check.errors.is_empty() => Ok(LoadModel {
                source,
                flash_crowds,
            }),
            _ => Err(check.errors),
        }
    }

    /// Arrivals per second at `since_start` after the scenario start; never negative.
    pub fn rate_at(&self, since_start: Duration) -> f64 {
        let t_s = since_start.as_secs_f64();
        let base = match &self.source {
            Source::Synthetic(s) => s.rate_at(t_s),
            Source::Replay(r) => {
                r.scale * r.trace.rate_at(t_s + r.shift_s, r.interpolation, r.looped)
            }
        };
        let crowd: f64 = self.flash_crowds.iter().map(|c| c.factor(t_s)).product();
        (base * crowd).max(0.0)
    }

    /// How long after the scenario start the load has something to replay: for a trace
    /// that does not loop, until its end; `None` when it never ends. A scenario longer
    /// than this sees a rate of 0 afterwards.
    pub fn span(&self) -> Option<Duration> {
        match &self.source {
            Source::Replay(r) if !r.looped => Some(Duration::from_secs_f64(
                (r.trace.span().as_secs_f64() - r.shift_s).max(0.0),
            )),
            _ => None,
        }
    }
}

fn compile_replay(
    spec: &TraceSpec,
    ctx: &LoadContext<'_>,
    check: &mut Check,
    at: &str,
) -> Option<Source> {
    let scale = spec.scale.unwrap_or(1.0);
    let shift_s = spec.time_shift_s.unwrap_or(0.0);
    check.range(at, "scale", scale, scale > 0.0, "a scale above 0");
    check.range(
        at,
        "time_shift_s",
        shift_s,
        true,
        "a finite number of seconds",
    );
    if spec.path.is_empty() {
        check.errors.push(LoadError::EmptyPath {
            at: format!("{at}.path"),
        });
        return None;
    }
    let path = ctx.trace_dir.join(&spec.path);
    match Trace::load(&path) {
        Ok(trace) => Some(Source::Replay(Replay {
            trace,
            scale,
            shift_s,
            looped: spec.looped.unwrap_or(false),
            interpolation: spec.interpolation.unwrap_or_default(),
        })),
        Err(source) => {
            check.errors.push(LoadError::Trace {
                at: format!("{at}.path"),
                path,
                source,
            });
            None
        }
    }
}
