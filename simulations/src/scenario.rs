//! Scenario files: which fleet, under which load and faults, with which events, for how
//! long, under which policy. Checked as strictly as policies: YAML shape errors with line
//! and column, then every semantic problem at once with its YAML path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_runtime::policy::{parse_yaml, Loc, Located, PolicyError, Problem};
use conclave_runtime::Timestamp;
use serde::Deserialize;

use crate::events::{EventGenerator, EventMixSpec};
use crate::faults::{FaultSchedule, FaultSpec};
use crate::fleet::{Fleet, FleetSpec};
use crate::load::{LoadContext, LoadModel, LoadSpec};
use crate::seed::Seed;

/// A scenario document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(rename = "apiVersion")]
    api_version: Located<String>,
    kind: Located<String>,
    metadata: RawMetadata,
    spec: RawSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    name: Located<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    seed: u64,
    start: Option<Located<String>>,
    duration: Located<String>,
    step: Option<Located<String>>,
    policy: Located<String>,
    key_services: Option<Vec<Located<String>>>,
    fleet: FleetSpec,
    load: BTreeMap<String, LoadSpec>,
    events: Option<RawEvents>,
    faults: Option<Vec<FaultSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    rate_per_s: Located<f64>,
    mix: EventMixSpec,
}

/// A checked scenario, ready to run.
#[derive(Debug)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it rehearses.
    pub description: String,
    /// Seed of every random stream.
    pub seed: Seed,
    /// The seed as written.
    pub seed_value: u64,
    /// Simulated start (fixes time of day and weekday).
    pub start: Timestamp,
    /// Simulated length.
    pub duration: Duration,
    /// Simulation step.
    pub step: Duration,
    /// The policy under test (resolved against the scenario's folder).
    pub policy: PathBuf,
    /// Services charted in the report.
    pub key_services: Vec<String>,
    /// The fleet.
    pub fleet: FleetSpec,
    /// External load per entry service or route.
    pub load: BTreeMap<String, LoadModel>,
    /// Event samples: rate per second and their generator's spec (compiled per run, so
    /// every run sees the same events).
    pub events: Option<(f64, EventMixSpec)>,
    /// Faults.
    pub faults: FaultSchedule,
}

impl Scenario {
    /// A fresh event generator (identical for every run).
    pub fn event_generator(&self) -> Option<(f64, EventGenerator)> {
        let (rate, mix) = self.events.as_ref()?;
        EventGenerator::compile(mix.clone(), self.seed, "events", "spec.events.mix")
            .ok()
            .map(|g| (*rate, g))
    }
}

fn err(file: &str, loc: Loc, path: impl Into<String>, problem: Problem) -> PolicyError {
    PolicyError {
        file: file.to_string(),
        loc,
        path: path.into(),
        problem,
    }
}

fn duration(
    file: &str,
    raw: &Located<String>,
    path: &str,
    errors: &mut Vec<PolicyError>,
) -> Duration {
    match humantime::parse_duration(raw.value.trim()) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            errors.push(err(
                file,
                raw.loc,
                path,
                Problem::BadDuration(raw.value.clone()),
            ));
            Duration::from_secs(1)
        }
    }
}

fn not_in_fleet(name: &str) -> Problem {
    Problem::Yaml(format!(
        "expected a service or route of `spec.fleet`, found `{name}`"
    ))
}

/// Reads and checks the scenario at `path`. `trace_dir` is where relative trace paths
/// resolve (the shipped scenarios use `simulations/traces`).
///
/// # Errors
/// Every problem, located where the YAML parser or the spec path allows.
pub fn load(path: &Path, trace_dir: &Path) -> Result<Scenario, Vec<PolicyError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![err(&file, Loc::default(), "", Problem::Read(e.to_string()))])?;
    let raw: RawScenario = parse_yaml(&file, &text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    if raw.api_version.value != "conclave/v1" {
        errors.push(err(
            &file,
            raw.api_version.loc,
            "apiVersion",
            Problem::ApiVersion(raw.api_version.value.clone()),
        ));
    }
    if raw.kind.value != "Scenario" {
        errors.push(err(
            &file,
            raw.kind.loc,
            "kind",
            Problem::Kind {
                expected: "Scenario",
                found: raw.kind.value.clone(),
            },
        ));
    }
    let spec = raw.spec;
    let seed = Seed::new(spec.seed);
    let start = match &spec.start {
        None => Timestamp::from_millis(1_795_946_400_000), // 2026-11-29T10:00:00Z
        Some(s) => s
            .value
            .parse()
            .unwrap_or_else(|e: conclave_runtime::TimestampError| {
                errors.push(err(
                    &file,
                    s.loc,
                    "spec.start",
                    Problem::Yaml(e.to_string()),
                ));
                Timestamp::EPOCH
            }),
    };
    let before = errors.len();
    let total = duration(&file, &spec.duration, "spec.duration", &mut errors);
    let step = match &spec.step {
        Some(s) => duration(&file, s, "spec.step", &mut errors),
        None => Duration::from_secs(5),
    };
    if errors.len() == before && step > total {
        errors.push(err(
            &file,
            spec.duration.loc,
            "spec.step",
            Problem::Contradiction(format!(
                "the step `{}` is longer than the duration `{}`",
                humantime::format_duration(step),
                humantime::format_duration(total)
            )),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let policy = dir.join(&spec.policy.value);
    if !policy.is_file() {
        errors.push(err(
            &file,
            spec.policy.loc,
            "spec.policy",
            Problem::Read(format!("no policy file at `{}`", policy.display())),
        ));
    }
    if let Err(e) = Fleet::try_new(&spec.fleet, spec.seed) {
        errors.push(err(
            &file,
            Loc::default(),
            "spec.fleet",
            Problem::Yaml(e.to_string()),
        ));
    }
    let services: Vec<String> = spec.fleet.services.iter().map(|s| s.name.clone()).collect();
    let mut key_services = Vec::new();
    for (i, k) in spec.key_services.iter().flatten().enumerate() {
        if services.contains(&k.value) {
            key_services.push(k.value.clone());
        } else {
            errors.push(err(
                &file,
                k.loc,
                format!("spec.key_services[{i}]"),
                not_in_fleet(&k.value),
            ));
        }
    }
    let mut load = BTreeMap::new();
    for (name, l) in spec.load {
        let at = format!("spec.load.{name}");
        let component = format!("load/{name}");
        let ctx = LoadContext {
            at: &at,
            seed,
            component: &component,
            start,
            trace_dir,
        };
        if !services.contains(&name) && !spec.fleet.routes.contains_key(&name) {
            errors.push(err(&file, Loc::default(), &at, not_in_fleet(&name)));
        }
        match LoadModel::compile(l, &ctx) {
            Ok(m) => {
                load.insert(name, m);
            }
            Err(es) => errors.extend(
                es.into_iter()
                    .map(|e| err(&file, Loc::default(), "", Problem::Yaml(e.to_string()))),
            ),
        }
    }
    let faults =
        match FaultSchedule::compile(spec.faults.unwrap_or_default(), seed, total, "spec.faults") {
            Ok(f) => Some(f),
            Err(es) => {
                errors.extend(
                    es.into_iter()
                        .map(|e| err(&file, Loc::default(), "", Problem::Yaml(e.to_string()))),
                );
                None
            }
        };
    let events = match spec.events {
        None => None,
        Some(ev) => {
            if !(ev.rate_per_s.value.is_finite() && ev.rate_per_s.value >= 0.0) {
                errors.push(err(
                    &file,
                    ev.rate_per_s.loc,
                    "spec.events.rate_per_s",
                    Problem::OutOfRange {
                        expected: "a finite rate of at least 0",
                        found: ev.rate_per_s.value.to_string(),
                    },
                ));
            }
            if let Err(es) =
                EventGenerator::compile(ev.mix.clone(), seed, "events", "spec.events.mix")
            {
                errors.extend(
                    es.into_iter()
                        .map(|e| err(&file, Loc::default(), "", Problem::Yaml(e.to_string()))),
                );
            }
            Some((ev.rate_per_s.value, ev.mix))
        }
    };
    match (errors.is_empty(), faults) {
        (true, Some(faults)) => Ok(Scenario {
            name: raw.metadata.name.value,
            description: raw.metadata.description.unwrap_or_default(),
            seed,
            seed_value: spec.seed,
            start,
            duration: total,
            step,
            policy,
            key_services,
            fleet: spec.fleet,
            load,
            events,
            faults,
        }),
        _ => Err(errors),
    }
}
