//! The operator API beside a running runtime (`conclave run --api ADDR`), and the override
//! journal that keeps standing overrides across restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use conclave_runtime::api::{
    self, ApiConfig, ApiContext, ApiServer, DecisionFeed, Fanout, TokenStore,
};
use conclave_runtime::keda;
use conclave_runtime::overrides::OverrideJournal;
use conclave_runtime::{Clock, Decision, Override, RuntimeHandle};

/// `--api*` options of `conclave run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Serve the operator API and console; `--api` alone binds 127.0.0.1:7070 (port 0
    /// picks a free one). The address is printed on stderr.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7070")]
    pub api: Option<SocketAddr>,
    /// The API's token file (argon2 hashes; `conclave api token` adds to it). Required
    /// with `--api`.
    #[arg(long, value_name = "FILE", requires = "api")]
    pub api_tokens: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs `--api-tls-key`.
    #[arg(long, value_name = "FILE", requires_all = ["api", "api_tls_key"])]
    pub api_tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
    /// Serve KEDA's external scaler (gRPC); `--keda` alone binds 127.0.0.1:9090 (in a pod:
    /// `0.0.0.0:9090`). ScaledObjects with `metadata: {target: NAME}` get the target's
    /// replicas from the latest carried-out decision. The address is printed on stderr.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9090")]
    pub keda: Option<SocketAddr>,
    /// The override journal: standing overrides (freeze, pause, pin, mode) are written
    /// here before they apply and restored at start (default: `overrides.jsonl` beside
    /// the audit log).
    #[arg(long, value_name = "FILE")]
    pub overrides: Option<PathBuf>,
}

impl ApiArgs {
    /// The journal's path for an audit log at `audit`.
    pub fn journal_path(&self, audit: &Path) -> PathBuf {
        self.overrides.clone().unwrap_or_else(|| {
            audit
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("overrides.jsonl")
        })
    }
}

/// Opens the journal; reports what it restores on stderr.
pub fn open_journal(
    path: &Path,
    clock: &dyn Clock,
) -> anyhow::Result<(OverrideJournal, Vec<Override>)> {
    super::run::create_parents(&[&path.to_path_buf()])?;
    let (journal, restored) = OverrideJournal::open(path, clock.now())?;
    if !restored.is_empty() {
        let kinds: Vec<String> = restored
            .iter()
            .map(|o| format!("{} ({})", o.kind.name(), o.id))
            .collect();
        eprintln!(
            "overrides: restored {} from `{}`: {}",
            restored.len(),
            path.display(),
            kinds.join(", ")
        );
    }
    Ok((journal, restored))
}

/// The servers beside a running runtime (`--api`, `--keda`) and what they read decisions
/// from. A server that was not asked for costs nothing per decision.
pub struct Servers {
    api: Option<(ApiServer, DecisionFeed)>,
    keda: Option<(keda::KedaServer, keda::ScaleBook)>,
}

impl Servers {
    /// Starts what `args` asks for; with `fanout`, API acts reach the other instances.
    pub async fn start(
        args: &ApiArgs,
        handle: RuntimeHandle,
        clock: Arc<dyn Clock>,
        fanout: Option<Fanout>,
    ) -> anyhow::Result<Self> {
        let keda = match args.keda {
            Some(bind) => {
                let book = keda::ScaleBook::new();
                let scaler = keda::KedaScaler::new(handle.clone(), book.clone());
                let server = keda::serve(bind, scaler).await?;
                eprintln!("keda: external scaler listening on {}", server.local_addr());
                Some((server, book))
            }
            None => None,
        };
        let api = match args.api {
            Some(bind) => {
                let feed = DecisionFeed::new(2_000);
                let server = start_api(args, bind, handle, feed.clone(), clock, fanout).await?;
                Some((server, feed))
            }
            None => None,
        };
        Ok(Servers { api, keda })
    }

    /// The KEDA scaler's book, when it runs (fed the other instances' actions on Pulsar).
    pub fn scale_book(&self) -> Option<&keda::ScaleBook> {
        self.keda.as_ref().map(|(_, book)| book)
    }

    /// A decision, for the servers that read decisions.
    pub fn record(&self, d: Decision) {
        if let Some((_, book)) = &self.keda {
            book.record(&d);
        }
        if let Some((_, feed)) = &self.api {
            feed.push(d);
        }
    }

    /// Ends streams and stops serving.
    pub async fn shutdown(self) {
        if let Some((api, _)) = self.api {
            api.shutdown().await;
        }
        if let Some((keda, _)) = self.keda {
            keda.shutdown().await;
        }
    }
}

async fn start_api(
    args: &ApiArgs,
    bind: SocketAddr,
    handle: RuntimeHandle,
    feed: DecisionFeed,
    clock: Arc<dyn Clock>,
    fanout: Option<Fanout>,
) -> anyhow::Result<ApiServer> {
    let tokens_path = args
        .api_tokens
        .as_ref()
        .context("--api needs --api-tokens FILE (make one with `conclave api token`)")?;
    let tokens = TokenStore::load(tokens_path)?;
    let tls = args.api_tls_cert.clone().zip(args.api_tls_key.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ctx = ApiContext::new(handle, feed, tokens, clock);
    if let Some(f) = fanout {
        ctx = ctx.with_fanout(f);
    }
    let server = api::serve(&ApiConfig { bind, tls }, ctx).await?;
    eprintln!("api: listening on {scheme}://{}", server.local_addr());
    Ok(server)
}
