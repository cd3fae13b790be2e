//! The fleet as written: [`FleetSpec`] mirrors the scenario file (plain serde data, every
//! struct `deny_unknown_fields`), and [`Topology::compile`] checks it once, reporting every
//! problem, into the validated shape the model runs on (names resolved to indices, a
//! topological order, durations as [`Duration`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::SpecProblem;

/// Most attempts per call a retry policy may make: resilience4j's default `maxAttempts`
/// is 3; ten already multiplies a failing dependency's load tenfold, and more is a typo.
const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Longest cold start accepted: an hour is already a capacity reservation, not a start.
const MAX_COLD_START_S: f64 = 3600.0;

/// A fleet: its services and the routes that split traffic across several of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// The services, in any order (the model keeps them sorted by name).
    pub services: Vec<ServiceSpec>,
    /// Routes by name: each splits the load sent to it across its backend services (equal
    /// weights until a `route` action changes them). External load and dependencies may
    /// name a route instead of a service. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, Vec<String>>,
}

/// One service, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unique name (also the telemetry's `service` and actions' target).
    pub name: String,
    /// The region it runs in.
    pub region: String,
    /// Requests per second one replica's CPU completes (`> 0`).
    pub capacity_per_replica: f64,
    /// Median time of the service's own work, unloaded, in milliseconds (`> 0`); time
    /// spent waiting on dependencies comes on top.
    pub base_latency_ms: f64,
    /// Replicas at the start, all ready (`>= min_replicas`).
    pub initial_replicas: u32,
    /// Fewest replicas a scale action leaves (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// Requests one replica can have in flight (a worker or connection pool). When set,
    /// time spent waiting on dependencies holds a slot, so a slow dependency lowers this
    /// service's capacity (thread-pool exhaustion). Default: unbounded (asynchronous I/O;
    /// only CPU limits throughput).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_replica: Option<u32>,
    /// Seconds from a scale-up until the new replicas serve (`0..=3600`).
    pub cold_start_s: f64,
    /// Cost of one replica for an hour, in any currency (`>= 0`).
    pub cost_per_replica_hour: f64,
    /// p99 latency objective in milliseconds (`> 0`).
    pub slo_p99_ms: f64,
    /// Error-rate objective in `0..=1`; when set, a higher error rate is a breach too.
    /// Default: errors are not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_error_rate: Option<f64>,
    /// Most requests waiting; arrivals beyond it are dropped.
    pub max_queue: u64,
    /// Attempts per dependency call, the first included (`1..=10`, default 1: no
    /// retries). A failed or timed-out attempt is retried until this many were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<u32>,
    /// The services (or routes) this one calls while serving a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencySpec>,
}

/// One dependency of a service, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencySpec {
    /// The called service or route.
    pub service: String,
    /// Calls per request served, on average (`> 0`; fractions mean some requests call).
    pub calls_per_request: f64,
    /// How long the caller waits for one attempt before counting it failed (`> 0`).
    pub timeout_ms: f64,
}

/// The checked fleet: services sorted by name, names resolved to indices.
#[derive(Debug, Clone)]
pub(super) struct Topology {
    pub(super) services: Vec<ServiceConfig>,
    pub(super) routes: Vec<RouteConfig>,
    /// Region names, sorted; services refer to them by index.
    pub(super) regions: Vec<String>,
    /// Service indices, every caller before the services it calls.
    pub(super) order: Vec<usize>,
}

/// One checked service.
#[derive(Debug, Clone)]
pub(super) struct ServiceConfig {
    pub(super) name: String,
    pub(super) region: usize,
    pub(super) capacity_per_replica: f64,
    pub(super) base_latency_ms: f64,
    pub(super) initial_replicas: u32,
    pub(super) min_replicas: u32,
    pub(super) max_in_flight_per_replica: Option<u32>,
    pub(super) cold_start: Duration,
    pub(super) cost_per_replica_hour: f64,
    pub(super) slo_p99_ms: f64,
    pub(super) slo_error_rate: Option<f64>,
    pub(super) max_queue: f64,
    pub(super) retry_attempts: u32,
    pub(super) dependencies: Vec<DependencyConfig>,
}

/// One checked dependency.
#[derive(Debug, Clone, Copy)]
pub(super) struct DependencyConfig {
    pub(super) callee: Callee,
    pub(super) calls_per_request: f64,
    pub(super) timeout_ms: f64,
}

/// What a dependency or an external load names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Callee {
    /// A service, by index.
    Service(usize),
    /// A route, by index.
    Route(usize),
}

/// One checked route.
#[derive(Debug, Clone)]
pub(super) struct RouteConfig {
    pub(super) name: String,
    /// Backend service indices, ascending (so by name).
    pub(super) backends: Vec<usize>,
}

impl Topology {
    /// Checks `spec`, then builds; never returns after the first problem.
    pub(super) fn compile(spec: &FleetSpec) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        if spec.services.is_empty() {
            problems.push(SpecProblem::NoServices);
        }

        // Names first: everything else resolves against them.
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, s) in spec.services.iter().enumerate() {
            if s.name.is_empty() {
                problems.push(SpecProblem::EmptyName { index: i });
            } else if names.contains_key(s.name.as_str()) {
                problems.push(SpecProblem::DuplicateName {
                    name: s.name.clone(),
                });
            } else {
                names.insert(s.name.as_str(), i);
            }
        }
        // Sorted order: index in `services` is the rank of the name.
        let sorted: BTreeMap<&str, usize> = names
            .keys()
            .enumerate()
            .map(|(rank, n)| (*n, rank))
            .collect();
        let mut route_index: BTreeMap<&str, usize> = BTreeMap::new();
        for (rank, r) in spec.routes.keys().enumerate() {
            if sorted.contains_key(r.as_str()) {
                problems.push(SpecProblem::DuplicateName { name: r.clone() });
            }
            route_index.insert(r.as_str(), rank);
        }

        let mut routes = Vec::with_capacity(spec.routes.len());
        for (name, backends) in &spec.routes {
            if backends.is_empty() {
                problems.push(SpecProblem::EmptyRoute {
                    route: name.clone(),
                });
            }
            let mut resolved = BTreeSet::new();
            for b in backends {
                match sorted.get(b.as_str()) {
                    Some(&idx) => {
                        if !resolved.insert(idx) {
                            problems.push(SpecProblem::DuplicateBackend {
                                route: name.clone(),
                                backend: b.clone(),
                            });
                        }
                    }
                    None => problems.push(SpecProblem::UnknownBackend {
                        route: name.clone(),
                        backend: b.clone(),
                    }),
                }
            }
            routes.push(RouteConfig {
                name: name.clone(),
                backends: resolved.into_iter().collect(),
            });
        }

        let regions: Vec<String> = spec
            .services
            .iter()
            .map(|s| s.region.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        let mut services: Vec<Option<ServiceConfig>> = vec![None; sorted.len()];
        for (i, s) in spec.services.iter().enumerate() {
            // Empty names and a duplicate's later entries were reported above.
            if names.get(s.name.as_str()) != Some(&i) {
                continue;
            }
            let Some(&rank) = sorted.get(s.name.as_str()) else {
                continue;
            };
            let config =
                compile_service(s, &sorted, &route_index, &routes, &regions, &mut problems);
            services[rank] = Some(config);
        }
        let services: Vec<ServiceConfig> = services.into_iter().flatten().collect();

        let order = match topological_order(&services, &routes) {
            Ok(order) => order,
            Err(cycles) => {
                for cycle in cycles {
                    problems.push(SpecProblem::Cycle {
                        services: cycle
                            .into_iter()
                            .map(|i| services[i].name.clone())
                            .collect(),
                    });
                }
                Vec::new()
            }
        };

        if problems.is_empty() {
            Ok(Topology {
                services,
                routes,
                regions,
                order,
            })
        } else {
            Err(problems)
        }
    }

    /// What `name` refers to, if anything.
    pub(super) fn resolve(&self, name: &str) -> Option<Callee> {
        if let Ok(i) = self
            .services
            .binary_search_by(|s| s.name.as_str().cmp(name))
        {
            return Some(Callee::Service(i));
        }
        self.routes
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(Callee::Route)
    }

    /// The service called `name`, if any.
    pub(super) fn service(&self, name: &str) -> Option<usize> {
        match self.resolve(name) {
            Some(Callee::Service(i)) => Some(i),
            _ => None,
        }
    }
}

/// Checks one service's fields and resolves its dependencies.
fn compile_service(
    s: &ServiceSpec,
    sorted: &BTreeMap<&str, usize>,
    route_index: &BTreeMap<&str, usize>,
    routes: &[RouteConfig],
    regions: &[String],
    problems: &mut Vec<SpecProblem>,
) -> ServiceConfig {
    let mut out_of_range = |field: &str, expected: &'static str, found: String| {
        problems.push(SpecProblem::OutOfRange {
            service: s.name.clone(),
            field: field.to_owned(),
            expected,
            found,
        });
    };
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let non_negative = |v: f64| v.is_finite() && v >= 0.0;

    if s.region.is_empty() {
        out_of_range("region", "a region name", String::new());
    }
    if !positive(s.capacity_per_replica) {
        out_of_range(
            "capacity_per_replica",
            "a number above 0",
            s.capacity_per_replica.to_string(),
        );
    }
    if !positive(s.base_latency_ms) {
        out_of_range(
            "base_latency_ms",
            "a number above 0",
            s.base_latency_ms.to_string(),
        );
    }
    if !positive(s.slo_p99_ms) {
        out_of_range("slo_p99_ms", "a number above 0", s.slo_p99_ms.to_string());
    }
    if !non_negative(s.cost_per_replica_hour) {
        out_of_range(
            "cost_per_replica_hour",
            "a number of at least 0",
            s.cost_per_replica_hour.to_string(),
        );
    }
    if let Some(e) = s.slo_error_rate {
        if !(e.is_finite() && (0.0..=1.0).contains(&e)) {
            out_of_range("slo_error_rate", "a number in 0..=1", e.to_string());
        }
    }
    let cold_start = if non_negative(s.cold_start_s) && s.cold_start_s <= MAX_COLD_START_S {
        Duration::try_from_secs_f64(s.cold_start_s).unwrap_or_default()
    } else {
        out_of_range(
            "cold_start_s",
            "seconds in 0..=3600",
            s.cold_start_s.to_string(),
        );
        Duration::ZERO
    };
    if s.max_in_flight_per_replica == Some(0) {
        out_of_range(
            "max_in_flight_per_replica",
            "an integer of at least 1",
            "0".to_owned(),
        );
    }
    let retry_attempts = s.retry_attempts.unwrap_or(1);
    if !(1..=MAX_RETRY_ATTEMPTS).contains(&retry_attempts) {
        out_of_range(
            "retry_attempts",
            "an integer in 1..=10",
            retry_attempts.to_string(),
        );
    }
    let min_replicas = s.min_replicas.unwrap_or(1);
    if s.initial_replicas < min_replicas {
        problems.push(SpecProblem::ReplicasBelowMin {
            service: s.name.clone(),
            initial: s.initial_replicas,
            min: min_replicas,
        });
    }

    let own = sorted.get(s.name.as_str()).copied();
    let mut dependencies = Vec::with_capacity(s.dependencies.len());
    let mut reached = BTreeSet::new();
    for (i, d) in s.dependencies.iter().enumerate() {
        if !positive(d.calls_per_request) {
            problems.push(SpecProblem::OutOfRange {
                service: s.name.clone(),
                field: format!("dependencies[{i}].calls_per_request"),
                expected: "a number above 0",
                found: d.calls_per_request.to_string(),
            });
        }
        if !positive(d.timeout_ms) {
            problems.push(SpecProblem::OutOfRange {
                service: s.name.clone(),
                field: format!("dependencies[{i}].timeout_ms"),
                expected: "a number above 0",
                found: d.timeout_ms.to_string(),
            });
        }
        let callee = if let Some(&idx) = sorted.get(d.service.as_str()) {
            Callee::Service(idx)
        } else if let Some(&r) = route_index.get(d.service.as_str()) {
            Callee::Route(r)
        } else {
            problems.push(SpecProblem::UnknownDependency {
                service: s.name.clone(),
                index: i,
                dependency: d.service.clone(),
            });
            continue;
        };
        let backends = match &callee {
            Callee::Service(idx) => std::slice::from_ref(idx),
            Callee::Route(r) => routes[*r].backends.as_slice(),
        };
        for &b in backends {
            if Some(b) == own {
                problems.push(SpecProblem::SelfDependency {
                    service: s.name.clone(),
                });
            } else if !reached.insert(b) {
                problems.push(SpecProblem::DuplicateDependency {
                    service: s.name.clone(),
                    dependency: sorted
                        .keys()
                        .nth(b)
                        .map_or_else(String::new, |n| (*n).to_owned()),
                });
            }
        }
        dependencies.push(DependencyConfig {
            callee,
            calls_per_request: d.calls_per_request,
            timeout_ms: d.timeout_ms,
        });
    }
    ServiceConfig {
        name: s.name.clone(),
        region: regions.binary_search(&s.region).unwrap_or(0),
        capacity_per_replica: s.capacity_per_replica,
        base_latency_ms: s.base_latency_ms,
        initial_replicas: s.initial_replicas,
        min_replicas,
        max_in_flight_per_replica: s.max_in_flight_per_replica,
        cold_start,
        cost_per_replica_hour: s.cost_per_replica_hour,
        slo_p99_ms: s.slo_p99_ms,
        slo_error_rate: s.slo_error_rate,
        max_queue: s.max_queue as f64,
        retry_attempts,
        dependencies,
    }
}

/// Every callee (route backends expanded) of service `i`.
fn callees<'a>(
    services: &'a [ServiceConfig],
    routes: &'a [RouteConfig],
    i: usize,
) -> impl Iterator<Item = usize> + 'a {
    services[i]
        .dependencies
        .iter()
        .flat_map(move |d| match &d.callee {
            Callee::Service(b) => std::slice::from_ref(b),
            Callee::Route(r) => routes[*r].backends.as_slice(),
        })
        .copied()
}

/// Kahn's algorithm, lowest index first among the ready (so the order is deterministic):
/// every caller before its callees. On cycles, returns each one found, as service
/// indices in call order starting at the lowest.
fn topological_order(
    services: &[ServiceConfig],
    routes: &[RouteConfig],
) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = services.len();
    let mut callers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        // A self-call is reported as such, not again as a cycle of one.
        for b in callees(services, routes, i).filter(|&b| b != i) {
            callers[b].push(i);
        }
    }
    let mut removed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut cycles = Vec::new();
    loop {
        peel(services, routes, &callers, &mut removed, &mut order);
        // Every service left has a caller left (or Kahn would have taken it), so walking
        // callers backwards from any of them must come back to a service already seen.
        let Some(start) = (0..n).find(|&i| !removed[i]) else {
            break;
        };
        let mut path = vec![start];
        let cycle = loop {
            let last = *path.last().unwrap_or(&start);
            let Some(&prev) = callers[last].iter().filter(|&&c| !removed[c]).min() else {
                break Vec::new(); // cannot happen (see above); stop rather than spin
            };
            if let Some(pos) = path.iter().position(|&p| p == prev) {
                break path.split_off(pos);
            }
            path.push(prev);
        };
        if cycle.is_empty() {
            removed[start] = true;
            continue;
        }
        // The walk went callee → caller; reverse for call order, then start at the lowest.
        let mut cycle: Vec<usize> = cycle.into_iter().rev().collect();
        let lowest = cycle
            .iter()
            .enumerate()
            .min_by_key(|&(_, &s)| s)
            .map_or(0, |(pos, _)| pos);
        cycle.rotate_left(lowest);
        for &s in &cycle {
            removed[s] = true;
        }
        cycles.push(cycle);
    }
    if cycles.is_empty() {
        Ok(order)
    } else {
        Err(cycles)
    }
}

/// Moves every service whose callers are all removed into `order`, repeatedly.
fn peel(
    services: &[ServiceConfig],
    routes: &[RouteConfig],
    callers: &[Vec<usize>],
    removed: &mut [bool],
    order: &mut Vec<usize>,
) {
    let n = services.len();
    let mut pending: Vec<usize> = (0..n)
        .map(|i| callers[i].iter().filter(|&&c| !removed[c]).count())
        .collect();
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| !removed[i] && pending[i] == 0).collect();
    while let Some(i) = ready.pop_first() {
        removed[i] = true;
        order.push(i);
        for b in callees(services, routes, i) {
            if removed[b] {
                continue;
            }
            pending[b] = pending[b].saturating_sub(1);
            if pending[b] == 0 {
                ready.insert(b);
            }
        }
    }
}
