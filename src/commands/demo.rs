//! `conclave demo`: a scripted run of the arbiter.

use std::path::Path;
use std::process::ExitCode;

pub fn run(_policy: &Path, _audit: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not wired yet")
}
