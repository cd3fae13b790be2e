//! The audit log in plain words: one decision's reason chain, and a one-line-per-record
//! tail.
//!
//! The text is deterministic (golden files and CLI tests compare it byte for byte), and
//! control characters in free text are escaped, so a reason or alert text cannot break a
//! line or send escape sequences to a terminal.

use std::collections::{BTreeSet, VecDeque};

use super::reader::AuditScan;
use super::record::{AuditLine, AuditRecord};
use crate::decision::{Decision, Outcome};
use crate::overrides::{Override, OverrideKind};
use crate::target::Target;

/// Explains decision `id`: every record about it, in log order, with its proposals,
/// numbered reasons, outcome, policy revision and trace. Approvals, denials and vetoes of
/// the decision are included. `None` when no record is about `id`.
pub fn explain_decision(lines: &[AuditLine], id: &str) -> Option<String> {
    let records: Vec<&AuditLine> = lines
        .iter()
        .filter(|l| l.record.decision_id() == Some(id))
        .collect();
    if records.is_empty() {
        return None;
    }
    let n = records.len();
    let mut out = String::new();
    push_line(
        &mut out,
        &format!("decision {id}: {n} record{}", if n == 1 { "" } else { "s" }),
    );
    for (i, line) in records.iter().enumerate() {
        out.push('\n');
        push_line(
            &mut out,
            &format!(
                "record {} of {n}: seq {} at {}",
                i + 1,
                line.seq,
                line.record.at()
            ),
        );
        match &line.record {
            AuditRecord::Decision(d) => push_decision(&mut out, d),
            AuditRecord::Override(o) => push_override(&mut out, o),
        }
    }
    Some(out)
}

fn push_decision(out: &mut String, d: &Decision) {
    push_line(out, &format!("target: {}", d.target));
    push_line(out, &format!("agent: {}", d.agent));
    match &d.action {
        Some(a) => push_line(out, &format!("action: {a}")),
        None => push_line(out, "action: (none)"),
    }
    if d.proposals.is_empty() {
        push_line(out, "proposals: (none)");
    } else {
        push_line(out, "proposals:");
    }
    for (i, p) in d.proposals.iter().enumerate() {
        let source = match &p.model {
            Some(m) => format!("model {} {}", m.name, m.version),
            None => "rules".to_string(),
        };
        push_line(
            out,
            &format!(
                "  {}. {}: {}, confidence {}, {source}",
                i + 1,
                p.agent,
                p.action,
                p.confidence
            ),
        );
        if let Some(why) = &p.fallback {
            push_line(out, &format!("     fallback: {why}"));
        }
        for f in &p.rationale {
            match &f.note {
                Some(note) => push_line(
                    out,
                    &format!("     factor {} = {} ({note})", f.name, f.value),
                ),
                None => push_line(out, &format!("     factor {} = {}", f.name, f.value)),
            }
        }
    }
    if d.reasons.is_empty() {
        push_line(out, "reasons: (none)");
    } else {
        push_line(out, "reasons:");
    }
    for (i, r) in d.reasons.iter().enumerate() {
        push_line(
            out,
            &format!("  {}. [{}] {}", i + 1, r.code.as_str(), r.message),
        );
    }
    push_line(out, &format!("outcome: {}", d.outcome));
    push_line(out, &format!("policy revision: {}", d.policy_revision));
    match &d.trace_id {
        Some(trace) => push_line(out, &format!("trace: {trace}")),
        None => push_line(out, "trace: (not traced)"),
    }
}

fn push_override(out: &mut String, o: &Override) {
    push_line(
        out,
        &format!("override {}: {}", o.id, describe_kind(&o.kind)),
    );
    push_line(out, &format!("by: {} ({})", o.by.name, o.by.role.as_str()));
    push_line(out, &format!("reason: {}", o.reason));
    if let Some(until) = o.until {
        push_line(out, &format!("until: {until}"));
    }
}

/// Which records a tail shows. Unset fields match everything; the default shows all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailFilter {
    /// Only decisions of this agent.
    pub agent: Option<String>,
    /// Only decisions about this target.
    pub target: Option<Target>,
    /// Only decisions with this outcome name (`enacted`, `pending`, ...; see
    /// [`Outcome::name`]).
    pub outcome: Option<String>,
}

impl TailFilter {
    /// A matcher that applies this filter to records in log order.
    pub fn matcher(&self) -> TailMatcher {
        TailMatcher {
            filter: self.clone(),
            pending: BTreeSet::new(),
        }
    }

    fn is_everything(&self) -> bool {
        self.agent.is_none() && self.target.is_none() && self.outcome.is_none()
    }
}

/// Applies a [`TailFilter`] to records fed in log order (from a scan or a follower).
///
/// Overrides are shown when they concern what the filter selects: a pause of the filtered
/// agent, a pin of the filtered target, a freeze (it holds back everything), and the
/// approval, denial or veto of a pending decision the filter showed, which is why the
/// matcher remembers those decisions. An outcome filter selects decisions only.
#[derive(Debug, Clone)]
pub struct TailMatcher {
    filter: TailFilter,
    /// Ids of shown decisions still waiting for a human.
    pending: BTreeSet<String>,
}

impl TailMatcher {
    /// Whether `record` is shown; feed every record, in log order.
    pub fn is_match(&mut self, record: &AuditRecord) -> bool {
        let f = &self.filter;
        match record {
            AuditRecord::Decision(d) => {
                let shown = f.agent.as_ref().is_none_or(|a| *a == d.agent)
                    && f.target.as_ref().is_none_or(|t| *t == d.target)
                    && f.outcome.as_ref().is_none_or(|o| o == d.outcome.name());
                if shown && matches!(d.outcome, Outcome::Pending { .. }) {
                    self.pending.insert(d.id.clone());
                } else {
                    self.pending.remove(&d.id);
                }
                shown
            }
            AuditRecord::Override(o) => match &o.kind {
                OverrideKind::Approve { decision }
                | OverrideKind::Deny { decision }
                | OverrideKind::Veto { decision } => {
                    self.pending.remove(decision) || f.is_everything()
                }
                _ if f.outcome.is_some() => false,
                OverrideKind::Freeze | OverrideKind::Unfreeze => true,
                OverrideKind::Pause { agent }
                | OverrideKind::Resume { agent }
                | OverrideKind::SetMode { agent, .. } => {
                    f.target.is_none() && f.agent.as_ref().is_none_or(|a| a == agent)
                }
                OverrideKind::Pin { target, .. } | OverrideKind::Unpin { target } => {
                    f.agent.is_none() && f.target.as_ref().is_none_or(|t| t == target)
                }
            },
        }
    }
}

/// The last `n` records of `scan` that `filter` shows, one per line (each ending in a
/// newline), oldest first; see [`format_tail_line`].
pub fn tail_lines(scan: &AuditScan, n: usize, filter: &TailFilter) -> String {
    let mut matcher = filter.matcher();
    let mut last: VecDeque<&AuditLine> = VecDeque::with_capacity(n.min(scan.lines.len()));
    for line in &scan.lines {
        // Every record goes through the matcher, even with `n == 0`, so it sees the
        // pending decisions that later approvals refer to.
        if matcher.is_match(&line.record) && n > 0 {
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(line);
        }
    }
    let mut out = String::new();
    for line in last {
        out.push_str(&format_tail_line(line));
        out.push('\n');
    }
    out
}

/// One record on one line, without a newline:
/// `<at> <id> <target> <agent> <outcome> <action>` for a decision (`-` for no action),
/// `<at> <id> override <kind> by <name>: <reason>` for an override.
pub fn format_tail_line(line: &AuditLine) -> String {
    let text = match &line.record {
        AuditRecord::Decision(d) => {
            let action = d
                .action
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string);
            format!(
                "{} {} {} {} {} {action}",
                d.at,
                d.id,
                d.target,
                d.agent,
                d.outcome.name()
            )
        }
        AuditRecord::Override(o) => format!(
            "{} {} override {} by {}: {}",
            o.at,
            o.id,
            describe_kind(&o.kind),
            o.by.name,
            o.reason
        ),
    };
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, &text);
    out
}

/// What an override does, in a few words: `approve d-1`, `pin checkout at 4 replicas`.
fn describe_kind(kind: &OverrideKind) -> String {
    match kind {
        OverrideKind::Freeze => "freeze".to_string(),
        OverrideKind::Unfreeze => "unfreeze".to_string(),
        OverrideKind::Pause { agent } => format!("pause {agent}"),
        OverrideKind::Resume { agent } => format!("resume {agent}"),
        OverrideKind::Pin { target, replicas } => format!("pin {target} at {replicas} replicas"),
        OverrideKind::Unpin { target } => format!("unpin {target}"),
        OverrideKind::SetMode { agent, mode } => format!("set_mode {agent} {}", mode.as_str()),
        OverrideKind::Veto { decision } => format!("veto {decision}"),
        OverrideKind::Approve { decision } => format!("approve {decision}"),
        OverrideKind::Deny { decision } => format!("deny {decision}"),
    }
}

/// Appends `text` and a newline.
fn push_line(out: &mut String, text: &str) {
    push_escaped(out, text);
    out.push('\n');
}

/// Appends `text` with control characters escaped (`\n`, `\u{1b}`).
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}
