//! The compliance agent's `settings` block: [`RawComplianceSettings`] mirrors the YAML,
//! [`ComplianceConfig::from_settings`] checks every key at once and builds the typed
//! config.
//!
//! `fraud` and `drift` configure the learned half (the fraud model, see `fraud`); they
//! matter only when the policy gives the agent a `model`, and are checked either way, so a
//! typo is caught before the model is added.

use std::collections::BTreeMap;

use conclave_runtime::policy::SettingsProblem;
use serde::Deserialize;

use super::detectors::{KindSet, PiiKind};
use crate::learned::{DriftSettings, RawDrift};
use crate::settings::{parse, problem};

/// At 0.5 the committed model flagged no event of a card seen once, and every burst from
/// its second order, on its held-out scenarios (model card).
const DEFAULT_FRAUD_THRESHOLD: f64 = 0.5;
/// A single order is never a burst: the model acts from a card's second order on.
const DEFAULT_MIN_ORDERS: u32 = 2;
/// A larger value is a typo: the features count at most 64 orders per card.
const MAX_MIN_ORDERS: u32 = 64;

/// `spec.agents.compliance.settings`, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComplianceSettings {
    /// Detectors to run, by name: `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`
    /// (default: all; `[]` runs none, leaving only residency checks).
    pub detectors: Option<Vec<String>>,
    /// Field paths where a kind of data is expected and allowed, each with the kinds, e.g.
    /// `{fields.customer.email: [email]}`. `[*]` in a path matches any array index
    /// (`fields.items[*].email`).
    pub allow_fields: Option<BTreeMap<String, Vec<String>>>,
    /// Regions each topic's events may come from, e.g. `{orders: [eu-west-1]}`. A key
    /// ending in `*` is a prefix (`eu-*`); an exact name wins over prefixes, a longer
    /// prefix over a shorter one. Topics no key matches are not checked.
    pub residency: Option<BTreeMap<String, Vec<String>>>,
    /// What the fraud model's score does (only with a `model`).
    pub fraud: Option<RawFraud>,
    /// Feature drift against the model's reference statistics (only with a `model`), as
    /// the other learned agents' `drift`.
    pub drift: Option<RawDrift>,
}

/// What the agent does with the fraud model's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudMode {
    /// A score at or above `threshold` is a finding, proposed as `action` says. The
    /// default when a model is set.
    Act,
    /// The score is recorded on the detectors' proposals (and would-be findings counted);
    /// only the detectors propose.
    Report,
}

impl FraudMode {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudMode::Act => "act",
            FraudMode::Report => "report",
        }
    }
}

/// What a fraud finding proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudAction {
    /// Quarantine the producer and alert (warning), as for personal data. The default.
    Quarantine,
    /// Alert (warning) only, once per producer; the producer keeps sending.
    Alert,
}

impl FraudAction {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudAction::Quarantine => "quarantine",
            FraudAction::Alert => "alert",
        }
    }
}

/// `spec.agents.compliance.settings.fraud`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFraud {
    /// `act` (default) or `report`.
    pub mode: Option<FraudMode>,
    /// Score at or above which an event is a fraud finding, in `(0, 1]` (default `0.5`).
    pub threshold: Option<f64>,
    /// Orders the event's card must have in the model's card window, this one included,
    /// before a score can be a finding, `1..=64` (default `2`).
    pub min_orders: Option<u32>,
    /// `quarantine` (default) or `alert`.
    pub action: Option<FraudAction>,
}

/// `settings.fraud`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FraudConfig {
    pub(super) mode: FraudMode,
    pub(super) threshold: f64,
    pub(super) min_orders: u32,
    pub(super) action: FraudAction,
}

impl Default for FraudConfig {
    fn default() -> Self {
        FraudConfig {
            mode: FraudMode::Act,
            threshold: DEFAULT_FRAUD_THRESHOLD,
            min_orders: DEFAULT_MIN_ORDERS,
            action: FraudAction::Quarantine,
        }
    }
}

impl FraudConfig {
    fn compile(raw: RawFraud, p: &mut Vec<SettingsProblem>) -> Self {
        let mut out = FraudConfig::default();
        if let Some(mode) = raw.mode {
            out.mode = mode;
        }
        if let Some(action) = raw.action {
            out.action = action;
        }
        match raw.threshold {
            Some(t) if t.is_finite() && t > 0.0 && t <= 1.0 => out.threshold = t,
            Some(t) => p.push(problem(
                "fraud.threshold",
                format!("expected a score in (0, 1], found `{t}`"),
            )),
            None => {}
        }
        match raw.min_orders {
            Some(n) if (1..=MAX_MIN_ORDERS).contains(&n) => out.min_orders = n,
            Some(n) => p.push(problem(
                "fraud.min_orders",
                format!("expected an integer in 1..={MAX_MIN_ORDERS}, found `{n}`"),
            )),
            None => {}
        }
        out
    }

    /// `act` or `report`.
    pub fn mode(&self) -> FraudMode {
        self.mode
    }

    /// Score at or above which an event is a finding.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Orders the card needs in its window, this one included.
    pub fn min_orders(&self) -> u32 {
        self.min_orders
    }

    /// What a finding proposes.
    pub fn action(&self) -> FraudAction {
        self.action
    }
}

/// The compliance agent's checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceConfig {
    pub(super) detectors: KindSet,
    pub(super) allow_fields: BTreeMap<String, KindSet>,
    pub(super) residency: Residency,
    pub(super) fraud: FraudConfig,
    pub(super) drift: DriftSettings,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            detectors: KindSet::all(),
            allow_fields: BTreeMap::new(),
            residency: Residency::default(),
            fraud: FraudConfig::default(),
            drift: DriftSettings::default(),
        }
    }
}

/// Allowed regions per topic.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Residency {
    exact: BTreeMap<String, Vec<String>>,
    /// `(prefix, regions)`, longest prefix first.
    prefixes: Vec<(String, Vec<String>)>,
}

impl Residency {
    /// The regions allowed for `topic`; `None` when no rule covers it.
    pub(super) fn allowed(&self, topic: &str) -> Option<&[String]> {
        self.exact
            .get(topic)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(p, _)| topic.starts_with(p.as_str()))
                    .map(|(_, r)| r)
            })
            .map(Vec::as_slice)
    }
}

impl ComplianceConfig {
    /// Parses and checks `settings` (`Null` means all defaults).
    ///
    /// # Errors
    /// A shape problem (unknown key, wrong type) alone; otherwise every bad value, each
    /// with its path below `settings`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, Vec<SettingsProblem>> {
        let raw: RawComplianceSettings = parse(settings)?;
        Self::compile(raw)
    }

    /// Checks every field of `raw`, then builds.
    ///
    /// # Errors
    /// Every bad value, with its path below `settings`.
    pub fn compile(raw: RawComplianceSettings) -> Result<Self, Vec<SettingsProblem>> {
        let mut p = Vec::new();
        let detectors = match raw.detectors {
            None => KindSet::all(),
            Some(names) => kinds(&mut p, "detectors", &names),
        };
        let mut allow_fields = BTreeMap::new();
        for (path, names) in raw.allow_fields.unwrap_or_default() {
            let at = format!("allow_fields.{path}");
            if !is_field_path(&path) {
                p.push(problem(
                    &at,
                    format!(
                        "expected a field path such as `fields.customer.email` or `fields.items[*].email`, found `{path}`"
                    ),
                ));
            }
            allow_fields.insert(path, kinds(&mut p, &at, &names));
        }
        let mut residency = Residency::default();
        for (topic, regions) in raw.residency.unwrap_or_default() {
            let at = format!("residency.{topic}");
            let name = topic.strip_suffix('*');
            if topic.is_empty() || name.unwrap_or(&topic).contains('*') {
                p.push(problem(
                    &at,
                    format!("expected a topic name, or a prefix ending in `*`, found `{topic}`"),
                ));
            }
            if regions.is_empty() {
                p.push(problem(&at, "expected at least one region, found none"));
            }
            for (i, r) in regions.iter().enumerate() {
                if r.is_empty() {
                    p.push(problem(
                        &format!("{at}[{i}]"),
                        "expected a region name, found an empty string",
                    ));
                }
            }
            match name {
                Some(prefix) => residency.prefixes.push((prefix.to_string(), regions)),
                None => {
                    residency.exact.insert(topic, regions);
                }
            }
        }
        residency
            .prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let fraud = FraudConfig::compile(raw.fraud.unwrap_or_default(), &mut p);
        let drift = DriftSettings::compile(raw.drift.unwrap_or_default(), &mut p);
        if p.is_empty() {
            Ok(ComplianceConfig {
                detectors,
                allow_fields,
                residency,
                fraud,
                drift,
            })
        } else {
            Err(p)
        }
    }
}

fn kinds(p: &mut Vec<SettingsProblem>, at: &str, names: &[String]) -> KindSet {
    let mut set = KindSet::EMPTY;
    for (i, name) in names.iter().enumerate() {
        match PiiKind::from_name(name) {
            Some(k) => set = set.with(k),
            None => p.push(problem(
                &format!("{at}[{i}]"),
                format!(
                    "expected one of `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`, found `{name}`"
                ),
            )),
        }
    }
    set
}

/// `fields` followed by `.name` and `[index]`/`[*]` steps, at least one.
fn is_field_path(path: &str) -> bool {
    let Some(mut rest) = path.strip_prefix("fields") else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return false;
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return false;
            };
            let index = &after[..end];
            if index != "*" && (index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit())) {
                return false;
            }
            rest = &after[end + 1..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn null_settings_run_every_detector_and_no_residency() {
        let c = ComplianceConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert_eq!(c, ComplianceConfig::default());
        assert_eq!(c.detectors, KindSet::all());
        assert_eq!(c.residency.allowed("orders"), None);
    }

    #[test]
    fn every_key_is_read() {
        let c = ComplianceConfig::from_settings(&json!({
            "detectors": ["card_number", "email"],
            "allow_fields": {"fields.customer.email": ["email"], "fields.items[*].iban": ["iban"]},
            "residency": {"orders": ["eu-west-1"], "eu-*": ["eu-west-1", "eu-central-1"],
                          "eu-pay*": ["eu-central-1"]}
        }))
        .expect("valid");
        assert_eq!(
            c.detectors,
            KindSet::EMPTY
                .with(PiiKind::CardNumber)
                .with(PiiKind::Email)
        );
        assert_eq!(
            c.allow_fields.get("fields.customer.email"),
            Some(&KindSet::EMPTY.with(PiiKind::Email))
        );
        let cases: [(&str, Option<&[&str]>); 5] = [
            ("orders", Some(&["eu-west-1"])),
            ("eu-orders", Some(&["eu-west-1", "eu-central-1"])),
            ("eu-payments", Some(&["eu-central-1"])),
            ("eu-", Some(&["eu-west-1", "eu-central-1"])),
            ("us-orders", None),
        ];
        for (topic, want) in cases {
            let got = c
                .residency
                .allowed(topic)
                .map(|r| r.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(got.as_deref(), want, "topic `{topic}`");
        }
    }

    #[test]
    fn settings_errors_name_path_expectation_and_value() {
        /// `(path, message)` of each problem.
        type Problems = &'static [(&'static str, &'static str)];
        let cases: [(&str, serde_json::Value, Problems); 3] = [
            (
                "unknown key",
                json!({"detector": ["email"]}),
                &[(
                    "detector",
                    "unknown field `detector`, expected one of `detectors`, `allow_fields`, `residency`, `fraud`, `drift`",
                )],
            ),
            (
                "wrong type",
                json!({"residency": {"orders": "eu-west-1"}}),
                &[(
                    "residency.orders",
                    "invalid type: string \"eu-west-1\", expected a sequence",
                )],
            ),
            (
                "every value problem at once",
                json!({
                    "detectors": ["email", "phone"],
                    "allow_fields": {"customer.email": ["email"], "fields.a[x]": ["ssn"]},
                    "residency": {"orders": [], "eu-*-x": ["eu"], "*": [""]}
                }),
                &[
                    ("detectors[1]", "expected one of `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`, found `phone`"),
                    ("allow_fields.customer.email", "expected a field path such as `fields.customer.email` or `fields.items[*].email`, found `customer.email`"),
                    ("allow_fields.fields.a[x]", "expected a field path such as `fields.customer.email` or `fields.items[*].email`, found `fields.a[x]`"),
                    ("allow_fields.fields.a[x][0]", "expected one of `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`, found `ssn`"),
                    ("residency.*[0]", "expected a region name, found an empty string"),
                    ("residency.eu-*-x", "expected a topic name, or a prefix ending in `*`, found `eu-*-x`"),
                    ("residency.orders", "expected at least one region, found none"),
                ],
            ),
        ];
        for (name, settings, want) in cases {
            let got = ComplianceConfig::from_settings(&settings).expect_err(name);
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|p| (p.path.as_str(), p.message.as_str()))
                .collect();
            assert_eq!(got, want, "case `{name}`");
        }
    }

    #[test]
    fn fraud_and_drift_settings() {
        let c = ComplianceConfig::from_settings(&serde_json::Value::Null).expect("defaults");
        assert_eq!(
            c.fraud,
            FraudConfig {
                mode: FraudMode::Act,
                threshold: 0.5,
                min_orders: 2,
                action: FraudAction::Quarantine,
            }
        );
        assert_eq!(c.drift, DriftSettings::default());
        let c = ComplianceConfig::from_settings(&json!({
            "fraud": {"mode": "report", "threshold": 0.9, "min_orders": 1, "action": "alert"},
            "drift": {"threshold": 0.3, "on_drift": "rules", "window": 500, "min_rows": 100}
        }))
        .expect("valid");
        assert_eq!(
            (
                c.fraud.mode(),
                c.fraud.threshold(),
                c.fraud.min_orders(),
                c.fraud.action()
            ),
            (FraudMode::Report, 0.9, 1, FraudAction::Alert)
        );
        assert_eq!(
            (c.drift.threshold(), c.drift.window(), c.drift.min_rows()),
            (0.3, 500, 100)
        );
        let got = ComplianceConfig::from_settings(&json!({
            "fraud": {"threshold": 0.0, "min_orders": 65},
            "drift": {"window": 0}
        }))
        .expect_err("out of range");
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("fraud.threshold", "expected a score in (0, 1], found `0`"),
                (
                    "fraud.min_orders",
                    "expected an integer in 1..=64, found `65`"
                ),
                (
                    "drift.window",
                    "expected an integer in 1..=100000, found `0`"
                ),
            ]
        );
        let got = ComplianceConfig::from_settings(&json!({"fraud": {"mode": "acting"}}))
            .expect_err("unknown mode");
        assert_eq!(got[0].path, "fraud.mode");
        assert_eq!(
            got[0].message,
            "unknown variant `acting`, expected `act` or `report`"
        );
    }

    #[test]
    fn field_paths() {
        let cases = [
            ("fields.a", true),
            ("fields.a.b_c", true),
            ("fields.items[2].email", true),
            ("fields.items[*].email", true),
            ("fields.by_email.*", true),
            ("fields[0]", true),
            ("fields", false),
            ("field.a", false),
            ("fields.", false),
            ("fields..a", false),
            ("fields.a[", false),
            ("fields.a[]", false),
            ("fields.a[-1]", false),
            ("fieldsx", false),
        ];
        for (path, want) in cases {
            assert_eq!(is_field_path(path), want, "path `{path}`");
        }
    }
}
