//! `conclave decisions tail|explain|gap|diff`: the audit log in plain words.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use conclave_runtime::audit::{
    explain_decision, format_tail_line, tail_lines, AuditFollower, AuditReader, AuditScan,
    GapReport, TailFilter,
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

/// `conclave decisions gap`: the model-vs-rule gap per agent over a log.
pub fn gap(log: &Path) -> anyhow::Result<ExitCode> {
    let scan = AuditReader::read_all(log)?;
    report_damage(log, &scan);
    print!("{}", GapReport::from_lines(&scan.lines).render());
    Ok(ExitCode::SUCCESS)
}

/// One decision as `diff` compares it: what was decided, in words.
fn summary(d: &conclave_runtime::Decision) -> String {
    format!(
        "{} {} {} {}",
        d.target,
        d.agent,
        d.outcome.name(),
        d.action
            .as_ref()
            .map_or_else(|| "-".to_owned(), |a| a.to_string())
    )
}

/// `conclave decisions diff OLD NEW`: how two audit logs' decisions differ, matched by
/// decision id (ids are a function of agent, target and window, so a replay of the same
/// telemetry under another policy or build lines up with the original). Exit 0 when the
/// decisions are the same, 1 when they differ.
pub fn diff(old: &Path, new: &Path) -> anyhow::Result<ExitCode> {
    use std::collections::BTreeMap;
    let read = |log: &Path| -> anyhow::Result<BTreeMap<String, (String, String)>> {
        let scan = AuditReader::read_all(log)?;
        report_damage(log, &scan);
        Ok(scan
            .lines
            .iter()
            .filter_map(|l| match &l.record {
                conclave_runtime::audit::AuditRecord::Decision(d) => {
                    Some((d.id.clone(), (d.at.to_string(), summary(d))))
                }
                conclave_runtime::audit::AuditRecord::Override(_) => None,
            })
            .collect())
    };
    let (a, b) = (read(old)?, read(new)?);
    let (mut same, mut added, mut removed, mut changed) = (0, 0, 0, 0);
    let mut ids: Vec<&String> = a.keys().chain(b.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        match (a.get(id), b.get(id)) {
            (Some(x), Some(y)) if x == y => same += 1,
            (Some((at, x)), Some((_, y))) => {
                changed += 1;
                println!("~ {at} {id}\n    old: {x}\n    new: {y}");
            }
            (Some((at, x)), None) => {
                removed += 1;
                println!("- {at} {id} {x}");
            }
            (None, Some((at, y))) => {
                added += 1;
                println!("+ {at} {id} {y}");
            }
            (None, None) => {}
        }
    }
    println!("{same} same, {changed} changed, {added} only in new, {removed} only in old");
    Ok(if changed + added + removed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
