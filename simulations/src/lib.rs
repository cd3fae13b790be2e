//! Conclave's rehearsal ground: `conclave simulate` runs the real runtime — agents,
//! arbiter, policy, audit log — on the simulated clock against a fleet model, under
//! synthetic or recorded load, faults and labelled events, next to baselines, and reports
//! the comparison.
//!
//! - `scenario`: scenario files (strict YAML, located errors);
//! - `fleet`: services, replicas, cold start, queueing, dependencies, retries, cost;
//! - `load`, `faults`, `events`: what the fleet is put through, deterministic per seed;
//! - `driver`: one run per baseline on identical inputs (`none`, `policy`, `oracle`);
//! - `oracle`: the perfect-foresight scaler's plan;
//! - `report`: the data model, the terminal table and the HTML page;
//! - `scripted`: the scripted arbiter demo.

pub mod driver;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod load;
pub mod oracle;
pub mod report;
pub mod scenario;
mod scripted;
mod seed;

pub use scripted::{run_scripted, ScriptedRun};
pub use seed::Seed;
