//! Fault schedules: what goes wrong during a scenario, and when.
//!
//! A scenario lists [`FaultSpec`]s: a kind of fault, its target, and either a fixed
//! window or a random rate. [`FaultSchedule::compile`] checks them all at once and draws
//! the random windows up front, so the whole schedule is known before the run starts and
//! depends only on (specs, seed, horizon). The driver then asks what is active at a time
//! ([`FaultSchedule::active_at`]) or what changed over a tick
//! ([`FaultSchedule::transitions`]).
//!
//! Fleet faults (slowdown, error burst, region outage) are applied through the fleet:
//! [`FaultSchedule::fleet_effects_at`] folds every active one into the value each
//! service and region should have, neutral values included, so the driver can set them
//! all on every transition. Telemetry faults are applied by the driver itself with the
//! helpers in this module: [`poison`] corrupts a line for a poison burst, and
//! [`SchemaChange::apply`] renames or adds event fields. Model faults are handed to the
//! model host.

mod telemetry;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::seed::Seed;

pub use telemetry::{poison, PoisonBurst, PoisonKind, SchemaChange};

/// One fault, as written in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Names the fault in reports and its random stream (default `<kind>:<target>`, for
    /// example `region_outage:eu-west-1`). Names must be unique.
    pub name: Option<String>,
    /// What goes wrong.
    pub fault: FaultKindSpec,
    /// When.
    pub when: WhenSpec,
}

/// What goes wrong, as written: one key naming the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKindSpec {
    /// A service answers `factor` times slower (its callers see the latency).
    DependencySlowdown {
        /// The slowed service.
        service: String,
        /// Latency multiplier, at least 1.
        factor: f64,
    },
    /// A service fails an extra share of requests.
    ErrorBurst {
        /// The failing service.
        service: String,
        /// Extra share of failed requests, in `(0, 1]`.
        extra_error_rate: f64,
    },
    /// Every service in a region is down.
    RegionOutage {
        /// The region.
        region: String,
    },
    /// A share of telemetry lines arrive corrupted.
    PoisonTelemetry {
        /// Only telemetry keyed by this service or topic (default: all telemetry).
        target: Option<String>,
        /// Share of matching lines corrupted, in `(0, 1]`.
        share: f64,
        /// Corruptions to pick from, uniformly (default: all of them).
        kinds: Option<Vec<PoisonKind>>,
    },
    /// A producer changes its event schema: fields renamed or added.
    SchemaChange {
        /// Events on this topic change.
        topic: String,
        /// Top-level fields renamed, old name to new name.
        rename: Option<BTreeMap<String, String>>,
        /// Top-level fields added (where absent), name to value.
        add: Option<BTreeMap<String, serde_json::Value>>,
    },
    /// An agent's model misbehaves, to exercise its rule fallback.
    ModelFault {
        /// The agent whose model fails (`scaler`, `router`, ...).
        agent: String,
        /// How it fails.
        mode: ModelFaultMode,
    },
}

/// When a fault happens, as written: one key naming the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WhenSpec {
    /// Once, at a fixed time.
    At {
        /// Seconds after the scenario start, at least 0.
        start_s: f64,
        /// Seconds it lasts, at least 0.001.
        duration_s: f64,
    },
    /// At random times: onsets arrive as a Poisson process of `per_hour` onsets per hour
    /// of fault-free time, each lasting `duration_s`, so windows never overlap. Windows
    /// are drawn up to the scenario's horizon.
    Random {
        /// Mean onsets per fault-free hour, in `(0, 3600]`.
        per_hour: f64,
        /// Seconds each occurrence lasts, at least 0.001.
        duration_s: f64,
    },
}

/// How a model fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFaultMode {
    /// Inference returns an error (model missing or failing to load).
    Unavailable,
    /// Inference does not answer within its deadline.
    Timeout,
    /// Inference answers with NaN or out-of-range values.
    InvalidOutput,
}

impl ModelFaultMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFaultMode::Unavailable => "unavailable",
            ModelFaultMode::Timeout => "timeout",
            ModelFaultMode::InvalidOutput => "invalid_output",
        }
    }
}

/// A checked fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// See [`FaultKindSpec::DependencySlowdown`].
    DependencySlowdown {
        /// The slowed service.
        service: String,
        /// Latency multiplier, at least 1.
        factor: f64,
    },
    /// See [`FaultKindSpec::ErrorBurst`].
    ErrorBurst {
        /// The failing service.
        service: String,
        /// Extra share of failed requests, in `(0, 1]`.
        extra_error_rate: f64,
    },
    /// See [`FaultKindSpec::RegionOutage`].
    RegionOutage {
        /// The region.
        region: String,
    },
    /// See [`FaultKindSpec::PoisonTelemetry`].
    PoisonTelemetry(PoisonBurst),
    /// See [`FaultKindSpec::SchemaChange`].
    SchemaChange(SchemaChange),
    /// See [`FaultKindSpec::ModelFault`].
    ModelFault {
        /// The agent.
        agent: String,
        /// How its model fails.
        mode: ModelFaultMode,
    },
}

impl Fault {
    /// The kind's name, as in a spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::DependencySlowdown { .. } => "dependency_slowdown",
            Fault::ErrorBurst { .. } => "error_burst",
            Fault::RegionOutage { .. } => "region_outage",
            Fault::PoisonTelemetry(_) => "poison_telemetry",
            Fault::SchemaChange(_) => "schema_change",
            Fault::ModelFault { .. } => "model_fault",
        }
    }

    /// What it hits: a service, region, topic or agent; `*` for every telemetry line.
    pub fn target(&self) -> &str {
        match self {
            Fault::DependencySlowdown { service, .. } | Fault::ErrorBurst { service, .. } => {
                service
            }
            Fault::RegionOutage { region } => region,
            Fault::PoisonTelemetry(p) => p.target().unwrap_or("*"),
            Fault::SchemaChange(c) => c.topic(),
            Fault::ModelFault { agent, .. } => agent,
        }
    }
}

/// One occurrence of a fault: what, and the window `[start, end)` it is active in, in
/// time since the scenario start (millisecond resolution).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveFault {
    /// The fault's name.
    pub name: String,
    /// What goes wrong.
    pub fault: Fault,
    /// First instant it is active.
    pub start: Duration,
    /// First instant it is no longer active.
    pub end: Duration,
}

impl ActiveFault {
    /// Whether it is active at `t`: `start <= t < end`.
    pub fn is_active_at(&self, t: Duration) -> bool {
        self.start <= t && t < self.end
    }
}

/// A fault starting or ending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition<'a> {
    /// When.
    pub at: Duration,
    /// Which way.
    pub edge: Edge,
    /// The occurrence.
    pub fault: &'a ActiveFault,
}

/// Which way a [`Transition`] goes. Ends sort before starts at the same instant, so a
/// fault ending as another begins is undone before the new one is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Edge {
    /// The fault stops.
    End,
    /// The fault starts.
    Start,
}

/// What the fleet faults active at one instant add up to, for every service and region
/// any fleet fault in the schedule touches (neutral values for those not hit now).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetEffects {
    slowdowns: BTreeMap<String, f64>,
    extra_error_rates: BTreeMap<String, f64>,
    regions: BTreeMap<String, bool>,
}

impl FleetEffects {
    /// `(service, latency factor)`, sorted by service: the product of the active
    /// slowdowns, 1 when none is.
    pub fn slowdowns(&self) -> impl Iterator<Item = (&str, f64)> {
        self.slowdowns.iter().map(|(s, f)| (s.as_str(), *f))
    }

    /// `(service, extra error rate)`, sorted by service: active bursts combined as
    /// independent failures, `1 - Π(1 - e)`; 0 when none is active.
    pub fn extra_error_rates(&self) -> impl Iterator<Item = (&str, f64)> {
        self.extra_error_rates.iter().map(|(s, e)| (s.as_str(), *e))
    }

    /// `(region, is down)`, sorted by region.
    pub fn regions(&self) -> impl Iterator<Item = (&str, bool)> {
        self.regions.iter().map(|(r, d)| (r.as_str(), *d))
    }

    /// The latency factor for `service` (1 when untouched).
    pub fn slowdown(&self, service: &str) -> f64 {
        self.slowdowns.get(service).copied().unwrap_or(1.0)
    }

    /// The extra error rate for `service` (0 when untouched).
    pub fn extra_error_rate(&self, service: &str) -> f64 {
        self.extra_error_rates.get(service).copied().unwrap_or(0.0)
    }

    /// Whether `region` is down.
    pub fn is_region_down(&self, region: &str) -> bool {
        self.regions.get(region).copied().unwrap_or(false)
    }
}

/// Every fault occurrence of a scenario, sorted by start, then name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultSchedule {
    faults: Vec<ActiveFault>,
}

/// A fault spec that could not be compiled: each names the spec path, what was expected
/// and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// A number outside its domain (NaN and infinities included).
    #[error("{at}: expected {expected}, found `{found}`")]
    OutOfRange {
        /// Spec path of the value.
        at: String,
        /// The domain.
        expected: &'static str,
        /// The value.
        found: f64,
    },
    /// A name that must not be empty is.
    #[error("{at}: expected {expected}, found an empty string")]
    Empty {
        /// Spec path of the value.
        at: String,
        /// What belongs there.
        expected: &'static str,
    },
    /// Two faults with the same name.
    #[error("{at}: expected a unique fault name, found `{name}` (also at `{first}`); give each fault its own `name`")]
    DuplicateName {
        /// Spec path of the second fault's name.
        at: String,
        /// The name.
        name: String,
        /// Spec path of the first fault with it.
        first: String,
    },
    /// A schema change that changes nothing.
    #[error("{at}: expected at least one field in `rename` or `add`, found none")]
    NoSchemaChange {
        /// Spec path of the schema change.
        at: String,
    },
    /// A schema change whose result has two fields under one name.
    #[error("{at}: expected each new field name once, found `{field}` {clash}")]
    FieldClash {
        /// Spec path of the clashing entry.
        at: String,
        /// The field name.
        field: String,
        /// What it clashes with.
        clash: FieldClash,
    },
    /// A model fault for an agent the catalog does not have.
    #[error("{at}: expected one of {}, found `{agent}`", conclave_agents::AGENTS.join(", "))]
    UnknownAgent {
        /// Spec path of the agent name.
        at: String,
        /// The name.
        agent: String,
    },
    /// An empty list where a choice is needed.
    #[error("{at}: expected at least one of {expected}, found none")]
    EmptyList {
        /// Spec path of the list.
        at: String,
        /// What may be listed.
        expected: &'static str,
    },
}

/// What a [`FaultError::FieldClash`] clashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClash {
    /// Two renames to the same name.
    TwoRenames,
    /// A rename to a name that `add` also adds.
    RenameAndAdd,
}

impl fmt::Display for FieldClash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldClash::TwoRenames => "as the target of two renames",
            FieldClash::RenameAndAdd => "both as a rename target and in `add`",
        })
    }
}

/// Collects every problem of a fault list.
struct Check {
    errors: Vec<FaultError>,
}

impl Check {
    fn range(&mut self, at: &str, value: f64, ok: bool, expected: &'static str) {
        if !(ok && value.is_finite()) {
            self.errors.push(FaultError::OutOfRange {
                at: at.to_string(),
                expected,
                found: value,
            });
        }
    }

    fn name(&mut self, at: &str, value: &str, expected: &'static str) {
        if value.is_empty() {
            self.errors.push(FaultError::Empty {
                at: at.to_string(),
                expected,
            });
        }
    }
}

impl FaultSchedule {
    /// Checks every spec, then draws the random windows up to `horizon` (the scenario
    /// length). Fault `name`'s windows come from the stream `faults/<name>` of `seed`, so
    /// adding a fault does not move the others.
    ///
    /// # Errors
    /// Every problem, each with its spec path under `at` (`faults[2].fault.error_burst`).
    pub fn compile(
        specs: Vec<FaultSpec>,
        seed: Seed,
        horizon: Duration,
        at: &str,
    ) -> Result<FaultSchedule, Vec<FaultError>> {
        let mut check = Check { errors: Vec::new() };
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut faults = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let at = format!("{at}[{i}]");
            let fault = compile_fault(spec.fault, &mut check, &format!("{at}.fault"));
            let name = spec
                .name
                .unwrap_or_else(|| format!("{}:{}", fault.kind(), fault.target()));
            check.name(&format!("{at}.name"), &name, "a fault name");
            if let Some(first) = names.get(&name) {
                check.errors.push(FaultError::DuplicateName {
                    at: format!("{at}.name"),
                    name: name.clone(),
                    first: first.clone(),
                });
            } else {
                names.insert(name.clone(), format!("{at}.name"));
            }
            let windows = windows(&spec.when, seed, &name, horizon, &mut check, &at);
            faults.extend(windows.into_iter().map(|(start, end)| ActiveFault {
                name: name.clone(),
                fault: fault.clone(),
                start,
                end,
            }));
        }
        if !check.errors.is_empty() {
            return Err(check.errors);
        }
        faults.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
        Ok(FaultSchedule { faults })
    }

    /// Every occurrence, sorted by start, then name.
    pub fn faults(&self) -> &[ActiveFault] {
        &self.faults
    }

    /// The occurrences active at `t` (`start <= t < end`), sorted by start, then name.
    pub fn active_at(&self, t: Duration) -> Vec<&ActiveFault> {
        self.faults.iter().filter(|f| f.is_active_at(t)).collect()
    }

    /// Starts and ends at `from <= at < to`, by time, ends before starts, then by name.
    /// Consecutive ticks `[t0, t1)`, `[t1, t2)` see each transition exactly once.
    pub fn transitions(&self, from: Duration, to: Duration) -> Vec<Transition<'_>> {
        let mut out: Vec<Transition<'_>> = self
            .faults
            .iter()
            .flat_map(|f| {
                [(f.start, Edge::Start), (f.end, Edge::End)]
                    .into_iter()
                    .filter(|(at, _)| from <= *at && *at < to)
                    .map(move |(at, edge)| Transition { at, edge, fault: f })
            })
            .collect();
        out.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then(a.edge.cmp(&b.edge))
                .then_with(|| a.fault.name.cmp(&b.fault.name))
        });
        out
    }

    /// The fleet state the active fleet faults call for at `t`, for every service and
    /// region the schedule ever touches.
    pub fn fleet_effects_at(&self, t: Duration) -> FleetEffects {
        let mut fx = FleetEffects::default();
        let mut survive: BTreeMap<String, f64> = BTreeMap::new();
        let mut down: BTreeSet<&str> = BTreeSet::new();
        for f in &self.faults {
            let active = f.is_active_at(t);
            match &f.fault {
                Fault::DependencySlowdown { service, factor } => {
                    let slot = fx.slowdowns.entry(service.clone()).or_insert(1.0);
                    if active {
                        *slot *= factor;
                    }
                }
                Fault::ErrorBurst {
                    service,
                    extra_error_rate,
                } => {
                    let slot = survive.entry(service.clone()).or_insert(1.0);
                    if active {
                        *slot *= 1.0 - extra_error_rate;
                    }
                }
                Fault::RegionOutage { region } => {
                    fx.regions.entry(region.clone()).or_insert(false);
                    if active {
                        down.insert(region);
                    }
                }
                Fault::PoisonTelemetry(_) | Fault::SchemaChange(_) | Fault::ModelFault { .. } => {}
            }
        }
        for region in down {
            fx.regions.insert(region.to_string(), true);
        }
        fx.extra_error_rates = survive
            .into_iter()
            .map(|(service, ok)| (service, 1.0 - ok))
            .collect();
        fx
    }
}

fn compile_fault(spec: FaultKindSpec, check: &mut Check, at: &str) -> Fault {
    match spec {
        FaultKindSpec::DependencySlowdown { service, factor } => {
            let at = format!("{at}.dependency_slowdown");
            check.name(&format!("{at}.service"), &service, "a service name");
            check.range(
                &format!("{at}.factor"),
                factor,
                factor >= 1.0,
                "a latency factor of at least 1",
            );
            Fault::DependencySlowdown { service, factor }
        }
        FaultKindSpec::ErrorBurst {
            service,
            extra_error_rate,
        } => {
            let at = format!("{at}.error_burst");
            check.name(&format!("{at}.service"), &service, "a service name");
            check.range(
                &format!("{at}.extra_error_rate"),
                extra_error_rate,
                extra_error_rate > 0.0 && extra_error_rate <= 1.0,
                "a share in (0, 1]",
            );
            Fault::ErrorBurst {
                service,
                extra_error_rate,
            }
        }
        FaultKindSpec::RegionOutage { region } => {
            let at = format!("{at}.region_outage");
            check.name(&format!("{at}.region"), &region, "a region name");
            Fault::RegionOutage { region }
        }
        FaultKindSpec::PoisonTelemetry {
            target,
            share,
            kinds,
        } => {
            let at = format!("{at}.poison_telemetry");
            if let Some(t) = &target {
                check.name(&format!("{at}.target"), t, "a service or topic name");
            }
            check.range(
                &format!("{at}.share"),
                share,
                share > 0.0 && share <= 1.0,
                "a share in (0, 1]",
            );
            let kinds = match kinds {
                None => PoisonKind::ALL.to_vec(),
                Some(k) if k.is_empty() => {
                    check.errors.push(FaultError::EmptyList {
                        at: format!("{at}.kinds"),
                        expected: PoisonKind::NAMES,
                    });
                    Vec::new()
                }
                Some(k) => k,
            };
            Fault::PoisonTelemetry(PoisonBurst::new(target, share, kinds))
        }
        FaultKindSpec::SchemaChange { topic, rename, add } => {
            let at = format!("{at}.schema_change");
            check.name(&format!("{at}.topic"), &topic, "a topic name");
            let rename = rename.unwrap_or_default();
            let add = add.unwrap_or_default();
            if rename.is_empty() && add.is_empty() {
                check
                    .errors
                    .push(FaultError::NoSchemaChange { at: at.clone() });
            }
            let mut targets = BTreeSet::new();
            for (old, new) in &rename {
                let entry = format!("{at}.rename.{old}");
                check.name(&entry, new, "a new field name");
                if !targets.insert(new.as_str()) {
                    check.errors.push(FaultError::FieldClash {
                        at: entry,
                        field: new.clone(),
                        clash: FieldClash::TwoRenames,
                    });
                } else if add.contains_key(new) {
                    check.errors.push(FaultError::FieldClash {
                        at: entry,
                        field: new.clone(),
                        clash: FieldClash::RenameAndAdd,
                    });
                }
            }
            for name in add.keys() {
                check.name(&format!("{at}.add"), name, "a field name");
            }
            Fault::SchemaChange(SchemaChange::new(topic, rename, add))
        }
        FaultKindSpec::ModelFault { agent, mode } => {
            let at = format!("{at}.model_fault");
            check.name(&format!("{at}.agent"), &agent, "an agent name");
            if !agent.is_empty() && !conclave_agents::AGENTS.contains(&agent.as_str()) {
                check.errors.push(FaultError::UnknownAgent {
                    at: format!("{at}.agent"),
                    agent: agent.clone(),
                });
            }
            Fault::ModelFault { agent, mode }
        }
    }
}

/// The windows of one fault, `[start, end)` in milliseconds, up to `horizon`.
fn windows(
    when: &WhenSpec,
    seed: Seed,
    name: &str,
    horizon: Duration,
    check: &mut Check,
    at: &str,
) -> Vec<(Duration, Duration)> {
    match *when {
        WhenSpec::At {
            start_s,
            duration_s,
        } => {
            let at = format!("{at}.when.at");
            let before = check.errors.len();
            check.range(
                &format!("{at}.start_s"),
                start_s,
                start_s >= 0.0,
                "a start of at least 0 seconds",
            );
            check.range(
                &format!("{at}.duration_s"),
                duration_s,
                duration_s >= MIN_DURATION_S,
                "a duration of at least 0.001 seconds",
            );
            if check.errors.len() > before {
                return Vec::new();
            }
            let start = millis(start_s);
            vec![(start, start.saturating_add(millis(duration_s)))]
        }
        WhenSpec::Random {
            per_hour,
            duration_s,
        } => {
            let at = format!("{at}.when.random");
            let before = check.errors.len();
            check.range(
                &format!("{at}.per_hour"),
                per_hour,
                per_hour > 0.0 && per_hour <= MAX_PER_HOUR,
                "a rate in (0, 3600] per hour",
            );
            check.range(
                &format!("{at}.duration_s"),
                duration_s,
                duration_s >= MIN_DURATION_S,
                "a duration of at least 0.001 seconds",
            );
            if check.errors.len() > before {
                return Vec::new();
            }
            let mut rng = seed.rng(&format!("faults/{name}"));
            let mean_gap_s = 3600.0 / per_hour;
            let length = millis(duration_s);
            let mut out = Vec::new();
            let mut t = Duration::ZERO;
            loop {
                // Exponential gap by inversion; `1 - u` is in (0, 1], so `ln` is finite.
                let u: f64 = rng.random();
                t = t.saturating_add(millis(-mean_gap_s * (1.0 - u).ln()));
                if t >= horizon {
                    break out;
                }
                let end = t.saturating_add(length);
                out.push((t, end));
                t = end;
            }
        }
    }
}

/// Shortest window: one millisecond, the resolution of timestamps. It also bounds the
/// random draw loop, which advances by at least one window per onset.
const MIN_DURATION_S: f64 = 0.001;

/// Most random onsets per hour: one a second. More is not a fault schedule, and the
/// number of windows drawn grows with it.
const MAX_PER_HOUR: f64 = 3600.0;

/// Seconds to a duration rounded to the millisecond, the resolution of timestamps.
fn millis(seconds: f64) -> Duration {
    Duration::from_millis((seconds * 1000.0).round() as u64)
}
