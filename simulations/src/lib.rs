//! Conclave's rehearsal ground. The fleet simulator arrives with the simulation issue (#5);
//! until then this crate holds the scripted arbiter demo that the README's main job runs.

mod scripted;

pub use scripted::{run_scripted, ScriptedRun};
