//! The gap between an agent's model and its rule, over the decisions of an audit log:
//! every proposal a model informed records what the rule alone would have proposed
//! (`rule`), so a shadow run — or a live one — says how often they agree, and by how much
//! they differ when they do not, before anyone lets the model act.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::record::{AuditLine, AuditRecord};
use crate::action::Action;

/// One proposal where the model's answer and the rule's differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    /// The decision it belongs to.
    pub decision: String,
    /// When.
    pub at: String,
    /// The target.
    pub target: String,
    /// What the model-informed proposal said.
    pub model: Action,
    /// What the rule alone would have said.
    pub rule: Action,
}

/// One agent's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentGap {
    /// Proposals a model informed and that carry the rule's answer.
    pub compared: u64,
    /// Of those, the same action.
    pub agreed: u64,
    /// Scale proposals where the model asked for more replicas than the rule.
    pub scale_higher: u64,
    /// Scale proposals where the model asked for fewer.
    pub scale_lower: u64,
    /// Sum over differing scale proposals of |model - rule| replicas.
    pub scale_abs_diff: u64,
    /// Proposals the rule made alone because the model could not be used, by reason.
    pub fallbacks: BTreeMap<String, u64>,
    /// The latest disagreements, oldest first (at most [`GapReport::KEEP`]).
    pub disagreements: Vec<Disagreement>,
}

/// Per agent, in name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GapReport {
    /// The agents that had a model.
    pub agents: BTreeMap<String, AgentGap>,
}

impl GapReport {
    /// Disagreements kept per agent.
    pub const KEEP: usize = 10;

    /// The gap over `lines` (decision records; overrides are skipped).
    pub fn from_lines(lines: &[AuditLine]) -> Self {
        let mut report = GapReport::default();
        for line in lines {
            let AuditRecord::Decision(d) = &line.record else {
                continue;
            };
            for p in &d.proposals {
                if p.model.is_none() && p.fallback.is_none() {
                    continue;
                }
                let gap = report.agents.entry(p.agent.clone()).or_default();
                if let Some(reason) = &p.fallback {
                    *gap.fallbacks.entry(reason.clone()).or_default() += 1;
                }
                let Some(rule) = &p.rule else { continue };
                gap.compared += 1;
                if *rule == p.action {
                    gap.agreed += 1;
                    continue;
                }
                if let (Action::Scale { replicas: m }, Action::Scale { replicas: r }) =
                    (&p.action, rule)
                {
                    if m > r {
                        gap.scale_higher += 1;
                    } else {
                        gap.scale_lower += 1;
                    }
                    gap.scale_abs_diff += u64::from(m.abs_diff(*r));
                }
                if gap.disagreements.len() == Self::KEEP {
                    gap.disagreements.remove(0);
                }
                gap.disagreements.push(Disagreement {
                    decision: d.id.clone(),
                    at: p.at.to_string(),
                    target: p.target.to_string(),
                    model: p.action.clone(),
                    rule: rule.clone(),
                });
            }
        }
        report
    }

    /// The report in plain words.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.agents.is_empty() {
            out.push_str("no proposal in this log was informed by a model\n");
            return out;
        }
        for (agent, g) in &self.agents {
            let differ = g.compared - g.agreed;
            let share = |n: u64| {
                if g.compared == 0 {
                    0.0
                } else {
                    100.0 * n as f64 / g.compared as f64
                }
            };
            let _ = writeln!(
                out,
                "{agent}: {} proposals with a model; the rule alone would have proposed the same {} ({:.1} %), something else {} ({:.1} %)",
                g.compared,
                g.agreed,
                share(g.agreed),
                differ,
                share(differ)
            );
            if g.scale_higher + g.scale_lower > 0 {
                let _ = writeln!(
                    out,
                    "  scale: model higher {}, lower {}; mean |model - rule| {:.2} replicas where they differ",
                    g.scale_higher,
                    g.scale_lower,
                    g.scale_abs_diff as f64 / (g.scale_higher + g.scale_lower) as f64
                );
            }
            if !g.fallbacks.is_empty() {
                let reasons: Vec<String> = g
                    .fallbacks
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                let _ = writeln!(out, "  rule alone (model not used): {}", reasons.join(", "));
            }
            for x in &g.disagreements {
                let _ = writeln!(
                    out,
                    "  {} {} {}: model {}; rule {}",
                    x.at, x.decision, x.target, x.model, x.rule
                );
            }
        }
        out
    }
}
