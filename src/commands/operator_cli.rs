//! The operator subcommands' arguments, and what each asks of the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use super::operator::{self, Endpoint, Request};

/// Commands that act on (or look at) a running runtime through its API.
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// List the agents, their modes, and whether they are paused (API).
    Agents {
        #[command(flatten)]
        ep: Endpoint,
    },
    /// List the decisions waiting for a human (API).
    Approvals {
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Approve a pending decision (API).
    Approve {
        /// The decision's id.
        id: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Deny a pending decision (API).
    Deny {
        /// The decision's id.
        id: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Veto a pending decision (API).
    Veto {
        /// The decision's id.
        id: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Hold a target at a number of replicas (API).
    Pin {
        /// The target.
        target: String,
        /// Replicas to hold it at.
        #[arg(long)]
        replicas: u32,
        /// Until when: a duration (`30m`) or an RFC 3339 time; default until unpinned.
        #[arg(long)]
        until: Option<String>,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Lift a pin (API).
    Unpin {
        /// The target.
        target: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Freeze, pause, resume, set modes; list overrides in force (API).
    #[command(subcommand)]
    Override(OverrideCommand),
    /// API tokens and the API's description.
    #[command(subcommand)]
    Api(ApiCommand),
}

/// `conclave override ...`
#[derive(Debug, clap::Subcommand)]
pub enum OverrideCommand {
    /// Nothing is enacted until unfrozen (or `--until`).
    Freeze {
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        /// A duration (`30m`) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Lift the freeze.
    Unfreeze {
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Pause an agent: its proposals are overridden.
    Pause {
        /// The agent.
        agent: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        /// A duration (`30m`) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Resume a paused agent.
    Resume {
        /// The agent.
        agent: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Set an agent's mode (off, shadow, advise, enforce) above the policy's; admins only.
    Mode {
        /// The agent.
        agent: String,
        /// The mode.
        mode: String,
        /// Why (required; audited).
        #[arg(long)]
        reason: String,
        /// A duration (`30m`) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// The overrides in force.
    List {
        #[command(flatten)]
        ep: Endpoint,
    },
}

/// `conclave api ...`
#[derive(Debug, clap::Subcommand)]
pub enum ApiCommand {
    /// Make an API token. With `--tokens FILE` its hash is added to the file and only the
    /// token is printed; without, the token goes to stderr and the file entry to stdout.
    Token {
        /// Whose token (recorded on everything they do).
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// The token file to add it to (created if missing).
        #[arg(long)]
        tokens: Option<PathBuf>,
    },
    /// Print the API's OpenAPI document (docs/openapi.json is this, committed).
    Openapi,
}

fn path_segment(s: &str) -> String {
    // Agent, target and decision names are plain words, but a stray `/` or `?` must not
    // turn into another endpoint.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an operator command.
pub fn run(cmd: OperatorCommand) -> anyhow::Result<ExitCode> {
    use OperatorCommand as C;
    use OverrideCommand as O;
    let act = |ep: &Endpoint, method, path: String, body| {
        operator::run(ep, Request::Act(method, path, body))
    };
    let reason_only = |r: &str| json!({ "reason": r });
    match cmd {
        C::Agents { ep } => {
            operator::run(&ep, Request::Get("/api/v1/agents", operator::print_agents))
        }
        C::Approvals { ep } => operator::run(
            &ep,
            Request::Get("/api/v1/approvals", operator::print_approvals),
        ),
        C::Approve { id, reason, ep } => act(
            &ep,
            "POST",
            format!("/api/v1/decisions/{}/approve", path_segment(&id)),
            reason_only(&reason),
        ),
        C::Deny { id, reason, ep } => act(
            &ep,
            "POST",
            format!("/api/v1/decisions/{}/deny", path_segment(&id)),
            reason_only(&reason),
        ),
        C::Veto { id, reason, ep } => act(
            &ep,
            "POST",
            format!("/api/v1/decisions/{}/veto", path_segment(&id)),
            reason_only(&reason),
        ),
        C::Pin {
            target,
            replicas,
            until,
            reason,
            ep,
        } => {
            let body = operator::timed(&reason, until.as_deref(), json!({ "replicas": replicas }))?;
            act(
                &ep,
                "POST",
                format!("/api/v1/targets/{}/pin", path_segment(&target)),
                body,
            )
        }
        C::Unpin { target, reason, ep } => act(
            &ep,
            "POST",
            format!("/api/v1/targets/{}/unpin", path_segment(&target)),
            reason_only(&reason),
        ),
        C::Override(O::Freeze { reason, until, ep }) => act(
            &ep,
            "POST",
            "/api/v1/freeze".into(),
            operator::timed(&reason, until.as_deref(), json!({}))?,
        ),
        C::Override(O::Unfreeze { reason, ep }) => {
            act(&ep, "POST", "/api/v1/unfreeze".into(), reason_only(&reason))
        }
        C::Override(O::Pause {
            agent,
            reason,
            until,
            ep,
        }) => {
            let body = operator::timed(&reason, until.as_deref(), json!({}))?;
            act(
                &ep,
                "POST",
                format!("/api/v1/agents/{}/pause", path_segment(&agent)),
                body,
            )
        }
        C::Override(O::Resume { agent, reason, ep }) => act(
            &ep,
            "POST",
            format!("/api/v1/agents/{}/resume", path_segment(&agent)),
            reason_only(&reason),
        ),
        C::Override(O::Mode {
            agent,
            mode,
            reason,
            until,
            ep,
        }) => {
            let body = operator::timed(&reason, until.as_deref(), json!({ "mode": mode }))?;
            act(
                &ep,
                "PUT",
                format!("/api/v1/agents/{}/mode", path_segment(&agent)),
                body,
            )
        }
        C::Override(O::List { ep }) => operator::run(
            &ep,
            Request::Get("/api/v1/overrides", operator::print_overrides),
        ),
        C::Api(ApiCommand::Token { name, role, tokens }) => token(&name, &role, tokens.as_deref()),
        C::Api(ApiCommand::Openapi) => {
            println!("{:#}", conclave_runtime::api::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn token(name: &str, role: &str, file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use conclave_runtime::api::auth;
    let role: conclave_runtime::Role = serde_json::from_value(json!(role))
        .map_err(|_| anyhow::anyhow!("--role `{role}`: expected viewer, operator or admin"))?;
    let (token, entry) = auth::generate(name, role)?;
    let Some(path) = file else {
        eprintln!("token (shown once): {token}");
        print!("{}", auth::to_yaml(&[entry])?);
        return Ok(ExitCode::SUCCESS);
    };
    let shown = path.display().to_string();
    let mut entries = match std::fs::read_to_string(path) {
        Ok(text) => auth::entries(&shown, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading `{shown}`")),
    };
    entries.push(entry);
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, auth::to_yaml(&entries)?)
        .with_context(|| format!("writing `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing `{shown}`"))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
