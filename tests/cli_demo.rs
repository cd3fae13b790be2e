//! The scripted demo and the audit-log commands, as a user runs them.

use crate::golden::{assert_golden, conclave, root};

#[test]
fn demo_is_deterministic_and_explainable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    for log in [&a, &b] {
        let (code, out) = conclave(&[
            "demo",
            "--policy",
            "policies/ecommerce.yaml",
            "--audit",
            &log.display().to_string(),
        ]);
        assert_eq!(code, 0, "{out}");
    }
    let (ta, tb) = (
        std::fs::read(&a).expect("log a"),
        std::fs::read(&b).expect("log b"),
    );
    assert!(
        !ta.is_empty() && ta == tb,
        "two demo runs wrote different audit logs"
    );

    let (code, out) = conclave(&[
        "decisions",
        "explain",
        "d-big-1",
        "--log",
        &a.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_golden("decisions/explain-d-big-1.txt", &out);
    let (code, out) = conclave(&[
        "decisions",
        "tail",
        "-n",
        "100",
        "--log",
        &a.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_golden("decisions/tail-demo.txt", &out);
    let (code, out) = conclave(&[
        "decisions",
        "explain",
        "d-nope",
        "--log",
        &a.display().to_string(),
    ]);
    assert_eq!(
        (code, out.trim_end()),
        (
            1,
            format!("decision `d-nope` is not in {}", a.display()).as_str()
        )
    );
}

#[test]
fn a_torn_last_record_is_skipped_and_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("torn.jsonl");
    let (code, _) = conclave(&["demo", "--audit", &log.display().to_string()]);
    assert_eq!(code, 0);
    let full = std::fs::read_to_string(&log).expect("log");
    let records = full.lines().count();
    // Simulate a crash mid-write: half of one more record, no newline.
    let last = full.lines().last().unwrap_or_default().to_string();
    std::fs::write(&log, format!("{full}{}", &last[..last.len() / 2])).expect("write torn");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args([
            "decisions",
            "tail",
            "-n",
            "1000",
            "--log",
            &log.display().to_string(),
        ])
        .current_dir(root())
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        records,
        "every whole record is still listed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(":{}: skipped a torn last record", records + 1)),
        "{stderr}"
    );
}

#[test]
fn demo_under_a_broken_policy_lists_its_errors_and_exits_1() {
    let (code, out) = conclave(&[
        "demo",
        "--policy",
        "tests/fixtures/broken-policies/unknown_agent.yaml",
        "--audit",
        "target/never.jsonl",
    ]);
    assert_eq!(code, 1);
    assert!(out.starts_with("tests/fixtures/broken-policies/unknown_agent.yaml:7:5: spec.agents.scalr: unknown agent"), "{out}");
}
