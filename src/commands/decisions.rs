//! `conclave decisions tail|explain`: the audit log in plain words.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use conclave_runtime::audit::{
    explain_decision, format_tail_line, tail_lines, AuditFollower, AuditReader, AuditScan,
    TailFilter,
};

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn report_damage(log: &Path, scan: &AuditScan) {
    for c in &scan.corrupt {
        eprintln!(
            "warning: {}:{}: skipped a corrupt record: {}",
            log.display(),
            c.line_no,
            c.message
        );
    }
    if let Some(t) = &scan.torn {
        eprintln!(
            "warning: {}:{}: skipped a torn last record ({} bytes; an interrupted write)",
            log.display(),
            t.line_no,
            t.bytes
        );
    }
}

/// Prints the last `n` records; with `follow`, keeps printing new ones.
pub fn tail(log: &Path, n: usize, follow: bool, filter: TailFilter) -> anyhow::Result<ExitCode> {
    let scan = AuditReader::read_all(log)?;
    report_damage(log, &scan);
    print!("{}", tail_lines(&scan, n, &filter));
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut matcher = filter.matcher();
    for line in &scan.lines {
        matcher.is_match(&line.record);
    }
    let mut follower = AuditFollower::after_scan(log, &scan);
    loop {
        for line in follower.poll()? {
            if matcher.is_match(&line.record) {
                println!("{}", format_tail_line(&line));
            }
        }
        for c in follower.take_corrupt() {
            eprintln!(
                "warning: {}:{}: skipped a corrupt record: {}",
                log.display(),
                c.line_no,
                c.message
            );
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints one decision's reason chain; exit 1 when the id is not in the log.
pub fn explain(log: &Path, id: &str) -> anyhow::Result<ExitCode> {
    let scan = AuditReader::read_all(log)?;
    report_damage(log, &scan);
    match explain_decision(&scan.lines, id) {
        Some(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("decision `{id}` is not in {}", log.display());
            Ok(ExitCode::from(1))
        }
    }
}
