//! `conclave decisions tail|explain`.

use std::path::Path;
use std::process::ExitCode;

pub fn tail(_log: &Path, _lines: usize, _follow: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not wired yet")
}

pub fn explain(_log: &Path, _id: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not wired yet")
}
