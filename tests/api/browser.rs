//! The operator console in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core approves a pending decision, and the decision is enacted and audited.
//!
//! Needs `/usr/bin/chromium` (or `CONCLAVE_CHROMIUM`) and `npm ci` in tests/browser, both
//! done by `make test-browser`; skipped without them unless `CONCLAVE_REQUIRE_BROWSER=1`.

use std::path::PathBuf;
use std::process::Command;

use super::{audit_records, metrics, run_with_pending, Tokens};
use crate::golden::root;

fn chromium() -> PathBuf {
    std::env::var_os("CONCLAVE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

#[test]
fn approving_in_the_console_enacts_and_audits_the_decision() {
    let script = root().join("tests/browser/console.mjs");
    let ready = chromium().exists()
        && root()
            .join("tests/browser/node_modules/playwright-core")
            .exists();
    if !ready {
        assert!(
            std::env::var("CONCLAVE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "CONCLAVE_REQUIRE_BROWSER=1 but Chromium or playwright-core is missing (run `make test-browser`)"
        );
        eprintln!("skipped: no Chromium or playwright-core (run `make test-browser`)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let (mut run, id) = run_with_pending(dir.path(), &tokens);
    let shot = root().join("target/browser/console-approved.png");
    std::fs::create_dir_all(shot.parent().expect("parent")).expect("target/browser");
    let out = Command::new("node")
        .arg(&script)
        .current_dir(root().join("tests/browser"))
        .env("CONCLAVE_CONSOLE_URL", format!("{}/", run.base))
        .env("CONCLAVE_API_TOKEN", &tokens.operator)
        .env("CONCLAVE_DECISION_ID", &id)
        .env("CONCLAVE_SCREENSHOT", &shot)
        .env("CONCLAVE_CHROMIUM", chromium())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "console.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("console.mjs prints JSON");
    assert_eq!(result["approved"], id.as_str());
    assert_eq!(result["error"], "", "the console showed an error");
    assert_eq!(result["pageErrors"], serde_json::json!([]));
    assert!(
        result["row"]
            .as_str()
            .is_some_and(|r| r.contains("scale to 8")),
        "{result}"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a real screenshot"
    );

    run.send(&[metrics("checkout", 25, 0.4, 8)]);
    run.finish();
    let records = audit_records(&dir.path().join("audit.jsonl"));
    let approval = records
        .iter()
        .find(|r| r["type"] == "override" && r["kind"]["approve"]["decision"] == id.as_str())
        .expect("the approval is audited");
    assert_eq!(
        approval["by"],
        serde_json::json!({"name": "ana", "role": "operator"})
    );
    assert_eq!(approval["reason"], "approved in the browser test");
    let enacted = records.iter().find(|r| {
        r["type"] == "decision" && r["id"] == id.as_str() && r["outcome"]["kind"] == "enacted"
    });
    assert!(
        enacted.is_some(),
        "the decision is enacted in the audit log"
    );
    let actions = std::fs::read_to_string(dir.path().join("actions.log")).expect("actions log");
    assert!(
        actions.contains(&id),
        "the actuator carried it out: {actions}"
    );
}
