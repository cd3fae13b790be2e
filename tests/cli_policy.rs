//! `conclave policy ...` as a user runs it: shipped policies, broken fixtures, tests, schema.

use crate::golden::{assert_golden, conclave, root};

#[test]
fn every_shipped_policy_validates() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("policies"))
        .expect("policies folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            format!(
                "policies/{}",
                p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected at least three shipped policies, found {files:?}"
    );
    let mut args = vec!["policy", "validate"];
    args.extend(files.iter().map(String::as_str));
    let (code, out) = conclave(&args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        files.len(),
        "{out}"
    );
}

#[test]
fn every_broken_policy_fails_with_its_golden_errors() {
    let dir = root().join("tests/fixtures/broken-policies");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "expected the broken-policy fixtures, found {names:?}"
    );
    for name in names {
        let file = format!("tests/fixtures/broken-policies/{name}");
        let (code, out) = conclave(&["policy", "validate", &file]);
        assert_eq!(code, 1, "{name}: expected exit 1, output:\n{out}");
        // Every error names the file with a line and column.
        for line in out.lines().filter(|l| !l.ends_with("policies invalid")) {
            let rest = line
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("{name}: `{line}` does not name the file"));
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok(),
                "{name}: `{line}` has no line:column"
            );
        }
        assert_golden(
            &format!("policy-validate/{}.txt", name.trim_end_matches(".yaml")),
            &out,
        );
    }
}

#[test]
fn shipped_policy_tests_pass() {
    let (code, out) = conclave(&["policy", "test", "policies/tests"]);
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "{out}");
    let passed: usize = last
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 20,
        "expected at least 20 policy tests, found {passed}"
    );
}

#[test]
fn a_failing_policy_test_reports_the_difference_and_exits_1() {
    let (code, out) = conclave(&[
        "policy",
        "test",
        "tests/fixtures/policy-tests/failing_test.yaml",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_golden("policy-test/failing_test.txt", &out);
}

#[test]
fn committed_schema_matches_the_code() {
    let (code, out) = conclave(&["policy", "schema"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(root().join("policies/schema.json"))
        .expect("policies/schema.json is committed");
    assert!(
        committed == out,
        "policies/schema.json is stale: run `conclave policy schema > policies/schema.json`"
    );
}

#[test]
fn explain_fills_in_defaults() {
    let (code, out) = conclave(&["policy", "explain", "policies/starter.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_golden("policy-explain/starter.yaml", &out);
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["policy", "schema"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("conclave runs");
    // Close the pipe's read end before the schema is printed, as `| head -c 0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(
        out.status.code(),
        Some(0),
        "the write cannot have succeeded"
    );
}
