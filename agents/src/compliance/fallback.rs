//! The compliance rule: what to propose for one event's findings and residency breach.
//! There is no model; this rule is the whole agent.
//!
//! Any finding or breach quarantines the producer at once (a single card number in a
//! payload is already a leak, so there is nothing to wait for):
//!
//! * one `Quarantine { Producer(producer) }` whose reason lists what was found where
//!   (`card number at fields.payment.card_number`) and the residency breach;
//! * an `Alert { Critical }` for a residency breach, naming region, topic and the allowed
//!   regions;
//! * an `Alert { Warning }` for personal data, listing kinds and field paths.
//!
//! Texts hold kinds, field paths, producer, topic and regions, never a payload value.

use conclave_runtime::telemetry::EventSample;
use conclave_runtime::{
    factor, Action, Confidence, Draft, Factor, QuarantineScope, Severity, Target,
};

use super::detectors::PiiKind;
use super::features::{Finding, ResidencyBreach};

/// A reason lists at most this many findings, then says how many more there were.
const MAX_LISTED: usize = 5;

/// Rules carry no calibrated probability: the detectors validate what they match (Luhn,
/// mod 97, allocation rules), so proposals carry full confidence and the policy gates them.
const RULE_CONFIDENCE: Confidence = Confidence::ONE;

/// The proposals for `event`, proposed at the event's own time; none when it is clean.
pub(super) fn decide(
    event: &EventSample,
    findings: &[Finding],
    breach: Option<&ResidencyBreach<'_>>,
) -> Vec<Draft> {
    if findings.is_empty() && breach.is_none() {
        return Vec::new();
    }
    let pii = list(findings);
    let residency = breach.map(|b| {
        format!(
            "region `{}` not allowed on topic `{}`",
            b.region, event.topic
        )
    });
    let reason = match (&pii, &residency) {
        (Some(p), Some(r)) => format!("{p}; {r}"),
        (Some(p), None) => p.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => String::new(),
    };
    let rationale = rationale(findings, breach.is_some());
    let draft = |action| Draft {
        at: event.ts,
        target: Target::new(event.topic.as_str()),
        action,
        confidence: RULE_CONFIDENCE,
        rationale: rationale.clone(),
        model: None,
        fallback: None,
        inference: None,
        rule: None,
    };
    let mut out = vec![draft(Action::Quarantine {
        scope: QuarantineScope::Producer(event.producer.clone()),
        reason,
    })];
    if let Some(b) = breach {
        out.push(draft(Action::Alert {
            severity: Severity::Critical,
            text: format!(
                "event from region `{}` on topic `{}` breaks residency (allowed: {})",
                b.region,
                event.topic,
                b.allowed.join(", ")
            ),
        }));
    }
    if let Some(p) = pii {
        out.push(draft(Action::Alert {
            severity: Severity::Warning,
            text: format!(
                "personal data from producer `{}` on topic `{}`: {p}",
                event.producer, event.topic
            ),
        }));
    }
    out
}

/// `card number at fields.a, e-mail address at fields.b and 3 more`; `None` when empty.
fn list(findings: &[Finding]) -> Option<String> {
    if findings.is_empty() {
        return None;
    }
    let mut s = findings
        .iter()
        .take(MAX_LISTED)
        .map(|f| format!("{} at {}", f.kind.describe(), f.path))
        .collect::<Vec<_>>()
        .join(", ");
    if findings.len() > MAX_LISTED {
        s.push_str(&format!(" and {} more", findings.len() - MAX_LISTED));
    }
    Some(s)
}

/// Counts per kind found (`card_number_findings`), in kind order, and the breach.
fn rationale(findings: &[Finding], has_breach: bool) -> Vec<Factor> {
    let mut r: Vec<Factor> = PiiKind::ALL
        .into_iter()
        .filter_map(|k| {
            let n = findings.iter().filter(|f| f.kind == k).count();
            (n > 0).then(|| factor(&format!("{}_findings", k.as_str()), n as f64))
        })
        .collect();
    if has_breach {
        r.push(factor("residency_violation", 1.0));
    }
    r
}
