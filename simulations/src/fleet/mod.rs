//! The simulated fleet (#5): services with replicas, cold starts, queues, a dependency
//! graph, regions and cost, stepped in fluid time. It emits the [`ServiceMetrics`] a real
//! fleet would and applies the actuator's actions, so the real runtime can be driven
//! against it. Deterministic for a seed, and cheap: a step costs O(services + dependency
//! edges), with no per-request simulation, so a simulated day of 200 services at one
//! second per step runs in seconds.
//!
//! # The model
//!
//! A step covers `(now − h, now]`. Load flows down the dependency graph (callers before
//! callees, in topological order); outcomes flow back up (callees before callers).
//!
//! **Load.** Arrivals at a service are its external load plus, for every caller, the
//! caller's completions per second × `calls_per_request` × the share the breaker passes
//! (1 closed, 0.1 half-open, 0 open) × the expected attempts `(1 − p^A)/(1 − p)`, where `p`
//! is the share of attempts that failed last step and `A` the caller's `retry_attempts`:
//! a failing dependency multiplies its own load by up to `A`. A route splits what is sent
//! to it over its backends by weight.
//!
//! **Queue (fluid).** With `n` serving replicas (ready ones, plus a cold-starting replica
//! for the part of the step after its cold start ends), CPU capacity is
//! `n · capacity_per_replica / slowdown`. When `max_in_flight_per_replica` is set, a
//! request also holds one of `n · max_in_flight` slots for its whole busy time `B` (own
//! work plus waiting on dependencies, as measured last step), so capacity is the smaller
//! of the CPU's and `slots / B` (Little's law): a slow dependency starves its callers.
//! Each step: a `shed` share of arrivals is refused; the rest joins the backlog;
//! `min(backlog, capacity · h)` is processed; a backlog above `max_queue` is dropped.
//!
//! **Outcomes.** Each dependency is seen through its p50/p99 this step. An attempt fails
//! when the callee errs (its error rate, which counts its shed and dropped work) or runs
//! past the caller's timeout (the share of a lognormal through p50 and p99 above the
//! timeout): `p = 1 − (1 − e)(1 − P(latency > timeout))`. A call fails when all `A`
//! attempts do, or at once when the breaker rejects it; a request fails when any of its
//! calls does, or with the injected error rate. Processed requests split into served and
//! failed by that probability. The error rate reported is
//! `(failed + shed + overflowed) / (processed + shed + overflowed)`.
//!
//! **Latency.** `p50 = own + deps + wait₅₀ + backlog/capacity`, and
//! `p99 = 1.5·own + deps + tail + wait₉₉ + backlog/capacity`, where `own` is
//! `base_latency_ms · slowdown`, `deps` sums each call's mean time (expected attempts ×
//! latency capped at the timeout), `tail` is the largest extra of one dependency's p99
//! call (retries included) over its mean, and `wait_q` is the M/M/c waiting-time quantile
//! with Sakasegawa's approximation of Erlang C, scaled by Allen–Cunneen for narrow
//! service times (see `queueing.rs`). Utilization in that formula stops at 0.99; past it the
//! backlog term takes over. `cpu` is completions over CPU capacity.
//!
//! **Regions, cost.** Services in a region that is down fail all arrivals and lose their
//! backlog; callers see immediate errors. Every running replica, cold-starting ones too,
//! costs `cost_per_replica_hour`.
//!
//! **Noise.** The only randomness: reported latencies are multiplied by `1 ± 2 %`, drawn
//! from a ChaCha8 generator seeded by the fleet's seed, in service-name order. The
//! dynamics never see the noise.
//!
//! # Simplifications
//!
//! One class of request per service; a request makes all its calls (a failed call does
//! not spare the later ones), one after the other; p99s of several dependencies combine
//! as the sum of means plus the worst single tail; callers react to a dependency's retry
//! and capacity effects one step late; a breaker protects a service for all its callers
//! alike; timed-out work is still done by the callee.
//!
//! Timed-out work that is still done is what makes retry storms *metastable*, as in real
//! fleets: once a callee's queue is longer than its callers' timeout, every attempt fails
//! and is retried, so its load stays multiplied after the fault that started it is gone.
//! Something has to intervene (shed, open the breaker, add capacity) before it recovers.

mod actuator;
mod error;
mod model;
mod queueing;
mod spec;
#[cfg(test)]
mod tests;

pub use actuator::{ActionQueue, FleetActuator, QueuedAction};
pub use error::{FleetError, SpecProblem};
pub use model::{Fleet, Ledger, ServiceSnapshot};
pub use spec::{DependencySpec, FleetSpec, ServiceSpec};

#[cfg(doc)]
use conclave_runtime::telemetry::ServiceMetrics;
