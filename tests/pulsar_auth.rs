//! Token authentication and TLS against a real broker with both enabled
//! (`CONCLAVE_PULSAR_AUTH=token deploy/pulsar/pulsar.sh start && ... setup-topics`, a second
//! instance beside the plain one). `CONCLAVE_PULSAR_AUTH_URL` (e.g. `pulsar://127.0.0.1:6652`)
//! turns these tests on; without it they say so and pass, unless
//! `CONCLAVE_REQUIRE_PULSAR_AUTH=1` makes that a failure. The broker script leaves its
//! tokens and CA in `CONCLAVE_PULSAR_AUTH_DIR` (default `target/pulsar-auth/auth`).
//! The checks that need no broker (unreadable or misplaced credentials) always run.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use conclave_runtime::bus::pulsar::{
    PulsarAuth, PulsarSettings, PulsarTls, PulsarTransport, TopicReader,
};
use conclave_runtime::{Clock, RealClock};

use crate::golden::root;
use crate::pulsar::{
    decisions_of, enacted_scales, metrics, pulsar_summary, rt, write_policy, Topics,
};

/// A token-shaped value that no broker signed, for the checks without a broker.
const FAKE_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.bm90LWEtc2lnbmF0dXJl";

/// One test at a time on the authenticating broker (they each start a runtime).
static AUTH_BROKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The token-authenticating broker: its URLs and the folder with its tokens and CA.
struct AuthBroker {
    url: String,
    tls_url: String,
    admin: String,
    creds: PathBuf,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl AuthBroker {
    fn token_file(&self, role: &str) -> PathBuf {
        self.creds.join(format!("{role}.token"))
    }

    fn token(&self, role: &str) -> String {
        std::fs::read_to_string(self.token_file(role))
            .expect("token written by pulsar.sh")
            .trim()
            .to_owned()
    }

    fn ca(&self) -> PathBuf {
        self.creds.join("tls/ca.pem")
    }

    /// Settings for the test's own client, with role `conclave`'s token (and the CA).
    fn settings(&self) -> PulsarSettings {
        PulsarSettings {
            auth: Some(PulsarAuth::TokenFile(self.token_file("conclave"))),
            tls: Some(PulsarTls {
                ca_file: Some(self.ca()),
                ..PulsarTls::default()
            }),
            ..PulsarSettings::default()
        }
    }

    /// The subscription's backlog, from the admin API with the superuser's token.
    fn backlog(&self, topic: &str, subscription: &str) -> u64 {
        let path = topic.replacen("persistent://", "/admin/v2/persistent/", 1) + "/stats";
        let mut s = std::net::TcpStream::connect(&self.admin).expect("admin API reachable");
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.admin,
            self.token("superuser")
        )
        .expect("request");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("response");
        let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(json).expect("stats JSON");
        v["subscriptions"][subscription]["msgBacklog"]
            .as_u64()
            .unwrap_or_else(|| panic!("no backlog for {subscription} in {v}"))
    }
}

/// The broker, held exclusively, or `None` (with a note) when there is none.
fn auth_broker() -> Option<AuthBroker> {
    let url = match std::env::var("CONCLAVE_PULSAR_AUTH_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CONCLAVE_REQUIRE_PULSAR_AUTH").as_deref() != Ok("1"),
                "CONCLAVE_REQUIRE_PULSAR_AUTH=1 but CONCLAVE_PULSAR_AUTH_URL is not set"
            );
            eprintln!(
                "no token-auth broker: set CONCLAVE_PULSAR_AUTH_URL (see tests/pulsar_auth.rs) to run this test"
            );
            return None;
        }
    };
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let creds = std::env::var_os("CONCLAVE_PULSAR_AUTH_DIR")
        .map_or_else(|| root().join("target/pulsar-auth/auth"), PathBuf::from);
    Some(AuthBroker {
        url,
        tls_url: var(
            "CONCLAVE_PULSAR_AUTH_TLS_URL",
            "pulsar+ssl://127.0.0.1:6653",
        ),
        admin: var("CONCLAVE_PULSAR_AUTH_ADMIN", "127.0.0.1:8082"),
        creds,
        _guard: AUTH_BROKER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    })
}

/// `conclave` with `args` and extra environment, run to completion, with logs at trace
/// level (the token must not appear even there).
fn conclave(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.args(args)
        .env("CONCLAVE_LOG", "trace")
        .env_remove("CONCLAVE_PULSAR_TOKEN_FILE")
        .env_remove("CONCLAVE_PULSAR_TLS_CA_FILE")
        .current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("conclave runs")
}

/// A `conclave run --pulsar` that is expected to fail at start: its exit code and stderr.
fn run_fails(url: &str, policy: &Path, dir: &Path, env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let audit = dir.join("failed-audit.jsonl");
    let dead = dir.join("failed-dead.jsonl");
    let out = conclave(
        &[
            "run",
            "--pulsar",
            url,
            "--policy",
            &policy.display().to_string(),
            "--audit",
            &audit.display().to_string(),
            "--dead-letters",
            &dead.display().to_string(),
        ],
        env,
    );
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), text)
}

/// A running `conclave run --pulsar`, logging at trace level.
struct Instance {
    child: Child,
    dir: PathBuf,
    name: String,
}

impl Instance {
    fn start(url: &str, policy: &Path, dir: &Path, name: &str, env: &[(&str, &str)]) -> Instance {
        let err = std::fs::File::create(dir.join(format!("{name}.err"))).expect("file");
        let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.args([
            "run", "--quiet", "--pulsar", url, "--name", name, "--policy",
        ])
        .arg(policy)
        .arg("--audit")
        .arg(dir.join(format!("{name}-audit.jsonl")))
        .arg("--dead-letters")
        .arg(dir.join(format!("{name}-dead.jsonl")))
        .env("CONCLAVE_LOG", "trace")
        .env_remove("CONCLAVE_PULSAR_TOKEN_FILE")
        .env_remove("CONCLAVE_PULSAR_TLS_CA_FILE")
        .current_dir(root())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut i = Instance {
            child: cmd.spawn().expect("conclave runs"),
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        let start = RealClock.now();
        while !i.output().contains("running on") {
            if let Ok(Some(status)) = i.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", i.output());
            }
            assert!(
                RealClock.now().since(start) < Duration::from_secs(30),
                "{name} did not start:\n{}",
                i.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        i
    }

    /// Everything it wrote, stderr then stdout.
    fn output(&self) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.join(format!("{}.{ext}", self.name)))
                .unwrap_or_default()
        };
        read("err") + &read("out")
    }

    /// SIGTERM; the `pulsar:` summary figures and everything it wrote.
    fn stop(mut self) -> (std::collections::BTreeMap<String, u64>, String) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("waits");
        let output = self.output();
        assert!(
            status.success(),
            "{} exited with {status}:\n{output}",
            self.name
        );
        (pulsar_summary(&output), output)
    }
}

/// Publishes one overloaded metrics line for `cart` and `checkout` with `conclave publish`.
fn publish_cli(url: &str, topic: &str, dir: &Path, flags: &[&str]) -> Output {
    let now = RealClock.now();
    let file = dir.join("telemetry.jsonl");
    let lines = [("cart", 1.0, 4), ("checkout", 0.75, 4)]
        .iter()
        .map(|(s, cpu, r)| String::from_utf8(metrics(s, now, *cpu, *r)).expect("utf8"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, lines + "\n").expect("written");
    let mut args = vec!["publish", "--pulsar", url, "--topic", topic];
    args.extend_from_slice(flags);
    let file = file.display().to_string();
    args.push(&file);
    conclave(&args, &[])
}

/// The actions published to `topic`, read as role `conclave` (two expected).
fn read_actions(url: &str, settings: PulsarSettings, topic: &str) -> Vec<String> {
    rt().block_on(async {
        let t = PulsarTransport::connect(url, settings, "auth-test", Duration::from_secs(10))
            .await
            .expect("the test's client connects");
        let mut r = TopicReader::open(&t, topic, "test-reader")
            .await
            .expect("reader");
        let mut got = Vec::new();
        while got.len() < 2 {
            match r.next(Duration::from_secs(20)).await {
                Some(m) => got.push(m.key.unwrap_or_default()),
                None => break,
            }
        }
        got.sort();
        got
    })
}

/// Appends `lines` to the policy's `spec.pulsar` (the last block `write_policy` writes).
fn with_pulsar_lines(policy: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(policy).expect("policy");
    text.push_str(lines);
    std::fs::write(policy, text).expect("written");
}

fn assert_no_token(output: &str, token: &str) {
    assert!(!token.is_empty());
    assert!(
        !output.contains(token),
        "the token appears in the output:\n{output}"
    );
}

#[test]
fn unreadable_or_misplaced_credentials_are_clear_errors_without_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("auth-errors");
    let policy = write_policy(dir.path(), &topics, &["cart".to_string()]);
    // Nothing listens on port 1: every one of these fails before connecting.
    let url = "pulsar://127.0.0.1:1";
    let missing = dir.path().join("missing.token");
    let (code, err) = run_fails(
        url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TOKEN_FILE", &missing)],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: cannot read the Pulsar token in file `{}`: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").expect("written");
    let (code, err) = run_fails(
        url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TOKEN_FILE", &empty)],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: the Pulsar token in file `{}` is empty",
            empty.display()
        )
    );
    // The token itself where its file belongs: refused, and not echoed.
    let (code, err) = run_fails(
        url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TOKEN_FILE", Path::new(FAKE_JWT))],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        "error: connecting to Pulsar: cannot read the Pulsar token in a file whose name looks like a token (not shown): No such file or directory (os error 2)"
    );
    // A token variable the policy names but the environment lacks.
    let by_env = dir.path().join("env.yaml");
    std::fs::copy(&policy, &by_env).expect("copied");
    with_pulsar_lines(
        &by_env,
        "    auth: {token_env: CONCLAVE_TEST_NO_SUCH_TOKEN}\n",
    );
    let (code, err) = run_fails(url, &by_env, dir.path(), &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        "error: connecting to Pulsar: the Pulsar token in environment variable `CONCLAVE_TEST_NO_SUCH_TOKEN` is not set"
    );
    // TLS asked for on a plain URL; a CA file that is not one.
    let token = dir.path().join("fake.token");
    std::fs::write(&token, FAKE_JWT).expect("written");
    let (code, err) = run_fails(
        url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TLS_CA_FILE", &token)],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        "error: connecting to Pulsar: TLS settings are given (`spec.pulsar.tls` or CONCLAVE_PULSAR_TLS_CA_FILE) but `pulsar://127.0.0.1:1` does not use TLS; use a `pulsar+ssl://` URL"
    );
    let token_flag = token.display().to_string();
    let out = conclave(
        &[
            "publish",
            "--pulsar",
            "pulsar+ssl://127.0.0.1:1",
            "--token-file",
            &token_flag,
            "--tls-ca-file",
            &token_flag,
            "-",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: the CA file `{}` holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)",
            token.display()
        )
    );
    assert_no_token(&err, FAKE_JWT);
}

#[test]
fn with_the_right_token_a_run_decides_and_acknowledges() {
    let Some(broker) = auth_broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("auth-e2e");
    let policy = write_policy(dir.path(), &topics, &["cart".into(), "checkout".into()]);
    // The policy names a variable; the deployment puts the token in it.
    with_pulsar_lines(
        &policy,
        "    auth: {token_env: CONCLAVE_TEST_PULSAR_TOKEN}\n",
    );
    let token = broker.token("conclave");
    let a = Instance::start(
        &broker.url,
        &policy,
        dir.path(),
        "auth-a",
        &[("CONCLAVE_TEST_PULSAR_TOKEN", &token)],
    );
    assert!(
        a.output().contains(&format!(
            "running on {}, token in environment variable `CONCLAVE_TEST_PULSAR_TOKEN`,",
            broker.url
        )),
        "{}",
        a.output()
    );
    let token_flag = broker.token_file("conclave").display().to_string();
    let out = publish_cli(
        &broker.url,
        &topics.telemetry,
        dir.path(),
        &["--token-file", &token_flag],
    );
    let published = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{published}");
    assert!(
        published.starts_with("published 2 messages to "),
        "{published}"
    );
    assert_no_token(&published, &token);

    let mut settings = broker.settings();
    settings.tls = None;
    let actions = read_actions(&broker.url, settings, &topics.actions);
    let (summary, output) = a.stop();
    assert_eq!(actions, ["cart", "checkout"]);
    assert_eq!(
        enacted_scales(&decisions_of(dir.path(), "auth-a")).len(),
        2,
        "cart and checkout scaled"
    );
    assert_eq!(summary["delivered"], 2, "{summary:?}");
    assert_eq!(summary["acknowledged"], 2, "{summary:?}");
    assert_eq!(
        broker.backlog(&topics.telemetry, "conclave"),
        0,
        "everything acknowledged"
    );
    assert_no_token(&output, &token);
}

#[test]
fn without_a_token_or_with_a_wrong_one_the_broker_refuses() {
    let Some(broker) = auth_broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("auth-refused");
    let policy = write_policy(dir.path(), &topics, &["cart".to_string()]);
    let (code, err) = run_fails(&broker.url, &policy, dir.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: the Pulsar broker at {} requires authentication and no token is configured (set `spec.pulsar.auth` in the policy or CONCLAVE_PULSAR_TOKEN_FILE): the broker says `Failed to authenticate`",
            broker.url
        )
    );

    let wrong = broker.token_file("wrong");
    let (code, err) = run_fails(
        &broker.url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TOKEN_FILE", &wrong)],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: the Pulsar broker at {} refused the token in file `{}`: the broker says `Failed to authenticate`",
            broker.url,
            wrong.display()
        )
    );
    assert_no_token(&err, &broker.token("wrong"));

    // Authenticated, but the role may not consume: the topic says so.
    let stranger = broker.token_file("stranger");
    let (code, err) = run_fails(
        &broker.url,
        &policy,
        dir.path(),
        &[("CONCLAVE_PULSAR_TOKEN_FILE", &stranger)],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: subscribing to the telemetry topics: cannot subscribe to `{}`: service discovery error: Query error (Some(AuthorizationError)): Client is not authorized to Get Partition Metadata",
            topics.telemetry
        )
    );
    assert_no_token(&err, &broker.token("stranger"));
}

#[test]
fn over_tls_with_the_brokers_ca_from_the_environment() {
    let Some(broker) = auth_broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("auth-tls");
    let policy = write_policy(dir.path(), &topics, &["cart".into(), "checkout".into()]);
    let token_file = broker.token_file("conclave").display().to_string();
    let ca = broker.ca().display().to_string();

    // Without the CA the broker's certificate is not trusted.
    let out = publish_cli(
        &broker.tls_url,
        &topics.telemetry,
        dir.path(),
        &["--token-file", &token_file],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: connecting to Pulsar: TLS with the Pulsar broker at {} failed: the handshake failed (the client gives no reason); trust the CA that signed the broker's certificate with `spec.pulsar.tls.ca_file` or CONCLAVE_PULSAR_TLS_CA_FILE, and name a host the certificate lists",
            broker.tls_url
        )
    );

    // Token and CA from the deployment's environment; the policy has neither.
    let a = Instance::start(
        &broker.tls_url,
        &policy,
        dir.path(),
        "tls-a",
        &[
            ("CONCLAVE_PULSAR_TOKEN_FILE", &token_file),
            ("CONCLAVE_PULSAR_TLS_CA_FILE", &ca),
        ],
    );
    let out = publish_cli(
        &broker.tls_url,
        &topics.telemetry,
        dir.path(),
        &["--token-file", &token_file, "--tls-ca-file", &ca],
    );
    let published = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{published}");
    let actions = read_actions(&broker.tls_url, broker.settings(), &topics.actions);
    let (summary, output) = a.stop();
    assert_eq!(actions, ["cart", "checkout"]);
    assert_eq!(summary["acknowledged"], 2, "{summary:?}");
    assert_eq!(
        broker.backlog(&topics.telemetry, "conclave"),
        0,
        "everything acknowledged"
    );
    assert_no_token(&output, &broker.token("conclave"));
}
