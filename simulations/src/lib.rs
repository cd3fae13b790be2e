//! Conclave's rehearsal ground: the fleet model, load, faults and labelled events that the
//! simulator (#5) drives the real runtime with, and the scripted arbiter demo.
//!
//! Status: the building blocks (fleet, load, events, faults) exist and are tested on
//! their own; the scenario files, the driver that runs the runtime against them, the
//! baselines and the report are not written yet.

pub mod driver;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod load;
pub mod report;
pub mod scenario;
mod scripted;
mod seed;

pub use scripted::{run_scripted, ScriptedRun};
pub use seed::Seed;
