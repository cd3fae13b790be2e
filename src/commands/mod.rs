//! One module per command group; each returns the exit code or an error for `main`.

pub mod decisions;
pub mod demo;
pub mod models;
pub mod operator;
pub mod operator_cli;
pub mod policy;
pub mod publish;
mod reload;
pub mod replay;
pub mod run;
mod run_pulsar;
pub mod serve_api;
pub mod simulate;
