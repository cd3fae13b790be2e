//! The variables CEL conditions see: `proposal` and `target`.

use std::collections::HashMap;

use cel::Value;

use super::state::ArbiterState;
use crate::action::Action;
use crate::policy::Policy;
use crate::proposal::Proposal;

/// `proposal` and `target` for a proposal whose action currently is `action`.
pub(crate) fn proposal_vars(
    p: &Proposal,
    action: &Action,
    state: &ArbiterState,
    policy: &Policy,
) -> Vec<(&'static str, Value)> {
    let mut prop: HashMap<String, Value> = HashMap::new();
    prop.insert("id".into(), Value::from(p.id.clone()));
    prop.insert("agent".into(), Value::from(p.agent.clone()));
    prop.insert("kind".into(), Value::from(action.kind().as_str()));
    prop.insert("confidence".into(), Value::from(p.confidence.get()));
    prop.insert("fallback".into(), Value::from(p.fallback.is_some()));
    prop.insert(
        "model".into(),
        Value::from(p.model.as_ref().map_or(String::new(), |m| m.name.clone())),
    );
    match action {
        Action::Scale { replicas } => {
            prop.insert("replicas".into(), Value::from(i64::from(*replicas)));
        }
        Action::Shed { fraction } => {
            prop.insert("fraction".into(), Value::from(fraction.get()));
        }
        _ => {}
    }

    let mut target: HashMap<String, Value> = HashMap::new();
    target.insert("name".into(), Value::from(p.target.as_str()));
    if let Some(r) = state.replicas(&p.target) {
        target.insert("replicas".into(), Value::from(i64::from(r)));
    }
    let spec = policy.targets().get(&p.target);
    target.insert(
        "kind".into(),
        Value::from(spec.map_or("", |s| s.kind().as_str())),
    );
    let labels: HashMap<String, Value> = spec
        .map(|s| {
            s.labels()
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    target.insert("labels".into(), Value::from(labels));

    vec![
        ("proposal", Value::from(prop)),
        ("target", Value::from(target)),
    ]
}
