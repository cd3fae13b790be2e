//! Operator commands that talk to a running runtime's API: `conclave agents`, `approvals`,
//! `approve`, `deny`, `veto`, `pin`, `unpin`, `override ...`. The token comes from
//! `CONCLAVE_API_TOKEN`, the address from `--api-url` / `CONCLAVE_API_URL`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

/// Where the API is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoint {
    /// The API's base URL.
    #[arg(
        long,
        env = "CONCLAVE_API_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub api_url: String,
    /// A CA certificate (PEM) to trust for an `https` API with its own CA.
    #[arg(long, env = "CONCLAVE_API_CA", value_name = "FILE")]
    pub api_ca: Option<std::path::PathBuf>,
}

/// An expiry: a duration from now on the runtime's clock (`30m`) or an RFC 3339 instant.
fn expiry(until: Option<&str>) -> anyhow::Result<Value> {
    let Some(u) = until else {
        return Ok(json!({}));
    };
    if humantime::parse_duration(u).is_ok() {
        return Ok(json!({ "for": u }));
    }
    let t: conclave_runtime::Timestamp = u.parse().map_err(|_| {
        anyhow::anyhow!("--until `{u}`: expected a duration (`30m`) or an RFC 3339 time")
    })?;
    Ok(json!({ "until": t }))
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Client {
    fn new(ep: &Endpoint) -> anyhow::Result<Self> {
        let token = std::env::var("CONCLAVE_API_TOKEN")
            .context("set CONCLAVE_API_TOKEN to an API token (`conclave api token` makes one)")?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)));
        if let Some(ca) = &ep.api_ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading `{}`", ca.display()))?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .with_context(|| format!("`{}` is not a PEM certificate", ca.display()))?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
                    .build(),
            );
        }
        Ok(Client {
            agent: config.build().into(),
            base: ep.api_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Calls the API; `Ok(Err((status, message)))` when it refused.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, (u16, String)>> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let res = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b.unwrap_or_else(|| json!({}))),
        };
        let mut res = res.with_context(|| format!("calling {url}"))?;
        let status = res.status().as_u16();
        let text = res
            .body_mut()
            .read_to_string()
            .context("reading the answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_string);
            return Ok(Err((status, msg)));
        }
        Ok(Ok(value))
    }
}

/// What to do.
pub enum Request<'a> {
    /// `GET path`, printed with `print`.
    Get(&'a str, fn(&Value)),
    /// An act: method, path, body.
    Act(&'static str, String, Value),
}

/// Runs one request against the API; exit 1 when the API refused it.
pub fn run(ep: &Endpoint, req: Request<'_>) -> anyhow::Result<ExitCode> {
    let client = Client::new(ep)?;
    let (answer, print): (_, fn(&Value)) = match req {
        Request::Get(path, print) => (client.call("GET", path, None)?, print),
        Request::Act(method, path, body) => (client.call(method, &path, Some(body))?, print_act),
    };
    match answer {
        Ok(v) => {
            print(&v);
            Ok(ExitCode::SUCCESS)
        }
        Err((status, msg)) => {
            eprintln!("refused ({status}): {msg}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The body of an act with a reason and an optional expiry.
pub fn timed(reason: &str, until: Option<&str>, mut extra: Value) -> anyhow::Result<Value> {
    let mut body = expiry(until)?;
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object_mut()) {
        b.append(e);
        b.insert("reason".into(), reason.into());
    }
    Ok(body)
}

fn print_act(v: &Value) {
    let o = &v["override"];
    let kind = match &o["kind"] {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    };
    println!(
        "{} {kind} by {} ({}){}",
        o["id"].as_str().unwrap_or("?"),
        o["by"]["name"].as_str().unwrap_or("?"),
        o["by"]["role"].as_str().unwrap_or("?"),
        o["until"]
            .as_str()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default()
    );
    for d in v["decisions"].as_array().into_iter().flatten() {
        println!(
            "  decision {} {} -> {}",
            d["id"].as_str().unwrap_or("?"),
            d["target"].as_str().unwrap_or("?"),
            d["outcome"]["kind"].as_str().unwrap_or("?")
        );
    }
}

/// `conclave agents`
pub fn print_agents(v: &Value) {
    println!("{:<12} {:<8} {:<8} STATE", "AGENT", "MODE", "POLICY");
    for a in v.as_array().into_iter().flatten() {
        let state = if a["running"] == Value::Bool(false) {
            "retired"
        } else if a["paused"] == Value::Bool(true) {
            "paused"
        } else {
            "running"
        };
        println!(
            "{:<12} {:<8} {:<8} {state}",
            a["name"].as_str().unwrap_or("?"),
            a["mode"].as_str().unwrap_or("?"),
            a["policy_mode"].as_str().unwrap_or("?")
        );
    }
}

/// `conclave approvals`
pub fn print_approvals(v: &Value) {
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("nothing waiting for approval");
    }
    for p in items {
        let d = &p["decision"];
        println!(
            "{} {} {} {} rule={} deadline={} then={}",
            d["id"].as_str().unwrap_or("?"),
            d["target"].as_str().unwrap_or("?"),
            d["agent"].as_str().unwrap_or("?"),
            d["action"],
            p["rule"].as_str().unwrap_or("?"),
            p["deadline"].as_str().unwrap_or("?"),
            p["on_timeout"].as_str().unwrap_or("?")
        );
    }
}

/// `conclave override list`
pub fn print_overrides(v: &Value) {
    println!("frozen: {}", v["frozen"]);
    for o in v["overrides"].as_array().into_iter().flatten() {
        println!("{o}");
    }
}
