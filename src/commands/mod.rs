//! One module per command group; each returns the exit code or an error for `main`.

pub mod decisions;
pub mod demo;
pub mod models;
pub mod policy;
pub mod publish;
pub mod run;
mod run_pulsar;
pub mod simulate;
