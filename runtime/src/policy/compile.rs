//! `RawPolicy` -> `Policy`: every check, every default, every error at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::catalog::AgentCatalog;
use super::condition::Condition;
use super::error::{Problem, Problems};
use super::located::Located;
use super::model::{
    AgentPolicy, ApprovalRule, Approvers, ArbiterPolicy, ConflictStrategy, FallbackMode,
    Guardrails, Limits, LimitsPatch, ModelRef, OnViolation, Policy, SafetyClass, TargetLimits,
    TargetSpec, TensorSpec,
};
use super::raw::{
    RawAgent, RawApproval, RawArbiter, RawGuardrails, RawLimits, RawModelRef, RawPolicy,
    RawSelector,
};
use super::selector::Selector;
use super::PolicyError;
use crate::overrides::Role;
use crate::target::Target;
use crate::units::Fraction;

/// Upper bound on replicas anywhere in a policy; beyond it a typo is likelier than intent.
const MAX_REPLICAS: u32 = 100_000;

/// Defaults, documented in the schema: Kubernetes HPA's 300 s scale-down stabilization.
fn default_limits() -> Limits {
    Limits {
        min_replicas: 1,
        max_replicas: 100,
        max_step: 10,
        cooldown: Duration::from_secs(30),
        scale_down_stabilization: Duration::from_secs(300),
        max_shed_fraction: Fraction::try_new(0.5).unwrap_or(Fraction::ONE),
        on_violation: OnViolation::Clamp,
    }
}

const DEFAULT_WINDOW: Duration = Duration::from_secs(15);
const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_millis(50);

/// Compiles a raw policy read from `file` (used in messages; relative model paths resolve
/// against its folder). `agents` is the catalog of agent names this build knows.
pub(crate) fn compile(
    raw: RawPolicy,
    file: &str,
    text: &str,
    agents: &dyn AgentCatalog,
) -> Result<Policy, Vec<PolicyError>> {
    let names = agents.names();
    let mut c = Compiler {
        p: Problems::new(file),
        agents: &names,
        catalog: agents,
        dir: Path::new(file).parent(),
    };

    if raw.api_version.value != "conclave/v1" {
        c.p.push(
            raw.api_version.loc,
            "apiVersion",
            Problem::ApiVersion(raw.api_version.value.clone()),
        );
    }
    if raw.kind.value != "Policy" {
        c.p.push(
            raw.kind.loc,
            "kind",
            Problem::Kind {
                expected: "Policy",
                found: raw.kind.value.clone(),
            },
        );
    }
    c.name(&raw.metadata.name, "metadata.name");

    let targets = c.targets(&raw.spec.targets);
    let mut agent_policies = BTreeMap::new();
    for (key, body) in &raw.spec.agents {
        let path = format!("spec.agents.{}", key.value);
        if !c.agents.contains(&key.value.as_str()) {
            c.p.push(key.loc, &path, c.unknown_agent(&key.value));
            continue;
        }
        let a = c.agent(&key.value, body, &path, &targets);
        agent_policies.insert(key.value.clone(), a);
    }
    let guardrails = c.guardrails(raw.spec.guardrails.as_ref(), &targets);
    let arbiter = c.arbiter(raw.spec.arbiter.as_ref());
    let approvals = c.approvals(
        raw.spec.approvals.as_deref().unwrap_or(&[]),
        &targets,
        &agent_policies,
    );

    let pulsar = super::transport::compile(raw.spec.pulsar.as_ref(), c.dir, &mut c.p);

    if !c.p.is_empty() {
        return Err(c.p.into_sorted());
    }
    Ok(Policy {
        api_version: "conclave/v1",
        name: raw.metadata.name.value,
        revision: raw
            .metadata
            .revision
            .unwrap_or_else(|| format!("sha-{:016x}", fnv1a(text.as_bytes()))),
        description: raw.metadata.description,
        labels: raw.metadata.labels.unwrap_or_default(),
        targets,
        agents: agent_policies,
        guardrails,
        arbiter,
        approvals,
        pulsar,
    })
}

/// FNV-1a: a stable digest for the default revision (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Compiler<'a> {
    p: Problems,
    agents: &'a [&'a str],
    catalog: &'a dyn AgentCatalog,
    dir: Option<&'a Path>,
}

impl Compiler<'_> {
    fn unknown_agent(&self, found: &str) -> Problem {
        let mut known: Vec<&str> = self.agents.to_vec();
        known.sort_unstable();
        let expected = known
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Problem::UnknownAgent {
            found: found.to_string(),
            expected,
        }
    }

    fn name(&mut self, name: &Located<String>, path: &str) {
        let n = &name.value;
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !ok {
            self.p.push(name.loc, path, Problem::BadName(n.clone()));
        }
    }

    fn targets(
        &mut self,
        raw: &Option<Vec<Located<super::raw::RawTarget>>>,
    ) -> BTreeMap<Target, TargetSpec> {
        let mut out = BTreeMap::new();
        for (i, t) in raw.iter().flatten().enumerate() {
            let path = format!("spec.targets[{i}].name");
            let name = &t.value.name;
            if name.value.is_empty() {
                self.p
                    .push(name.loc, &path, Problem::BadName(String::new()));
                continue;
            }
            let spec = TargetSpec {
                kind: t.value.kind,
                labels: t.value.labels.clone().unwrap_or_default(),
            };
            if out.insert(Target::new(name.value.clone()), spec).is_some() {
                self.p.push(
                    name.loc,
                    &path,
                    Problem::Duplicate {
                        what: "target",
                        name: name.value.clone(),
                    },
                );
            }
        }
        out
    }

    fn selector(
        &mut self,
        raw: Option<&Located<RawSelector>>,
        path: &str,
        targets: &BTreeMap<Target, TargetSpec>,
    ) -> Selector {
        let Some(raw) = raw else {
            return Selector::all();
        };
        let s = &raw.value;
        let mut sel = Selector::default();
        for (i, n) in s.names.iter().flatten().enumerate() {
            let t = Target::new(n.value.clone());
            if !targets.contains_key(&t) {
                self.p.push(
                    n.loc,
                    format!("{path}.names[{i}]"),
                    Problem::UnknownTarget(n.value.clone()),
                );
            }
            sel.names.insert(t);
        }
        sel.labels = s.labels.clone().unwrap_or_default();
        for (i, g) in s.globs.iter().flatten().enumerate() {
            match Selector::glob(&g.value) {
                Ok(m) => sel.globs.push(m),
                Err(e) => self.p.push(
                    g.loc,
                    format!("{path}.globs[{i}]"),
                    Problem::BadGlob {
                        glob: g.value.clone(),
                        message: e.kind().to_string(),
                    },
                ),
            }
        }
        let written = s.names.as_ref().is_some_and(|v| !v.is_empty())
            || s.labels.as_ref().is_some_and(|v| !v.is_empty())
            || s.globs.as_ref().is_some_and(|v| !v.is_empty());
        if !written {
            self.p.push(raw.loc, path, Problem::EmptySelector);
        }
        sel
    }

    fn duration(
        &mut self,
        raw: &Located<String>,
        path: &str,
        range: (Duration, Duration),
        expected: &'static str,
    ) -> Option<Duration> {
        duration(raw, path, range, expected, &mut self.p)
    }

    fn condition(&mut self, raw: &Located<String>, path: &str) -> Option<Condition> {
        match Condition::compile(&raw.value) {
            Ok(c) => Some(c),
            Err(e) => {
                self.p.push(raw.loc, path, Problem::Condition(e));
                None
            }
        }
    }

    fn agent(
        &mut self,
        name: &str,
        body: &Located<RawAgent>,
        path: &str,
        targets: &BTreeMap<Target, TargetSpec>,
    ) -> AgentPolicy {
        let a = &body.value;
        let selector = self.selector(a.targets.as_ref(), &format!("{path}.targets"), targets);
        let model = a
            .model
            .as_ref()
            .and_then(|m| self.model(m, &format!("{path}.model")));
        let when = a
            .when
            .as_ref()
            .and_then(|w| self.condition(w, &format!("{path}.when")));
        if a.fallback.is_some() && a.model.is_none() {
            self.p.push(
                body.loc,
                format!("{path}.fallback"),
                Problem::Contradiction(
                    "`fallback` is set but the agent has no `model`; it always runs its rule"
                        .into(),
                ),
            );
        }
        let settings = match &a.settings {
            Some(s) => {
                for problem in self.catalog.check_settings(name, &s.value) {
                    let at = if problem.path.is_empty() {
                        format!("{path}.settings")
                    } else {
                        format!("{path}.settings.{}", problem.path)
                    };
                    self.p.push(s.loc, at, Problem::Settings(problem.message));
                }
                s.value.clone()
            }
            None => serde_json::Value::Null,
        };
        AgentPolicy {
            settings,
            mode: a.mode.unwrap_or(super::Mode::Shadow),
            targets: selector,
            model,
            fallback: a.fallback.unwrap_or(FallbackMode::Rules),
            when,
        }
    }

    fn model(&mut self, raw: &Located<RawModelRef>, path: &str) -> Option<ModelRef> {
        let m = &raw.value;
        if m.path.value.trim().is_empty() {
            self.p.push(
                m.path.loc,
                format!("{path}.path"),
                Problem::ModelSignature(
                    "expected a path to an `.onnx` file, found an empty string".into(),
                ),
            );
        }
        let tensors =
            |list: &Vec<Located<super::raw::RawTensor>>, which: &str, p: &mut Problems| {
                if list.is_empty() {
                    p.push(
                        raw.loc,
                        format!("{path}.{which}"),
                        Problem::ModelSignature(format!(
                            "expected at least one tensor in `{which}`, found none"
                        )),
                    );
                }
                let mut seen = BTreeSet::new();
                list.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        if !seen.insert(t.value.name.clone()) {
                            p.push(
                                t.loc,
                                format!("{path}.{which}[{i}].name"),
                                Problem::Duplicate {
                                    what: "tensor",
                                    name: t.value.name.clone(),
                                },
                            );
                        }
                        if t.value.shape.iter().any(|d| *d == 0 || *d < -1) {
                            p.push(
                                t.loc,
                                format!("{path}.{which}[{i}].shape"),
                                Problem::ModelSignature(format!(
                                    "expected dimensions >= 1 or -1 (dynamic), found {:?}",
                                    t.value.shape
                                )),
                            );
                        }
                        TensorSpec {
                            name: t.value.name.clone(),
                            elem_type: t.value.elem_type,
                            shape: t.value.shape.clone(),
                        }
                    })
                    .collect::<Vec<_>>()
            };
        let inputs = tensors(&m.inputs, "inputs", &mut self.p);
        let outputs = tensors(&m.outputs, "outputs", &mut self.p);
        let timeout = match &m.timeout {
            // Half the agents' heartbeat deadline (10 s): a slow model must fall back to
            // the rule well before its agent counts as hung and is restarted.
            Some(t) => self.duration(
                t,
                &format!("{path}.timeout"),
                (Duration::from_millis(1), Duration::from_secs(5)),
                "1ms..=5s",
            )?,
            None => DEFAULT_MODEL_TIMEOUT,
        };
        let file = Path::new(&m.path.value);
        let resolved = match self.dir {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_path_buf(),
        };
        Some(ModelRef {
            path: resolved,
            version: m.version.clone(),
            inputs,
            outputs,
            timeout,
        })
    }

    fn limits(&mut self, raw: &Located<RawLimits>, path: &str) -> LimitsPatch {
        let l = &raw.value;
        let replicas =
            |v: &Option<Located<u32>>, name: &str, lo: u32, p: &mut Problems| -> Option<u32> {
                let v = v.as_ref()?;
                if v.value < lo || v.value > MAX_REPLICAS {
                    let expected = if lo == 0 {
                        "an integer in 0..=100000"
                    } else {
                        "an integer in 1..=100000"
                    };
                    p.push(
                        v.loc,
                        format!("{path}.{name}"),
                        Problem::OutOfRange {
                            expected,
                            found: v.value.to_string(),
                        },
                    );
                    return None;
                }
                Some(v.value)
            };
        let min_replicas = replicas(&l.min_replicas, "min_replicas", 0, &mut self.p);
        let max_replicas = replicas(&l.max_replicas, "max_replicas", 1, &mut self.p);
        let max_step = replicas(&l.max_step, "max_step", 1, &mut self.p);
        if let (Some(min), Some(max)) = (min_replicas, max_replicas) {
            if min > max {
                let loc = l.min_replicas.as_ref().map(|v| v.loc).unwrap_or(raw.loc);
                self.p.push(
                    loc,
                    format!("{path}.min_replicas"),
                    Problem::MinAboveMax { min, max },
                );
            }
        }
        let day = Duration::from_secs(86_400);
        let cooldown = l.cooldown.as_ref().and_then(|d| {
            self.duration(
                d,
                &format!("{path}.cooldown"),
                (Duration::ZERO, day),
                "0s..=24h",
            )
        });
        let scale_down_stabilization = l.scale_down_stabilization.as_ref().and_then(|d| {
            self.duration(
                d,
                &format!("{path}.scale_down_stabilization"),
                (Duration::ZERO, Duration::from_secs(3600)),
                "0s..=1h",
            )
        });
        let max_shed_fraction = l
            .max_shed_fraction
            .as_ref()
            .and_then(|f| match Fraction::try_new(f.value) {
                Ok(fr) => Some(fr),
                Err(_) => {
                    self.p.push(
                        f.loc,
                        format!("{path}.max_shed_fraction"),
                        Problem::OutOfRange {
                            expected: "a number in 0.0..=1.0",
                            found: f.value.to_string(),
                        },
                    );
                    None
                }
            });
        LimitsPatch {
            min_replicas,
            max_replicas,
            max_step,
            cooldown,
            scale_down_stabilization,
            max_shed_fraction,
            on_violation: l.on_violation,
        }
    }

    fn guardrails(
        &mut self,
        raw: Option<&RawGuardrails>,
        targets: &BTreeMap<Target, TargetSpec>,
    ) -> Guardrails {
        let base = default_limits();
        let Some(g) = raw else {
            return Guardrails {
                defaults: base,
                per_target: Vec::new(),
                fleet_replica_budget: None,
                max_actions_per_hour: None,
            };
        };
        let defaults = match &g.defaults {
            Some(d) => {
                let patch = self.limits(d, "spec.guardrails.defaults");
                let eff = base.patched(&patch);
                if eff.min_replicas > eff.max_replicas
                    && !(patch.min_replicas.is_some() && patch.max_replicas.is_some())
                {
                    self.p.push(
                        d.loc,
                        "spec.guardrails.defaults",
                        Problem::MinAboveMax {
                            min: eff.min_replicas,
                            max: eff.max_replicas,
                        },
                    );
                }
                eff
            }
            None => base,
        };
        let mut per_target = Vec::new();
        for (i, t) in g.per_target.iter().flatten().enumerate() {
            let path = format!("spec.guardrails.per_target[{i}]");
            let select = self.selector(Some(&t.value.select), &format!("{path}.select"), targets);
            let limits = self.limits(&t.value.limits, &format!("{path}.limits"));
            per_target.push(TargetLimits { select, limits });
        }
        let mut gr = Guardrails {
            defaults,
            per_target,
            fleet_replica_budget: None,
            max_actions_per_hour: None,
        };
        // Each declared target's effective limits must be consistent, not only each block.
        for (t, spec) in targets {
            let eff = gr.limits_for(t, Some(spec));
            if eff.min_replicas > eff.max_replicas {
                let loc = g
                    .per_target
                    .iter()
                    .flatten()
                    .map(|p| p.loc)
                    .next()
                    .unwrap_or_default();
                self.p.push(
                    loc,
                    format!("spec.guardrails (target `{t}`)"),
                    Problem::MinAboveMax {
                        min: eff.min_replicas,
                        max: eff.max_replicas,
                    },
                );
            }
        }
        if let Some(b) = &g.fleet_replica_budget {
            let minimums: u64 = targets
                .iter()
                .map(|(t, spec)| u64::from(gr.limits_for(t, Some(spec)).min_replicas))
                .sum();
            if b.value == 0 {
                self.p.push(
                    b.loc,
                    "spec.guardrails.fleet_replica_budget",
                    Problem::OutOfRange {
                        expected: "an integer >= 1",
                        found: "0".into(),
                    },
                );
            } else if u64::from(b.value) < minimums {
                self.p.push(
                    b.loc,
                    "spec.guardrails.fleet_replica_budget",
                    Problem::BudgetBelowMinimums {
                        budget: b.value,
                        minimums,
                    },
                );
            }
            gr.fleet_replica_budget = Some(b.value);
        }
        if let Some(a) = &g.max_actions_per_hour {
            if a.value == 0 {
                self.p.push(
                    a.loc,
                    "spec.guardrails.max_actions_per_hour",
                    Problem::OutOfRange {
                        expected: "an integer >= 1",
                        found: "0".into(),
                    },
                );
            }
            gr.max_actions_per_hour = Some(a.value);
        }
        gr
    }

    fn arbiter(&mut self, raw: Option<&RawArbiter>) -> ArbiterPolicy {
        let mut known: Vec<String> = self.agents.iter().map(|s| s.to_string()).collect();
        known.sort();
        let mut out = ArbiterPolicy {
            window: DEFAULT_WINDOW,
            priorities: known.clone(),
            strategy: ConflictStrategy::SaferWins,
            safety_order: SafetyClass::DEFAULT_ORDER.to_vec(),
        };
        let Some(a) = raw else { return out };
        if let Some(w) = &a.window {
            if let Some(d) = self.duration(
                w,
                "spec.arbiter.window",
                (Duration::from_millis(100), Duration::from_secs(3600)),
                "100ms..=1h",
            ) {
                out.window = d;
            }
        }
        if let Some(list) = &a.priorities {
            let mut order = Vec::new();
            for (i, agent) in list.iter().enumerate() {
                let path = format!("spec.arbiter.priorities[{i}]");
                if !self.agents.contains(&agent.value.as_str()) {
                    self.p
                        .push(agent.loc, &path, self.unknown_agent(&agent.value));
                } else if order.contains(&agent.value) {
                    self.p.push(
                        agent.loc,
                        &path,
                        Problem::Duplicate {
                            what: "agent",
                            name: agent.value.clone(),
                        },
                    );
                } else {
                    order.push(agent.value.clone());
                }
            }
            order.extend(
                known
                    .into_iter()
                    .filter(|a| !order.contains(a))
                    .collect::<Vec<_>>(),
            );
            out.priorities = order;
        }
        if let Some(c) = &a.conflicts {
            out.strategy = c.strategy.unwrap_or(ConflictStrategy::SaferWins);
            if let Some(order) = &c.safety_order {
                let unique: BTreeSet<_> = order.value.iter().collect();
                if unique.len() != order.value.len()
                    || order.value.len() != SafetyClass::DEFAULT_ORDER.len()
                {
                    let fmt = |v: &[SafetyClass]| {
                        v.iter()
                            .map(|c| format!("`{}`", c.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    self.p.push(
                        order.loc,
                        "spec.arbiter.conflicts.safety_order",
                        Problem::SafetyOrder {
                            expected: fmt(&SafetyClass::DEFAULT_ORDER),
                            found: format!("[{}]", fmt(&order.value)),
                        },
                    );
                } else {
                    out.safety_order = order.value.clone();
                }
            }
        }
        out
    }

    fn approvals(
        &mut self,
        raw: &[Located<RawApproval>],
        targets: &BTreeMap<Target, TargetSpec>,
        agents: &BTreeMap<String, AgentPolicy>,
    ) -> Vec<ApprovalRule> {
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let a = &r.value;
            let path = format!("spec.approvals[{i}]");
            self.name(&a.name, &format!("{path}.name"));
            if !names.insert(a.name.value.clone()) {
                self.p.push(
                    a.name.loc,
                    format!("{path}.name"),
                    Problem::Duplicate {
                        what: "approval rule",
                        name: a.name.value.clone(),
                    },
                );
            }
            let mut rule_agents = None;
            if let Some(list) = &a.agents {
                let mut set = BTreeSet::new();
                for (j, ag) in list.iter().enumerate() {
                    let p = format!("{path}.agents[{j}]");
                    if !self.agents.contains(&ag.value.as_str()) {
                        self.p.push(ag.loc, &p, self.unknown_agent(&ag.value));
                    } else if !agents.contains_key(&ag.value) {
                        self.p.push(ag.loc, &p, Problem::Contradiction(format!("agent `{}` is not configured under `spec.agents`, so this rule can never apply", ag.value)));
                    }
                    set.insert(ag.value.clone());
                }
                rule_agents = Some(set);
            }
            let select = match &a.select {
                Some(s) => self.selector(Some(s), &format!("{path}.select"), targets),
                None => Selector::all(),
            };
            let when = a
                .when
                .as_ref()
                .and_then(|w| self.condition(w, &format!("{path}.when")));
            let timeout = self
                .duration(
                    &a.timeout,
                    &format!("{path}.timeout"),
                    (Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
                    "1s..=7d",
                )
                .unwrap_or(Duration::from_secs(1));
            let roles: BTreeSet<Role> = a.approvers.roles.iter().flatten().copied().collect();
            let users: BTreeSet<String> = a.approvers.users.iter().flatten().cloned().collect();
            if roles.is_empty() && users.is_empty() {
                self.p.push(
                    r.loc,
                    format!("{path}.approvers"),
                    Problem::Contradiction(
                        "expected at least one role or user who may approve, found none".into(),
                    ),
                );
            }
            if roles.contains(&Role::Viewer) {
                self.p.push(
                    r.loc,
                    format!("{path}.approvers.roles"),
                    Problem::Contradiction(
                        "role `viewer` may not approve; use `operator` or `admin`".into(),
                    ),
                );
            }
            out.push(ApprovalRule {
                name: a.name.value.clone(),
                agents: rule_agents,
                actions: a.actions.as_ref().map(|v| v.iter().copied().collect()),
                select,
                when,
                approvers: Approvers { roles, users },
                timeout,
                on_timeout: a.on_timeout,
            });
        }
        out
    }
}

/// `raw` as a duration within `range` (inclusive), or the problem reported into `p`.
pub(crate) fn duration(
    raw: &Located<String>,
    path: &str,
    range: (Duration, Duration),
    expected: &'static str,
    p: &mut Problems,
) -> Option<Duration> {
    match humantime::parse_duration(raw.value.trim()) {
        Ok(d) if d >= range.0 && d <= range.1 => Some(d),
        Ok(_) => {
            p.push(
                raw.loc,
                path,
                Problem::DurationOutOfRange {
                    expected,
                    found: raw.value.clone(),
                },
            );
            None
        }
        Err(_) => {
            p.push(raw.loc, path, Problem::BadDuration(raw.value.clone()));
            None
        }
    }
}
