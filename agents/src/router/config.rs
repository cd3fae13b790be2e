//! The router's `settings` block: [`RawRouterSettings`] mirrors the YAML, and
//! [`RouterConfig::from_settings`] checks it once and fills defaults.
//!
//! `predict` and `drift` configure the learned half (see the module docs of `router`);
//! they matter only when the policy gives the router a `model`, and are checked either
//! way, so a typo is caught before the model is added.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_runtime::policy::SettingsProblem;
use conclave_runtime::Target;
use serde::Deserialize;

use crate::learned::{DriftSettings, RawDrift};
use crate::settings::checked_duration;
use crate::settings::{parse, problem};

/// EWMA weight of the newest sample: 0.3 forgets a spike within about five reports while
/// still following a real shift within two or three decision windows.
const DEFAULT_ALPHA: f64 = 0.3;
/// Every healthy backend keeps 5 % of traffic, so its latency and errors stay measured and
/// a backend that recovers is noticed (a backend with no traffic reports nothing useful).
const DEFAULT_FLOOR: f64 = 0.05;
/// Above half the requests failing, a backend does more harm than good.
const DEFAULT_UNHEALTHY_ERROR_RATE: f64 = 0.5;
/// Smaller moves are noise in the EWMAs, not a reason to reconfigure the load balancer.
const DEFAULT_MIN_CHANGE: f64 = 0.05;
/// Longer than an hour is a typo, not a staleness bound.
const MAX_STALE_AFTER: Duration = Duration::from_secs(3600);

/// `settings` of the router, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouterSettings {
    /// Routes by name (the route target's name); each splits traffic over its `backends`.
    /// Default: none (the router proposes nothing).
    pub routes: Option<BTreeMap<String, RawRoute>>,
    /// EWMA weight of the newest sample, in `(0.0, 1.0]` (default 0.3).
    pub alpha: Option<f64>,
    /// Least weight of every healthy backend, in `0.0..1.0` (default 0.05); `floor` times
    /// the backends of any route must be at most 1.
    pub floor: Option<f64>,
    /// A backend whose error-rate EWMA exceeds this gets weight 0, in `(0.0, 1.0]`
    /// (default 0.5).
    pub unhealthy_error_rate: Option<f64>,
    /// Propose only when some weight moves by more than this from the last proposal, in
    /// `0.0..1.0` (default 0.05).
    pub min_change: Option<f64>,
    /// A backend without metrics for longer than this counts as down, `1s..=1h`
    /// (default: three decision windows).
    pub stale_after: Option<String>,
    /// What the model's forecasts do (only with a `model`).
    pub predict: Option<RawPredict>,
    /// Feature drift against the model's reference statistics (only with a `model`).
    pub drift: Option<RawDrift>,
}

/// What the router does with its model's forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictMode {
    /// The forecast cost (combined with the EWMAs' as `combine` says) weighs the backends
    /// in the rule's formula (the default when a model is set).
    Act,
    /// Forecasts and how they compared with what followed are recorded in the rationale;
    /// the rule decides alone.
    Report,
}

impl PredictMode {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictMode::Act => "act",
            PredictMode::Report => "report",
        }
    }
}

/// How a forecast and the rule's averages make the cost a backend is weighted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The larger of the forecast and the cost of the EWMAs (the default): the model can
    /// move traffic away from a backend ahead of the averages, never back to it sooner.
    /// Traffic moved to a backend the averages still judge slow is what makes a router
    /// herd: an idle backend looks fast to any forecast of its next minute, because
    /// idle it is.
    Max,
    /// The forecast alone.
    Replace,
}

impl Combine {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Combine::Max => "max",
            Combine::Replace => "replace",
        }
    }
}

/// `settings.predict`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPredict {
    /// `act` (default) or `report`.
    pub mode: Option<PredictMode>,
    /// `max` (default) or `replace`.
    pub combine: Option<Combine>,
}

/// `settings.predict`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictConfig {
    mode: PredictMode,
    combine: Combine,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            mode: PredictMode::Act,
            combine: Combine::Max,
        }
    }
}

impl PredictConfig {
    /// `act` or `report`.
    pub fn mode(&self) -> PredictMode {
        self.mode
    }
    /// How the forecast and the EWMAs combine.
    pub fn combine(&self) -> Combine {
        self.combine
    }
}

/// One route, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The services traffic is split across (their `Metrics` must arrive).
    pub backends: Vec<String>,
}

/// The router's checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    routes: BTreeMap<Target, BTreeSet<String>>,
    alpha: f64,
    floor: f64,
    unhealthy_error_rate: f64,
    min_change: f64,
    stale_after: Option<Duration>,
    predict: PredictConfig,
    drift: DriftSettings,
}

impl RouterConfig {
    /// Parses and checks the router's `settings` (`Null` means all defaults).
    ///
    /// # Errors
    /// The first shape problem (unknown key, wrong type), or else every range problem,
    /// each with its path below `settings`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, Vec<SettingsProblem>> {
        Self::compile(parse::<RawRouterSettings>(settings)?)
    }

    /// Checks `raw` and fills defaults.
    ///
    /// # Errors
    /// Every problem found, each with its path below `settings`.
    pub fn compile(raw: RawRouterSettings) -> Result<Self, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let mut fraction = |value: Option<f64>, path: &str, default: f64, zero_ok: bool| {
            let Some(v) = value else {
                return default;
            };
            let ok = v.is_finite()
                && if zero_ok {
                    (0.0..1.0).contains(&v)
                } else {
                    v > 0.0 && v <= 1.0
                };
            if !ok {
                let expected = if zero_ok {
                    "a number in 0.0..1.0"
                } else {
                    "a number greater than 0 and at most 1"
                };
                problems.push(problem(path, format!("expected {expected}, found `{v}`")));
            }
            v
        };
        let alpha = fraction(raw.alpha, "alpha", DEFAULT_ALPHA, false);
        let floor = fraction(raw.floor, "floor", DEFAULT_FLOOR, true);
        let unhealthy_error_rate = fraction(
            raw.unhealthy_error_rate,
            "unhealthy_error_rate",
            DEFAULT_UNHEALTHY_ERROR_RATE,
            false,
        );
        let min_change = fraction(raw.min_change, "min_change", DEFAULT_MIN_CHANGE, true);
        let floor_in_range = (0.0..1.0).contains(&floor);
        let stale_after = raw.stale_after.as_deref().and_then(|s| {
            checked_duration(
                s,
                "stale_after",
                (Duration::from_secs(1), MAX_STALE_AFTER),
                &mut problems,
            )
        });

        let raw_predict = raw.predict.unwrap_or_default();
        let defaults = PredictConfig::default();
        let predict = PredictConfig {
            mode: raw_predict.mode.unwrap_or(defaults.mode),
            combine: raw_predict.combine.unwrap_or(defaults.combine),
        };
        let drift = DriftSettings::compile(raw.drift.unwrap_or_default(), &mut problems);

        let mut routes = BTreeMap::new();
        for (name, route) in raw.routes.unwrap_or_default() {
            let at = format!("routes.{name}");
            if name.trim().is_empty() {
                problems.push(problem("routes", "expected a route name, found ``"));
            }
            if route.backends.is_empty() {
                problems.push(problem(
                    &format!("{at}.backends"),
                    "expected at least one backend, found none",
                ));
            }
            let mut backends = BTreeSet::new();
            for (i, b) in route.backends.into_iter().enumerate() {
                if b.trim().is_empty() {
                    problems.push(problem(
                        &format!("{at}.backends[{i}]"),
                        "expected a service name, found ``",
                    ));
                } else if backends.contains(&b) {
                    problems.push(problem(
                        &format!("{at}.backends[{i}]"),
                        format!("duplicate backend `{b}`"),
                    ));
                } else {
                    backends.insert(b);
                }
            }
            // usize -> f64 is exact for any realistic backend count. An out-of-range floor
            // is reported once, above, not again for every route.
            let floors = floor * backends.len() as f64;
            if floor_in_range && floors > 1.0 + 1e-9 {
                problems.push(problem(
                    &format!("{at}.backends"),
                    format!(
                        "expected at most {} backends with `floor` {floor}, found {}",
                        (1.0 / floor).floor(),
                        backends.len()
                    ),
                ));
            }
            routes.insert(Target::new(name), backends);
        }

        if problems.is_empty() {
            Ok(RouterConfig {
                routes,
                alpha,
                floor,
                unhealthy_error_rate,
                min_change,
                stale_after,
                predict,
                drift,
            })
        } else {
            Err(problems)
        }
    }

    /// Routes by target, each with its backends in name order.
    pub fn routes(&self) -> &BTreeMap<Target, BTreeSet<String>> {
        &self.routes
    }
    /// EWMA weight of the newest sample.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// Least weight of every healthy backend.
    pub fn floor(&self) -> f64 {
        self.floor
    }
    /// Error-rate EWMA above which a backend gets weight 0.
    pub fn unhealthy_error_rate(&self) -> f64 {
        self.unhealthy_error_rate
    }
    /// Least move of some weight that warrants a new proposal.
    pub fn min_change(&self) -> f64 {
        self.min_change
    }
    /// The staleness bound, when set (the agent defaults it to three decision windows).
    pub fn stale_after(&self) -> Option<Duration> {
        self.stale_after
    }
    /// What the model's forecasts do.
    pub fn predict(&self) -> PredictConfig {
        self.predict
    }
    /// Drift monitoring of the model's features.
    pub fn drift(&self) -> DriftSettings {
        self.drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::settings::{assert_problems, Case};

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "unknown_key",
                settings: json!({"routes": {}, "beta": 0.2}),
                problems: &[(
                    "beta",
                    "unknown field `beta`, expected one of `routes`, `alpha`, `floor`, \
                     `unhealthy_error_rate`, `min_change`, `stale_after`, `predict`, `drift`",
                )],
            },
            Case {
                name: "unknown_route_key",
                settings: json!({"routes": {"web": {"backends": ["a"], "weights": [1]}}}),
                problems: &[(
                    "routes.web.weights",
                    "unknown field `weights`, expected `backends`",
                )],
            },
            Case {
                name: "backends_not_a_list",
                settings: json!({"routes": {"web": {"backends": "a"}}}),
                problems: &[(
                    "routes.web.backends",
                    "invalid type: string \"a\", expected a sequence",
                )],
            },
            Case {
                name: "every_range_problem_at_once",
                settings: json!({
                    "alpha": 0.0,
                    "floor": 1.0,
                    "unhealthy_error_rate": 1.5,
                    "min_change": -0.1,
                    "stale_after": "soon",
                    "routes": {"web": {"backends": []}, "api": {"backends": ["a", "b", "a", ""]}}
                }),
                problems: &[
                    (
                        "alpha",
                        "expected a number greater than 0 and at most 1, found `0`",
                    ),
                    ("floor", "expected a number in 0.0..1.0, found `1`"),
                    (
                        "unhealthy_error_rate",
                        "expected a number greater than 0 and at most 1, found `1.5`",
                    ),
                    ("min_change", "expected a number in 0.0..1.0, found `-0.1`"),
                    (
                        "stale_after",
                        "expected a duration such as `30s`, `5m` or `1h`, found `soon`",
                    ),
                    ("routes.api.backends[2]", "duplicate backend `a`"),
                    (
                        "routes.api.backends[3]",
                        "expected a service name, found ``",
                    ),
                    (
                        "routes.web.backends",
                        "expected at least one backend, found none",
                    ),
                ],
            },
            Case {
                name: "predict_mode_unknown",
                settings: json!({"predict": {"mode": "shadow"}}),
                problems: &[(
                    "predict.mode",
                    "unknown variant `shadow`, expected `act` or `report`",
                )],
            },
            Case {
                name: "predict_unknown_key",
                settings: json!({"predict": {"horizon": "60s"}}),
                problems: &[(
                    "predict.horizon",
                    "unknown field `horizon`, expected `mode` or `combine`",
                )],
            },
            Case {
                name: "predict_combine_unknown",
                settings: json!({"predict": {"combine": "min"}}),
                problems: &[(
                    "predict.combine",
                    "unknown variant `min`, expected `max` or `replace`",
                )],
            },
            Case {
                name: "every_drift_range_problem_at_once",
                settings: json!({"drift": {"threshold": 0, "window": 200_000}}),
                problems: &[
                    (
                        "drift.threshold",
                        "expected a PSI greater than 0, found `0`",
                    ),
                    (
                        "drift.window",
                        "expected an integer in 1..=100000, found `200000`",
                    ),
                ],
            },
            Case {
                name: "floor_too_high_for_the_route",
                settings: json!({"floor": 0.3, "routes": {"web": {"backends": ["a", "b", "c", "d"]}}}),
                problems: &[(
                    "routes.web.backends",
                    "expected at most 3 backends with `floor` 0.3, found 4",
                )],
            },
        ]
    }

    #[test]
    fn settings_problems_are_located_and_worded() {
        assert_problems(&cases(), RouterConfig::from_settings);
    }

    #[test]
    fn null_settings_give_defaults() {
        let c = RouterConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert!(c.routes().is_empty());
        assert_eq!(
            (
                c.alpha(),
                c.floor(),
                c.unhealthy_error_rate(),
                c.min_change()
            ),
            (0.3, 0.05, 0.5, 0.05)
        );
        assert_eq!(c.stale_after(), None);
        assert_eq!(c.predict(), PredictConfig::default());
        assert_eq!(
            (c.predict().mode(), c.predict().combine()),
            (PredictMode::Act, Combine::Max)
        );
        assert_eq!(c.drift(), DriftSettings::default());
    }

    #[test]
    fn the_learned_half_is_read() {
        let c = RouterConfig::from_settings(&json!({
            "predict": {"mode": "report", "combine": "replace"},
            "drift": {"threshold": 0.3, "on_drift": "rules", "window": 500, "min_rows": 50}
        }))
        .expect("valid");
        assert_eq!(c.predict().mode(), PredictMode::Report);
        assert_eq!(c.predict().combine(), Combine::Replace);
        let d = c.drift();
        assert_eq!(
            (d.threshold(), d.on_drift(), d.window(), d.min_rows()),
            (0.3, crate::learned::OnDrift::Rules, 500, 50)
        );
    }

    #[test]
    fn backends_are_kept_in_name_order() {
        let c = RouterConfig::from_settings(&json!({
            "routes": {"web": {"backends": ["web-us", "web-eu"]}},
            "stale_after": "30s"
        }))
        .expect("valid");
        let backends: Vec<&str> = c.routes()[&Target::new("web")]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(backends, ["web-eu", "web-us"]);
        assert_eq!(c.stale_after(), Some(Duration::from_secs(30)));
    }
}
