//! The breaker's `settings` block: [`RawBreakerSettings`] mirrors the YAML,
//! [`BreakerConfig::from_settings`] checks every key at once and builds the typed config.
//!
//! Names and defaults follow resilience4j's `CircuitBreakerConfig`, in snake case, with
//! one difference: resilience4j's default sliding window is count-based (the last 100
//! calls). Conclave sees aggregate telemetry (rates per reporting interval), not single
//! calls, so only a time-based window (`window`) is offered.
//!
//! `risk` and `drift` configure the learned half (see the module docs of `breaker`); they
//! matter only when the policy gives the breaker a `model`, and are checked either way, so
//! a typo is caught before the model is added.

use std::time::Duration;

use conclave_runtime::policy::SettingsProblem;
use serde::Deserialize;

use crate::learned::{DriftSettings, RawDrift};
use crate::settings::{parse, problem};

/// resilience4j `failureRateThreshold` default, percent.
const DEFAULT_FAILURE_RATE_THRESHOLD: f64 = 50.0;
/// resilience4j `slowCallRateThreshold` default, percent (only "every call slow" trips).
const DEFAULT_SLOW_CALL_RATE_THRESHOLD: f64 = 100.0;
/// resilience4j `slowCallDurationThreshold` default.
const DEFAULT_SLOW_CALL_DURATION: Duration = Duration::from_secs(60);
/// resilience4j `minimumNumberOfCalls` default.
const DEFAULT_MINIMUM_NUMBER_OF_CALLS: u64 = 100;
/// resilience4j's time-based `slidingWindowSize` is in seconds; 60 s is a common choice
/// and matches `waitDurationInOpenState`.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// resilience4j `waitDurationInOpenState` default.
const DEFAULT_WAIT_IN_OPEN: Duration = Duration::from_secs(60);
/// resilience4j `permittedNumberOfCallsInHalfOpenState` default.
const DEFAULT_PERMITTED_CALLS_IN_HALF_OPEN: u64 = 10;

/// Arrivals must exceed completions by 10 % before the gap counts as overload, so that
/// ordinary jitter between the two counters does not shed.
const DEFAULT_SHED_RATE_MARGIN: f64 = 0.1;
/// Three samples: one rise of the backlog is noise, two in a row is a trend.
const DEFAULT_SHED_SAMPLES: usize = 3;
/// A latency-only overload (no rate gap yet) still sheds this much.
const DEFAULT_SHED_MIN_FRACTION: f64 = 0.05;
/// The agent never asks for more than half; the arbiter caps again with the policy's
/// `max_shed_fraction`.
const DEFAULT_SHED_MAX_FRACTION: f64 = 0.5;

/// Open on a predicted trip only when the model is fairly sure: at 0.8 the committed model
/// had about 0.04 false alarm runs per service-hour on its held-out scenario (model card).
const DEFAULT_RISK_OPEN_AT: f64 = 0.8;

/// `spec.agents.breaker.settings`, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreakerSettings {
    /// Failure rate, in percent of calls, at or above which the breaker opens
    /// (`0 < x <= 100`, default `50`).
    pub failure_rate_threshold: Option<f64>,
    /// Slow-call rate, in percent of calls, at or above which the breaker opens
    /// (`0 < x <= 100`, default `100`).
    pub slow_call_rate_threshold: Option<f64>,
    /// A call slower than this is slow, e.g. `2s` (default `60s`).
    pub slow_call_duration: Option<String>,
    /// Calls the window must hold before rates are judged (`>= 1`, default `100`).
    pub minimum_number_of_calls: Option<u64>,
    /// Length of the time-based sliding window, e.g. `60s` (default `60s`).
    pub window: Option<String>,
    /// How long the breaker stays open before letting probe calls through, e.g. `30s`
    /// (default `60s`).
    pub wait_in_open: Option<String>,
    /// Probe calls judged in half-open before closing or re-opening (`>= 1`, default `10`).
    pub permitted_calls_in_half_open: Option<u64>,
    /// Load shedding when a protected service is overloaded.
    pub shed: Option<RawShedSettings>,
    /// What the model's risk does (only with a `model`).
    pub risk: Option<RawRisk>,
    /// Feature drift against the model's reference statistics (only with a `model`), as
    /// the scaler's `drift`.
    pub drift: Option<RawDrift>,
}

/// What the breaker does with its model's risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskMode {
    /// A risk at or above `open_at` opens a closed breaker (never closes one). The default
    /// when a model is set.
    Act,
    /// The risk and how it compared with the trips that followed are recorded in the
    /// rationale; only the rule decides.
    Report,
}

impl RiskMode {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskMode::Act => "act",
            RiskMode::Report => "report",
        }
    }
}

/// `spec.agents.breaker.settings.risk`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRisk {
    /// `act` (default) or `report`.
    pub mode: Option<RiskMode>,
    /// Risk at or above which a closed breaker opens, in `(0, 1]` (default `0.8`).
    pub open_at: Option<f64>,
}

/// `spec.agents.breaker.settings.shed`, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShedSettings {
    /// Whether the agent proposes shedding at all (default `true`).
    pub enabled: Option<bool>,
    /// p99 latency SLO in milliseconds; a growing backlog with p99 above it is overload
    /// (`> 0`; no default: without it only the rate rule applies).
    pub latency_p99_ms: Option<f64>,
    /// Arrivals above completions by more than this share are overload (`>= 0`, default
    /// `0.1`, i.e. `rate_in > 1.1 * rate_out`).
    pub rate_margin: Option<f64>,
    /// Consecutive metrics samples that must agree before shedding starts or stops
    /// (`>= 2`, default `3`).
    pub samples: Option<usize>,
    /// Smallest fraction proposed when overloaded (`0 < x <= max_fraction`, default `0.05`).
    pub min_fraction: Option<f64>,
    /// Largest fraction the agent proposes (`0 < x <= 1`, default `0.5`).
    pub max_fraction: Option<f64>,
}

/// The breaker's checked settings. Rates are in percent, as resilience4j reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(super) failure_rate_threshold: f64,
    pub(super) slow_call_rate_threshold: f64,
    pub(super) slow_call_duration: Duration,
    pub(super) minimum_number_of_calls: u64,
    pub(super) window: Duration,
    pub(super) wait_in_open: Duration,
    pub(super) permitted_calls_in_half_open: u64,
    pub(super) shed: Option<ShedConfig>,
    pub(super) risk: RiskConfig,
    pub(super) drift: DriftSettings,
}

/// `settings.risk`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    pub(super) mode: RiskMode,
    pub(super) open_at: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            mode: RiskMode::Act,
            open_at: DEFAULT_RISK_OPEN_AT,
        }
    }
}

/// Checked shedding settings; absent from [`BreakerConfig`] when `shed.enabled` is false.
#[derive(Debug, Clone, PartialEq)]
pub struct ShedConfig {
    pub(super) latency_p99_ms: Option<f64>,
    pub(super) rate_margin: f64,
    pub(super) samples: usize,
    pub(super) min_fraction: f64,
    pub(super) max_fraction: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_rate_threshold: DEFAULT_FAILURE_RATE_THRESHOLD,
            slow_call_rate_threshold: DEFAULT_SLOW_CALL_RATE_THRESHOLD,
            slow_call_duration: DEFAULT_SLOW_CALL_DURATION,
            minimum_number_of_calls: DEFAULT_MINIMUM_NUMBER_OF_CALLS,
            window: DEFAULT_WINDOW,
            wait_in_open: DEFAULT_WAIT_IN_OPEN,
            permitted_calls_in_half_open: DEFAULT_PERMITTED_CALLS_IN_HALF_OPEN,
            shed: Some(ShedConfig::default()),
            risk: RiskConfig::default(),
            drift: DriftSettings::default(),
        }
    }
}

impl Default for ShedConfig {
    fn default() -> Self {
        ShedConfig {
            latency_p99_ms: None,
            rate_margin: DEFAULT_SHED_RATE_MARGIN,
            samples: DEFAULT_SHED_SAMPLES,
            min_fraction: DEFAULT_SHED_MIN_FRACTION,
            max_fraction: DEFAULT_SHED_MAX_FRACTION,
        }
    }
}

impl BreakerConfig {
    /// Parses and checks `settings` (`Null` means all defaults).
    ///
    /// # Errors
    /// A shape problem (unknown key, wrong type) alone, since nothing else can be checked
    /// then; otherwise every out-of-range value, each with its path below `settings`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, Vec<SettingsProblem>> {
        let raw: RawBreakerSettings = parse(settings)?;
        Self::compile(raw)
    }

    /// Checks every field of `raw`, then builds.
    ///
    /// # Errors
    /// Every out-of-range value, with its path below `settings`.
    pub fn compile(raw: RawBreakerSettings) -> Result<Self, Vec<SettingsProblem>> {
        let d = BreakerConfig::default();
        let mut problems = Vec::new();
        let p = &mut problems;
        let config = BreakerConfig {
            failure_rate_threshold: percent(
                p,
                "failure_rate_threshold",
                raw.failure_rate_threshold,
                d.failure_rate_threshold,
            ),
            slow_call_rate_threshold: percent(
                p,
                "slow_call_rate_threshold",
                raw.slow_call_rate_threshold,
                d.slow_call_rate_threshold,
            ),
            slow_call_duration: duration(
                p,
                "slow_call_duration",
                raw.slow_call_duration,
                d.slow_call_duration,
            ),
            minimum_number_of_calls: at_least_one(
                p,
                "minimum_number_of_calls",
                raw.minimum_number_of_calls,
                d.minimum_number_of_calls,
            ),
            window: duration(p, "window", raw.window, d.window),
            wait_in_open: duration(p, "wait_in_open", raw.wait_in_open, d.wait_in_open),
            permitted_calls_in_half_open: at_least_one(
                p,
                "permitted_calls_in_half_open",
                raw.permitted_calls_in_half_open,
                d.permitted_calls_in_half_open,
            ),
            shed: ShedConfig::compile(p, raw.shed.unwrap_or_default()),
            risk: RiskConfig::compile(p, raw.risk.unwrap_or_default()),
            drift: DriftSettings::compile(raw.drift.unwrap_or_default(), p),
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }
}

impl ShedConfig {
    fn compile(p: &mut Vec<SettingsProblem>, raw: RawShedSettings) -> Option<ShedConfig> {
        let d = ShedConfig::default();
        let latency_p99_ms = raw.latency_p99_ms.filter(|&v| {
            let ok = v.is_finite() && v > 0.0;
            if !ok {
                p.push(problem(
                    "shed.latency_p99_ms",
                    format!("expected milliseconds above 0, found `{v}`"),
                ));
            }
            ok
        });
        let rate_margin = raw.rate_margin.map_or(d.rate_margin, |v| {
            if v.is_finite() && v >= 0.0 {
                v
            } else {
                p.push(problem(
                    "shed.rate_margin",
                    format!("expected a share of at least 0, found `{v}`"),
                ));
                d.rate_margin
            }
        });
        let samples = raw.samples.map_or(d.samples, |v| {
            if v >= 2 {
                v
            } else {
                p.push(problem(
                    "shed.samples",
                    format!("expected an integer of at least 2, found `{v}`"),
                ));
                d.samples
            }
        });
        let max_fraction = fraction(p, "shed.max_fraction", raw.max_fraction, d.max_fraction);
        let min_fraction = fraction(p, "shed.min_fraction", raw.min_fraction, d.min_fraction);
        if min_fraction > max_fraction {
            p.push(problem(
                "shed.min_fraction",
                format!(
                    "expected at most `shed.max_fraction` ({max_fraction}), found `{min_fraction}`"
                ),
            ));
        }
        raw.enabled.unwrap_or(true).then_some(ShedConfig {
            latency_p99_ms,
            rate_margin,
            samples,
            min_fraction,
            max_fraction,
        })
    }
}

impl RiskConfig {
    fn compile(p: &mut Vec<SettingsProblem>, raw: RawRisk) -> RiskConfig {
        let d = RiskConfig::default();
        RiskConfig {
            mode: raw.mode.unwrap_or(d.mode),
            open_at: match raw.open_at {
                None => d.open_at,
                Some(v) if v.is_finite() && v > 0.0 && v <= 1.0 => v,
                Some(v) => {
                    p.push(problem(
                        "risk.open_at",
                        format!("expected a probability in (0, 1], found `{v}`"),
                    ));
                    d.open_at
                }
            },
        }
    }

    /// What the risk does.
    pub fn mode(&self) -> RiskMode {
        self.mode
    }

    /// The risk at or above which a closed breaker opens.
    pub fn open_at(&self) -> f64 {
        self.open_at
    }
}

fn percent(p: &mut Vec<SettingsProblem>, path: &str, v: Option<f64>, default: f64) -> f64 {
    match v {
        None => default,
        Some(v) if v.is_finite() && v > 0.0 && v <= 100.0 => v,
        Some(v) => {
            p.push(problem(
                path,
                format!("expected a percentage in (0, 100], found `{v}`"),
            ));
            default
        }
    }
}

fn fraction(p: &mut Vec<SettingsProblem>, path: &str, v: Option<f64>, default: f64) -> f64 {
    match v {
        None => default,
        Some(v) if v.is_finite() && v > 0.0 && v <= 1.0 => v,
        Some(v) => {
            p.push(problem(
                path,
                format!("expected a fraction in (0, 1], found `{v}`"),
            ));
            default
        }
    }
}

fn at_least_one(p: &mut Vec<SettingsProblem>, path: &str, v: Option<u64>, default: u64) -> u64 {
    match v {
        None => default,
        Some(0) => {
            p.push(problem(
                path,
                "expected an integer of at least 1, found `0`",
            ));
            default
        }
        Some(v) => v,
    }
}

fn duration(
    p: &mut Vec<SettingsProblem>,
    path: &str,
    v: Option<String>,
    default: Duration,
) -> Duration {
    match v.as_deref().map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            p.push(problem(path, message));
            default
        }
    }
}

/// Parses a settings duration (see [`crate::settings::parse_duration`]), above zero.
///
/// # Errors
/// What was expected and what was found, ready for a [`SettingsProblem`].
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::settings::parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("expected a duration above zero, found `{text}`"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::learned::OnDrift;

    #[test]
    fn null_settings_are_the_resilience4j_defaults() {
        let c = BreakerConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert_eq!(c, BreakerConfig::default());
        assert_eq!(c.failure_rate_threshold, 50.0);
        assert_eq!(c.slow_call_rate_threshold, 100.0);
        assert_eq!(c.slow_call_duration, Duration::from_secs(60));
        assert_eq!(c.minimum_number_of_calls, 100);
        assert_eq!(c.window, Duration::from_secs(60));
        assert_eq!(c.wait_in_open, Duration::from_secs(60));
        assert_eq!(c.permitted_calls_in_half_open, 10);
    }

    #[test]
    fn every_key_is_read() {
        let c = BreakerConfig::from_settings(&json!({
            "failure_rate_threshold": 25,
            "slow_call_rate_threshold": 40.5,
            "slow_call_duration": "2s",
            "minimum_number_of_calls": 20,
            "window": "30s",
            "wait_in_open": "500ms",
            "permitted_calls_in_half_open": 5,
            "shed": {"latency_p99_ms": 800, "rate_margin": 0.2, "samples": 4,
                     "min_fraction": 0.1, "max_fraction": 0.3}
        }))
        .expect("valid");
        let want = BreakerConfig {
            failure_rate_threshold: 25.0,
            slow_call_rate_threshold: 40.5,
            slow_call_duration: Duration::from_secs(2),
            minimum_number_of_calls: 20,
            window: Duration::from_secs(30),
            wait_in_open: Duration::from_millis(500),
            permitted_calls_in_half_open: 5,
            shed: Some(ShedConfig {
                latency_p99_ms: Some(800.0),
                rate_margin: 0.2,
                samples: 4,
                min_fraction: 0.1,
                max_fraction: 0.3,
            }),
            risk: RiskConfig::default(),
            drift: DriftSettings::default(),
        };
        assert_eq!(c, want);
        let off =
            BreakerConfig::from_settings(&json!({"shed": {"enabled": false}})).expect("valid");
        assert_eq!(off.shed, None);
    }

    use crate::settings::{assert_problems, Case};

    #[test]
    fn settings_errors_name_path_expectation_and_value() {
        let cases = [
            Case {
                name: "unknown key",
                settings: json!({"failure_threshold": 50}),
                problems: &[(
                    "failure_threshold",
                    "unknown field `failure_threshold`, expected one of `failure_rate_threshold`, `slow_call_rate_threshold`, `slow_call_duration`, `minimum_number_of_calls`, `window`, `wait_in_open`, `permitted_calls_in_half_open`, `shed`, `risk`, `drift`",
                )],
            },
            Case {
                name: "duration as number",
                settings: json!({"window": 60}),
                problems: &[("window", "invalid type: integer `60`, expected a string")],
            },
            Case {
                name: "every range problem at once",
                settings: json!({
                    "failure_rate_threshold": 0,
                    "slow_call_rate_threshold": 150,
                    "slow_call_duration": "2 s",
                    "minimum_number_of_calls": 0,
                    "window": "0s",
                    "wait_in_open": "1d",
                    "permitted_calls_in_half_open": 0,
                    "shed": {"latency_p99_ms": -1, "rate_margin": -0.5, "samples": 1,
                             "min_fraction": 0.6, "max_fraction": 1.5}
                }),
                problems: &[
                    ("failure_rate_threshold", "expected a percentage in (0, 100], found `0`"),
                    ("slow_call_rate_threshold", "expected a percentage in (0, 100], found `150`"),
                    ("slow_call_duration", "expected a duration such as `30s`, `5m` or `1h`, found `2 s`"),
                    ("minimum_number_of_calls", "expected an integer of at least 1, found `0`"),
                    ("window", "expected a duration above zero, found `0s`"),
                    ("wait_in_open", "expected a duration such as `30s`, `5m` or `1h`, found `1d`"),
                    ("permitted_calls_in_half_open", "expected an integer of at least 1, found `0`"),
                    ("shed.latency_p99_ms", "expected milliseconds above 0, found `-1`"),
                    ("shed.rate_margin", "expected a share of at least 0, found `-0.5`"),
                    ("shed.samples", "expected an integer of at least 2, found `1`"),
                    ("shed.max_fraction", "expected a fraction in (0, 1], found `1.5`"),
                    ("shed.min_fraction", "expected at most `shed.max_fraction` (0.5), found `0.6`"),
                ],
            },
            Case {
                name: "nested unknown key",
                settings: json!({"shed": {"max": 0.2}}),
                problems: &[(
                    "shed.max",
                    "unknown field `max`, expected one of `enabled`, `latency_p99_ms`, `rate_margin`, `samples`, `min_fraction`, `max_fraction`",
                )],
            },
        ];
        assert_problems(&cases, BreakerConfig::from_settings);
    }

    #[test]
    fn risk_and_drift_settings_parse() {
        let c = BreakerConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert_eq!(c.risk.mode(), RiskMode::Act);
        assert_eq!(c.risk.open_at(), 0.8);
        assert_eq!(c.drift, DriftSettings::default());
        assert_eq!(
            (
                c.drift.threshold(),
                c.drift.on_drift(),
                c.drift.window(),
                c.drift.min_rows()
            ),
            (0.2, OnDrift::Record, 1000, 200)
        );
        let c = BreakerConfig::from_settings(&json!({
            "risk": {"mode": "report", "open_at": 0.65},
            "drift": {"threshold": 0.5, "on_drift": "rules", "window": 100}
        }))
        .expect("valid");
        assert_eq!(
            c.risk,
            RiskConfig {
                mode: RiskMode::Report,
                open_at: 0.65
            }
        );
        // min_rows defaults to 200, but never more than the window.
        assert_eq!(
            (
                c.drift.threshold(),
                c.drift.on_drift(),
                c.drift.window(),
                c.drift.min_rows()
            ),
            (0.5, OnDrift::Rules, 100, 100)
        );
        let c = BreakerConfig::from_settings(&json!({"risk": {"open_at": 1}})).expect("valid");
        assert_eq!((c.risk.mode(), c.risk.open_at()), (RiskMode::Act, 1.0));
    }

    #[test]
    fn risk_and_drift_errors_name_path_expectation_and_value() {
        let cases = [
            Case {
                name: "unknown risk key",
                settings: json!({"risk": {"threshold": 0.9}}),
                problems: &[(
                    "risk.threshold",
                    "unknown field `threshold`, expected `mode` or `open_at`",
                )],
            },
            Case {
                name: "unknown risk mode",
                settings: json!({"risk": {"mode": "shadow"}}),
                problems: &[(
                    "risk.mode",
                    "unknown variant `shadow`, expected `act` or `report`",
                )],
            },
            Case {
                name: "open_at as text",
                settings: json!({"risk": {"open_at": "high"}}),
                problems: &[(
                    "risk.open_at",
                    "invalid type: string \"high\", expected f64",
                )],
            },
            Case {
                name: "every learned-half range problem at once",
                settings: json!({
                    "failure_rate_threshold": 120,
                    "risk": {"open_at": 0},
                    "drift": {"threshold": -1, "window": 0, "min_rows": 5}
                }),
                problems: &[
                    (
                        "failure_rate_threshold",
                        "expected a percentage in (0, 100], found `120`",
                    ),
                    (
                        "risk.open_at",
                        "expected a probability in (0, 1], found `0`",
                    ),
                    (
                        "drift.threshold",
                        "expected a PSI greater than 0, found `-1`",
                    ),
                    (
                        "drift.window",
                        "expected an integer in 1..=100000, found `0`",
                    ),
                ],
            },
            Case {
                name: "open_at above 1, min_rows above the window",
                settings: json!({"risk": {"open_at": 1.5}, "drift": {"window": 10, "min_rows": 11}}),
                problems: &[
                    (
                        "risk.open_at",
                        "expected a probability in (0, 1], found `1.5`",
                    ),
                    (
                        "drift.min_rows",
                        "expected an integer in 1..=10 (the window), found `11`",
                    ),
                ],
            },
            Case {
                name: "unknown on_drift",
                settings: json!({"drift": {"on_drift": "hold"}}),
                problems: &[(
                    "drift.on_drift",
                    "unknown variant `hold`, expected `record` or `rules`",
                )],
            },
        ];
        assert_problems(&cases, BreakerConfig::from_settings);
    }

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("ms", "1500ms", Ok(Duration::from_millis(1500))),
            ("s", "2s", Ok(Duration::from_secs(2))),
            ("m", "5m", Ok(Duration::from_secs(300))),
            ("h", "1h", Ok(Duration::from_secs(3600))),
            (
                "no unit",
                "60",
                Err("expected a duration such as `30s`, `5m` or `1h`, found `60`"),
            ),
            (
                "no number",
                "s",
                Err("expected a duration such as `30s`, `5m` or `1h`, found `s`"),
            ),
            (
                "negative",
                "-1s",
                Err("expected a duration such as `30s`, `5m` or `1h`, found `-1s`"),
            ),
            (
                "zero",
                "0ms",
                Err("expected a duration above zero, found `0ms`"),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                parse_duration(text),
                want.map_err(String::from),
                "case `{name}`"
            );
        }
    }
}
