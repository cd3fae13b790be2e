//! `spec.pulsar`: where a runtime on Pulsar reads telemetry, publishes actions and takes
//! overrides, and how it authenticates. The broker's address is deployment, not policy: it
//! comes from the command line (`conclave run --pulsar URL`). A deployment may also set the
//! token file and CA file in the environment, over the policy ([`PulsarSettings::with_env`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{Problem, Problems};
use super::located::Located;

/// The topics the shipped broker script creates; a policy without `spec.pulsar` uses them.
pub const DEFAULT_TELEMETRY_TOPIC: &str = "persistent://conclave/ops/telemetry";
/// Default actions topic.
pub const DEFAULT_ACTIONS_TOPIC: &str = "persistent://conclave/ops/actions";
/// Default control (override) topic.
pub const DEFAULT_CONTROL_TOPIC: &str = "persistent://conclave/ops/control";
/// Default dead-letter topic.
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "persistent://conclave/ops/telemetry-dlq";
/// Default topic instances report their replica use on (to the budget holder).
pub const DEFAULT_BUDGET_REPORTS_TOPIC: &str = "persistent://conclave/ops/budget-reports";
/// Default topic the budget holder publishes grants on.
pub const DEFAULT_BUDGET_GRANTS_TOPIC: &str = "persistent://conclave/ops/budget-grants";

/// `spec.pulsar` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPulsar {
    /// Where telemetry comes from.
    pub telemetry: Option<Located<RawTelemetryTopics>>,
    /// Topic enacted actions are published to, keyed by target.
    pub actions_topic: Option<Located<String>>,
    /// Topic human overrides arrive on (the same JSON the API takes).
    pub control_topic: Option<Located<String>>,
    /// The token the runtime authenticates with: where to read it, never the token itself.
    /// `CONCLAVE_PULSAR_TOKEN_FILE` in the environment takes precedence.
    pub auth: Option<Located<RawPulsarAuth>>,
    /// TLS for `pulsar+ssl://` URLs. `CONCLAVE_PULSAR_TLS_CA_FILE` in the environment takes
    /// precedence over `ca_file`.
    pub tls: Option<Located<RawPulsarTls>>,
    /// How instances on a `key_shared` subscription share `fleet_replica_budget`.
    pub budget: Option<Located<RawPulsarBudget>>,
}

/// `spec.pulsar.budget` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPulsarBudget {
    /// Topic instances report their replica use on; the active consumer of a Failover
    /// subscription on it holds the budget.
    pub reports_topic: Option<Located<String>>,
    /// Topic the budget holder publishes grants on.
    pub grants_topic: Option<Located<String>>,
    /// How long a grant stays in force (default 10s, 2s to 5m). Instances report five
    /// times a lease; a new holder grants nothing for one lease.
    pub lease: Option<Located<String>>,
}

/// How instances share the fleet replica budget (see `conclave_runtime::fleet_budget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulsarBudget {
    /// Reports topic.
    pub reports_topic: String,
    /// Grants topic.
    pub grants_topic: String,
    /// Grant lease.
    #[serde(serialize_with = "super::model::ser_duration")]
    pub lease: Duration,
}

impl Default for PulsarBudget {
    fn default() -> Self {
        PulsarBudget {
            reports_topic: DEFAULT_BUDGET_REPORTS_TOPIC.to_string(),
            grants_topic: DEFAULT_BUDGET_GRANTS_TOPIC.to_string(),
            lease: Duration::from_secs(10),
        }
    }
}

/// `spec.pulsar.auth` as written: exactly one of the two.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPulsarAuth {
    /// A file holding the token (a JWT) alone, such as a mounted secret; read when
    /// connecting. A relative path is resolved against the policy file's folder.
    pub token_file: Option<Located<String>>,
    /// The name of an environment variable holding the token; read when connecting.
    pub token_env: Option<Located<String>>,
}

/// `spec.pulsar.tls` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPulsarTls {
    /// A PEM file with the certificate(s) of the CA that signed the broker's certificate,
    /// trusted besides the public web roots. A relative path is resolved against the policy
    /// file's folder.
    pub ca_file: Option<Located<String>>,
    /// Accept a broker certificate that does not verify. Only `false` (the default): the
    /// Pulsar client (rustls) always verifies.
    pub allow_insecure: Option<Located<bool>>,
    /// Check the broker's certificate against the URL's host. Only `true` (the default):
    /// the Pulsar client (rustls) always checks.
    pub hostname_verification: Option<Located<bool>>,
}

/// Environment variable with a token file for deployments; it replaces `spec.pulsar.auth`.
pub const TOKEN_FILE_ENV: &str = "CONCLAVE_PULSAR_TOKEN_FILE";
/// Environment variable with a CA file for deployments; it replaces `spec.pulsar.tls.ca_file`.
pub const TLS_CA_FILE_ENV: &str = "CONCLAVE_PULSAR_TLS_CA_FILE";

/// Where the client's token comes from; never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PulsarAuth {
    /// A file holding the token alone (surrounding whitespace is ignored).
    TokenFile(PathBuf),
    /// An environment variable holding the token.
    TokenEnv(String),
}

impl fmt::Display for PulsarAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A token given where its file's path belongs must not reach a message.
            PulsarAuth::TokenFile(p) if looks_like_token(&p.to_string_lossy()) => {
                f.write_str("a file whose name looks like a token (not shown)")
            }
            PulsarAuth::TokenFile(p) => write!(f, "file `{}`", p.display()),
            PulsarAuth::TokenEnv(v) => write!(f, "environment variable `{v}`"),
        }
    }
}

/// TLS settings for `pulsar+ssl://`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulsarTls {
    /// Extra trusted CA certificates (PEM), besides the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Always `false` today (see [`RawPulsarTls::allow_insecure`]); passed to the client.
    pub allow_insecure: bool,
    /// Always `true` today (see [`RawPulsarTls::hostname_verification`]); passed to the client.
    pub hostname_verification: bool,
}

impl Default for PulsarTls {
    fn default() -> Self {
        PulsarTls {
            ca_file: None,
            allow_insecure: false,
            hostname_verification: true,
        }
    }
}

/// Whether `s` looks like a JWT (`eyJ...` header, three dot-separated parts): a token
/// pasted where its file or variable name belongs, which no message may echo.
pub fn looks_like_token(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("eyJ") && s.split('.').count() == 3 && !s.contains(['/', '\\', ' '])
}

/// `spec.pulsar.telemetry` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetryTopics {
    /// Topic names (a partitioned topic's partitions are all read). Default: the
    /// `telemetry` topic of the shipped broker script.
    pub topics: Option<Vec<Located<String>>>,
    /// A regular expression over full topic names, instead of `topics`; topics created
    /// later are picked up.
    pub topic_pattern: Option<Located<String>>,
    /// Subscription name, shared by every runtime instance (default `conclave`).
    pub subscription: Option<Located<String>>,
    /// `key_shared` (default: instances split targets by key) or `failover` (one active
    /// instance, the others stand by).
    pub subscription_type: Option<SubscriptionType>,
    /// Deliveries of one message before it goes to the dead-letter topic (default 3).
    pub max_redeliveries: Option<Located<u32>>,
    /// Where messages that cannot be used go, with the reason in their properties.
    pub dead_letter_topic: Option<Located<String>>,
}

/// How runtime instances share the telemetry subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionType {
    /// Each target (message key) belongs to one instance at a time: scale-out.
    KeyShared,
    /// One instance consumes, the others take over when it dies: a singleton.
    Failover,
}

/// Which telemetry topics to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicSelection {
    /// These topics.
    Names(Vec<String>),
    /// Every topic whose full name matches.
    Pattern(String),
}

/// `spec.pulsar`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulsarSettings {
    /// Telemetry topics.
    pub telemetry: TopicSelection,
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub subscription_type: SubscriptionType,
    /// Deliveries before dead-lettering.
    pub max_redeliveries: u32,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Actions topic.
    pub actions_topic: String,
    /// Control topic.
    pub control_topic: String,
    /// Where the token comes from; `None`: connect without authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<PulsarAuth>,
    /// TLS settings for `pulsar+ssl://`; `None`: the defaults (public web roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PulsarTls>,
    /// How instances share the fleet replica budget.
    pub budget: PulsarBudget,
    /// How long a runtime waits for the broker before giving up on a call.
    #[serde(skip)]
    pub operation_timeout: Duration,
}

impl Default for PulsarSettings {
    fn default() -> Self {
        PulsarSettings {
            telemetry: TopicSelection::Names(vec![DEFAULT_TELEMETRY_TOPIC.to_string()]),
            subscription: "conclave".to_string(),
            subscription_type: SubscriptionType::KeyShared,
            max_redeliveries: 3,
            dead_letter_topic: DEFAULT_DEAD_LETTER_TOPIC.to_string(),
            actions_topic: DEFAULT_ACTIONS_TOPIC.to_string(),
            control_topic: DEFAULT_CONTROL_TOPIC.to_string(),
            auth: None,
            tls: None,
            budget: PulsarBudget::default(),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

impl PulsarSettings {
    /// These settings with a deployment's environment over the policy:
    /// [`TOKEN_FILE_ENV`] replaces `auth`, [`TLS_CA_FILE_ENV`] replaces `tls.ca_file`. An
    /// empty variable counts as unset; relative paths are relative to the working folder.
    /// `var` looks a variable up (`std::env::var_os` outside tests).
    #[must_use]
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<OsString>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(file) = set(TOKEN_FILE_ENV) {
            self.auth = Some(PulsarAuth::TokenFile(file));
        }
        if let Some(ca) = set(TLS_CA_FILE_ENV) {
            self.tls.get_or_insert_with(PulsarTls::default).ca_file = Some(ca);
        }
        self
    }
}

/// Whether `name` is a topic name Pulsar accepts: `persistent://tenant/namespace/topic`
/// (or `non-persistent://`), or a short name resolved in `public/default`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    let bad_char = |s: &str| {
        s.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':')))
    };
    let rest = name
        .strip_prefix("persistent://")
        .or_else(|| name.strip_prefix("non-persistent://"));
    let parts: Vec<&str> = match rest {
        Some(r) => r.split('/').collect(),
        None if name.contains("://") => {
            return Err(format!(
                "expected `persistent://` or `non-persistent://`, found `{name}`"
            ))
        }
        None => vec![name],
    };
    if rest.is_some() && parts.len() != 3 {
        return Err(format!(
            "expected `persistent://tenant/namespace/topic`, found `{name}`"
        ));
    }
    for p in &parts {
        if p.is_empty() {
            return Err(format!("empty part in topic name `{name}`"));
        }
        if let Some(c) = bad_char(p) {
            return Err(format!(
                "character `{c}` is not allowed in topic name `{name}`"
            ));
        }
    }
    Ok(())
}

/// `path` as written, resolved against the policy's folder when relative.
fn resolve(path: &str, dir: Option<&Path>) -> PathBuf {
    match dir {
        Some(d) if Path::new(path).is_relative() => d.join(path),
        _ => PathBuf::from(path),
    }
}

/// A path that must name a file: not empty, and not a token pasted in its place.
fn file_path(
    v: &Located<String>,
    path: &str,
    dir: Option<&Path>,
    p: &mut Problems,
) -> Option<PathBuf> {
    let problem = if v.value.trim().is_empty() {
        "expected a path to a file, found an empty string"
    } else if looks_like_token(&v.value) {
        "expected a path to a file, found what looks like a token (not shown); put the token in a file and name the file here"
    } else {
        return Some(resolve(&v.value, dir));
    };
    p.push(v.loc, path, Problem::Contradiction(problem.to_string()));
    None
}

fn compile_auth(
    raw: &Located<RawPulsarAuth>,
    dir: Option<&Path>,
    p: &mut Problems,
) -> Option<PulsarAuth> {
    match (&raw.value.token_file, &raw.value.token_env) {
        (Some(_), Some(env)) => {
            p.push(
                env.loc,
                "spec.pulsar.auth.token_env",
                Problem::Contradiction("set `token_file` or `token_env`, not both".to_string()),
            );
            None
        }
        (None, None) => {
            p.push(
                raw.loc,
                "spec.pulsar.auth",
                Problem::Contradiction("expected `token_file` or `token_env`".to_string()),
            );
            None
        }
        (Some(file), None) => {
            file_path(file, "spec.pulsar.auth.token_file", dir, p).map(PulsarAuth::TokenFile)
        }
        (None, Some(env)) => {
            let name = &env.value;
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                return Some(PulsarAuth::TokenEnv(name.clone()));
            }
            // The value is not echoed: a mistaken one is often the token itself.
            p.push(
                env.loc,
                "spec.pulsar.auth.token_env",
                Problem::Contradiction(
                    "expected the name of an environment variable (letters, digits and `_`, not starting with a digit); the value is not shown in case it is a token"
                        .to_string(),
                ),
            );
            None
        }
    }
}

fn compile_tls(raw: &RawPulsarTls, dir: Option<&Path>, p: &mut Problems) -> PulsarTls {
    let mut out = PulsarTls::default();
    if let Some(ca) = &raw.ca_file {
        out.ca_file = file_path(ca, "spec.pulsar.tls.ca_file", dir, p);
    }
    // The `pulsar` crate's rustls connector ignores both switches; refusing them beats
    // a setting that silently does nothing.
    if let Some(v) = raw.allow_insecure.as_ref().filter(|v| v.value) {
        p.push(
            v.loc,
            "spec.pulsar.tls.allow_insecure",
            Problem::Contradiction(
                "`true` is not supported: the Pulsar client always verifies the broker's certificate; trust its CA with `ca_file` instead".to_string(),
            ),
        );
    }
    if let Some(v) = raw.hostname_verification.as_ref().filter(|v| !v.value) {
        p.push(
            v.loc,
            "spec.pulsar.tls.hostname_verification",
            Problem::Contradiction(
                "`false` is not supported: the Pulsar client always checks the broker's certificate against the URL's host; connect by a name or address the certificate lists".to_string(),
            ),
        );
    }
    out
}

/// Checks `spec.pulsar`, reporting every problem into `p`; relative paths resolve against
/// `dir`, the policy file's folder.
pub(crate) fn compile(
    raw: Option<&RawPulsar>,
    dir: Option<&Path>,
    p: &mut Problems,
) -> PulsarSettings {
    let mut out = PulsarSettings::default();
    let Some(raw) = raw else { return out };
    if let Some(a) = &raw.auth {
        out.auth = compile_auth(a, dir, p);
    }
    if let Some(t) = &raw.tls {
        out.tls = Some(compile_tls(&t.value, dir, p));
    }
    let topic = |t: &Located<String>, path: &str, p: &mut Problems| -> Option<String> {
        match check_topic_name(&t.value) {
            Ok(()) => Some(t.value.clone()),
            Err(m) => {
                p.push(t.loc, path, Problem::Contradiction(m));
                None
            }
        }
    };
    if let Some(t) = &raw.actions_topic {
        out.actions_topic = topic(t, "spec.pulsar.actions_topic", p).unwrap_or_default();
    }
    if let Some(t) = &raw.control_topic {
        out.control_topic = topic(t, "spec.pulsar.control_topic", p).unwrap_or_default();
    }
    if let Some(b) = &raw.budget {
        let b = &b.value;
        if let Some(t) = &b.reports_topic {
            out.budget.reports_topic =
                topic(t, "spec.pulsar.budget.reports_topic", p).unwrap_or_default();
        }
        if let Some(t) = &b.grants_topic {
            out.budget.grants_topic =
                topic(t, "spec.pulsar.budget.grants_topic", p).unwrap_or_default();
        }
        if let Some(l) = &b.lease {
            let range = (Duration::from_secs(2), Duration::from_secs(300));
            if let Some(d) =
                super::compile::duration(l, "spec.pulsar.budget.lease", range, "2s..=5m", p)
            {
                out.budget.lease = d;
            }
        }
    }
    let Some(tel) = &raw.telemetry else {
        return out;
    };
    let tv = &tel.value;
    match (&tv.topics, &tv.topic_pattern) {
        (Some(_), Some(pat)) => p.push(
            pat.loc,
            "spec.pulsar.telemetry.topic_pattern",
            Problem::Contradiction("set `topics` or `topic_pattern`, not both".to_string()),
        ),
        (Some(list), None) => {
            if list.is_empty() {
                p.push(
                    tel.loc,
                    "spec.pulsar.telemetry.topics",
                    Problem::Contradiction("expected at least one topic".to_string()),
                );
            }
            let names: Vec<String> = list
                .iter()
                .enumerate()
                .filter_map(|(i, t)| topic(t, &format!("spec.pulsar.telemetry.topics[{i}]"), p))
                .collect();
            out.telemetry = TopicSelection::Names(names);
        }
        (None, Some(pat)) => match regex::Regex::new(&pat.value) {
            // A pattern that matches a topic the runtime itself publishes to would feed
            // its own output back as telemetry (dead letters forever, for one).
            Ok(re) => {
                let dead = tv
                    .dead_letter_topic
                    .as_ref()
                    .map_or(out.dead_letter_topic.as_str(), |t| t.value.as_str());
                let own = [
                    ("the dead-letter topic", dead),
                    ("the actions topic", out.actions_topic.as_str()),
                    ("the control topic", out.control_topic.as_str()),
                    (
                        "the budget reports topic",
                        out.budget.reports_topic.as_str(),
                    ),
                    ("the budget grants topic", out.budget.grants_topic.as_str()),
                ];
                match own.iter().find(|(_, t)| re.is_match(t)) {
                    Some((what, t)) => p.push(
                        pat.loc,
                        "spec.pulsar.telemetry.topic_pattern",
                        Problem::Contradiction(format!(
                            "the pattern matches {what} `{t}`: the runtime would read what it publishes; anchor it (e.g. `$`) or exclude that name"
                        )),
                    ),
                    None => out.telemetry = TopicSelection::Pattern(pat.value.clone()),
                }
            }
            Err(e) => p.push(
                pat.loc,
                "spec.pulsar.telemetry.topic_pattern",
                Problem::Contradiction(format!("invalid regular expression: {e}")),
            ),
        },
        (None, None) => {}
    }
    if let Some(s) = &tv.subscription {
        if s.value.trim().is_empty() || s.value.contains('/') {
            p.push(
                s.loc,
                "spec.pulsar.telemetry.subscription",
                Problem::Contradiction(format!(
                    "expected a non-empty subscription name without `/`, found `{}`",
                    s.value
                )),
            );
        } else {
            out.subscription = s.value.clone();
        }
    }
    if let Some(t) = tv.subscription_type {
        out.subscription_type = t;
    }
    if let Some(n) = &tv.max_redeliveries {
        if (1..=100).contains(&n.value) {
            out.max_redeliveries = n.value;
        } else {
            p.push(
                n.loc,
                "spec.pulsar.telemetry.max_redeliveries",
                Problem::OutOfRange {
                    expected: "1..=100",
                    found: n.value.to_string(),
                },
            );
        }
    }
    if let Some(t) = &tv.dead_letter_topic {
        out.dead_letter_topic =
            topic(t, "spec.pulsar.telemetry.dead_letter_topic", p).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use super::{check_topic_name, looks_like_token, PulsarAuth, PulsarSettings, PulsarTls};

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25jbGF2ZSJ9.c2lnbmF0dXJl";

    /// `spec.pulsar` of a policy in `conf/` (line 6 on), compiled; or every error.
    fn pulsar(body: &str) -> Result<PulsarSettings, Vec<String>> {
        let text = format!(
            "apiVersion: conclave/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  agents: {{}}\n  pulsar:\n{body}"
        );
        crate::policy::compile_str("conf/p.yaml", &text, &["scaler"])
            .map(|p| p.pulsar().clone())
            .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn auth_from_a_file_or_a_variable() {
        let s = pulsar("    auth: {token_file: secrets/token}\n").expect("compiles");
        assert_eq!(
            s.auth,
            Some(PulsarAuth::TokenFile(PathBuf::from("conf/secrets/token")))
        );
        let s = pulsar("    auth: {token_file: /run/secrets/pulsar}\n").expect("compiles");
        assert_eq!(
            s.auth,
            Some(PulsarAuth::TokenFile(PathBuf::from("/run/secrets/pulsar")))
        );
        let s = pulsar("    auth:\n      token_env: PULSAR_TOKEN\n").expect("compiles");
        assert_eq!(s.auth, Some(PulsarAuth::TokenEnv("PULSAR_TOKEN".into())));
        assert_eq!(s.tls, None);
        assert_eq!(
            s.auth.map(|a| a.to_string()).as_deref(),
            Some("environment variable `PULSAR_TOKEN`")
        );
    }

    #[test]
    fn auth_mistakes_are_located_and_never_echo_a_token() {
        assert_eq!(
            pulsar("    auth: {token_file: t, token_env: T}\n").expect_err("both"),
            ["conf/p.yaml:7:38: spec.pulsar.auth.token_env: set `token_file` or `token_env`, not both"]
        );
        assert_eq!(
            pulsar("    auth: {}\n").expect_err("neither"),
            ["conf/p.yaml:7:11: spec.pulsar.auth: expected `token_file` or `token_env`"]
        );
        let errs = pulsar(&format!("    auth: {{token_env: {JWT}}}\n")).expect_err("a token");
        assert_eq!(
            errs,
            ["conf/p.yaml:7:23: spec.pulsar.auth.token_env: expected the name of an environment variable (letters, digits and `_`, not starting with a digit); the value is not shown in case it is a token"]
        );
        let errs = pulsar(&format!("    auth: {{token_file: {JWT}}}\n")).expect_err("a token");
        assert_eq!(
            errs,
            ["conf/p.yaml:7:24: spec.pulsar.auth.token_file: expected a path to a file, found what looks like a token (not shown); put the token in a file and name the file here"]
        );
        assert_eq!(
            pulsar("    auth: {token_file: ''}\n").expect_err("empty"),
            ["conf/p.yaml:7:24: spec.pulsar.auth.token_file: expected a path to a file, found an empty string"]
        );
    }

    #[test]
    fn tls_settings() {
        let s = pulsar(
            "    tls: {ca_file: ca.pem, allow_insecure: false, hostname_verification: true}\n",
        )
        .expect("compiles");
        assert_eq!(
            s.tls,
            Some(PulsarTls {
                ca_file: Some(PathBuf::from("conf/ca.pem")),
                allow_insecure: false,
                hostname_verification: true,
            })
        );
        assert_eq!(
            pulsar("    tls: {}\n").expect("compiles").tls,
            Some(PulsarTls::default())
        );
        assert_eq!(
            pulsar("    tls:\n      allow_insecure: true\n      hostname_verification: false\n")
                .expect_err("unsupported"),
            [
                "conf/p.yaml:8:23: spec.pulsar.tls.allow_insecure: `true` is not supported: the Pulsar client always verifies the broker's certificate; trust its CA with `ca_file` instead",
                "conf/p.yaml:9:30: spec.pulsar.tls.hostname_verification: `false` is not supported: the Pulsar client always checks the broker's certificate against the URL's host; connect by a name or address the certificate lists",
            ]
        );
    }

    #[test]
    fn the_environment_overrides_the_policy() {
        let policy =
            pulsar("    auth: {token_env: T}\n    tls: {ca_file: ca.pem}\n").expect("compiles");
        let env = |name: &str| match name {
            "CONCLAVE_PULSAR_TOKEN_FILE" => Some(OsString::from("/run/token")),
            "CONCLAVE_PULSAR_TLS_CA_FILE" => Some(OsString::from("other-ca.pem")),
            _ => None,
        };
        let s = policy.clone().with_env(env);
        assert_eq!(s.auth, Some(PulsarAuth::TokenFile("/run/token".into())));
        assert_eq!(
            s.tls.and_then(|t| t.ca_file),
            Some(PathBuf::from("other-ca.pem"))
        );
        // Unset or empty: the policy's.
        let empty = |_: &str| Some(OsString::new());
        assert_eq!(policy.clone().with_env(empty), policy);
        assert_eq!(policy.clone().with_env(|_| None), policy);
        // A CA from the environment alone turns TLS settings on.
        let s = PulsarSettings::default().with_env(env);
        assert_eq!(
            s.tls,
            Some(PulsarTls {
                ca_file: Some(PathBuf::from("other-ca.pem")),
                ..PulsarTls::default()
            })
        );
    }

    #[test]
    fn tokens_are_recognised() {
        assert!(looks_like_token(JWT));
        assert!(looks_like_token(&format!("{JWT}\n")));
        assert!(!looks_like_token("my.token.txt"));
        assert!(!looks_like_token("/run/secrets/eyJ.a.b"));
        assert!(!looks_like_token("PULSAR_TOKEN"));
        assert_eq!(
            PulsarAuth::TokenFile(JWT.into()).to_string(),
            "a file whose name looks like a token (not shown)"
        );
    }

    #[test]
    fn topic_names() {
        assert!(check_topic_name("persistent://conclave/ops/telemetry").is_ok());
        assert!(check_topic_name("non-persistent://a/b/c-1").is_ok());
        assert!(check_topic_name("telemetry").is_ok());
        assert_eq!(
            check_topic_name("kafka://a/b/c").unwrap_err(),
            "expected `persistent://` or `non-persistent://`, found `kafka://a/b/c`"
        );
        assert_eq!(
            check_topic_name("persistent://a/b").unwrap_err(),
            "expected `persistent://tenant/namespace/topic`, found `persistent://a/b`"
        );
        assert_eq!(
            check_topic_name("persistent://a/b c/d").unwrap_err(),
            "character ` ` is not allowed in topic name `persistent://a/b c/d`"
        );
    }

    #[test]
    fn the_budget_exchange_has_defaults_and_located_mistakes() {
        let s = pulsar("    actions_topic: persistent://conclave/ops/actions\n").expect("compiles");
        assert_eq!(s.budget, super::PulsarBudget::default());
        assert_eq!(s.budget.lease, std::time::Duration::from_secs(10));
        let s = pulsar("    budget: {reports_topic: persistent://a/b/r, grants_topic: persistent://a/b/g, lease: 30s}\n")
            .expect("compiles");
        assert_eq!(
            (
                s.budget.reports_topic.as_str(),
                s.budget.grants_topic.as_str(),
                s.budget.lease
            ),
            (
                "persistent://a/b/r",
                "persistent://a/b/g",
                std::time::Duration::from_secs(30)
            )
        );
        let errs = pulsar("    budget:\n      grants_topic: persistent://a/b\n      lease: 1s\n")
            .expect_err("bad");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("conf/p.yaml:8:21: spec.pulsar.budget.grants_topic: expected `persistent://tenant/namespace/topic`"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("conf/p.yaml:9:14: spec.pulsar.budget.lease: ")
                && errs[1].contains("2s..=5m"),
            "{errs:?}"
        );
        assert_eq!(
            pulsar("    budget: {lease: soon}\n")
                .expect_err("bad")
                .len(),
            1
        );
    }
}
