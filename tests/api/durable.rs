//! Overrides survive a restart (the journal) and lapse when their expiry passes.

use super::{metrics, ApiRun, Tokens, POLICY};

#[test]
fn standing_overrides_survive_a_restart_and_lapse_at_their_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    run.send(&[metrics("payments", 0, 0.5, 4)]);
    run.wait_clock(&tokens.viewer, "2026-11-29T10:00:00.000Z");
    for (path, body) in [
        (
            "/api/v1/freeze",
            r#"{"reason": "change freeze", "for": "1h"}"#,
        ),
        ("/api/v1/agents/breaker/pause", r#"{"reason": "flapping"}"#),
        (
            "/api/v1/targets/payments/pin",
            r#"{"replicas": 5, "reason": "batch", "for": "30s"}"#,
        ),
        ("/api/v1/agents/scaler/pause", r#"{"reason": "briefly"}"#),
        ("/api/v1/agents/scaler/resume", r#"{"reason": "done"}"#),
    ] {
        let (status, v) = run.post(path, Some(&tokens.operator), body);
        assert_eq!(status, 200, "{path}: {v}");
    }
    run.finish();

    // A new process on the same journal: freeze, breaker pause and pin are back; the
    // scaler's pause was lifted before the restart and stays lifted.
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    let restored = run.wait_stderr("overrides: restored ");
    assert!(
        restored.starts_with("overrides: restored 3 from `"),
        "{restored}"
    );
    for kind in [": freeze (ov-", ", pause (ov-", ", pin (ov-"] {
        assert!(restored.contains(kind), "{restored}");
    }
    let (_, o) = run.get("/api/v1/overrides", Some(&tokens.viewer));
    assert_eq!(o["frozen"], true);
    let reasons: Vec<&str> = o["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|x| x["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["change freeze", "flapping", "batch"]);
    // Event time moves past the pin's expiry (10:00:30): it lapses; the freeze holds.
    run.send(&[
        metrics("payments", 20, 0.5, 5),
        metrics("payments", 41, 0.5, 5),
    ]);
    let o = run.wait_for(&tokens.viewer, "/api/v1/overrides", |v| {
        v["overrides"].as_array().is_some_and(|a| a.len() == 2)
    });
    let reasons: Vec<&str> = o["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|x| x["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["change freeze", "flapping"]);
    run.finish();

    // The journal was compacted at the second start to what stood then.
    let journal = std::fs::read_to_string(dir.path().join("overrides.jsonl")).expect("journal");
    assert_eq!(journal.lines().count(), 3, "{journal}");
}

#[test]
fn a_corrupt_journal_stops_the_start_with_the_line_at_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    std::fs::write(dir.path().join("overrides.jsonl"), "{\"id\": \"x\"}\n").expect("write");
    let stderr = super::refused_start(dir.path(), &tokens, &[]);
    assert_eq!(
        stderr,
        format!(
            "error: override journal `{}` line 1: missing field `kind` at line 1 column 11",
            dir.path().join("overrides.jsonl").display()
        )
    );
}
