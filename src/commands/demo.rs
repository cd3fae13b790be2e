//! `conclave demo`: the scripted arbiter run, printed and written to the audit log.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use conclave_agents::Catalog;
use conclave_runtime::audit::{format_tail_line, AuditLine, AuditRecord, AuditWriter, FsyncPolicy};
use conclave_runtime::{policy, SimClock, Timestamp};

/// Runs the script from a fixed start, so two runs write identical logs.
pub fn run(policy_path: &Path, audit_path: &Path) -> anyhow::Result<ExitCode> {
    let policy = match policy::load(policy_path, &Catalog) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let start: Timestamp = "2026-11-29T10:00:00Z".parse().context("demo start time")?;
    if audit_path.exists() {
        std::fs::remove_file(audit_path)
            .with_context(|| format!("replacing `{}`", audit_path.display()))?;
    }
    let mut audit = AuditWriter::open(
        audit_path,
        FsyncPolicy::EveryRecord,
        Arc::new(SimClock::new(start)),
    )
    .with_context(|| format!("opening the audit log `{}`", audit_path.display()))?;
    let run = conclave_sim::run_scripted(policy.clone(), start, &mut audit)?;
    println!(
        "Scripted arbiter demo under policy `{}` (revision `{}`):",
        policy.name(),
        policy.revision()
    );
    for (i, d) in run.decisions.iter().enumerate() {
        let line = AuditLine {
            seq: i as u64 + 1,
            record: AuditRecord::Decision(d.clone()),
        };
        println!("  {}", format_tail_line(&line));
        for r in &d.reasons {
            println!("      [{}] {}", r.code.as_str(), r.message);
        }
    }
    for r in &run.refused {
        println!("  refused: {r}");
    }
    println!(
        "{} decisions written to {}",
        run.decisions.len(),
        audit_path.display()
    );
    println!(
        "Explain one: conclave decisions explain d-big-1 --log {}",
        audit_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
