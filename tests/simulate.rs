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
    if ja != jb {
        std::fs::write(
            "/tmp/sim-a.json",
            serde_json::to_string_pretty(&a).expect("a"),
        )
        .ok();
        std::fs::write(
            "/tmp/sim-b.json",
            serde_json::to_string_pretty(&b).expect("b"),
        )
        .ok();
    }
    assert!(
        ja == jb,
        "two runs with the same seed gave different reports"
    );
    let none = &a.runs[0].totals;
    let policy = &a.runs[1].totals;
    eprintln!("none: {none:?}\npolicy: {policy:?}");
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
