//! The scaler's `settings` block: [`RawScalerSettings`] mirrors the YAML, and
//! [`ScalerConfig::from_settings`] checks it once and fills the Kubernetes HPA defaults.
//!
//! `forecast` and `drift` configure the predictive half (see the module docs of
//! `scaler`); they matter only when the policy gives the scaler a `model`, and are checked
//! either way, so a typo is caught before the model is added.

use std::time::Duration;

use conclave_runtime::policy::SettingsProblem;
use conclave_runtime::telemetry::ServiceMetrics;
use serde::Deserialize;

use crate::learned::{DriftSettings, RawDrift};
use crate::settings::{checked_duration, parse, problem};

/// Kubernetes HPA default tolerance: no scaling while `|ratio - 1| <= 0.1`.
const DEFAULT_TOLERANCE: f64 = 0.1;
/// Below HPA v1's 80 % default: the extra headroom absorbs load while new replicas start.
const DEFAULT_CPU_TARGET: f64 = 0.7;
/// KEDA Pulsar scaler's default `msgBacklogThreshold`.
const DEFAULT_BACKLOG_TARGET: f64 = 10.0;
/// Typical JVM / container start-to-ready time; new replicas serve nothing before it.
const DEFAULT_COLD_START: Duration = Duration::from_secs(30);
/// Kubernetes HPA default `behavior.scaleDown.stabilizationWindowSeconds`.
const DEFAULT_DOWN_STABILIZATION: Duration = Duration::from_secs(300);
/// Kubernetes HPA default policy period (`periodSeconds: 15`).
const DEFAULT_PERIOD: Duration = Duration::from_secs(15);
/// Kubernetes HPA caps `stabilizationWindowSeconds` at 3600.
const MAX_STABILIZATION: Duration = Duration::from_secs(3600);
/// Kubernetes HPA caps a policy's `periodSeconds` at 1800.
const MAX_PERIOD: Duration = Duration::from_secs(1800);
/// Longer than an hour is a typo, not a cold start or a staleness bound.
const MAX_HOLD: Duration = Duration::from_secs(3600);

/// The metric the scaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU use as a share of the requested CPU (HPA `Utilization` target).
    Cpu,
    /// Requests per second arriving, target per replica (HPA `AverageValue` target).
    RateIn,
    /// Work waiting, e.g. a Pulsar subscription backlog, target per replica (HPA
    /// `AverageValue`, like KEDA's Pulsar `msgBacklogThreshold`).
    Backlog,
    /// 99th-percentile latency in milliseconds (utilization-style target).
    LatencyP99Ms,
}

impl Metric {
    /// The name used in settings and in proposal rationales.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::RateIn => "rate_in",
            Metric::Backlog => "backlog",
            Metric::LatencyP99Ms => "latency_p99_ms",
        }
    }

    /// Whether the target is per replica and the metric a total (HPA `AverageValue`):
    /// desired = ceil(total / target). Otherwise the metric is already an average over
    /// replicas (HPA `Utilization`): desired = ceil(current × value / target).
    pub fn is_per_replica(self) -> bool {
        matches!(self, Metric::RateIn | Metric::Backlog)
    }

    /// This metric's value in `m`. Larger is always worse (more load).
    pub fn value(self, m: &ServiceMetrics) -> f64 {
        match self {
            Metric::Cpu => m.cpu,
            Metric::RateIn => m.rate_in,
            // u64 -> f64 loses precision only above 2^53 messages, far beyond any backlog.
            Metric::Backlog => m.backlog as f64,
            Metric::LatencyP99Ms => m.latency_p99_ms,
        }
    }

    fn default_target(self) -> Option<f64> {
        match self {
            Metric::Cpu => Some(DEFAULT_CPU_TARGET),
            Metric::Backlog => Some(DEFAULT_BACKLOG_TARGET),
            // No value fits every service: requests/s per replica and latency objectives
            // are service-specific, so the policy must say.
            Metric::RateIn | Metric::LatencyP99Ms => None,
        }
    }
}

/// How the policies of one direction combine (HPA `selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectPolicy {
    /// The policy allowing the largest change wins (HPA default).
    Max,
    /// The policy allowing the smallest change wins.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// How a policy measures change (HPA `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// `value` replicas per period.
    Pods,
    /// `value` percent of the replicas at the start of the period, per period.
    Percent,
}

/// What the scaler does with its model's forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastMode {
    /// The forecast takes part in the decision (larger of forecast and reactive answers,
    /// never a scale-in on the forecast alone). The default when a model is set.
    Act,
    /// Forecast-only: the forecast and its error against the actual rate are recorded in
    /// the rationale, but only the reactive rule decides.
    Report,
}

impl ForecastMode {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            ForecastMode::Act => "act",
            ForecastMode::Report => "report",
        }
    }
}

/// `settings.forecast`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForecast {
    /// `act` (default) or `report`.
    pub mode: Option<ForecastMode>,
}

/// `settings` of the scaler, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalerSettings {
    /// Metric to scale on: `cpu` (default), `rate_in`, `backlog` or `latency_p99_ms`.
    pub metric: Option<Metric>,
    /// Target value, greater than 0: CPU share (default 0.7), requests/s per replica (no
    /// default), backlog messages per replica (default 10) or p99 latency in ms (no
    /// default).
    pub target: Option<f64>,
    /// No scaling while `|metric/target - 1|` is at most this, in `0.0..1.0` (default 0.1).
    pub tolerance: Option<f64>,
    /// How long new replicas take to serve after a scale-up, `0s..=1h` (default `30s`).
    pub cold_start: Option<String>,
    /// A target without metrics for longer than this gets no proposals, `1s..=1h`
    /// (default: three decision windows).
    pub stale_after: Option<String>,
    /// Rate limits and stabilization, as HPA's `behavior`.
    pub behavior: Option<RawBehavior>,
    /// What to do with the model's forecast (only with a `model`).
    pub forecast: Option<RawForecast>,
    /// Feature drift against the model's reference statistics (only with a `model`).
    pub drift: Option<RawDrift>,
}

/// `settings.behavior`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehavior {
    /// Scale-up rules (defaults: `0s` stabilization, `max` of 100 % and 4 pods per 15 s).
    pub scale_up: Option<RawScalingRules>,
    /// Scale-down rules (defaults: `300s` stabilization, 100 % per 15 s).
    pub scale_down: Option<RawScalingRules>,
}

/// One direction's rules, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalingRules {
    /// Window whose recommendations are considered, `0s..=1h`.
    pub stabilization: Option<String>,
    /// `max` (default), `min` or `disabled`.
    pub select_policy: Option<SelectPolicy>,
    /// Rate limits; at least one unless `select_policy` is `disabled`.
    pub policies: Option<Vec<RawScalingPolicy>>,
}

/// One rate limit, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalingPolicy {
    /// `pods` or `percent`.
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// Replicas or percent per period, at least 1.
    pub value: u32,
    /// The period, `1s..=30m`.
    pub period: String,
}

/// One rate limit, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    kind: PolicyKind,
    value: u32,
    period: Duration,
}

impl ScalingPolicy {
    /// How the change is measured.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }
    /// Replicas or percent per period.
    pub fn value(&self) -> u32 {
        self.value
    }
    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// One direction's rules, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    stabilization: Duration,
    select: SelectPolicy,
    policies: Vec<ScalingPolicy>,
}

impl ScalingRules {
    /// Recommendations younger than this are considered.
    pub fn stabilization(&self) -> Duration {
        self.stabilization
    }
    /// How the policies combine.
    pub fn select(&self) -> SelectPolicy {
        self.select
    }
    /// The rate limits.
    pub fn policies(&self) -> &[ScalingPolicy] {
        &self.policies
    }
    /// The longest policy period: older scale events no longer matter.
    pub fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// The scaler's checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerConfig {
    metric: Metric,
    target: f64,
    tolerance: f64,
    cold_start: Duration,
    stale_after: Option<Duration>,
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    forecast_mode: ForecastMode,
    drift: DriftSettings,
}

impl ScalerConfig {
    /// Parses and checks the scaler's `settings` (`Null` means all defaults).
    ///
    /// # Errors
    /// The first shape problem (unknown key, wrong type), or else every range problem,
    /// each with its path below `settings`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, Vec<SettingsProblem>> {
        Self::compile(parse::<RawScalerSettings>(settings)?)
    }

    /// Checks `raw` and fills defaults.
    ///
    /// # Errors
    /// Every problem found, each with its path below `settings`.
    pub fn compile(raw: RawScalerSettings) -> Result<Self, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let metric = raw.metric.unwrap_or(Metric::Cpu);
        let target = match raw.target {
            Some(t) if t.is_finite() && t > 0.0 => Some(t),
            Some(t) => {
                problems.push(problem(
                    "target",
                    format!("expected a number greater than 0, found `{t}`"),
                ));
                None
            }
            None => {
                let default = metric.default_target();
                if default.is_none() {
                    problems.push(problem(
                        "target",
                        format!(
                            "expected a target for metric `{}` (it has no default), found none",
                            metric.as_str()
                        ),
                    ));
                }
                default
            }
        };
        let tolerance = match raw.tolerance {
            Some(t) if t.is_finite() && (0.0..1.0).contains(&t) => t,
            Some(t) => {
                problems.push(problem(
                    "tolerance",
                    format!("expected a number in 0.0..1.0, found `{t}`"),
                ));
                DEFAULT_TOLERANCE
            }
            None => DEFAULT_TOLERANCE,
        };
        let cold_start = raw
            .cold_start
            .as_deref()
            .and_then(|s| {
                checked_duration(s, "cold_start", (Duration::ZERO, MAX_HOLD), &mut problems)
            })
            .unwrap_or(DEFAULT_COLD_START);
        let stale_after = raw.stale_after.as_deref().and_then(|s| {
            checked_duration(
                s,
                "stale_after",
                (Duration::from_secs(1), MAX_HOLD),
                &mut problems,
            )
        });
        let behavior = raw.behavior.unwrap_or_default();
        let scale_up = rules(
            behavior.scale_up.unwrap_or_default(),
            "behavior.scale_up",
            Duration::ZERO,
            &[
                (PolicyKind::Percent, 100, DEFAULT_PERIOD),
                (PolicyKind::Pods, 4, DEFAULT_PERIOD),
            ],
            &mut problems,
        );
        let scale_down = rules(
            behavior.scale_down.unwrap_or_default(),
            "behavior.scale_down",
            DEFAULT_DOWN_STABILIZATION,
            &[(PolicyKind::Percent, 100, DEFAULT_PERIOD)],
            &mut problems,
        );
        let forecast_mode = raw
            .forecast
            .and_then(|f| f.mode)
            .unwrap_or(ForecastMode::Act);
        let drift = DriftSettings::compile(raw.drift.unwrap_or_default(), &mut problems);
        match target {
            Some(target) if problems.is_empty() => Ok(ScalerConfig {
                metric,
                target,
                tolerance,
                cold_start,
                stale_after,
                scale_up,
                scale_down,
                forecast_mode,
                drift,
            }),
            _ => Err(problems),
        }
    }

    /// The metric scaled on.
    pub fn metric(&self) -> Metric {
        self.metric
    }
    /// The target value (per replica for [`Metric::is_per_replica`] metrics).
    pub fn target(&self) -> f64 {
        self.target
    }
    /// The no-change band around a ratio of 1.
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }
    /// How long new replicas take to serve.
    pub fn cold_start(&self) -> Duration {
        self.cold_start
    }
    /// The staleness bound, when set (the agent defaults it to three decision windows).
    pub fn stale_after(&self) -> Option<Duration> {
        self.stale_after
    }
    /// Scale-up rules.
    pub fn scale_up(&self) -> &ScalingRules {
        &self.scale_up
    }
    /// Scale-down rules.
    pub fn scale_down(&self) -> &ScalingRules {
        &self.scale_down
    }
    /// What the model's forecast does (with a model).
    pub fn forecast_mode(&self) -> ForecastMode {
        self.forecast_mode
    }
    /// Drift settings (with a model).
    pub fn drift(&self) -> DriftSettings {
        self.drift
    }
}

fn rules(
    raw: RawScalingRules,
    path: &str,
    default_stabilization: Duration,
    default_policies: &[(PolicyKind, u32, Duration)],
    problems: &mut Vec<SettingsProblem>,
) -> ScalingRules {
    let stabilization = raw
        .stabilization
        .as_deref()
        .and_then(|s| {
            checked_duration(
                s,
                &format!("{path}.stabilization"),
                (Duration::ZERO, MAX_STABILIZATION),
                problems,
            )
        })
        .unwrap_or(default_stabilization);
    let select = raw.select_policy.unwrap_or(SelectPolicy::Max);
    let policies = match raw.policies {
        None => default_policies
            .iter()
            .map(|&(kind, value, period)| ScalingPolicy {
                kind,
                value,
                period,
            })
            .collect(),
        Some(list) => {
            if list.is_empty() && select != SelectPolicy::Disabled {
                problems.push(problem(
                    &format!("{path}.policies"),
                    "expected at least one policy (or `select_policy: disabled`), found none",
                ));
            }
            let mut out = Vec::new();
            for (i, p) in list.into_iter().enumerate() {
                let at = format!("{path}.policies[{i}]");
                if p.value == 0 {
                    problems.push(problem(
                        &format!("{at}.value"),
                        "expected an integer of at least 1, found `0`",
                    ));
                }
                let period = checked_duration(
                    &p.period,
                    &format!("{at}.period"),
                    (Duration::from_secs(1), MAX_PERIOD),
                    problems,
                );
                if let Some(period) = period {
                    out.push(ScalingPolicy {
                        kind: p.kind,
                        value: p.value,
                        period,
                    });
                }
            }
            out
        }
    };
    ScalingRules {
        stabilization,
        select,
        policies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::OnDrift;
    use crate::settings::parse_duration;
    use serde_json::json;

    use crate::settings::{assert_problems, Case};

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "unknown_key",
                settings: json!({"metric": "cpu", "targte": 0.5}),
                problems: &[(
                    "targte",
                    "unknown field `targte`, expected one of `metric`, `target`, `tolerance`, \
                     `cold_start`, `stale_after`, `behavior`, `forecast`, `drift`",
                )],
            },
            Case {
                name: "unknown_nested_key",
                settings: json!({"behavior": {"scale_up": {"window": "10s"}}}),
                problems: &[(
                    "behavior.scale_up.window",
                    "unknown field `window`, expected one of `stabilization`, \
                     `select_policy`, `policies`",
                )],
            },
            Case {
                name: "unknown_metric",
                settings: json!({"metric": "memory"}),
                problems: &[(
                    "metric",
                    "unknown variant `memory`, expected one of `cpu`, `rate_in`, `backlog`, \
                     `latency_p99_ms`",
                )],
            },
            Case {
                name: "negative_target",
                settings: json!({"target": -1.0}),
                problems: &[("target", "expected a number greater than 0, found `-1`")],
            },
            Case {
                name: "rate_in_needs_a_target",
                settings: json!({"metric": "rate_in"}),
                problems: &[(
                    "target",
                    "expected a target for metric `rate_in` (it has no default), found none",
                )],
            },
            Case {
                name: "bad_duration",
                settings: json!({"cold_start": "30 seconds"}),
                problems: &[(
                    "cold_start",
                    "expected a duration such as `30s`, `5m` or `1h`, found `30 seconds`",
                )],
            },
            Case {
                name: "every_range_problem_at_once",
                settings: json!({
                    "tolerance": 1.5,
                    "stale_after": "0s",
                    "behavior": {
                        "scale_up": {"stabilization": "2h"},
                        "scale_down": {"policies": [{"type": "pods", "value": 0, "period": "1h"}]}
                    }
                }),
                problems: &[
                    ("tolerance", "expected a number in 0.0..1.0, found `1.5`"),
                    ("stale_after", "expected a duration in 1s..=1h, found `0s`"),
                    (
                        "behavior.scale_up.stabilization",
                        "expected a duration in 0s..=1h, found `2h`",
                    ),
                    (
                        "behavior.scale_down.policies[0].value",
                        "expected an integer of at least 1, found `0`",
                    ),
                    (
                        "behavior.scale_down.policies[0].period",
                        "expected a duration in 1s..=30m, found `1h`",
                    ),
                ],
            },
            Case {
                name: "empty_policies",
                settings: json!({"behavior": {"scale_up": {"policies": []}}}),
                problems: &[(
                    "behavior.scale_up.policies",
                    "expected at least one policy (or `select_policy: disabled`), found none",
                )],
            },
            Case {
                name: "unknown_forecast_mode",
                settings: json!({"forecast": {"mode": "shadow"}}),
                problems: &[(
                    "forecast.mode",
                    "unknown variant `shadow`, expected `act` or `report`",
                )],
            },
            Case {
                name: "unknown_drift_key",
                settings: json!({"drift": {"psi": 0.3}}),
                problems: &[(
                    "drift.psi",
                    "unknown field `psi`, expected one of `threshold`, `on_drift`, `window`, \
                     `min_rows`",
                )],
            },
            Case {
                name: "unknown_on_drift",
                settings: json!({"drift": {"on_drift": "hold"}}),
                problems: &[(
                    "drift.on_drift",
                    "unknown variant `hold`, expected `record` or `rules`",
                )],
            },
            Case {
                name: "drift_ranges",
                settings: json!({"drift": {"threshold": 0.0, "window": 50, "min_rows": 60}}),
                problems: &[
                    (
                        "drift.threshold",
                        "expected a PSI greater than 0, found `0`",
                    ),
                    (
                        "drift.min_rows",
                        "expected an integer in 1..=50 (the window), found `60`",
                    ),
                ],
            },
            Case {
                name: "drift_window_too_large",
                settings: json!({"drift": {"window": 200_000}}),
                problems: &[(
                    "drift.window",
                    "expected an integer in 1..=100000, found `200000`",
                )],
            },
            Case {
                name: "policy_value_negative",
                settings: json!({"behavior": {"scale_up": {"policies": [
                    {"type": "pods", "value": -2, "period": "15s"}
                ]}}}),
                problems: &[(
                    "behavior.scale_up.policies[0].value",
                    "invalid value: integer `-2`, expected u32",
                )],
            },
        ]
    }

    #[test]
    fn settings_problems_are_located_and_worded() {
        assert_problems(&cases(), ScalerConfig::from_settings);
    }

    #[test]
    fn null_settings_give_hpa_defaults() {
        let c = ScalerConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert_eq!(c.metric(), Metric::Cpu);
        assert_eq!(c.target(), 0.7);
        assert_eq!(c.tolerance(), 0.1);
        assert_eq!(c.cold_start(), Duration::from_secs(30));
        assert_eq!(c.stale_after(), None);
        assert_eq!(c.scale_up().stabilization(), Duration::ZERO);
        assert_eq!(c.scale_up().select(), SelectPolicy::Max);
        let up: Vec<_> = c
            .scale_up()
            .policies()
            .iter()
            .map(|p| (p.kind(), p.value(), p.period().as_secs()))
            .collect();
        assert_eq!(
            up,
            vec![(PolicyKind::Percent, 100, 15), (PolicyKind::Pods, 4, 15)]
        );
        assert_eq!(c.scale_down().stabilization(), Duration::from_secs(300));
        let down: Vec<_> = c
            .scale_down()
            .policies()
            .iter()
            .map(|p| (p.kind(), p.value(), p.period().as_secs()))
            .collect();
        assert_eq!(down, vec![(PolicyKind::Percent, 100, 15)]);
        assert_eq!(c.forecast_mode(), ForecastMode::Act);
        assert_eq!(c.drift(), DriftSettings::default());
        assert_eq!(c.drift().threshold(), 0.2);
        assert_eq!(c.drift().on_drift(), OnDrift::Record);
        assert_eq!((c.drift().window(), c.drift().min_rows()), (1000, 200));
    }

    #[test]
    fn forecast_and_drift_settings_parse() {
        let c = ScalerConfig::from_settings(&json!({
            "forecast": {"mode": "report"},
            "drift": {"threshold": 0.5, "on_drift": "rules", "window": 100}
        }))
        .expect("valid");
        assert_eq!(c.forecast_mode(), ForecastMode::Report);
        assert_eq!(c.drift().threshold(), 0.5);
        assert_eq!(c.drift().on_drift(), OnDrift::Rules);
        // min_rows defaults to 200, but never more than the window.
        assert_eq!((c.drift().window(), c.drift().min_rows()), (100, 100));
        let c = ScalerConfig::from_settings(&json!({"forecast": {}, "drift": {"min_rows": 5}}))
            .expect("valid");
        assert_eq!(c.forecast_mode(), ForecastMode::Act);
        assert_eq!((c.drift().window(), c.drift().min_rows()), (1000, 5));
    }

    #[test]
    fn backlog_defaults_to_keda_threshold_and_disabled_allows_no_policies() {
        let c = ScalerConfig::from_settings(&json!({
            "metric": "backlog",
            "stale_after": "1m",
            "behavior": {"scale_down": {"select_policy": "disabled", "policies": []}}
        }))
        .expect("valid");
        assert_eq!(c.target(), 10.0);
        assert_eq!(c.stale_after(), Some(Duration::from_secs(60)));
        assert_eq!(c.scale_down().select(), SelectPolicy::Disabled);
        assert!(c.scale_down().policies().is_empty());
    }

    #[test]
    fn durations_parse_in_four_units() {
        for (text, ms) in [
            ("250ms", 250),
            ("15s", 15_000),
            ("5m", 300_000),
            (" 1h ", 3_600_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "case {text}"
            );
        }
        for bad in [
            "",
            "s",
            "15",
            "1.5s",
            "-1s",
            "15sec",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "case {bad:?} accepted");
        }
    }
}
