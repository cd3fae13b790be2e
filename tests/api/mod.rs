//! The operator API against a real `conclave run --api`: telemetry is written to its
//! stdin in event time, so windows close exactly when the test says, and every request
//! goes over HTTP(S) on 127.0.0.1 like a person's would.

mod abuse;
mod acts;
mod browser;
mod cli;
mod durable;
mod openapi;
mod tls;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use conclave_runtime::{Clock, RealClock};

use serde_json::Value;

use crate::golden::root;

/// Tokens for the three roles, in a token file made by `conclave api token`.
pub struct Tokens {
    pub file: PathBuf,
    /// ana: operator, named as an approver in the policy.
    pub operator: String,
    /// vic: viewer.
    pub viewer: String,
    /// ada: admin.
    pub admin: String,
    /// otto: an operator the approval rule does not name (but its role is listed).
    pub other_operator: String,
}

impl Tokens {
    pub fn make(dir: &Path) -> Tokens {
        let file = dir.join("tokens.yaml");
        let make = |name: &str, role: &str| {
            let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
                .args(["api", "token", "--name", name, "--role", role, "--tokens"])
                .arg(&file)
                .output()
                .expect("conclave api token runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8(out.stdout)
                .expect("utf-8")
                .trim()
                .to_string();
            assert!(token.starts_with("conclave_"), "{token}");
            token
        };
        Tokens {
            operator: make("ana", "operator"),
            viewer: make("vic", "viewer"),
            admin: make("ada", "admin"),
            other_operator: make("otto", "operator"),
            file,
        }
    }
}

/// One metrics line for `service` at `secs` seconds past 10:00 with `cpu` load.
pub fn metrics(service: &str, secs: u32, cpu: f64, replicas: u32) -> String {
    format!(
        "{{\"type\": \"metrics\", \"schema_version\": 1, \"service\": \"{service}\", \"ts\": \"2026-11-29T10:{:02}:{:02}.000Z\", \"rate_in\": 100.0, \"rate_out\": 100.0, \"backlog\": 0, \"latency_p50_ms\": 20.0, \"latency_p99_ms\": 80.0, \"error_rate\": 0.0, \"cpu\": {cpu}, \"replicas\": {replicas}}}",
        secs / 60,
        secs % 60
    )
}

/// A running `conclave run --api`.
pub struct ApiRun {
    child: Child,
    stdin: Option<ChildStdin>,
    pub base: String,
    stderr: mpsc::Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl ApiRun {
    /// Starts the runtime under `policy` (relative to the repo root) with its files in
    /// `dir`, and waits for the API's address.
    pub fn start(dir: &Path, policy: &str, tokens: &Tokens, extra: &[&str]) -> ApiRun {
        Self::start_env(dir, policy, tokens, extra, &[])
    }

    /// As [`ApiRun::start`], with environment variables set (and no inherited `OTEL_*`).
    pub fn start_env(
        dir: &Path,
        policy: &str,
        tokens: &Tokens,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ApiRun {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .current_dir(root())
            .args([
                "run",
                "--policy",
                policy,
                "--telemetry",
                "-",
                "--time",
                "event",
                "--quiet",
            ])
            .arg("--audit")
            .arg(dir.join("audit.jsonl"))
            .arg("--dead-letters")
            .arg(dir.join("dead-letters.jsonl"))
            .arg("--actions")
            .arg(dir.join("actions.log"))
            .args(["--api", "127.0.0.1:0", "--api-tokens"])
            .arg(&tokens.file)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("conclave run starts");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = ApiRun {
            child,
            stdin,
            base: String::new(),
            stderr: rx,
            stderr_seen: Vec::new(),
        };
        let line = run.wait_stderr("api: listening on ");
        run.base = line["api: listening on ".len()..].trim().to_string();
        run
    }

    /// Waits (up to a minute: a generous bound for a loaded machine, not a measurement)
    /// for a stderr line starting with `prefix`.
    pub fn wait_stderr(&mut self, prefix: &str) -> String {
        let (clock, limit) = (RealClock, Duration::from_secs(60));
        let start = clock.now();
        loop {
            if let Some(l) = self.stderr_seen.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            let left = limit.saturating_sub(clock.now().since(start));
            match self.stderr.recv_timeout(left) {
                Ok(l) => self.stderr_seen.push(l),
                Err(_) => panic!("no `{prefix}` on stderr; saw {:?}", self.stderr_seen),
            }
        }
    }

    /// Writes telemetry lines to the runtime's stdin.
    pub fn send(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for l in lines {
            writeln!(stdin, "{l}").expect("write telemetry");
        }
        stdin.flush().expect("flush telemetry");
    }

    /// Polls `GET path` until `pred` holds for the answer (decisions are asynchronous).
    pub fn wait_for(&self, token: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let (clock, limit) = (RealClock, Duration::from_secs(60));
        let start = clock.now();
        loop {
            let (status, v) = self.get(path, Some(token));
            if status == 200 && pred(&v) {
                return v;
            }
            assert!(
                clock.now().since(start) < limit,
                "GET {path} never satisfied the test; last: {status} {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the runtime's clock reads `at` (telemetry is read asynchronously).
    pub fn wait_clock(&self, token: &str, at: &str) {
        self.wait_for(token, "/api/v1/view", |v| v["now"] == at);
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        call(&self.base, "GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        call(&self.base, "POST", path, token, Some(body))
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        call(&self.base, "PUT", path, token, Some(body))
    }

    /// Ends the input; the runtime decides the last window and exits. Returns its stderr.
    pub fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("conclave run exits");
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.stderr_seen.push(l);
        }
        assert!(
            status.success(),
            "conclave run failed: {:?}",
            self.stderr_seen
        );
        std::mem::take(&mut self.stderr_seen)
    }
}

impl Drop for ApiRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP call with a raw body; the JSON answer (or the text as a JSON string).
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let res = match (method, body) {
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (m, b) => {
            let mut r = if m == "PUT" {
                agent.put(&url)
            } else {
                agent.post(&url)
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.header("Content-Type", "application/json")
                .send(b.unwrap_or("").as_bytes())
        }
    };
    let mut res = res.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The audit log's records as JSON, in order.
pub fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line is JSON")["record"].clone())
        .collect()
}

pub const POLICY: &str = "tests/fixtures/api/policy.yaml";

/// Starts a run and drives it to one pending checkout scale-up; returns its id.
pub fn run_with_pending(dir: &Path, tokens: &Tokens) -> (ApiRun, String) {
    let mut run = ApiRun::start(dir, POLICY, tokens, &[]);
    run.send(&[
        metrics("checkout", 0, 0.9, 4),
        metrics("checkout", 5, 0.9, 4),
        metrics("checkout", 12, 0.9, 4),
    ]);
    let pending = run.wait_for(&tokens.viewer, "/api/v1/approvals", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    });
    let id = pending[0]["decision"]["id"]
        .as_str()
        .expect("decision id")
        .to_string();
    (run, id)
}

/// Starts `conclave run --api` in `dir` with `extra` arguments and no input, expecting it
/// to refuse to start; returns its stderr (trimmed).
pub fn refused_start(dir: &Path, tokens: &Tokens, extra: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .current_dir(root())
        .args([
            "run",
            "--policy",
            POLICY,
            "--telemetry",
            "-",
            "--api",
            "127.0.0.1:0",
            "--api-tokens",
        ])
        .arg(&tokens.file)
        .arg("--audit")
        .arg(dir.join("audit.jsonl"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("conclave runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}
