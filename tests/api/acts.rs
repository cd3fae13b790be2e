//! Acting through the API: approve, deny, veto, freeze, pause, modes and pins, each
//! enacted (or not) exactly as the arbiter says and audited with who, when and why.

use std::io::{BufRead, BufReader};

use serde_json::Value;

use super::{audit_records, metrics, run_with_pending, ApiRun, Tokens, POLICY};

#[test]
fn an_operator_approves_a_pending_scale_up_and_it_is_enacted_and_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let (mut run, id) = run_with_pending(dir.path(), &tokens);
    assert_eq!(id, "d-scaler-checkout-1795946410000");

    let (status, pending) = run.get("/api/v1/approvals", Some(&tokens.viewer));
    assert_eq!(status, 200);
    assert_eq!(pending[0]["rule"], "checkout-scale-up");
    assert_eq!(pending[0]["roles"], serde_json::json!(["operator"]));
    assert_eq!(pending[0]["users"], serde_json::json!(["ana"]));
    assert_eq!(pending[0]["deadline"], "2026-11-29T10:10:10.000Z");
    assert_eq!(pending[0]["on_timeout"], "reject");
    assert_eq!(
        pending[0]["decision"]["action"],
        serde_json::json!({"scale": {"replicas": 8}})
    );

    let (status, answer) = run.post(
        &format!("/api/v1/decisions/{id}/approve"),
        Some(&tokens.operator),
        r#"{"reason": "sale starts in five minutes"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let oid = answer["override"]["id"]
        .as_str()
        .expect("override id")
        .to_string();
    assert_eq!(
        answer["override"]["by"],
        serde_json::json!({"name": "ana", "role": "operator"})
    );
    let d = &answer["decisions"][0];
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["outcome"]["kind"], "enacted");
    let reasons: Vec<&str> = d["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["message"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons.contains(
            &format!("approved by ana (operator) ({oid}): sale starts in five minutes").as_str()
        ),
        "{reasons:?}"
    );
    // Nothing is pending any more, and a second answer finds nothing to answer.
    let (_, pending) = run.get("/api/v1/approvals", Some(&tokens.viewer));
    assert_eq!(pending, serde_json::json!([]));
    let (status, again) = run.post(
        &format!("/api/v1/decisions/{id}/deny"),
        Some(&tokens.operator),
        r#"{"reason": "too late"}"#,
    );
    let msg = again["error"].as_str().unwrap_or("");
    assert_eq!(status, 404, "{again}");
    assert!(
        msg.starts_with("override `ov-")
            && msg.ends_with(&format!("`: no pending decision `{id}`")),
        "{msg}"
    );

    run.send(&[metrics("checkout", 25, 0.4, 8)]);
    let stderr = run.finish();
    assert!(stderr.iter().any(|l| l.starts_with("done: ")), "{stderr:?}");
    // The audit log: pending, then the approval (who, why), then the enacted decision.
    let records = audit_records(&dir.path().join("audit.jsonl"));
    let about: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["id"] == id.as_str() || r["kind"]["approve"]["decision"] == id.as_str())
        .map(|r| {
            (
                r["type"].as_str().unwrap_or("").to_string(),
                r["outcome"]["kind"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want = [
        ("decision", "pending"),
        ("override", "-"),
        ("decision", "enacted"),
    ];
    assert_eq!(about, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let o = records
        .iter()
        .find(|r| r["type"] == "override")
        .expect("override audited");
    assert_eq!(o["reason"], "sale starts in five minutes");
    assert_eq!(o["by"]["name"], "ana");
    assert_eq!(
        o["at"], "2026-11-29T10:00:12.000Z",
        "stamped with the runtime's clock"
    );
    let actions = std::fs::read_to_string(dir.path().join("actions.log")).expect("actions log");
    assert!(
        actions.contains(&id) && actions.contains("scale to 8 replicas"),
        "{actions}"
    );
}

#[test]
fn deny_and_veto_reject_and_the_approval_rule_decides_who_may_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let (run, id) = run_with_pending(dir.path(), &tokens);
    // otto is an operator, and the rule lists the operator role, so he may answer; a
    // viewer may not even try.
    let (status, body) = run.post(
        &format!("/api/v1/decisions/{id}/deny"),
        Some(&tokens.viewer),
        r#"{"reason": "no"}"#,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (
            403,
            Some("role `viewer` may not deny a decision (needs `operator`)")
        )
    );
    let (status, body) = run.post(
        &format!("/api/v1/decisions/{id}/deny"),
        Some(&tokens.other_operator),
        r#"{"reason": "budget freeze"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decisions"][0]["outcome"]["kind"], "rejected");
    let last = body["decisions"][0]["reasons"]
        .as_array()
        .and_then(|r| r.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["code"], "denied");
    drop(run);

    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let (run, id) = run_with_pending(dir.path(), &tokens);
    let (status, body) = run.post(
        &format!("/api/v1/decisions/{id}/veto"),
        Some(&tokens.admin),
        r#"{"reason": "incident open"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decisions"][0]["outcome"]["kind"], "overridden");
}

#[test]
fn freeze_pause_mode_and_pin_change_what_the_arbiter_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    run.send(&[metrics("payments", 0, 0.5, 4)]);
    run.wait_clock(&tokens.viewer, "2026-11-29T10:00:00.000Z");
    let body = r#"{"reason": "game day", "for": "1h"}"#;
    let (status, frozen) = run.post("/api/v1/freeze", Some(&tokens.operator), body);
    assert_eq!(status, 200, "{frozen}");
    assert_eq!(frozen["override"]["kind"], "freeze");
    assert_eq!(
        frozen["override"]["until"], "2026-11-29T11:00:00.000Z",
        "an hour on the runtime's clock"
    );

    let (status, m) = run.put(
        "/api/v1/agents/breaker/mode",
        Some(&tokens.admin),
        r#"{"mode": "enforce", "reason": "trial"}"#,
    );
    assert_eq!(status, 200, "{m}");
    let (status, p) = run.post(
        "/api/v1/agents/scaler/pause",
        Some(&tokens.operator),
        r#"{"reason": "noisy"}"#,
    );
    assert_eq!(status, 200, "{p}");
    let (status, pin) = run.post(
        "/api/v1/targets/payments/pin",
        Some(&tokens.operator),
        r#"{"replicas": 6, "reason": "hold for the batch run", "for": "20s"}"#,
    );
    assert_eq!(status, 200, "{pin}");
    assert_eq!(
        pin["decisions"][0]["action"],
        serde_json::json!({"scale": {"replicas": 6}})
    );
    assert_eq!(pin["decisions"][0]["outcome"]["kind"], "enacted");

    let (_, agents) = run.get("/api/v1/agents", Some(&tokens.viewer));
    let summary: Vec<(String, String, String, bool)> = agents
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").into(),
                a["mode"].as_str().unwrap_or("").into(),
                a["policy_mode"].as_str().unwrap_or("").into(),
                a["paused"] == Value::Bool(true),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("breaker".into(), "enforce".into(), "shadow".into(), false),
            ("scaler".into(), "enforce".into(), "enforce".into(), true),
        ]
    );
    let (_, o) = run.get("/api/v1/overrides", Some(&tokens.viewer));
    assert_eq!(o["frozen"], true);
    let kinds: Vec<String> = o["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|x| kind_name(&x["kind"]))
        .collect();
    assert_eq!(kinds, ["freeze", "pause", "pin", "set_mode"]);

    // The pin lapses after 20 s of event time; the freeze does not.
    run.send(&[
        metrics("payments", 10, 0.5, 6),
        metrics("payments", 31, 0.5, 6),
    ]);
    let o = run.wait_for(&tokens.viewer, "/api/v1/overrides", |v| {
        v["overrides"].as_array().is_some_and(|a| a.len() == 3)
    });
    let kinds: Vec<String> = o["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|x| kind_name(&x["kind"]))
        .collect();
    assert_eq!(kinds, ["freeze", "pause", "set_mode"]);
    let (status, _) = run.post(
        "/api/v1/unfreeze",
        Some(&tokens.operator),
        r#"{"reason": "game day over"}"#,
    );
    assert_eq!(status, 200);
    let (_, o) = run.get("/api/v1/overrides", Some(&tokens.viewer));
    assert_eq!(o["frozen"], false);
    run.finish();
}

fn kind_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

#[test]
fn the_decision_stream_sends_each_decision_as_it_is_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let res = agent
        .get(&format!("{}/api/v1/decisions/stream", run.base))
        .header("Authorization", &format!("Bearer {}", tokens.viewer))
        .call()
        .expect("stream opens");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    run.send(&[
        metrics("checkout", 0, 0.9, 4),
        metrics("checkout", 12, 0.9, 4),
    ]);
    let mut lines = BufReader::new(res.into_body().into_reader()).lines();
    let mut event = String::new();
    let data = loop {
        let line = lines.next().expect("stream open").expect("stream readable");
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        }
        if let Some(d) = line.strip_prefix("data: ") {
            if event == "decision" {
                break d.to_string();
            }
        }
    };
    let d: Value = serde_json::from_str(&data).expect("decision JSON");
    assert_eq!(d["id"], "d-scaler-checkout-1795946410000");
    assert_eq!(d["outcome"]["kind"], "pending");
    // The same decision is in the history, and filters apply.
    let (_, found) = run.get(
        "/api/v1/decisions?target=checkout&outcome=pending",
        Some(&tokens.viewer),
    );
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let (_, none) = run.get("/api/v1/decisions?agent=breaker", Some(&tokens.viewer));
    assert_eq!(none, serde_json::json!([]));
    let (status, one) = run.get(
        "/api/v1/decisions/d-scaler-checkout-1795946410000",
        Some(&tokens.viewer),
    );
    assert_eq!((status, one[0]["agent"].as_str()), (200, Some("scaler")));
    run.finish();
}
