//! The simulator (#5) as far as it is built: scenario files, the driver with the real
//! runtime, and what the report says.

use std::sync::Arc;

use conclave_sim::driver::{simulate, RunKind};
use conclave_sim::report::Report;
use conclave_sim::scenario;

use crate::golden::root;

const FLASH_SALE: &str = "simulations/scenarios/ecommerce-flash-sale.yaml";

async fn flash_sale(out: &std::path::Path) -> Report {
    let s = scenario::load(&root().join(FLASH_SALE), &root().join("simulations/traces"))
        .expect("scenario");
    let policy = Arc::new(conclave_agents::load_policy(&s.policy).expect("policy"));
    simulate(
        &s,
        &policy,
        &[
            RunKind::None,
            RunKind::Policy,
            RunKind::Rules,
            RunKind::Oracle,
        ],
        out,
        None,
        &|_, _| {},
    )
    .await
    .expect("simulate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flash_sale_is_deterministic_and_the_policy_beats_doing_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = flash_sale(&dir.path().join("a")).await;
    let b = flash_sale(&dir.path().join("b")).await;
    let (ja, jb) = (
        serde_json::to_string(&a).expect("json"),
        serde_json::to_string(&b).expect("json"),
    );
    assert!(
        ja == jb,
        "two runs with the same seed gave different reports"
    );
    let none = &a.runs[0].totals;
    let policy = &a.runs[1].totals;
    assert!(
        none.slo_violation_minutes > 0.0,
        "the flash sale hurts when nothing acts"
    );
    assert!(policy.slo_violation_minutes < none.slo_violation_minutes);
    assert!(policy.dropped < none.dropped);
    // The flagship policy has models; `rules` is the same policy on its rules alone.
    assert_eq!(a.runs[2].name, "rules");
    let rules = &a.runs[2].totals;
    assert!(rules.slo_violation_minutes < none.slo_violation_minutes);
    let oracle = &a.runs[3].totals;
    assert_eq!(a.runs[3].name, "oracle");
    assert!(oracle.slo_violation_minutes < none.slo_violation_minutes);
    // The oracle only scales, with perfect foresight: the bound on what scaling alone can
    // do. It has no breaker, so it cannot stop the payment slowdown from spreading to
    // checkout and cart; the policy's breakers can, and it ends below the oracle.
    assert!(policy.slo_violation_minutes < oracle.slo_violation_minutes);
    assert_eq!(
        policy.model_fallbacks,
        Default::default(),
        "every model answered"
    );
    // The payment slowdown cascades when nothing acts (one incident of 20 minutes over
    // four services); under the learned policy what is left are 15 s blips, each a
    // half-open probe of the payments breaker.
    let longest = |run: usize| {
        a.runs[run]
            .incidents
            .iter()
            .map(|i| i.end_s - i.start_s)
            .fold(0.0, f64::max)
    };
    let cascade = &a.runs[0].incidents;
    assert!(
        cascade
            .iter()
            .any(|i| i.end_s - i.start_s >= 600.0 && i.services.len() >= 3),
        "{cascade:?}"
    );
    assert!(
        longest(1) <= 60.0,
        "longest incident under the policy: {} s",
        longest(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_acts_on_nothing_and_scores_what_the_agents_would_have_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = scenario::load(&root().join(FLASH_SALE), &root().join("simulations/traces"))
        .expect("scenario");
    let policy = Arc::new(conclave_agents::load_policy(&s.policy).expect("policy"));
    let r = simulate(
        &s,
        &policy,
        &[RunKind::None, RunKind::Shadow],
        dir.path(),
        None,
        &|_, _| {},
    )
    .await
    .expect("simulate");
    let (none, shadow) = (&r.runs[0].totals, &r.runs[1].totals);
    assert_eq!(r.runs[1].name, "shadow");
    // Nothing acted: the fleet did exactly what it did with no agent at all.
    assert_eq!(shadow.slo_violation_minutes, none.slo_violation_minutes);
    assert_eq!(shadow.replica_hours, none.replica_hours);
    assert_eq!(shadow.failed, none.failed);
    assert_eq!(shadow.decisions.get("enacted"), None);
    assert!(shadow.decisions.get("shadowed").copied().unwrap_or(0) > 0);
    let score = shadow.shadow.as_ref().expect("a shadow score");
    assert!(score.scale_decisions > 0);
    assert!((0.0..=1.0).contains(&score.direction_agreement));
    // The flash sale under-provisions the static fleet: the scaler's would-be replicas
    // are closer to the oracle's than the static count.
    assert!(
        score.mean_abs_error_would < score.mean_abs_error_static,
        "{score:?}"
    );
    assert!(none.shadow.is_none());
}

#[test]
fn broken_scenarios_get_located_errors() {
    let dir = root().join("tests/fixtures/broken-scenarios");
    let traces = root().join("simulations/traces");
    let messages = |name: &str| -> Vec<String> {
        scenario::load(&dir.join(name), &traces)
            .expect_err(name)
            .iter()
            .map(|e| e.to_string().replace(&format!("{}/", root().display()), ""))
            .collect()
    };
    let unknown = messages("unknown_field.yaml");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("tests/fixtures/broken-scenarios/unknown_field.yaml:10:3:"),
        "{unknown:?}"
    );
    assert!(unknown[0].contains("surprise"), "{unknown:?}");
    crate::golden::assert_golden(
        "scenario/semantic.txt",
        &(messages("semantic.yaml").join("\n") + "\n"),
    );
}

#[test]
fn a_recorded_run_replays_through_conclave_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("rec");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["simulate", FLASH_SALE, "--quiet", "--out"])
        .arg(dir.path().join("out"))
        .arg("--record")
        .arg(&record)
        .current_dir(root())
        .output()
        .expect("conclave simulate runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for run in ["none", "policy", "oracle"] {
        for file in ["telemetry.jsonl", "truth.jsonl", "fleet.jsonl"] {
            let len = std::fs::metadata(record.join(run).join(file)).map_or(0, |m| m.len());
            assert!(len > 0, "{run}/{file} is empty");
        }
    }
    // Every event label has a matching event in the telemetry the run sent.
    let truth = std::fs::read_to_string(record.join("none/truth.jsonl")).expect("truth");
    // (Poisoned lines may not be UTF-8: read bytes.)
    let telemetry = std::fs::read(record.join("none/telemetry.jsonl")).expect("telemetry");
    let telemetry = String::from_utf8_lossy(&telemetry);
    let events = telemetry
        .lines()
        .filter(|l| l.contains(r#""type":"event""#))
        .count();
    assert_eq!(events, truth.lines().count());
    // The policy run's telemetry replays in event time; the poisoned lines from the
    // broken-exporter fault are dead-lettered again, as many as in the simulation.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/report.json")).expect("report.json"),
    )
    .expect("json");
    let poisoned = report["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["name"] == "policy"))
        .and_then(|r| r["totals"]["dead_lettered"].as_u64())
        .expect("the policy run's dead letters");
    assert!(poisoned > 0, "the broken exporter poisons telemetry");
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args([
            "run",
            "--quiet",
            "--policy",
            "policies/ecommerce-learned.yaml",
            "--telemetry",
        ])
        .arg(record.join("policy/telemetry.jsonl"))
        .arg("--audit")
        .arg(dir.path().join("replay-audit.jsonl"))
        .arg("--dead-letters")
        .arg(dir.path().join("replay-dead.jsonl"))
        .arg("--actions")
        .arg(dir.path().join("replay-actions.log"))
        .current_dir(root())
        .output()
        .expect("conclave run runs");
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(", {poisoned} dead-lettered (")),
        "{stderr}"
    );
}

#[test]
fn every_shipped_scenario_and_its_policy_load() {
    let dir = root().join("simulations/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenarios")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".yaml") && !n.ends_with("-policy.yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        let s = scenario::load(&dir.join(&name), &root().join("simulations/traces"))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        conclave_agents::load_policy(&s.policy)
            .unwrap_or_else(|e| panic!("{name}: its policy: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_fault_is_rehearsed_and_the_rule_takes_over_for_its_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = scenario::load(
        &root().join("tests/fixtures/model-fault/scenario.yaml"),
        &root().join("simulations/traces"),
    )
    .expect("scenario");
    let policy = Arc::new(conclave_agents::load_policy(&s.policy).expect("policy"));
    let r = simulate(
        &s,
        &policy,
        &[RunKind::Policy],
        dir.path(),
        None,
        &|_, _| {},
    )
    .await
    .expect("simulate");
    // The fault: 11:20:00 to 11:25:00 (minutes 20 to 25 of the run).
    let (from, until) = (
        s.start.plus(std::time::Duration::from_secs(1200)),
        s.start.plus(std::time::Duration::from_secs(1500)),
    );
    let mut inside: Vec<String> = Vec::new();
    let mut outside = 0;
    for d in crate::golden::audit_decisions(&dir.path().join("policy-audit.jsonl")) {
        for p in d.proposals.iter().filter(|p| p.agent == "scaler") {
            if (from..until).contains(&p.at) {
                inside.push(p.fallback.clone().unwrap_or_default());
            } else {
                outside += 1;
                assert_eq!(p.fallback, None, "{} outside the fault", p.id);
                // Once a minute of rate_in is in, the forecast informs every proposal.
                if p.at >= s.start.plus(std::time::Duration::from_secs(60)) {
                    assert!(p.model.is_some(), "{} used the model", p.id);
                }
            }
        }
    }
    assert!(outside > 0, "the scaler proposed outside the fault");
    // Three timeouts open the model's circuit; then it is probed, times out again, and
    // is skipped while open.
    assert_eq!(
        inside.first().map(String::as_str),
        Some("timeout"),
        "{inside:?}"
    );
    assert!(
        inside.iter().all(|f| f == "timeout" || f == "circuit_open"),
        "{inside:?}"
    );
    assert!(inside.iter().any(|f| f == "circuit_open"), "{inside:?}");
    // The report counts exactly what the audit log holds.
    let count = |reason: &str| inside.iter().filter(|f| *f == reason).count() as u64;
    let expected: std::collections::BTreeMap<String, u64> = [
        ("scaler: circuit_open".to_string(), count("circuit_open")),
        ("scaler: timeout".to_string(), count("timeout")),
    ]
    .into();
    assert_eq!(r.runs[0].totals.model_fallbacks, expected);

    // `conclave decisions gap` over the same log: the fallbacks by reason, and every
    // model-informed proposal compared with the rule's answer it carries.
    let log = dir.path().join("policy-audit.jsonl");
    let scan = conclave_runtime::audit::AuditReader::read_all(&log).expect("audit");
    let gap = conclave_runtime::audit::GapReport::from_lines(&scan.lines);
    let scaler = gap.agents.get("scaler").expect("the scaler had a model");
    let fallbacks: std::collections::BTreeMap<String, u64> = [
        ("circuit_open".to_string(), count("circuit_open")),
        ("timeout".to_string(), count("timeout")),
    ]
    .into();
    assert_eq!(scaler.fallbacks, fallbacks);
    let decisions = crate::golden::audit_decisions(&log);
    let with_model: Vec<_> = decisions
        .iter()
        .flat_map(|d| &d.proposals)
        .filter(|p| p.agent == "scaler" && p.model.is_some())
        .collect();
    assert!(
        with_model.iter().all(|p| p.rule.is_some()),
        "every model proposal carries the rule's answer"
    );
    assert_eq!(scaler.compared, with_model.len() as u64);
    assert!(
        scaler.compared > 0,
        "the model informed proposals outside the fault"
    );
    let agreed = with_model
        .iter()
        .filter(|p| p.rule.as_ref() == Some(&p.action))
        .count() as u64;
    assert_eq!(scaler.agreed, agreed);
    assert!(scaler.disagreements.iter().all(|x| x.model != x.rule));
    let first = gap.render().lines().next().map(str::to_owned);
    assert_eq!(
        first.as_deref(),
        Some(
            format!(
                "scaler: {} proposals with a model; the rule alone would have proposed the same {} ({:.1} %), something else {} ({:.1} %)",
                scaler.compared,
                agreed,
                100.0 * agreed as f64 / scaler.compared as f64,
                scaler.compared - agreed,
                100.0 * (scaler.compared - agreed) as f64 / scaler.compared as f64
            )
            .as_str()
        )
    );
}
