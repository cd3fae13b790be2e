//! Whole-system tests, built as one binary (modules per area).

mod cli_demo;
mod cli_models;
mod cli_policy;
mod golden;
mod otel;
mod pulsar;
mod runtime;
mod simulate;
