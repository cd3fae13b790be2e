//! The scaler agent end to end: telemetry in, proposals out, under a compiled policy.

use std::sync::Arc;

use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, TelemetryKind, SCHEMA_VERSION};
use conclave_runtime::{Action, Agent, Proposal, Proposals, Timestamp};

use super::{ScalerAgent, ScalerConfig, NAME};
use crate::scope::Scope;

const BASE_MS: i64 = 1_800_000_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + s * 1000)
}

/// A policy where the scaler acts on `web` and `api` (not `other`), bounds 1..=40 and
/// 2..=40 for `api`, 15 s windows; `settings` is the YAML flow mapping of the scaler.
fn policy_yaml(settings: &str) -> String {
    format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: scaler-test}}
spec:
  targets:
    - {{name: web, kind: service}}
    - {{name: api, kind: service}}
    - {{name: other, kind: service}}
  agents:
    scaler:
      mode: enforce
      targets: {{names: [web, api]}}
      settings: {settings}
  guardrails:
    defaults: {{min_replicas: 1, max_replicas: 40}}
    per_target:
      - select: {{names: [api]}}
        limits: {{min_replicas: 2}}
  arbiter:
    window: 15s
"#
    )
}

struct Harness {
    agent: ScalerAgent,
    out: Proposals,
}

impl Harness {
    fn new(settings: &str) -> Self {
        let policy = conclave_runtime::policy::compile_str(
            "scaler-test.yaml",
            &policy_yaml(settings),
            &crate::Catalog,
        )
        .expect("test policy compiles");
        let config =
            ScalerConfig::from_settings(policy.agent(NAME).expect("scaler configured").settings())
                .expect("settings valid");
        let scope = Scope::new(Arc::new(policy), NAME);
        Harness {
            agent: ScalerAgent::new(config, scope),
            out: Proposals::new(NAME),
        }
    }

    /// Reports `service` at `s` seconds with `replicas`, idle unless `set` says otherwise.
    fn metrics(
        &mut self,
        service: &str,
        s: i64,
        replicas: u32,
        set: impl FnOnce(&mut ServiceMetrics),
    ) {
        let mut m = ServiceMetrics {
            schema_version: SCHEMA_VERSION,
            service: service.to_string(),
            ts: t(s),
            rate_in: 0.0,
            rate_out: 0.0,
            backlog: 0,
            latency_p50_ms: 10.0,
            latency_p99_ms: 50.0,
            error_rate: 0.0,
            cpu: 0.7,
            replicas,
            region: None,
            dependencies: Vec::new(),
        };
        set(&mut m);
        self.agent.observe(&Telemetry::Metrics(m), &mut self.out);
    }

    fn cpu(&mut self, service: &str, s: i64, replicas: u32, cpu: f64) {
        self.metrics(service, s, replicas, |m| m.cpu = cpu);
    }

    fn tick(&mut self, s: i64) -> Vec<Proposal> {
        self.agent.tick(t(s), &mut self.out);
        self.out.take()
    }

    /// `(target, replicas)` of the proposals made at a tick at `s` seconds.
    fn scales(&mut self, s: i64) -> Vec<(String, u32)> {
        self.tick(s)
            .into_iter()
            .map(|p| match p.action {
                Action::Scale { replicas } => (p.target.to_string(), replicas),
                other => panic!("unexpected action {other}"),
            })
            .collect()
    }
}

fn scale(target: &str, replicas: u32) -> Vec<(String, u32)> {
    vec![(target.to_string(), replicas)]
}

fn note_of(p: &Proposal, name: &str) -> Option<String> {
    p.rationale
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.note.clone())
}

fn value_of(p: &Proposal, name: &str) -> Option<f64> {
    p.rationale.iter().find(|f| f.name == name).map(|f| f.value)
}

#[test]
fn wants_only_metrics() {
    let h = Harness::new("{}");
    assert!(h.agent.wants(TelemetryKind::Metrics));
    assert!(!h.agent.wants(TelemetryKind::Event));
    assert!(!h.agent.wants(TelemetryKind::Health));
}

struct OneTickCase {
    name: &'static str,
    settings: &'static str,
    target: &'static str,
    replicas: u32,
    cpu: f64,
    backlog: u64,
    want: Option<u32>,
}

const ONE_TICK: &[OneTickCase] = &[
    OneTickCase {
        name: "within_tolerance",
        settings: "{}",
        target: "web",
        replicas: 4,
        cpu: 0.75,
        backlog: 0,
        want: None,
    },
    OneTickCase {
        name: "cpu_0_9_of_0_7_at_4",
        settings: "{}",
        target: "web",
        replicas: 4,
        cpu: 0.9,
        backlog: 0,
        want: Some(6),
    },
    OneTickCase {
        name: "scale_up_capped_at_4_pods_per_15s",
        settings: "{}",
        target: "web",
        replicas: 2,
        cpu: 3.0,
        backlog: 0,
        want: Some(6),
    },
    OneTickCase {
        name: "scale_up_capped_at_100_percent_per_15s",
        settings: "{}",
        target: "web",
        replicas: 10,
        cpu: 3.0,
        backlog: 0,
        want: Some(20),
    },
    OneTickCase {
        name: "scale_up_capped_at_max_replicas",
        settings: "{}",
        target: "web",
        replicas: 30,
        cpu: 1.4,
        backlog: 0,
        want: Some(40),
    },
    OneTickCase {
        name: "above_max_is_brought_down_whatever_the_metric",
        settings: "{}",
        target: "web",
        replicas: 50,
        cpu: 2.0,
        backlog: 0,
        want: Some(40),
    },
    OneTickCase {
        name: "below_per_target_min_is_brought_up",
        settings: "{}",
        target: "api",
        replicas: 1,
        cpu: 0.0,
        backlog: 0,
        want: Some(2),
    },
    OneTickCase {
        name: "select_policy_min_takes_the_smaller_step",
        settings: "{behavior: {scale_up: {select_policy: min}}}",
        target: "web",
        replicas: 10,
        cpu: 3.0,
        backlog: 0,
        want: Some(14),
    },
    OneTickCase {
        name: "scale_up_disabled",
        settings: "{behavior: {scale_up: {select_policy: disabled}}}",
        target: "web",
        replicas: 4,
        cpu: 3.0,
        backlog: 0,
        want: None,
    },
    OneTickCase {
        name: "backlog_like_keda_pulsar",
        settings: "{metric: backlog}",
        target: "web",
        replicas: 4,
        cpu: 0.0,
        backlog: 55,
        want: Some(6),
    },
    OneTickCase {
        name: "backlog_within_tolerance",
        settings: "{metric: backlog, target: 20}",
        target: "web",
        replicas: 4,
        cpu: 0.0,
        backlog: 85,
        want: None,
    },
    OneTickCase {
        name: "target_outside_scope",
        settings: "{}",
        target: "other",
        replicas: 4,
        cpu: 3.0,
        backlog: 0,
        want: None,
    },
];

#[test]
fn one_tick_decisions() {
    for c in ONE_TICK {
        let mut h = Harness::new(c.settings);
        h.metrics(c.target, 10, c.replicas, |m| {
            m.cpu = c.cpu;
            m.backlog = c.backlog;
        });
        let want = c.want.map(|n| scale(c.target, n)).unwrap_or_default();
        assert_eq!(h.scales(15), want, "case {}", c.name);
    }
}

#[test]
fn proposal_carries_time_confidence_and_rationale() {
    let mut h = Harness::new("{}");
    h.cpu("web", 10, 4, 0.9);
    let props = h.tick(15);
    assert_eq!(props.len(), 1);
    let p = &props[0];
    assert_eq!(p.at, t(15));
    assert_eq!(p.agent, NAME);
    assert_eq!(
        p.confidence.get(),
        1.0,
        "ratio 1.29 is beyond twice the tolerance"
    );
    let names: Vec<&str> = p.rationale.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu",
            "target",
            "current_replicas",
            "ratio",
            "metric_replicas",
            "stabilized_replicas"
        ]
    );
    assert_eq!(value_of(p, "metric_replicas"), Some(6.0));
}

#[test]
fn confidence_is_lower_just_outside_the_tolerance_band() {
    let mut h = Harness::new("{}");
    // ratio 0.805 / 0.7 = 1.15: halfway between the band's edge and twice the tolerance.
    h.cpu("web", 10, 10, 0.805);
    let props = h.tick(15);
    assert_eq!(props.len(), 1);
    assert!(
        (props[0].confidence.get() - 0.75).abs() < 1e-6,
        "{:?}",
        props[0].confidence
    );
}

#[test]
fn rate_limited_proposal_names_the_limit() {
    let mut h = Harness::new("{}");
    h.cpu("web", 10, 2, 3.0);
    let props = h.tick(15);
    assert_eq!(
        note_of(&props[0], "limit").as_deref(),
        Some("scale_up_rate")
    );
    assert_eq!(value_of(&props[0], "metric_replicas"), Some(9.0));
}

#[test]
fn rate_limit_counts_replicas_added_within_the_period() {
    let mut h = Harness::new("{cold_start: 0s}");
    h.cpu("web", 0, 2, 3.0);
    assert_eq!(h.scales(0), scale("web", 6));
    h.cpu("web", 5, 6, 3.0);
    // 2 -> 6 was seen at 5 s: until 20 s the 15 s period started at 2 replicas, so 6 is
    // the cap; from 20 s on it starts at 6.
    assert_eq!(h.scales(15), vec![]);
    h.cpu("web", 19, 6, 3.0);
    assert_eq!(h.scales(19), vec![]);
    h.cpu("web", 20, 6, 3.0);
    assert_eq!(h.scales(20), scale("web", 12));
}

#[test]
fn scale_down_waits_for_the_300s_stabilization_window() {
    let mut h = Harness::new("{}");
    h.cpu("web", 0, 10, 0.7);
    assert_eq!(h.scales(0), vec![]);
    let mut first = None;
    for s in (15..=330).step_by(15) {
        h.cpu("web", s, 10, 0.2);
        let got = h.scales(s);
        if !got.is_empty() && first.is_none() {
            first = Some((s, got));
        }
    }
    // Recommendations of 10 at 0 s leave the window at 300 s; 0.2 / 0.7 × 10 -> 3.
    assert_eq!(first, Some((300, scale("web", 3))));
}

#[test]
fn a_fresh_agent_does_not_scale_down_before_its_own_window() {
    // HPA seeds the scale-down window with the current count on first sight.
    let mut h = Harness::new("{}");
    h.cpu("web", 0, 10, 0.2);
    assert_eq!(h.scales(0), vec![]);
    h.cpu("web", 285, 10, 0.2);
    assert_eq!(h.scales(285), vec![]);
    h.cpu("web", 300, 10, 0.2);
    assert_eq!(h.scales(300), scale("web", 3));
}

#[test]
fn scale_down_disabled_never_scales_down() {
    let mut h = Harness::new("{behavior: {scale_down: {select_policy: disabled}}}");
    for s in (0..=900).step_by(15) {
        h.cpu("web", s, 10, 0.1);
        assert_eq!(h.scales(s), vec![], "at {s} s");
    }
}

#[test]
fn scale_down_rate_limit_with_custom_policy() {
    let mut h = Harness::new(
        "{behavior: {scale_down: {stabilization: 0s, policies: [{type: pods, value: 2, period: 1m}]}}}",
    );
    h.cpu("web", 0, 10, 0.1);
    assert_eq!(h.scales(0), scale("web", 8));
    h.cpu("web", 10, 8, 0.1);
    assert_eq!(h.scales(15), vec![], "2 pods already removed this minute");
    h.cpu("web", 70, 8, 0.1);
    assert_eq!(h.scales(75), scale("web", 6));
}

#[test]
fn cold_start_holds_a_further_scale_up_unless_the_metric_worsens() {
    let mut h = Harness::new("{}");
    h.cpu("web", 10, 4, 0.9);
    assert_eq!(h.scales(15), scale("web", 6));
    // The scale-up is seen at 20 s; the new replicas serve from 50 s.
    h.cpu("web", 20, 6, 0.9);
    assert_eq!(
        h.scales(30),
        vec![],
        "same cpu while new replicas start: hold"
    );
    h.cpu("web", 40, 6, 0.9);
    assert_eq!(h.scales(40), vec![]);
    h.cpu("web", 44, 6, 0.95);
    let props = h.tick(45);
    assert_eq!(props.len(), 1, "worse cpu lifts the hold");
    assert_eq!(props[0].action, Action::Scale { replicas: 9 });
    assert_eq!(value_of(&props[0], "cold_start_reference"), Some(0.9));
}

#[test]
fn cold_start_hold_ends_after_cold_start() {
    let mut h = Harness::new("{cold_start: 20s}");
    h.cpu("web", 0, 4, 0.9);
    assert_eq!(h.scales(0), scale("web", 6));
    h.cpu("web", 5, 6, 0.9);
    assert_eq!(h.scales(15), vec![]);
    h.cpu("web", 25, 6, 0.9);
    assert_eq!(h.scales(25), scale("web", 8), "hold over at 25 s");
}

#[test]
fn stale_targets_get_no_proposals() {
    // Default staleness: three 15 s windows.
    let mut h = Harness::new("{}");
    h.cpu("web", 0, 4, 0.9);
    assert_eq!(h.scales(45), scale("web", 6), "45 s old is not yet stale");
    assert_eq!(h.scales(46), vec![]);

    let mut h = Harness::new("{stale_after: 10s}");
    h.cpu("web", 0, 4, 0.9);
    assert_eq!(h.scales(11), vec![]);
}

#[test]
fn targets_are_proposed_in_name_order() {
    let mut h = Harness::new("{}");
    h.cpu("web", 10, 4, 0.9);
    h.cpu("api", 10, 4, 0.9);
    assert_eq!(
        h.scales(15),
        vec![("api".to_string(), 6), ("web".to_string(), 6)]
    );
}

#[test]
fn latency_metric_scales_on_p99() {
    let mut h = Harness::new("{metric: latency_p99_ms, target: 200}");
    h.metrics("web", 10, 3, |m| m.latency_p99_ms = 400.0);
    assert_eq!(h.scales(15), scale("web", 6));
}

#[test]
fn rate_in_metric_targets_requests_per_replica() {
    let mut h = Harness::new("{metric: rate_in, target: 150}");
    h.metrics("web", 10, 4, |m| m.rate_in = 1000.0);
    assert_eq!(h.scales(15), scale("web", 7));
}

#[test]
fn settings_errors_reach_policy_compilation_with_their_path() {
    let errors = conclave_runtime::policy::compile_str(
        "scaler-test.yaml",
        &policy_yaml("{target: -0.5, behavior: {scale_down: {stabilization: 5 minutes}}}"),
        &crate::Catalog,
    )
    .expect_err("bad settings");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("spec.agents.scaler.settings.target")
                && e.contains("expected a number greater than 0, found `-0.5`")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|e| e
            .contains("spec.agents.scaler.settings.behavior.scale_down.stabilization")
            && e.contains("found `5 minutes`")),
        "{text:?}"
    );
}
