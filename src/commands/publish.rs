//! `conclave publish`: sends JSON Lines telemetry to a Pulsar topic, keyed by target, with
//! an event id per message (for demos, load tests and the system tests).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use conclave_runtime::bus::pulsar::{
    Outgoing, Publisher, PulsarAuth, PulsarSettings, PulsarTls, PulsarTransport,
    DEFAULT_TELEMETRY_TOPIC,
};
use conclave_runtime::{Clock, RealClock, Timestamp};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `conclave publish` options.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// JSON Lines telemetry, or `-` for stdin.
    pub file: String,
    /// The topic.
    #[arg(long, default_value = DEFAULT_TELEMETRY_TOPIC)]
    pub topic: String,
    /// The broker.
    #[arg(long, default_value = "pulsar://127.0.0.1:6650", value_name = "URL")]
    pub pulsar: String,
    /// A file holding the token to authenticate with (default: CONCLAVE_PULSAR_TOKEN_FILE).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// A PEM file with the CA that signed the broker's certificate, for `pulsar+ssl://`
    /// (default: CONCLAVE_PULSAR_TLS_CA_FILE).
    #[arg(long, value_name = "PATH")]
    pub tls_ca_file: Option<PathBuf>,
    /// Shift every `ts` so the first message is stamped now (recorded telemetry would
    /// otherwise be too old for the runtime's timestamp check).
    #[arg(long)]
    pub retime: bool,
    /// With `--retime`: send each message when its (shifted) time comes, not all at once.
    #[arg(long, requires = "retime")]
    pub pace: bool,
}

/// The key a message is partitioned by: the service for metrics and health, the topic
/// for events (as the runtime keys telemetry); none when the line is not telemetry-shaped
/// (it is sent anyway: the runtime dead-letters it with the reason).
fn key_of(v: &serde_json::Value) -> Option<String> {
    let field = if v.get("type").and_then(|t| t.as_str()) == Some("event") {
        "topic"
    } else {
        "service"
    };
    v.get(field).and_then(|s| s.as_str()).map(str::to_owned)
}

/// A content hash: the same line published twice is the same event.
fn event_id(payload: &[u8]) -> String {
    let h = payload.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}-{}", payload.len())
}

struct Line {
    key: Option<String>,
    payload: Vec<u8>,
    due: Option<Timestamp>,
}

fn prepare(raw: &[u8], shift: &mut Option<i64>, retime: bool, now: Timestamp) -> Line {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return Line {
            key: None,
            payload: raw.to_vec(),
            due: None,
        };
    };
    let key = key_of(&v);
    let ts = v
        .get("ts")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    let (Some(ts), true) = (ts, retime) else {
        return Line {
            key,
            payload: raw.to_vec(),
            due: None,
        };
    };
    let delta = *shift.get_or_insert(now.as_millis() - ts.as_millis());
    let moved = Timestamp::from_millis(ts.as_millis() + delta);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ts".to_owned(), serde_json::json!(moved));
    }
    Line {
        key,
        payload: serde_json::to_vec(&v).unwrap_or_else(|_| raw.to_vec()),
        due: Some(moved),
    }
}

/// Publishes the file.
pub fn run(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = tokio.block_on(publish(args));
    tokio.shutdown_background();
    result
}

/// The connection settings: the flags over the environment.
fn settings(args: &PublishArgs, var: impl Fn(&str) -> Option<OsString>) -> PulsarSettings {
    let mut settings = PulsarSettings::default().with_env(var);
    if let Some(file) = &args.token_file {
        settings.auth = Some(PulsarAuth::TokenFile(file.clone()));
    }
    if let Some(ca) = &args.tls_ca_file {
        settings.tls.get_or_insert_with(PulsarTls::default).ca_file = Some(ca.clone());
    }
    settings
}

async fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let transport = PulsarTransport::connect(
        &args.pulsar,
        settings(args, |v| std::env::var_os(v)),
        &format!("conclave-publish-{}", std::process::id()),
        Duration::from_secs(10),
    )
    .await
    .context("connecting to Pulsar")?;
    let mut publisher = Publisher::open(&transport, &args.topic).await?;
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if args.file == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(PathBuf::from(&args.file))
                .await
                .with_context(|| format!("opening `{}`", args.file))?,
        )
    };
    let clock = RealClock;
    let start = clock.now();
    let mut lines = BufReader::new(reader).split(b'\n');
    let mut shift = None;
    let mut batch = Vec::new();
    let mut sent = 0usize;
    while let Some(raw) = lines.next_segment().await.context("reading telemetry")? {
        let raw = raw.strip_suffix(b"\r").unwrap_or(&raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = prepare(raw, &mut shift, args.retime, clock.now());
        if args.pace {
            if let Some(due) = line.due {
                if due > clock.now() {
                    sent += flush(&mut publisher, &mut batch).await?;
                    clock.sleep_until(due).await;
                }
            }
        }
        batch.push(Outgoing {
            key: line.key,
            event_id: Some(event_id(&line.payload)),
            payload: line.payload,
        });
        if batch.len() >= 1000 {
            sent += flush(&mut publisher, &mut batch).await?;
        }
    }
    sent += flush(&mut publisher, &mut batch).await?;
    publisher.close().await;
    let secs = clock.now().since(start).as_secs_f64();
    eprintln!(
        "published {sent} messages to {} in {secs:.2} s ({:.0} msg/s)",
        args.topic,
        sent as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

async fn flush(p: &mut Publisher, batch: &mut Vec<Outgoing>) -> anyhow::Result<usize> {
    let n = batch.len();
    if n > 0 {
        p.send_all(std::mem::take(batch)).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::{event_id, prepare, settings, PublishArgs};
    use conclave_runtime::bus::pulsar::PulsarAuth;
    use conclave_runtime::Timestamp;
    use std::ffi::OsString;
    use std::path::PathBuf;

    #[test]
    fn flags_override_the_environment() {
        let mut args = PublishArgs {
            file: "-".into(),
            topic: "t".into(),
            pulsar: "pulsar+ssl://127.0.0.1:6651".into(),
            token_file: None,
            tls_ca_file: None,
            retime: false,
            pace: false,
        };
        let env = |name: &str| match name {
            "CONCLAVE_PULSAR_TOKEN_FILE" => Some(OsString::from("/env/token")),
            "CONCLAVE_PULSAR_TLS_CA_FILE" => Some(OsString::from("/env/ca.pem")),
            _ => None,
        };
        let s = settings(&args, env);
        assert_eq!(s.auth, Some(PulsarAuth::TokenFile("/env/token".into())));
        assert_eq!(
            s.tls.and_then(|t| t.ca_file),
            Some(PathBuf::from("/env/ca.pem"))
        );
        args.token_file = Some("/flag/token".into());
        args.tls_ca_file = Some("/flag/ca.pem".into());
        let s = settings(&args, env);
        assert_eq!(s.auth, Some(PulsarAuth::TokenFile("/flag/token".into())));
        assert_eq!(
            s.tls.and_then(|t| t.ca_file),
            Some(PathBuf::from("/flag/ca.pem"))
        );
        assert_eq!(settings(&args, |_| None).auth, s.auth);
    }

    #[test]
    fn keys_and_retiming() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().expect("ts");
        let mut shift = None;
        let a = prepare(
            br#"{"type":"metrics","service":"cart","ts":"2026-01-01T00:00:00Z"}"#,
            &mut shift,
            true,
            now,
        );
        assert_eq!(a.key.as_deref(), Some("cart"));
        assert_eq!(a.due, Some(now));
        let b = prepare(
            br#"{"type":"event","topic":"orders","ts":"2026-01-01T00:00:15Z"}"#,
            &mut shift,
            true,
            now,
        );
        assert_eq!(b.key.as_deref(), Some("orders"));
        assert_eq!(b.due, Some("2026-11-29T12:00:15Z".parse().expect("ts")));
        let poison = prepare(b"{not json", &mut shift, true, now);
        assert_eq!((poison.key, poison.payload), (None, b"{not json".to_vec()));
        assert_ne!(event_id(b"a"), event_id(b"b"));
    }
}
