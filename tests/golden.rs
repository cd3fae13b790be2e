//! Golden files: expected output compared byte for byte; `CONCLAVE_BLESS=1` rewrites them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (tests run with relative paths from here, so output is stable).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `conclave` with `args` from the repository root; returns (exit code, stdout).
pub fn conclave(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("conclave binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty() || out.status.code() == Some(2),
        "unexpected stderr: {stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Compares `actual` with the golden file at `rel` (under tests/golden), or rewrites it
/// when `CONCLAVE_BLESS=1`.
pub fn assert_golden(rel: &str, actual: &str) {
    let path = root().join("tests/golden").join(rel);
    if std::env::var("CONCLAVE_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("golden dir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with CONCLAVE_BLESS=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "golden mismatch for {rel}\n--- expected\n{expected}\n--- actual\n{actual}\n(run with CONCLAVE_BLESS=1 to accept)"
    );
}

/// The decisions in an audit log, in order (overrides left out).
pub fn audit_decisions(path: &Path) -> Vec<conclave_runtime::Decision> {
    use conclave_runtime::audit::{AuditReader, AuditRecord};
    AuditReader::read_all(path)
        .unwrap_or_else(|e| panic!("audit log {}: {e}", path.display()))
        .lines
        .into_iter()
        .filter_map(|l| match l.record {
            AuditRecord::Decision(d) => Some(d),
            AuditRecord::Override(_) => None,
        })
        .collect()
}
