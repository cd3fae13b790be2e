//! What one line of the audit log holds: a numbered decision or human override.
//!
//! The JSON form is part of the log's contract, so it is fixed by the struct order here and
//! in the core types: `{"seq":7,"record":{"type":"decision","id":..}}`.

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Decision, Outcome};
use crate::overrides::{Override, OverrideKind};

/// One audited event: the arbiter's decision or a person's override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every record is a decision, so boxing it would add an allocation per \
              record and save no memory"
)]
pub enum AuditRecord {
    /// A decision (a decision id can appear several times, e.g. pending, then approved).
    Decision(Decision),
    /// A human override, audited like a decision so the log tells the whole story.
    Override(Override),
}

impl AuditRecord {
    /// When the decision was made or the override given.
    pub fn at(&self) -> Timestamp {
        match self {
            AuditRecord::Decision(d) => d.at,
            AuditRecord::Override(o) => o.at,
        }
    }

    /// The decision this record is about: a decision's own id, or the decision an
    /// approval, denial or veto answers. `None` for overrides about agents or targets.
    pub fn decision_id(&self) -> Option<&str> {
        match self {
            AuditRecord::Decision(d) => Some(&d.id),
            AuditRecord::Override(o) => match &o.kind {
                OverrideKind::Approve { decision }
                | OverrideKind::Deny { decision }
                | OverrideKind::Veto { decision } => Some(decision),
                _ => None,
            },
        }
    }
}

/// One line of the log: the record and its sequence number.
///
/// `seq` is the line's number in the file (the first line is 1) and keeps counting when
/// the log is reopened, so a gap or a repeat shows that lines were lost or forged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLine {
    /// The line's sequence number, from 1.
    pub seq: u64,
    /// What happened.
    pub record: AuditRecord,
}

/// [`AuditLine`] by reference, so appending does not clone the record.
///
/// Field names and order must match [`AuditLine`]; a test pins that both encode the same.
#[derive(Serialize)]
pub(super) struct AuditLineRef<'a> {
    pub(super) seq: u64,
    pub(super) record: &'a AuditRecord,
}

/// The path of the first NaN or infinite number in `record`, if any.
///
/// serde_json writes such numbers as `null`, which then fails to read back as a number:
/// the line would be written fine and be unreadable forever. Checking first keeps every
/// line that is written readable.
pub(super) fn non_finite_field(record: &AuditRecord) -> Option<String> {
    let AuditRecord::Decision(d) = record else {
        // Overrides hold no floating-point numbers.
        return None;
    };
    if let Some(field) = d.action.as_ref().and_then(non_finite_in_action) {
        return Some(format!("action.{field}"));
    }
    if let Outcome::Modified { from, to } = &d.outcome {
        if let Some(field) = non_finite_in_action(from) {
            return Some(format!("outcome.from.{field}"));
        }
        if let Some(field) = non_finite_in_action(to) {
            return Some(format!("outcome.to.{field}"));
        }
    }
    for (i, p) in d.proposals.iter().enumerate() {
        if let Some(field) = non_finite_in_action(&p.action) {
            return Some(format!("proposals[{i}].action.{field}"));
        }
        if let Some(j) = p.rationale.iter().position(|f| !f.value.is_finite()) {
            return Some(format!("proposals[{i}].rationale[{j}].value"));
        }
    }
    None
}

/// Route weights are the only floats an action holds outside the checked newtypes.
fn non_finite_in_action(action: &Action) -> Option<String> {
    match action {
        Action::Route { weights } => weights
            .iter()
            .find(|(_, w)| !w.is_finite())
            .map(|(backend, _)| format!("route.weights.{backend}")),
        _ => None,
    }
}
