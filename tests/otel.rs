//! A trace per decision, exported by OTLP to a real Jaeger (issue #7). `make test-pulsar`
//! starts Jaeger (`deploy/otel/otel.sh`) and sets `CONCLAVE_JAEGER_URL`; without it the
//! Jaeger test says so and passes, unless `CONCLAVE_REQUIRE_JAEGER=1` makes that a failure.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use conclave_runtime::{Clock, Decision, RealClock};

use crate::golden::root;

/// Jaeger's query API base URL (`http://host:port`), or `None` (with a note).
pub(crate) fn jaeger() -> Option<String> {
    match std::env::var("CONCLAVE_JAEGER_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CONCLAVE_REQUIRE_JAEGER").as_deref() != Ok("1"),
                "CONCLAVE_REQUIRE_JAEGER=1 but CONCLAVE_JAEGER_URL is not set"
            );
            eprintln!(
                "no Jaeger: set CONCLAVE_JAEGER_URL (make test-pulsar does) to run this test"
            );
            None
        }
    }
}

/// `conclave run` on the e2e fixture with `env`, every other `OTEL_*` variable removed.
fn run(audit: &Path, env: &[(&str, &str)]) {
    run_policy("tests/fixtures/runtime/policy.yaml", audit, env);
}

/// [`run`] under `policy`.
fn run_policy(policy: &str, audit: &Path, env: &[(&str, &str)]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.current_dir(root()).args([
        "run",
        "--policy",
        policy,
        "--telemetry",
        "tests/fixtures/runtime/e2e.jsonl",
        "--audit",
        audit.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("conclave runs");
    assert!(
        out.status.success(),
        "conclave run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn decisions(audit: &Path) -> Vec<Decision> {
    crate::golden::audit_decisions(audit)
}

/// `GET path` on Jaeger's query API; the JSON body.
pub(crate) fn get(base: &str, path: &str) -> serde_json::Value {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&host).expect("Jaeger query API reachable");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
}

/// A span's tags as key -> value (as a string).
/// The spans of trace `trace_id`, once Jaeger has at least `at_least` of them (it may still
/// be indexing; up to 30 s), or what it has then.
fn trace_spans(base: &str, trace_id: &str, at_least: usize) -> Vec<serde_json::Value> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let t = get(base, &format!("/api/traces/{trace_id}"));
        let spans: Vec<serde_json::Value> = t["data"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if spans.len() >= at_least || attempts >= 120 {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn tags(span: &serde_json::Value) -> BTreeMap<String, String> {
    span["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let v = match &t["value"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (t["key"].as_str().unwrap_or_default().to_string(), v)
        })
        .collect()
}

fn is_decide_root(span: &serde_json::Value) -> bool {
    span["operationName"]
        .as_str()
        .is_some_and(|n| n.starts_with("decide "))
        && span["references"]
            .as_array()
            .is_none_or(|r| !r.iter().any(|r| r["refType"] == "CHILD_OF"))
}

#[test]
fn every_decision_is_a_trace_in_jaeger_with_its_id_in_the_audit_log() {
    let Some(base) = jaeger() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let service = format!(
        "conclave-test-{}-{}",
        std::process::id(),
        RealClock.now().as_millis()
    );
    run(
        &audit,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SERVICE_NAME", &service),
        ],
    );
    let ds = decisions(&audit);
    assert!(!ds.is_empty(), "the fixture makes decisions");
    for d in &ds {
        let id = d
            .trace_id
            .as_deref()
            .unwrap_or_else(|| panic!("{} has no trace id", d.id));
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "trace id {id:?}"
        );
    }

    // The exporter flushed before the process exited; Jaeger may still be indexing (up to
    // 30 s).
    let mut attempts = 0;
    let traces = loop {
        attempts += 1;
        let v = get(&base, &format!("/api/traces?service={service}&limit=100"));
        let traces: Vec<serde_json::Value> = v["data"].as_array().cloned().unwrap_or_default();
        let roots = traces
            .iter()
            .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
            .filter(is_decide_root)
            .count();
        if roots >= ds.len() || attempts >= 120 {
            break traces;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let spans: Vec<serde_json::Value> = traces
        .iter()
        .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let roots: Vec<&serde_json::Value> = spans.iter().filter(|s| is_decide_root(s)).collect();
    assert_eq!(
        roots.len(),
        ds.len(),
        "one `decide` root span per audited decision"
    );

    // One known decision: the first of the scaler's.
    let d = ds
        .iter()
        .find(|d| d.agent == "scaler" && d.proposals.iter().any(|p| p.agent == "scaler"))
        .expect("the fixture has a scaler decision");
    let trace_id = d.trace_id.as_deref().expect("trace id");
    let root_span = roots
        .iter()
        .find(|s| tags(s).get("conclave.decision.id") == Some(&d.id))
        .unwrap_or_else(|| panic!("no span for decision {}", d.id));
    assert_eq!(root_span["traceID"].as_str(), Some(trace_id));
    assert_eq!(
        root_span["operationName"].as_str(),
        Some(format!("decide {}", d.target).as_str())
    );
    let t = tags(root_span);
    let codes = d
        .reason_codes()
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let target = d.target.to_string();
    for (key, want) in [
        ("conclave.decision.id", d.id.as_str()),
        ("conclave.target", target.as_str()),
        ("conclave.agent", "scaler"),
        ("conclave.outcome", d.outcome.name()),
        ("conclave.reason.codes", codes.as_str()),
        ("conclave.policy.revision", d.policy_revision.as_str()),
        ("conclave.mode", "enforce"),
    ] {
        assert_eq!(t.get(key).map(String::as_str), Some(want), "{key} in {t:?}");
    }

    // Its child: the scaler's proposal.
    let p = d
        .proposals
        .iter()
        .find(|p| p.agent == "scaler")
        .expect("scaler proposal");
    let root_id = root_span["spanID"].as_str().expect("span id");
    let child = spans
        .iter()
        .find(|s| {
            s["traceID"].as_str() == Some(trace_id)
                && s["operationName"] == "invoke_agent scaler"
                && s["references"].as_array().is_some_and(|r| {
                    r.iter().any(|r| {
                        r["refType"] == "CHILD_OF" && r["spanID"].as_str() == Some(root_id)
                    })
                })
        })
        .expect("a child span `invoke_agent scaler`");
    let c = tags(child);
    let action = p.action.kind().as_str();
    for (key, want) in [
        ("gen_ai.operation.name", "invoke_agent"),
        ("gen_ai.agent.name", "scaler"),
        ("conclave.proposal.id", p.id.as_str()),
        ("conclave.action", action),
    ] {
        assert_eq!(c.get(key).map(String::as_str), Some(want), "{key} in {c:?}");
    }
    assert_eq!(c.contains_key("conclave.model"), p.model.is_some(), "{c:?}");
    assert_eq!(
        c.contains_key("conclave.fallback"),
        p.fallback.is_some(),
        "{c:?}"
    );
    // The arbiter's negotiation, and (for an acted-on decision) the actuation, are
    // children of the same root.
    let child_named = |name: &str| {
        spans.iter().find(|s| {
            s["traceID"].as_str() == Some(trace_id)
                && s["operationName"] == name
                && s["references"].as_array().is_some_and(|r| {
                    r.iter().any(|r| {
                        r["refType"] == "CHILD_OF" && r["spanID"].as_str() == Some(root_id)
                    })
                })
        })
    };
    let n = tags(child_named("negotiate").expect("a child span `negotiate`"));
    let rules = d
        .reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        n.get("conclave.arbiter.verdict").map(String::as_str),
        Some(d.outcome.name())
    );
    assert_eq!(n.get("conclave.arbiter.rules"), Some(&rules));
    assert_eq!(
        n.get("conclave.arbiter.proposals"),
        Some(&d.proposals.len().to_string())
    );
    let actuation = child_named("execute_tool actuate");
    assert_eq!(
        actuation.is_some(),
        d.outcome.is_acted_on(),
        "actuation span iff acted on"
    );
    if let Some(a) = actuation {
        let a = tags(a);
        assert_eq!(
            a.get("gen_ai.operation.name").map(String::as_str),
            Some("execute_tool")
        );
        let enacted = d.action.as_ref().map_or("none", |x| x.kind().as_str());
        assert_eq!(a.get("conclave.action").map(String::as_str), Some(enacted));
    }
}

/// The span of `trace` named `name` whose parent is `parent` (a span id).
fn child_of<'a>(
    spans: &'a [serde_json::Value],
    parent: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    spans.iter().find(|s| {
        s["operationName"] == name
            && s["references"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["refType"] == "CHILD_OF" && r["spanID"].as_str() == Some(parent))
            })
    })
}

#[test]
fn a_model_call_is_an_execute_tool_span_under_its_agent() {
    let Some(base) = jaeger() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let service = format!(
        "conclave-model-{}-{}",
        std::process::id(),
        RealClock.now().as_millis()
    );
    run_policy(
        "tests/fixtures/metrics/policy.yaml",
        &audit,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SERVICE_NAME", &service),
        ],
    );
    // The first decision the forecast model informed.
    let d = decisions(&audit)
        .into_iter()
        .find(|d| {
            d.proposals
                .iter()
                .any(|p| p.agent == "scaler" && p.model.is_some() && p.fallback.is_none())
        })
        .expect("the predictive scaler proposes with its model");
    let trace_id = d.trace_id.as_deref().expect("trace id");
    // decide, negotiate, invoke_agent, extract_features, execute_tool model, actuate.
    let spans = trace_spans(&base, trace_id, 6);
    let root = spans
        .iter()
        .find(|s| is_decide_root(s))
        .expect("the decide root");
    let agent = child_of(
        &spans,
        root["spanID"].as_str().expect("id"),
        "invoke_agent scaler",
    )
    .expect("invoke_agent scaler under decide");
    let agent_id = agent["spanID"].as_str().expect("id");
    let call = tags(
        child_of(&spans, agent_id, "execute_tool scaler-forecast")
            .expect("execute_tool scaler-forecast under invoke_agent scaler"),
    );
    for (key, want) in [
        ("gen_ai.operation.name", "execute_tool"),
        ("gen_ai.tool.name", "scaler-forecast"),
        ("conclave.model.name", "scaler-forecast"),
        ("conclave.model.version", "1.0.0"),
        ("conclave.model.called", "true"),
    ] {
        assert_eq!(
            call.get(key).map(String::as_str),
            Some(want),
            "{key} in {call:?}"
        );
    }
    // Both fixture services have a minute of rate_in by then: one batch of two rows.
    assert_eq!(
        call.get("conclave.model.batch_size").map(String::as_str),
        Some("2")
    );
    let latency: f64 = call
        .get("conclave.model.latency_ms")
        .and_then(|v| v.parse().ok())
        .expect("latency_ms");
    assert!(latency > 0.0, "{latency}");
    assert!(!call.contains_key("conclave.fallback"), "{call:?}");
    let features = tags(
        child_of(&spans, agent_id, "extract_features").expect("extract_features under the agent"),
    );
    assert_eq!(
        features.get("conclave.features.count").map(String::as_str),
        Some("24")
    );
    assert_eq!(
        features.get("conclave.features.rows").map(String::as_str),
        Some("2")
    );
}

#[test]
fn without_an_otlp_endpoint_decisions_carry_no_trace_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    run(&audit, &[]);
    let ds = decisions(&audit);
    assert!(!ds.is_empty(), "the fixture makes decisions");
    for d in &ds {
        assert_eq!(d.trace_id, None, "{} has a trace id with tracing off", d.id);
    }
}

#[test]
fn an_override_is_a_trace_with_the_decisions_it_settled_inside() {
    let Some(base) = jaeger() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = crate::api::Tokens::make(dir.path());
    let service = format!(
        "conclave-override-{}-{}",
        std::process::id(),
        RealClock.now().as_millis()
    );
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_SERVICE_NAME", service.as_str()),
    ];
    let mut run = crate::api::ApiRun::start_env(dir.path(), crate::api::POLICY, &tokens, &[], &env);
    run.send(&[
        crate::api::metrics("checkout", 0, 0.9, 4),
        crate::api::metrics("checkout", 5, 0.9, 4),
        crate::api::metrics("checkout", 12, 0.9, 4),
    ]);
    let pending = run.wait_for(&tokens.viewer, "/api/v1/approvals", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    });
    let id = pending[0]["decision"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, v) = run.post(
        &format!("/api/v1/decisions/{id}/approve"),
        Some(&tokens.operator),
        r#"{"reason": "traced approval"}"#,
    );
    assert_eq!(status, 200, "{v}");
    let oid = v["override"]["id"]
        .as_str()
        .expect("override id")
        .to_owned();
    let trace_id = v["decisions"][0]["trace_id"]
        .as_str()
        .expect("the enacted decision has a trace id")
        .to_owned();
    run.finish();

    let spans = trace_spans(&base, &trace_id, 2);
    let root = spans
        .iter()
        .find(|s| s["operationName"] == "override approve")
        .expect("an `override approve` span");
    let t = tags(root);
    for (key, want) in [
        ("conclave.override.id", oid.as_str()),
        ("conclave.override.kind", "approve"),
        ("conclave.override.subject", &format!("decision {id}")),
        ("conclave.override.by", "ana"),
        ("conclave.override.role", "operator"),
        ("conclave.override.reason", "traced approval"),
    ] {
        assert_eq!(t.get(key).map(String::as_str), Some(want), "{key} in {t:?}");
    }
    let root_id = root["spanID"].as_str().expect("span id");
    let decide = spans
        .iter()
        .find(|s| s["operationName"] == "decide checkout")
        .expect("the settled decision's span in the same trace");
    assert!(
        decide["references"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["refType"] == "CHILD_OF" && r["spanID"].as_str() == Some(root_id))),
        "decide is a child of the override"
    );
    let d = tags(decide);
    assert_eq!(d.get("conclave.decision.id"), Some(&id));
    assert_eq!(
        d.get("conclave.outcome").map(String::as_str),
        Some("enacted")
    );
}

#[test]
fn at_ratio_zero_only_what_matters_is_traced() {
    let Some(base) = jaeger() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = crate::api::Tokens::make(dir.path());
    let service = format!(
        "conclave-sampling-{}-{}",
        std::process::id(),
        RealClock.now().as_millis()
    );
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_SERVICE_NAME", service.as_str()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ];
    let mut run = crate::api::ApiRun::start_env(dir.path(), crate::api::POLICY, &tokens, &[], &env);
    // payments scales up without approval (routine, enacted); checkout's scale-up waits.
    run.send(&[
        crate::api::metrics("payments", 0, 0.9, 4),
        crate::api::metrics("checkout", 0, 0.9, 4),
        crate::api::metrics("payments", 12, 0.5, 8),
        crate::api::metrics("checkout", 12, 0.9, 4),
    ]);
    let pending = run.wait_for(&tokens.viewer, "/api/v1/approvals", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    });
    let id = pending[0]["decision"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, v) = run.post(
        &format!("/api/v1/decisions/{id}/approve"),
        Some(&tokens.operator),
        r#"{"reason": "go"}"#,
    );
    assert_eq!(status, 200, "{v}");
    run.finish();

    let ds = decisions(&dir.path().join("audit.jsonl"));
    // Routine: enacted without a human in the loop. Everything else is kept.
    let routine = |d: &Decision| {
        d.outcome.name() == "enacted" && !d.reason_codes().iter().any(|c| c.as_str() == "approved")
    };
    assert!(
        ds.iter()
            .any(|d| routine(d) && d.target.as_str() == "payments"),
        "{ds:?}"
    );
    assert!(ds.iter().any(|d| d.outcome.name() == "pending"), "{ds:?}");
    assert!(
        ds.iter()
            .any(|d| d.id == id && d.outcome.name() == "enacted"),
        "{ds:?}"
    );
    for d in &ds {
        assert_eq!(
            d.trace_id.is_some(),
            !routine(d),
            "{} {} ({:?})",
            d.id,
            d.outcome.name(),
            d.reason_codes()
        );
    }
    // What the audit log names exists in Jaeger.
    for d in ds.iter().filter(|d| d.trace_id.is_some()) {
        let trace_id = d.trace_id.as_deref().unwrap_or_default();
        let spans = trace_spans(&base, trace_id, 1);
        assert!(
            !spans.is_empty(),
            "trace {trace_id} of {} not in Jaeger",
            d.id
        );
    }
}
