//! Bad input and abuse: every refusal has the right status and says what is wrong, and
//! the runtime keeps deciding through all of it with nothing applied that was refused.

use serde_json::Value;

use super::{audit_records, call, metrics, ApiRun, Tokens, POLICY};
use crate::golden::audit_decisions;

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("<no error field>")
}

#[test]
fn refusals_say_what_is_wrong_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    run.send(&[metrics("checkout", 0, 0.5, 4)]);
    run.wait_clock(&tokens.viewer, "2026-11-29T10:00:00.000Z");
    let op = Some(tokens.operator.as_str());
    // The operator's token with its last character changed (to one it is not: tokens are
    // random, and a fixed replacement was the token itself one time in 16).
    let (head, last) = tokens.operator.split_at(tokens.operator.len() - 1);
    let bad_secret = format!("{head}{}", if last == "0" { "1" } else { "0" });
    // (method, path, token, body, status, message)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/agents", None, "", 401, "missing bearer token (send `Authorization: Bearer <token>`)"),
        ("GET", "/api/v1/agents", Some("not-ours"), "", 401, "malformed bearer token (expected `conclave_<id>_<secret>`)"),
        ("GET", "/api/v1/agents", Some(bad_secret.as_str()), "", 401, "invalid bearer token"),
        ("POST", "/api/v1/freeze", Some(tokens.viewer.as_str()), r#"{"reason": "x"}"#, 403, "role `viewer` may not freeze the arbiter (needs `operator`)"),
        ("PUT", "/api/v1/agents/scaler/mode", op, r#"{"mode": "shadow", "reason": "x"}"#, 403, "role `operator` may not change an agent's mode (needs `admin`)"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "x""#, 400, "Failed to parse the request body as JSON: EOF while parsing an object at line 1 column 14"),
        ("POST", "/api/v1/freeze", op, r#"{}"#, 400, "Failed to deserialize the JSON body into the target type: missing field `reason` at line 1 column 2"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "x", "until": "2026-11-29T09:00:00Z"}"#, 400, "override `OID`: expiry 2026-11-29T09:00:00.000Z is not after now (2026-11-29T10:00:00.000Z)"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "x", "until": "2026-11-29T11:00:00Z", "for": "1h"}"#, 400, "give `until` or `for`, not both"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "x", "for": "soon"}"#, 400, "`for`: `soon` is not a duration like `30m` (expected number at 0)"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "  "}"#, 400, "override `OID`: a reason is required"),
        ("POST", "/api/v1/freeze", op, r#"{"reason": "x", "by": "root"}"#, 400, "Failed to deserialize the JSON body into the target type: by: unknown field `by`, expected one of `reason`, `until`, `for` at line 1 column 20"),
        ("POST", "/api/v1/agents/autoscaler/pause", op, r#"{"reason": "x"}"#, 400, "override `OID`: unknown agent `autoscaler` (expected one of `breaker`, `scaler`)"),
        ("POST", "/api/v1/targets/checkout/pin", op, r#"{"replicas": 1, "reason": "x"}"#, 400, "override `OID`: pin of `checkout` to 1 replicas is outside its bounds 2..=20"),
        ("POST", "/api/v1/targets/checkout/pin", op, r#"{"replicas": -3, "reason": "x"}"#, 400, "Failed to deserialize the JSON body into the target type: replicas: invalid value: integer `-3`, expected u32 at line 1 column 15"),
        ("POST", "/api/v1/decisions/d-nope/approve", op, r#"{"reason": "x"}"#, 404, "override `OID`: no pending decision `d-nope`"),
        ("GET", "/api/v1/decisions/d-nope", op, "", 404, "no decision `d-nope` among the recent ones (the audit log has them all: `conclave decisions explain d-nope`)"),
        ("GET", "/api/v1/decisions?limit=many", op, "", 400, "Failed to deserialize query string: limit: invalid digit found in string"),
        ("GET", "/api/v1/nothing-here", op, "", 404, "no such endpoint (see /api/v1/openapi.json)"),
    ];
    for (method, path, token, body, status, message) in cases {
        let (got, v) = call(
            &run.base,
            method,
            path,
            token,
            (method != "GET").then_some(body),
        );
        // Override ids are random: compare the message with the id masked.
        let text = error(&v);
        let masked = match text.strip_prefix("override `ov-") {
            Some(rest) => format!("override `OID{}", &rest[rest.find('`').unwrap_or(0)..]),
            None => text.to_string(),
        };
        assert_eq!(
            (got, masked.as_str()),
            (status, message),
            "{method} {path} {body}"
        );
    }
    // An oversized body is refused before it is parsed.
    let huge = format!(r#"{{"reason": "{}"}}"#, "x".repeat(64 * 1024));
    let (got, v) = run.post("/api/v1/freeze", op, &huge);
    assert_eq!(
        (got, error(&v)),
        (
            413,
            "Failed to buffer the request body: length limit exceeded"
        )
    );
    // A body that is not JSON at all.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let res = agent
        .post(&format!("{}/api/v1/freeze", run.base))
        .header("Authorization", &format!("Bearer {}", tokens.operator))
        .header("Content-Type", "text/plain")
        .send("reason=x")
        .expect("request sent");
    assert_eq!(res.status().as_u16(), 415);

    // The runtime kept deciding: a scale-up proposal after all that is held for approval.
    run.send(&[
        metrics("checkout", 5, 0.9, 4),
        metrics("checkout", 12, 0.9, 4),
    ]);
    run.wait_for(&tokens.viewer, "/api/v1/approvals", |v| {
        v.as_array().is_some_and(|a| a.len() == 1)
    });
    let stderr = run.finish();
    // Tokens never reach the logs.
    for secret in [&tokens.operator, &tokens.viewer, &bad_secret] {
        assert!(
            !stderr.iter().any(|l| l.contains(&secret[18..])),
            "a token leaked into stderr"
        );
    }
    let records = audit_records(&dir.path().join("audit.jsonl"));
    assert!(
        records.iter().all(|r| r["type"] != "override"),
        "a refused override was audited as applied"
    );
    let decided: Vec<(String, String, String)> = audit_decisions(&dir.path().join("audit.jsonl"))
        .iter()
        .map(|d| {
            let last = d
                .reasons
                .last()
                .map(|r| r.code.as_str())
                .unwrap_or_default();
            (d.id.clone(), d.outcome.name().to_string(), last.to_string())
        })
        .collect();
    // The scale-up held at 10:00:10; the same proposal when the input ended (10:00:20)
    // does not queue a second approval.
    let row = |id: &str, outcome: &str, code: &str| {
        (id.to_string(), outcome.to_string(), code.to_string())
    };
    assert_eq!(
        decided,
        [
            row(
                "d-scaler-checkout-1795946410000",
                "pending",
                "approval_required"
            ),
            row(
                "d-scaler-checkout-1795946420000",
                "rejected",
                "awaiting_approval"
            ),
        ]
    );
}

#[test]
fn a_burst_of_requests_does_not_change_or_stop_decisions() {
    // The same telemetry with and without 2,000 concurrent API requests (reads, bad
    // tokens, refused acts): the decisions must be identical. How long decisions take
    // under such a burst is measured in BENCHMARKS.md, not asserted here.
    let telemetry: Vec<String> = (0..12u32)
        .flat_map(|i| {
            let cpu = if i % 4 == 3 { 0.9 } else { 0.45 };
            [
                metrics("payments", i * 10, cpu, 4),
                metrics("checkout", i * 10, 0.4, 4),
            ]
        })
        .collect();
    let decisions = |burst: bool| {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = Tokens::make(dir.path());
        let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
        let base = run.base.clone();
        let workers: Vec<_> = (0..(if burst { 8 } else { 0 }))
            .map(|w| {
                let (base, viewer, op) =
                    (base.clone(), tokens.viewer.clone(), tokens.operator.clone());
                std::thread::spawn(move || {
                    let mut statuses = Vec::new();
                    for i in 0..250 {
                        let (s, _) = match (w + i) % 4 {
                            0 => call(&base, "GET", "/api/v1/view", Some(&viewer), None),
                            1 => call(
                                &base,
                                "GET",
                                "/api/v1/decisions?limit=50",
                                Some(&viewer),
                                None,
                            ),
                            2 => call(
                                &base,
                                "GET",
                                "/api/v1/agents",
                                Some("conclave_00000000_nope"),
                                None,
                            ),
                            _ => call(
                                &base,
                                "POST",
                                "/api/v1/agents/nobody/pause",
                                Some(&op),
                                Some(r#"{"reason": "x"}"#),
                            ),
                        };
                        statuses.push(s);
                    }
                    statuses
                })
            })
            .collect();
        for chunk in telemetry.chunks(4) {
            run.send(chunk);
        }
        let mut seen = std::collections::BTreeMap::<u16, usize>::new();
        for w in workers {
            for s in w.join().expect("worker") {
                *seen.entry(s).or_default() += 1;
            }
        }
        if burst {
            assert_eq!(
                seen,
                [(200, 1000), (400, 500), (401, 500)].into_iter().collect()
            );
        }
        run.finish();
        audit_decisions(&dir.path().join("audit.jsonl"))
    };
    let quiet = decisions(false);
    assert!(quiet.len() >= 2, "the workload makes decisions: {quiet:?}");
    assert_eq!(decisions(true), quiet);
}
