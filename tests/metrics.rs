//! The runtime's metrics (issue #7, item 5): `GET /metrics` in the Prometheus text format
//! on a real `conclave run --api`; OTLP metrics over the wire to a receiver this test
//! runs on 127.0.0.1 (decoded with the OTLP protobuf types); and a runtime that decides
//! exactly as before when its OTLP endpoint is down.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_runtime::metrics::{Kind, ALL};
use conclave_runtime::{Clock, Decision, RealClock};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;

use crate::api::{metrics, ApiRun, Tokens};
use crate::golden::{audit_decisions, root};

const POLICY: &str = "tests/fixtures/metrics/policy.yaml";
const E2E: &str = "tests/fixtures/runtime/e2e.jsonl";
const E2E_MISSING_MODEL: &str = "tests/fixtures/metrics/e2e-missing-model.yaml";

/// `GET /metrics` without a token: the content type and the text.
fn scrape(base: &str) -> (String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut res = agent
        .get(&format!("{base}/metrics"))
        .call()
        .expect("GET /metrics");
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = res.body_mut().read_to_string().expect("text body");
    (content_type, text)
}

/// Every sample line: `name{labels}` -> value.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            let v = match v {
                "+Inf" => f64::INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| panic!("value in {l:?}")),
            };
            (k.to_string(), v)
        })
        .collect()
}

/// Decisions by `agent/outcome`.
fn by_agent_and_outcome(ds: &[Decision]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for d in ds {
        *m.entry(format!("{}/{}", d.agent, d.outcome.name()))
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn the_metrics_endpoint_serves_decisions_dead_letters_queues_and_inference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    let mut lines = Vec::new();
    for secs in (0..=155).step_by(5) {
        lines.push(metrics("checkout", secs, 0.9, 4));
        lines.push(metrics("payments", secs, 0.3, 4));
        if secs == 60 {
            lines.push("this is not telemetry".to_string());
        }
    }
    run.send(&lines);
    // Windows close in event time: 16 of them, the last ending at 10:02:30.
    let (clock, limit) = (RealClock, Duration::from_secs(60));
    let start = clock.now();
    while series(&scrape(&run.base).1).get("conclave_decision_windows_total") != Some(&16.0) {
        assert!(
            clock.now().since(start) < limit,
            "windows never closed:\n{}",
            scrape(&run.base).1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // One unauthenticated call, for the API's own counter.
    let (status, _) = run.get("/api/v1/view", None);
    assert_eq!(status, 401);

    let (content_type, text) = scrape(&run.base);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for def in ALL {
        let kind = match def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let name = def.prometheus_name();
        assert!(
            text.contains(&format!("# HELP {name} "))
                && text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} in\n{text}"
        );
    }
    let s = series(&text);
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no series `{k}` in\n{text}"))
    };

    // Every line went in; the broken one was dead-lettered with its reason.
    assert_eq!(get("conclave_telemetry_received_total"), lines.len() as f64);
    assert_eq!(
        get("conclave_telemetry_decoded_total"),
        (lines.len() - 1) as f64
    );
    assert_eq!(
        get("conclave_dead_letters_total{reason=\"malformed_json\"}"),
        1.0
    );
    assert_eq!(
        get("conclave_dead_letters_total{reason=\"wrong_shape\"}"),
        0.0
    );

    // Decisions by agent and outcome: exactly what the API lists.
    let (status, listed) = run.get("/api/v1/decisions?limit=1000", Some(&tokens.viewer));
    assert_eq!(status, 200);
    let listed: Vec<Decision> = serde_json::from_value(listed).expect("decisions");
    let want = by_agent_and_outcome(&listed);
    let got: BTreeMap<String, u64> = s
        .iter()
        .filter_map(|(k, v)| {
            let labels = k.strip_prefix("conclave_decisions_total{agent=\"")?;
            let (agent, rest) = labels.split_once("\",outcome=\"")?;
            Some((
                format!("{agent}/{}", rest.trim_end_matches("\"}")),
                *v as u64,
            ))
        })
        .collect();
    assert_eq!(got, want);
    // Checkout at 0.9 CPU on 4 replicas, target 0.5: scale to 8 in every window (the
    // telemetry keeps saying 4; no cooldown). Payments at 0.3 waits out its scale-down
    // stabilization; the breaker sees no calls.
    assert_eq!(want, BTreeMap::from([("scaler/enacted".to_string(), 15)]));
    assert_eq!(get("conclave_proposals_total{agent=\"scaler\"}"), 15.0);
    assert_eq!(get("conclave_agent_observed_total{agent=\"scaler\"}"), 64.0);

    // Queues: every agent's inbox and the bus partition, empty now that all is decided.
    for agent in ["breaker", "scaler"] {
        assert_eq!(
            get(&format!("conclave_agent_inbox_depth{{agent=\"{agent}\"}}")),
            0.0
        );
    }
    assert!(
        s.contains_key("conclave_bus_partition_depth{partition=\"0\"}"),
        "{text}"
    );

    // The forecast model ran once per window (both targets in one batch) from the first
    // complete minute on, 10:01:00 to 10:02:30; every call is in the histogram, whose
    // buckets are cumulative and end at the count.
    let model = "model=\"scaler-forecast\"";
    let count = get(&format!(
        "conclave_model_inference_duration_seconds_count{{{model}}}"
    ));
    assert_eq!(count, 10.0, "{text}");
    let mut previous = 0.0;
    for le in conclave_runtime::metrics::INFERENCE_BUCKETS {
        let n = get(&format!(
            "conclave_model_inference_duration_seconds_bucket{{{model},le=\"{le}\"}}"
        ));
        assert!(n >= previous, "buckets are cumulative:\n{text}");
        previous = n;
    }
    assert_eq!(
        get(&format!(
            "conclave_model_inference_duration_seconds_bucket{{{model},le=\"+Inf\"}}"
        )),
        count
    );
    assert!(
        get(&format!(
            "conclave_model_inference_duration_seconds_sum{{{model}}}"
        )) > 0.0
    );

    assert_eq!(get("conclave_api_requests_total{status=\"401\"}"), 1.0);
    assert!(get("conclave_api_requests_total{status=\"200\"}") >= 1.0);
    drop(run);
}

/// Request bodies received, with their paths, in order.
type Bodies = Mutex<Vec<(String, Vec<u8>)>>;

/// An OTLP/HTTP receiver on 127.0.0.1: answers 200 to every POST and keeps the bodies by
/// path.
struct Collector {
    endpoint: String,
    bodies: Arc<Bodies>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        Collector { endpoint, bodies }
    }

    /// The metrics export requests received so far, decoded, in order.
    fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .filter(|(path, _)| path == "/v1/metrics")
            .map(|(_, body)| {
                ExportMetricsServiceRequest::decode(body.as_slice()).expect("OTLP protobuf")
            })
            .collect()
    }
}

/// One keep-alive HTTP/1.1 connection: requests with a Content-Length body.
fn serve(stream: TcpStream, kept: &Bodies) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let path = request
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock().expect("bodies").push((path, body));
        let ok =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if out.write_all(ok.as_bytes()).is_err() {
            return;
        }
    }
}

/// `conclave run` on the e2e telemetry under `policy`, with `env` and no other `OTEL_*`;
/// its stderr.
fn run_e2e(policy: &str, audit: &Path, env: &[(&str, &str)]) -> String {
    run_file(policy, &root().join(E2E), audit, env)
}

/// `conclave run` on `telemetry` under `policy`, with its files beside `audit`, with `env`
/// and no other `OTEL_*`; its stderr.
fn run_file(policy: &str, telemetry: &Path, audit: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.current_dir(root())
        .args(["run", "--policy", policy, "--quiet", "--telemetry"])
        .arg(telemetry)
        .arg("--audit")
        .arg(audit)
        .arg("--dead-letters")
        .arg(audit.with_file_name("dead-letters.jsonl"))
        .arg("--actions")
        .arg(audit.with_file_name("actions.log"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("conclave runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "conclave run failed: {stderr}");
    stderr
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// A metric's number points: label values joined by `/` -> value.
fn points(req: &ExportMetricsServiceRequest, name: &str, labels: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let dps = match &m.data {
            Some(metric::Data::Sum(s)) => {
                assert!(s.is_monotonic, "{name} is a counter");
                &s.data_points
            }
            Some(metric::Data::Gauge(g)) => &g.data_points,
            other => panic!("{name}: unexpected data {other:?}"),
        };
        for p in dps {
            let key: Vec<String> = labels
                .iter()
                .map(|l| string_attr(&p.attributes, l).unwrap_or_default())
                .collect();
            let v = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                Some(number_data_point::Value::AsDouble(d)) => d,
                None => f64::NAN,
            };
            out.insert(key.join("/"), v);
        }
    }
    out
}

#[test]
fn otlp_metrics_reach_a_collector_over_http_with_the_runs_figures() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    run_e2e(
        E2E_MISSING_MODEL,
        &audit,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    // The last export is the one at exit, after the runtime drained: the run's totals.
    let exports = collector.metrics();
    let last = exports.last().expect("at least the export at exit");
    let resource = last.resource_metrics[0]
        .resource
        .as_ref()
        .expect("resource");
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("conclave")
    );
    let names: std::collections::BTreeSet<&str> = last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for def in ALL {
        // No model ran (it is missing), no API served, nothing failed to export, the
        // budget is not shared: those have no series; everything else is there.
        let silent = [
            "conclave.model.inference.duration",
            "conclave.model.drift.psi",
            "conclave.api.requests",
            "conclave.otlp.export.errors",
            "conclave.agent.restarts",
            "conclave.fleet_budget.granted",
            "conclave.fleet_budget.used",
        ];
        assert_eq!(
            names.contains(def.name),
            !silent.contains(&def.name),
            "{} in {names:?}",
            def.name
        );
    }

    let lines = std::fs::read_to_string(root().join(E2E))
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(
        points(last, "conclave.telemetry.received", &[]),
        BTreeMap::from([(String::new(), lines as f64)])
    );
    let ds = audit_decisions(&audit);
    let want: BTreeMap<String, f64> = by_agent_and_outcome(&ds)
        .into_iter()
        .map(|(k, v)| (k, v as f64))
        .collect();
    assert_eq!(
        points(last, "conclave.decisions", &["agent", "outcome"]),
        want
    );
    // Every scaler proposal was made by the rule, the model being unavailable.
    let scaler_proposals = ds
        .iter()
        .filter(|d| d.agent == "scaler")
        .map(|d| d.id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(scaler_proposals > 0);
    assert_eq!(
        points(last, "conclave.model.fallbacks", &["agent", "reason"]),
        BTreeMap::from([(
            "scaler/model_unavailable".to_string(),
            scaler_proposals as f64
        )])
    );
    assert_eq!(
        points(last, "conclave.dead_letters", &["reason"]).get("malformed_json"),
        Some(&0.0)
    );
}

#[test]
fn a_dead_otlp_endpoint_changes_no_decision_and_is_counted() {
    // A port nobody listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, dead) = (
        dir.path().join("plain/audit.jsonl"),
        dir.path().join("dead/audit.jsonl"),
    );
    for a in [&plain, &dead] {
        std::fs::create_dir_all(a.parent().expect("parent")).expect("mkdir");
    }
    let policy = "tests/fixtures/runtime/policy.yaml";
    run_e2e(policy, &plain, &[]);
    let stderr = run_e2e(
        policy,
        &dead,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", closed.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    assert!(stderr.contains("OTLP metrics export failed"), "{stderr}");
    // The same decisions (tracing is on with an endpoint: only the trace ids differ).
    let strip = |p: &Path| -> Vec<Decision> {
        audit_decisions(p)
            .into_iter()
            .map(|mut d| {
                d.trace_id = None;
                d
            })
            .collect()
    };
    assert_eq!(strip(&dead), strip(&plain));

    // Live: the failures are counted while the runtime goes on deciding.
    let tokens = Tokens::make(dir.path());
    let mut run = ApiRun::start_env(
        dir.path(),
        POLICY,
        &tokens,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", closed.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let (clock, limit) = (RealClock, Duration::from_secs(60));
    let start = clock.now();
    let errors = loop {
        let (_, text) = scrape(&run.base);
        let errors = series(&text)
            .get("conclave_otlp_export_errors_total{signal=\"metrics\"}")
            .copied()
            .unwrap_or(0.0);
        if errors >= 1.0 {
            break errors;
        }
        assert!(
            clock.now().since(start) < limit,
            "no export error counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(errors >= 1.0);
    run.send(&[
        metrics("checkout", 0, 0.9, 4),
        metrics("checkout", 5, 0.9, 4),
        metrics("checkout", 12, 0.9, 4),
    ]);
    run.wait_for(&tokens.viewer, "/api/v1/decisions", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    });
    // The decisions' spans cannot be exported either: counted under `traces`.
    let start = clock.now();
    loop {
        let (_, text) = scrape(&run.base);
        let traces = series(&text)
            .get("conclave_otlp_export_errors_total{signal=\"traces\"}")
            .copied()
            .unwrap_or(0.0);
        if traces >= 1.0 {
            break;
        }
        assert!(
            clock.now().since(start) < limit,
            "no trace export error counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(run);
}

#[test]
fn otlp_carries_the_inference_histogram_with_the_runtimes_buckets() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let telemetry = dir.path().join("telemetry.jsonl");
    let lines: Vec<String> = (0..=155)
        .step_by(5)
        .flat_map(|secs| {
            [
                metrics("checkout", secs, 0.9, 4),
                metrics("payments", secs, 0.3, 4),
            ]
        })
        .collect();
    std::fs::write(&telemetry, lines.join("\n")).expect("telemetry written");
    run_file(
        POLICY,
        &telemetry,
        &dir.path().join("audit.jsonl"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "conclave-metrics-test"),
        ],
    );

    let exports = collector.metrics();
    let last = exports.last().expect("the export at exit");
    let resource = last.resource_metrics[0]
        .resource
        .as_ref()
        .expect("resource");
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("conclave-metrics-test")
    );
    let m = last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "conclave.model.inference.duration")
        .expect("the inference histogram");
    assert_eq!(m.unit, "s");
    let Some(metric::Data::Histogram(h)) = &m.data else {
        panic!("not a histogram: {m:?}")
    };
    let [p] = h.data_points.as_slice() else {
        panic!("one series (one model): {h:?}")
    };
    assert_eq!(
        string_attr(&p.attributes, "model").as_deref(),
        Some("scaler-forecast")
    );
    assert_eq!(
        p.explicit_bounds,
        conclave_runtime::metrics::INFERENCE_BUCKETS
    );
    // Once per window from 10:01:00, and once more for the last (partial) window, which
    // the end of the input closes: 11 calls.
    assert_eq!(p.count, 11, "{p:?}");
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
    assert!(p.sum.is_some_and(|s| s > 0.0), "{p:?}");
    // Min and max are not recorded (the exported values are bucket means).
    assert_eq!((p.min, p.max), (None, None));
}
