//! Policy unit tests in YAML (`conclave policy test`): given proposals, overrides and
//! observed state, expect these decisions — as `opa test` and `vector test` do for their
//! configuration.

pub mod raw;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use raw::{RawExpect, RawPolicyTest, RawStep};

use crate::arbiter::{Arbiter, ArbiterState};
use crate::clock::Timestamp;
use crate::decision::{Decision, Outcome};
use crate::overrides::{Actor, Override, Role};
use crate::policy::{self, Loc, Located, PolicyError, Problem};
use crate::proposal::Proposal;
use crate::target::Target;
use crate::units::Confidence;

/// One test's result.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Failures, each naming the step and what differed; empty when it passed.
    pub failures: Vec<String>,
}

impl TestResult {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Results of one test file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The test file.
    pub file: String,
    /// The policy it tests.
    pub policy: String,
    /// Per test.
    pub results: Vec<TestResult>,
}

/// Loads the test file at `path` and the policy it names, and runs every test.
///
/// # Errors
/// Located errors when the test file or its policy does not load.
pub fn run_file(
    path: &Path,
    agents: &dyn crate::policy::AgentCatalog,
) -> Result<FileReport, Vec<PolicyError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![PolicyError {
            file: file.clone(),
            loc: Loc::default(),
            path: String::new(),
            problem: Problem::Read(e.to_string()),
        }]
    })?;
    let raw: RawPolicyTest = policy::parse_yaml(&file, &text).map_err(|e| vec![e])?;
    let err = |loc: Loc, path: &str, problem: Problem| {
        vec![PolicyError {
            file: file.clone(),
            loc,
            path: path.to_string(),
            problem,
        }]
    };
    if raw.api_version.value != "conclave/v1" {
        return Err(err(
            raw.api_version.loc,
            "apiVersion",
            Problem::ApiVersion(raw.api_version.value.clone()),
        ));
    }
    if raw.kind.value != "PolicyTest" {
        return Err(err(
            raw.kind.loc,
            "kind",
            Problem::Kind {
                expected: "PolicyTest",
                found: raw.kind.value.clone(),
            },
        ));
    }
    let policy_path = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&raw.policy.value);
    let policy = Arc::new(policy::load(&policy_path, agents)?);
    let mut results = Vec::new();
    for test in raw.tests {
        let mut state = ArbiterState::new();
        let arbiter = Arbiter::new(policy.clone());
        let mut failures = Vec::new();
        let mut now = Timestamp::EPOCH;
        for (i, step) in test.steps.iter().enumerate() {
            now = step_time(&file, i, step, now)?;
            failures.extend(run_step(&arbiter, &mut state, now, i + 1, &step.value));
        }
        results.push(TestResult {
            name: test.name,
            failures,
        });
    }
    Ok(FileReport {
        file,
        policy: policy_path.display().to_string(),
        results,
    })
}

fn step_time(
    file: &str,
    i: usize,
    step: &Located<RawStep>,
    prev: Timestamp,
) -> Result<Timestamp, Vec<PolicyError>> {
    let s = &step.value;
    let problem = |loc, p| {
        vec![PolicyError {
            file: file.to_string(),
            loc,
            path: format!("steps[{i}]"),
            problem: p,
        }]
    };
    match (s.at, &s.after) {
        (Some(at), None) => Ok(at),
        (None, Some(after)) if i > 0 => humantime::parse_duration(&after.value)
            .map(|d| prev.plus(d))
            .map_err(|_| problem(after.loc, Problem::BadDuration(after.value.clone()))),
        (None, None) if i > 0 => Ok(prev.plus(Duration::from_secs(15))),
        _ => Err(problem(
            step.loc,
            Problem::Contradiction(
                "give exactly one of `at` or `after` (the first step needs `at`)".into(),
            ),
        )),
    }
}

fn run_step(
    arbiter: &Arbiter,
    state: &mut ArbiterState,
    now: Timestamp,
    n: usize,
    step: &RawStep,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (t, r) in step.replicas.iter().flatten() {
        state.observe_replicas(Target::new(t.clone()), *r);
    }
    let mut decisions: Vec<Decision> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for (k, o) in step.overrides.iter().flatten().enumerate() {
        let o = Override {
            id: o.id.clone().unwrap_or_else(|| format!("o{n}-{}", k + 1)),
            kind: o.kind.clone(),
            by: o.by.clone().unwrap_or(Actor {
                name: "tester".into(),
                role: Role::Operator,
            }),
            reason: o.reason.clone().unwrap_or_else(|| "policy test".into()),
            at: now,
            until: o.until,
        };
        match arbiter.apply_override(state, o, now) {
            Ok(ds) => decisions.extend(ds),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let proposals: Vec<Proposal> = step
        .proposals
        .iter()
        .flatten()
        .map(|p| Proposal {
            id: p
                .id
                .clone()
                .unwrap_or_else(|| format!("{}-{}-{n}", p.agent, p.target)),
            agent: p.agent.clone(),
            target: Target::new(p.target.clone()),
            action: p.action.clone(),
            confidence: p
                .confidence
                .unwrap_or(Confidence::try_new(0.9).unwrap_or(Confidence::ONE)),
            rationale: Vec::new(),
            model: p.model.clone(),
            fallback: p.fallback.clone(),
            at: now,
            trace: None,
            inference: None,
            rule: None,
        })
        .collect();
    decisions.extend(arbiter.decide(state, now, proposals));

    let expected_errors = step.expect_errors.clone().unwrap_or_default();
    if errors.len() != expected_errors.len()
        || !errors
            .iter()
            .zip(&expected_errors)
            .all(|(e, want)| e.contains(want.as_str()))
    {
        failures.push(format!(
            "step {n}: override errors {errors:?}, expected {expected_errors:?}"
        ));
    }

    let mut unmatched: Vec<Decision> = decisions;
    for exp in step.expect.iter().flatten() {
        let e = &exp.value;
        let pos = unmatched.iter().position(|d| match &e.decision {
            Some(id) => &d.id == id,
            None => d.target.as_str() == e.target && d.agent == e.agent,
        });
        let Some(pos) = pos else {
            failures.push(format!(
                "step {n} (line {}): expected a decision for {} by {}, found none",
                exp.loc.line, e.target, e.agent
            ));
            continue;
        };
        let d = unmatched.remove(pos);
        if let Some(diff) = compare(e, &d) {
            failures.push(format!(
                "step {n} (line {}): decision `{}`: {diff}",
                exp.loc.line, d.id
            ));
        }
    }
    if step.expect.is_some() {
        for d in unmatched {
            failures.push(format!(
                "step {n}: unexpected decision `{}` on {} by {}: {} {}",
                d.id,
                d.target,
                d.agent,
                d.outcome,
                codes(&d.reason_codes())
            ));
        }
    }
    failures
}

fn codes(c: &[crate::decision::ReasonCode]) -> String {
    format!(
        "[{}]",
        c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    )
}

fn compare(e: &RawExpect, d: &Decision) -> Option<String> {
    let mut diffs = Vec::new();
    if d.target.as_str() != e.target || d.agent != e.agent {
        diffs.push(format!(
            "expected {} by {}, found {} by {}",
            e.target, e.agent, d.target, d.agent
        ));
    }
    if d.outcome.name() != e.outcome.as_str() {
        diffs.push(format!(
            "expected outcome {}, found {}",
            e.outcome.as_str(),
            d.outcome
        ));
    }
    if let Some(w) = e.would {
        let found = match &d.outcome {
            Outcome::Shadowed { would } | Outcome::Advised { would } => Some(*would),
            _ => None,
        };
        if found != Some(w) {
            diffs.push(format!("expected would {w:?}, found {found:?}"));
        }
    }
    if let Some(a) = &e.action {
        if &d.action != a {
            let show = |a: &Option<crate::action::Action>| {
                a.as_ref().map_or("none".to_string(), |a| a.to_string())
            };
            diffs.push(format!(
                "expected action {}, found {}",
                show(a),
                show(&d.action)
            ));
        }
    }
    if let Some(r) = &e.reasons {
        if &d.reason_codes() != r {
            let mut s = String::new();
            let _ = write!(
                s,
                "expected reasons {}, found {}",
                codes(r),
                codes(&d.reason_codes())
            );
            for reason in &d.reasons {
                let _ = write!(s, "\n      [{}] {}", reason.code.as_str(), reason.message);
            }
            diffs.push(s);
        }
    }
    if diffs.is_empty() {
        None
    } else {
        Some(diffs.join("; "))
    }
}
