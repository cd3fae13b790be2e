//! The operator commands (`conclave agents`, `approve`, `pin`, `override ...`) against a
//! running runtime, with the token from the environment.

use std::process::Command;

use super::{audit_records, run_with_pending, Tokens};

fn conclave(base: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.args(args)
        .env("CONCLAVE_API_URL", base)
        .env_remove("CONCLAVE_API_TOKEN");
    if let Some(t) = token {
        cmd.env("CONCLAVE_API_TOKEN", t);
    }
    let out = cmd.output().expect("conclave runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn operator_commands_act_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let (run, id) = run_with_pending(dir.path(), &tokens);
    let base = run.base.clone();

    let (code, out, _) = conclave(&base, Some(&tokens.viewer), &["agents"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "AGENT        MODE     POLICY   STATE\nbreaker      shadow   shadow   running\nscaler       enforce  enforce  running\n"
    );
    let (code, out, _) = conclave(&base, Some(&tokens.viewer), &["approvals"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("{id} checkout scaler {{\"scale\":{{\"replicas\":8}}}} rule=checkout-scale-up deadline=2026-11-29T10:10:10.000Z then=reject\n")
    );

    // Refused: exit 1 and the API's reason; no token at all: exit 2 saying what to set.
    let (code, _, err) = conclave(
        &base,
        Some(&tokens.viewer),
        &["override", "freeze", "--reason", "x"],
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "refused (403): role `viewer` may not freeze the arbiter (needs `operator`)\n"
        )
    );
    let (code, _, err) = conclave(&base, None, &["agents"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: set CONCLAVE_API_TOKEN to an API token"),
        "{err}"
    );

    let (code, out, err) = conclave(
        &base,
        Some(&tokens.operator),
        &["approve", &id, "--reason", "expected peak"],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ov-") && lines[0].ends_with(" approve by ana (operator)"),
        "{out}"
    );
    assert_eq!(lines[1], format!("  decision {id} checkout -> enacted"));

    let (code, out, err) = conclave(
        &base,
        Some(&tokens.operator),
        &[
            "pin",
            "payments",
            "--replicas",
            "3",
            "--until",
            "15m",
            "--reason",
            "hold",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.ends_with(" pin by ana (operator) until 2026-11-29T10:15:12.000Z")),
        "{out}"
    );
    let (code, _, err) = conclave(
        &base,
        Some(&tokens.operator),
        &[
            "override",
            "pause",
            "breaker",
            "--reason",
            "noisy",
            "--until",
            "2026-11-29T12:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = conclave(
        &base,
        Some(&tokens.admin),
        &[
            "override", "mode", "breaker", "advise", "--reason", "try it",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = conclave(
        &base,
        Some(&tokens.admin),
        &["override", "mode", "breaker", "loud", "--reason", "x"],
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("refused (400): Failed to deserialize the JSON body into the target type: mode: unknown variant `loud`"), "{err}");
    let (code, out, _) = conclave(&base, Some(&tokens.viewer), &["agents"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "AGENT        MODE     POLICY   STATE\nbreaker      advise   shadow   paused\nscaler       enforce  enforce  running\n"
    );
    let (code, _, err) = conclave(
        &base,
        Some(&tokens.operator),
        &["unpin", "payments", "--reason", "done"],
    );
    assert_eq!(code, 0, "{err}");
    run.finish();
    let kinds: Vec<String> = audit_records(&dir.path().join("audit.jsonl"))
        .iter()
        .filter(|r| r["type"] == "override")
        .map(|r| {
            r["kind"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["approve", "pin", "pause", "set_mode", "unpin"]);
}
