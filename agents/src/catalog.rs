//! The agents this build knows: names, settings checks and factories.

use std::sync::Arc;

use conclave_runtime::models::ModelFaults;
use conclave_runtime::policy::{AgentCatalog, SettingsProblem};
use conclave_runtime::{AgentFactory, AgentSpec, Mode, Policy};

use crate::learned::{LearnedModel, Signature};
use crate::scope::Scope;
use crate::{breaker, compliance, router, scaler};

/// Every agent name a policy may configure, sorted.
pub const AGENTS: [&str; 4] = ["breaker", "compliance", "router", "scaler"];

/// The catalog the policy compiler checks `spec.agents` against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog;

impl AgentCatalog for Catalog {
    fn names(&self) -> Vec<&str> {
        AGENTS.to_vec()
    }

    fn check_settings(&self, agent: &str, settings: &serde_json::Value) -> Vec<SettingsProblem> {
        let result = match agent {
            scaler::NAME => scaler::ScalerConfig::from_settings(settings).map(drop),
            router::NAME => router::RouterConfig::from_settings(settings).map(drop),
            breaker::NAME => breaker::BreakerConfig::from_settings(settings).map(drop),
            compliance::NAME => compliance::ComplianceConfig::from_settings(settings).map(drop),
            _ => Ok(()),
        };
        result.err().unwrap_or_default()
    }
}

/// Factories for every agent the policy runs (mode other than `off`), sorted by name.
///
/// Models the policy names are loaded here, once (see [`LearnedModel::load`]); a model
/// that cannot be loaded does not fail this call: the agent runs on its rule and records
/// `fallback: model_unavailable`.
///
/// # Errors
/// Settings problems, as `(agent, problem)`; cannot happen for a policy compiled with
/// [`Catalog`], which checked them already.
pub fn agent_specs(policy: &Arc<Policy>) -> Result<Vec<AgentSpec>, Vec<(String, SettingsProblem)>> {
    agent_specs_with_faults(policy, &ModelFaults::default())
}

/// [`agent_specs`], with model faults a simulation injects (see
/// [`conclave_runtime::models::faults`]).
///
/// # Errors
/// As [`agent_specs`].
pub fn agent_specs_with_faults(
    policy: &Arc<Policy>,
    faults: &ModelFaults,
) -> Result<Vec<AgentSpec>, Vec<(String, SettingsProblem)>> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for (name, agent) in policy.agents() {
        if agent.mode() == Mode::Off {
            continue;
        }
        let settings = agent.settings();
        let built: Result<(&'static str, AgentFactory), Vec<SettingsProblem>> = match name.as_str()
        {
            scaler::NAME => scaler::ScalerConfig::from_settings(settings).map(|c| {
                let scope = Scope::new(policy.clone(), scaler::NAME);
                let model = load_model(agent.model(), scaler::NAME, &scaler::SIGNATURE, faults);
                let f: AgentFactory = Arc::new(move || match &model {
                    Some(model) => Box::new(scaler::ScalerAgent::with_model(
                        c.clone(),
                        scope.clone(),
                        model.clone(),
                    )),
                    None => Box::new(scaler::ScalerAgent::new(c.clone(), scope.clone())),
                });
                (scaler::NAME, f)
            }),
            router::NAME => router::RouterConfig::from_settings(settings).map(|c| {
                let scope = Scope::new(policy.clone(), router::NAME);
                let model = load_model(agent.model(), router::NAME, &router::SIGNATURE, faults);
                let f: AgentFactory = Arc::new(move || match &model {
                    Some(model) => Box::new(router::RouterAgent::with_model(
                        c.clone(),
                        scope.clone(),
                        model.clone(),
                    )),
                    None => Box::new(router::RouterAgent::new(c.clone(), scope.clone())),
                });
                (router::NAME, f)
            }),
            breaker::NAME => breaker::BreakerConfig::from_settings(settings).map(|c| {
                let scope = Scope::new(policy.clone(), breaker::NAME);
                let model = load_model(agent.model(), breaker::NAME, &breaker::SIGNATURE, faults);
                let f: AgentFactory = Arc::new(move || match &model {
                    Some(model) => Box::new(breaker::BreakerAgent::with_model(
                        c.clone(),
                        scope.clone(),
                        model.clone(),
                    )),
                    None => Box::new(breaker::BreakerAgent::new(c.clone(), scope.clone())),
                });
                (breaker::NAME, f)
            }),
            compliance::NAME => compliance::ComplianceConfig::from_settings(settings).map(|c| {
                let scope = Scope::new(policy.clone(), compliance::NAME);
                let model = load_model(
                    agent.model(),
                    compliance::NAME,
                    &compliance::SIGNATURE,
                    faults,
                );
                let f: AgentFactory = Arc::new(move || match &model {
                    Some(model) => Box::new(compliance::ComplianceAgent::with_model(
                        c.clone(),
                        scope.clone(),
                        model.clone(),
                    )),
                    None => Box::new(compliance::ComplianceAgent::new(c.clone(), scope.clone())),
                });
                (compliance::NAME, f)
            }),
            _ => continue,
        };
        match built {
            Ok((name, factory)) => specs.push(AgentSpec { name, factory }),
            Err(problems) => errors.extend(problems.into_iter().map(|p| (name.clone(), p))),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Loads an agent's model here, once per policy: every incarnation shares it, and a
/// restart does not reload it. A model that cannot be loaded is a runtime fault, not a
/// policy error: the agent runs on its rule and says so.
fn load_model(
    model: Option<&conclave_runtime::policy::ModelRef>,
    agent: &'static str,
    signature: &Signature,
    faults: &ModelFaults,
) -> Option<LearnedModel> {
    let model = LearnedModel::load_with_faults(model?, signature, faults.for_agent(agent));
    if let Some(error) = model.error() {
        tracing::warn!(agent, %error, "Model unavailable; the agent runs on its rule.");
    }
    Some(model)
}
