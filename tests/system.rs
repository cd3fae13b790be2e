//! Whole-system tests, built as one binary (modules per area).

mod api;
mod cli_demo;
mod cli_models;
mod cli_policy;
mod golden;
mod metrics;
mod otel;
mod pulsar;
mod pulsar_auth;
mod pulsar_budget;
mod pulsar_topics;
mod runtime;
mod simulate;
