//! What can go wrong building or driving the fleet: [`FleetError`], and the spec problems
//! [`SpecProblem`] that [`Fleet::try_new`](super::Fleet::try_new) collects all at once.

use std::collections::BTreeMap;
use std::fmt;

use conclave_runtime::TargetKind;

/// Why the fleet refused a spec, a step, an action or a fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// The spec has problems; every one found is listed.
    #[error("invalid fleet spec: {}", ProblemList(.problems))]
    InvalidSpec {
        /// Every problem, in spec order.
        problems: Vec<SpecProblem>,
    },
    /// An action names a target the fleet does not have (of the kind the action needs).
    #[error("no {} `{target}` in the fleet (a {action} action needs one)", .expected.as_str())]
    UnknownTarget {
        /// The target named.
        target: String,
        /// The kind of target the action needs.
        expected: TargetKind,
        /// The action's kind, as in policies (`scale`, `route`).
        action: &'static str,
    },
    /// A load or fault names a service (or route) the fleet does not have.
    #[error("no service or route `{name}` in the fleet")]
    UnknownService {
        /// The name given.
        name: String,
    },
    /// A fault names a region no service is in.
    #[error("no region `{region}` in the fleet (regions: {})", NameList(.known))]
    UnknownRegion {
        /// The region given.
        region: String,
        /// The fleet's regions.
        known: Vec<String>,
    },
    /// Route weights name a service that is not a backend of the route.
    #[error("route `{route}`: `{backend}` is not a backend (backends: {})", NameList(.backends))]
    UnknownBackend {
        /// The route.
        route: String,
        /// The name given as a backend.
        backend: String,
        /// The route's backends.
        backends: Vec<String>,
    },
    /// Route weights that cannot be normalized.
    #[error("route `{route}`: expected finite, non-negative weights with a positive sum, found {}", WeightList(.weights))]
    InvalidWeights {
        /// The route.
        route: String,
        /// The weights given.
        weights: BTreeMap<String, f64>,
    },
    /// A load rate or fault parameter outside its domain.
    #[error("`{name}`: expected {what} in {expected}, found `{found}`")]
    OutOfRange {
        /// The service or region it applies to.
        name: String,
        /// What the value is, with its article (`a load in req/s`, `an error rate`).
        what: &'static str,
        /// The accepted range.
        expected: &'static str,
        /// The value given.
        found: f64,
    },
    /// [`Fleet::step`](super::Fleet::step) was asked to advance by nothing.
    #[error("expected a step longer than zero, found `0s`")]
    ZeroStep,
}

/// One problem in a [`FleetSpec`](super::FleetSpec). Paths name the service (or route) by
/// name, and the field as written in the spec.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecProblem {
    /// `services` is empty.
    NoServices,
    /// A service with an empty name.
    EmptyName {
        /// Its position in `services`.
        index: usize,
    },
    /// A name used by two services, or by a service and a route.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A service's field outside its range.
    OutOfRange {
        /// The service.
        service: String,
        /// The field, as written (`capacity_per_replica`, `dependencies[0].timeout_ms`).
        field: String,
        /// The accepted range.
        expected: &'static str,
        /// The value found, as written.
        found: String,
    },
    /// `initial_replicas` below `min_replicas`.
    ReplicasBelowMin {
        /// The service.
        service: String,
        /// `initial_replicas`.
        initial: u32,
        /// `min_replicas`.
        min: u32,
    },
    /// A dependency naming neither a service nor a route.
    UnknownDependency {
        /// The calling service.
        service: String,
        /// Position in its `dependencies`.
        index: usize,
        /// The name given.
        dependency: String,
    },
    /// A service calling itself, directly or through a route.
    SelfDependency {
        /// The service.
        service: String,
    },
    /// A service reaching the same backend twice (directly and through a route, or
    /// through two routes): its calls to it could not be told apart in telemetry.
    DuplicateDependency {
        /// The calling service.
        service: String,
        /// The backend reached twice.
        dependency: String,
    },
    /// A route without backends.
    EmptyRoute {
        /// The route.
        route: String,
    },
    /// A route backend that is not a service.
    UnknownBackend {
        /// The route.
        route: String,
        /// The name given.
        backend: String,
    },
    /// A backend listed twice in one route.
    DuplicateBackend {
        /// The route.
        route: String,
        /// The backend.
        backend: String,
    },
    /// Services calling each other in a loop; load would never settle.
    Cycle {
        /// The services in call order, starting at the alphabetically first; the first
        /// calls the second, …, and the last calls the first.
        services: Vec<String>,
    },
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecProblem::NoServices => {
                f.write_str("services: expected at least one service, found none")
            }
            SpecProblem::EmptyName { index } => {
                write!(f, "services[{index}].name: expected a name, found ``")
            }
            SpecProblem::DuplicateName { name } => write!(
                f,
                "`{name}`: expected each service and route name once, found it again"
            ),
            SpecProblem::OutOfRange {
                service,
                field,
                expected,
                found,
            } => write!(
                f,
                "services `{service}`: {field}: expected {expected}, found `{found}`"
            ),
            SpecProblem::ReplicasBelowMin {
                service,
                initial,
                min,
            } => write!(
                f,
                "services `{service}`: initial_replicas: expected at least min_replicas ({min}), found `{initial}`"
            ),
            SpecProblem::UnknownDependency {
                service,
                index,
                dependency,
            } => write!(
                f,
                "services `{service}`: dependencies[{index}].service: expected a service or route of the fleet, found `{dependency}`"
            ),
            SpecProblem::SelfDependency { service } => write!(
                f,
                "services `{service}`: dependencies: expected other services, found `{service}` itself"
            ),
            SpecProblem::DuplicateDependency {
                service,
                dependency,
            } => write!(
                f,
                "services `{service}`: dependencies: expected each backend once, found `{dependency}` twice (directly or through a route)"
            ),
            SpecProblem::EmptyRoute { route } => {
                write!(f, "routes `{route}`: expected at least one backend, found none")
            }
            SpecProblem::UnknownBackend { route, backend } => write!(
                f,
                "routes `{route}`: expected services as backends, found `{backend}`"
            ),
            SpecProblem::DuplicateBackend { route, backend } => write!(
                f,
                "routes `{route}`: expected each backend once, found `{backend}` twice"
            ),
            SpecProblem::Cycle { services } => {
                write!(f, "dependencies: expected no cycles, found ")?;
                for s in services {
                    write!(f, "`{s}` → ")?;
                }
                match services.first() {
                    Some(first) => write!(f, "`{first}`"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `; `-separated problems.
struct ProblemList<'a>(&'a [SpecProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// `a`, `b` (or `none`).
struct NameList<'a>(&'a [String]);

impl fmt::Display for NameList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{n}`")?;
        }
        Ok(())
    }
}

/// `{a: 1, b: 0}`.
struct WeightList<'a>(&'a BTreeMap<String, f64>);

impl fmt::Display for WeightList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`{")?;
        for (i, (b, w)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}: {w}")?;
        }
        f.write_str("}`")
    }
}
