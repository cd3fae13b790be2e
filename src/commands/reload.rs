//! `conclave run` reloads its policy file on SIGHUP (as nginx and Prometheus do): the file
//! is compiled and checked as `policy validate` would, its agents built (models loaded),
//! and both put in force without stopping the runtime. A policy that does not compile, or
//! that the runtime refuses (other agents, another window), is reported on stderr and the
//! running one stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use conclave_agents::Catalog;
use conclave_runtime::{policy, RuntimeHandle};
use tokio::task::JoinHandle;

/// Listens for SIGHUP for as long as the returned task runs (abort it at shutdown).
pub(crate) fn on_hangup(path: PathBuf, handle: RuntimeHandle) -> anyhow::Result<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reload(&path, &handle).await {
                Ok(revision) => eprintln!("reloaded `{}` (revision {revision})", path.display()),
                Err(e) => eprintln!(
                    "reload of `{}` refused, the running policy stays: {e}",
                    path.display()
                ),
            }
        }
    }))
}

async fn reload(path: &Path, handle: &RuntimeHandle) -> anyhow::Result<String> {
    let policy = match policy::load(path, &Catalog) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("{}", text.join("; "));
        }
    };
    let agents = super::run::specs(&policy)?;
    let revision = policy.revision().to_owned();
    handle.reload(policy, agents).await?;
    Ok(revision)
}
