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
        &[RunKind::None, RunKind::Policy, RunKind::Oracle],
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
    let oracle = &a.runs[2].totals;
    assert_eq!(a.runs[2].name, "oracle");
    assert!(oracle.slo_violation_minutes < none.slo_violation_minutes);
    assert!(oracle.slo_violation_minutes <= policy.slo_violation_minutes);
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
    // The policy run's telemetry replays in event time; the 300 poisoned lines from the
    // broken-exporter fault are dead-lettered again.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args([
            "run",
            "--quiet",
            "--policy",
            "policies/ecommerce.yaml",
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
    assert!(stderr.contains(", 300 dead-lettered ("), "{stderr}");
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
