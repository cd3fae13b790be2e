//! The validated policy. Built only by [`compile`](super::compile), so code that holds a
//! `&Policy` never re-checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use super::condition::Condition;
use super::selector::Selector;
use crate::action::{Action, ActionKind, BreakerState};
use crate::decision::OnTimeout;
use crate::overrides::Role;
use crate::target::{Target, TargetKind};
use crate::units::Fraction;

/// How far an agent's proposals go.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The agent does not run.
    Off,
    /// Decisions are logged and traced, not acted on.
    Shadow,
    /// Decisions are proposed to humans, not acted on.
    Advise,
    /// Decisions are acted on.
    Enforce,
}

impl Mode {
    /// The name used in YAML and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Shadow => "shadow",
            Mode::Advise => "advise",
            Mode::Enforce => "enforce",
        }
    }
}

/// What an agent does when its model cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackMode {
    /// Use the rule-based agent.
    Rules,
    /// Propose nothing.
    Hold,
}

/// What a guardrail does with an action outside its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Bring the action within the limits.
    Clamp,
    /// Refuse the action.
    Reject,
}

/// How conflicts between proposals on one target are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The safer action wins; agent priority breaks ties.
    SaferWins,
    /// The higher-priority agent wins; safety breaks ties.
    Priority,
}

/// Classes of action, for ranking safety in conflicts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SafetyClass {
    /// Isolating a producer or topic.
    Quarantine,
    /// Opening (or half-opening) a breaker.
    BreakerOpen,
    /// Shedding work.
    Shed,
    /// Adding replicas.
    ScaleUp,
    /// Changing route weights.
    Route,
    /// Closing a breaker.
    BreakerClose,
    /// Removing replicas.
    ScaleDown,
}

impl SafetyClass {
    /// Every class, safest first: the default order.
    pub const DEFAULT_ORDER: [SafetyClass; 7] = [
        SafetyClass::Quarantine,
        SafetyClass::BreakerOpen,
        SafetyClass::Shed,
        SafetyClass::ScaleUp,
        SafetyClass::Route,
        SafetyClass::BreakerClose,
        SafetyClass::ScaleDown,
    ];

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            SafetyClass::Quarantine => "quarantine",
            SafetyClass::BreakerOpen => "breaker_open",
            SafetyClass::Shed => "shed",
            SafetyClass::ScaleUp => "scale_up",
            SafetyClass::Route => "route",
            SafetyClass::BreakerClose => "breaker_close",
            SafetyClass::ScaleDown => "scale_down",
        }
    }

    /// The class of `action` given the target's current replicas; `None` for alerts, which
    /// never conflict.
    pub fn of(action: &Action, current_replicas: Option<u32>) -> Option<SafetyClass> {
        Some(match action {
            Action::Scale { replicas } => match current_replicas {
                Some(cur) if *replicas < cur => SafetyClass::ScaleDown,
                _ => SafetyClass::ScaleUp,
            },
            Action::Route { .. } => SafetyClass::Route,
            Action::Shed { .. } => SafetyClass::Shed,
            Action::Breaker {
                state: BreakerState::Closed,
            } => SafetyClass::BreakerClose,
            Action::Breaker { .. } => SafetyClass::BreakerOpen,
            Action::Quarantine { .. } => SafetyClass::Quarantine,
            Action::Alert { .. } => return None,
        })
    }
}

/// ONNX element types a model signature may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TensorType {
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// Boolean.
    Bool,
    /// String.
    String,
}

pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// A declared target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSpec {
    pub(crate) kind: TargetKind,
    pub(crate) labels: BTreeMap<String, String>,
}

impl TargetSpec {
    /// The target's kind.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }
    /// The target's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

/// A tensor in a model signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    #[serde(rename = "type")]
    pub elem_type: TensorType,
    /// Dimensions; `-1` is dynamic.
    pub shape: Vec<i64>,
}

/// A model an agent uses, with the signature it expects.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRef {
    pub(crate) path: PathBuf,
    pub(crate) version: Option<String>,
    pub(crate) inputs: Vec<TensorSpec>,
    pub(crate) outputs: Vec<TensorSpec>,
    #[serde(serialize_with = "ser_duration")]
    pub(crate) timeout: Duration,
}

impl ModelRef {
    /// The model file (resolved against the policy's folder).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
    /// The expected version, if pinned.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    /// Expected inputs.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    /// Expected outputs.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    /// Inference time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// One agent's effective settings.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPolicy {
    pub(crate) mode: Mode,
    pub(crate) targets: Selector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<ModelRef>,
    pub(crate) fallback: FallbackMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) when: Option<Condition>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub(crate) settings: serde_json::Value,
}

impl AgentPolicy {
    /// The agent's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Which targets it acts on.
    pub fn targets(&self) -> &Selector {
        &self.targets
    }
    /// Its model, if any.
    pub fn model(&self) -> Option<&ModelRef> {
        self.model.as_ref()
    }
    /// What it does when the model cannot be trusted.
    pub fn fallback(&self) -> FallbackMode {
        self.fallback
    }
    /// The agent's own settings, as written (`Null` when omitted); already checked by the
    /// catalog the policy was compiled with.
    pub fn settings(&self) -> &serde_json::Value {
        &self.settings
    }
}

/// Effective limits for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub(crate) min_replicas: u32,
    pub(crate) max_replicas: u32,
    pub(crate) max_step: u32,
    #[serde(serialize_with = "ser_duration")]
    pub(crate) cooldown: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub(crate) scale_down_stabilization: Duration,
    pub(crate) max_shed_fraction: Fraction,
    pub(crate) on_violation: OnViolation,
}

impl Limits {
    /// Fewest replicas.
    pub fn min_replicas(&self) -> u32 {
        self.min_replicas
    }
    /// Most replicas.
    pub fn max_replicas(&self) -> u32 {
        self.max_replicas
    }
    /// Scale-down stabilization window.
    pub fn scale_down_stabilization(&self) -> Duration {
        self.scale_down_stabilization
    }
}

/// Limits that override the defaults for some targets; `None` keeps the default.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LimitsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_step: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub(crate) cooldown: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub(crate) scale_down_stabilization: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_shed_fraction: Option<Fraction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) on_violation: Option<OnViolation>,
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl Limits {
    pub(crate) fn patched(&self, p: &LimitsPatch) -> Limits {
        Limits {
            min_replicas: p.min_replicas.unwrap_or(self.min_replicas),
            max_replicas: p.max_replicas.unwrap_or(self.max_replicas),
            max_step: p.max_step.unwrap_or(self.max_step),
            cooldown: p.cooldown.unwrap_or(self.cooldown),
            scale_down_stabilization: p
                .scale_down_stabilization
                .unwrap_or(self.scale_down_stabilization),
            max_shed_fraction: p.max_shed_fraction.unwrap_or(self.max_shed_fraction),
            on_violation: p.on_violation.unwrap_or(self.on_violation),
        }
    }
}

/// Limits for a set of targets.
#[derive(Debug, Clone, Serialize)]
pub struct TargetLimits {
    pub(crate) select: Selector,
    pub(crate) limits: LimitsPatch,
}

/// All guardrails.
#[derive(Debug, Clone, Serialize)]
pub struct Guardrails {
    pub(crate) defaults: Limits,
    pub(crate) per_target: Vec<TargetLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fleet_replica_budget: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_actions_per_hour: Option<u32>,
}

impl Guardrails {
    /// Defaults, then every matching `per_target` entry in order.
    pub(crate) fn limits_for(&self, target: &Target, spec: Option<&TargetSpec>) -> Limits {
        self.per_target
            .iter()
            .filter(|t| t.select.matches(target, spec))
            .fold(self.defaults.clone(), |acc, t| acc.patched(&t.limits))
    }
}

/// The arbiter's settings.
#[derive(Debug, Clone, Serialize)]
pub struct ArbiterPolicy {
    #[serde(serialize_with = "ser_duration")]
    pub(crate) window: Duration,
    pub(crate) priorities: Vec<String>,
    pub(crate) strategy: ConflictStrategy,
    pub(crate) safety_order: Vec<SafetyClass>,
}

impl ArbiterPolicy {
    /// Length of a decision window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// Who may answer an approval.
#[derive(Debug, Clone, Serialize)]
pub struct Approvers {
    pub(crate) roles: BTreeSet<Role>,
    pub(crate) users: BTreeSet<String>,
}

/// A rule that sends matching actions to a human.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRule {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) agents: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) actions: Option<BTreeSet<ActionKind>>,
    pub(crate) select: Selector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) when: Option<Condition>,
    pub(crate) approvers: Approvers,
    #[serde(serialize_with = "ser_duration")]
    pub(crate) timeout: Duration,
    pub(crate) on_timeout: OnTimeout,
}

/// A validated policy.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    #[serde(rename = "apiVersion")]
    pub(crate) api_version: &'static str,
    pub(crate) name: String,
    pub(crate) revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) targets: BTreeMap<Target, TargetSpec>,
    pub(crate) agents: BTreeMap<String, AgentPolicy>,
    pub(crate) guardrails: Guardrails,
    pub(crate) arbiter: ArbiterPolicy,
    pub(crate) approvals: Vec<ApprovalRule>,
    #[serde(skip_serializing_if = "is_default_pulsar")]
    pub(crate) pulsar: super::transport::PulsarSettings,
}

fn is_default_pulsar(p: &super::transport::PulsarSettings) -> bool {
    *p == super::transport::PulsarSettings::default()
}

impl Policy {
    /// The same policy with no agent using a model (each on its rule): the simulator's
    /// `rules` baseline.
    pub fn without_models(&self) -> Policy {
        let mut p = self.clone();
        for a in p.agents.values_mut() {
            a.model = None;
        }
        p
    }

    /// The same policy with every running agent in shadow: decisions are made and
    /// recorded, nothing acts (the simulator's `--mode shadow`).
    pub fn all_in_shadow(&self) -> Policy {
        let mut p = self.clone();
        for a in p.agents.values_mut() {
            if a.mode != Mode::Off {
                a.mode = Mode::Shadow;
            }
        }
        p
    }

    /// Topics and subscription on Pulsar (defaults when the policy has no `spec.pulsar`).
    pub fn pulsar(&self) -> &super::transport::PulsarSettings {
        &self.pulsar
    }
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The revision written into decisions.
    pub fn revision(&self) -> &str {
        &self.revision
    }
    /// Declared targets.
    pub fn targets(&self) -> &BTreeMap<Target, TargetSpec> {
        &self.targets
    }
    /// The agents the policy configures.
    pub fn agents(&self) -> &BTreeMap<String, AgentPolicy> {
        &self.agents
    }
    /// One agent's settings.
    pub fn agent(&self, name: &str) -> Option<&AgentPolicy> {
        self.agents.get(name)
    }
    /// The arbiter's settings.
    pub fn arbiter(&self) -> &ArbiterPolicy {
        &self.arbiter
    }
    /// The effective limits for `target`: defaults, then every matching `per_target` entry.
    pub fn limits_for(&self, target: &Target) -> Limits {
        self.guardrails.limits_for(target, self.targets.get(target))
    }
    /// The fleet-wide replica budget, if any.
    pub fn fleet_replica_budget(&self) -> Option<u32> {
        self.guardrails.fleet_replica_budget
    }
    /// The per-agent hourly action budget, if any.
    pub fn max_actions_per_hour(&self) -> Option<u32> {
        self.guardrails.max_actions_per_hour
    }
    /// Approval rules, in order.
    pub fn approvals(&self) -> &[ApprovalRule] {
        &self.approvals
    }
    /// Whether `agent` acts on `target` under this policy.
    pub fn selects(&self, agent: &str, target: &Target) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.targets.matches(target, self.targets.get(target)))
    }
    /// Rank of an agent in the priority order (0 = most important).
    pub fn priority_of(&self, agent: &str) -> usize {
        self.arbiter
            .priorities
            .iter()
            .position(|a| a == agent)
            .unwrap_or(self.arbiter.priorities.len())
    }
    /// Rank of a safety class (0 = safest).
    pub fn safety_rank(&self, class: SafetyClass) -> usize {
        self.arbiter
            .safety_order
            .iter()
            .position(|c| *c == class)
            .unwrap_or(self.arbiter.safety_order.len())
    }
}
