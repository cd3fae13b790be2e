//! Telemetry faults the driver applies itself: poisoned lines (bytes the decoder must
//! dead-letter, each for a known reason) and event schema changes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use conclave_runtime::telemetry::{encode, DeadLetterReason, EventSample, Telemetry};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A way to corrupt a telemetry line, as producers really get it wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonKind {
    /// The line is cut in half (a producer killed mid-write, a size-capped buffer).
    TruncatedJson,
    /// A number is written `NaN`, as Python's `json.dumps` does by default.
    NonFiniteNumber,
    /// `ts` is an epoch-milliseconds number instead of an RFC 3339 string.
    WrongType,
    /// `schema_version` is one this build does not read (a producer upgraded early).
    UnknownSchemaVersion,
    /// Not JSON at all: the line gzip-compressed by a producer that forgot to say so.
    NotJson,
}

impl PoisonKind {
    /// Every kind.
    pub const ALL: [PoisonKind; 5] = [
        PoisonKind::TruncatedJson,
        PoisonKind::NonFiniteNumber,
        PoisonKind::WrongType,
        PoisonKind::UnknownSchemaVersion,
        PoisonKind::NotJson,
    ];

    /// The names, for error messages.
    pub(super) const NAMES: &'static str =
        "`truncated_json`, `non_finite_number`, `wrong_type`, `unknown_schema_version`, `not_json`";

    /// The spec name.
    pub fn as_str(self) -> &'static str {
        match self {
            PoisonKind::TruncatedJson => "truncated_json",
            PoisonKind::NonFiniteNumber => "non_finite_number",
            PoisonKind::WrongType => "wrong_type",
            PoisonKind::UnknownSchemaVersion => "unknown_schema_version",
            PoisonKind::NotJson => "not_json",
        }
    }

    /// The dead-letter reason the decoder gives a line [`poison`]ed this way, so a run can
    /// check that every poisoned line was dead-lettered for the right reason.
    pub fn expected_reason(self) -> DeadLetterReason {
        match self {
            PoisonKind::TruncatedJson | PoisonKind::NotJson => DeadLetterReason::MalformedJson,
            PoisonKind::NonFiniteNumber => DeadLetterReason::InvalidValue,
            PoisonKind::WrongType => DeadLetterReason::WrongShape,
            PoisonKind::UnknownSchemaVersion => DeadLetterReason::UnsupportedVersion,
        }
    }
}

/// Stands in for a value while the line is encoded, then is replaced by the bare token.
/// Control characters keep it from colliding with any real field value.
const PLACEHOLDER: &str = "\u{1}conclave-poison\u{1}";

/// The gzip magic number and deflate method byte (RFC 1952, section 2.3.1).
const GZIP_HEADER: [u8; 4] = [0x1f, 0x8b, 0x08, 0x00];

/// `t` encoded as the wire format, then corrupted the `kind` way. Deterministic: the same
/// telemetry and kind always give the same bytes.
pub fn poison(t: &Telemetry, kind: PoisonKind) -> Vec<u8> {
    let line = encode(t);
    match kind {
        PoisonKind::TruncatedJson => line[..line.len() / 2].to_vec(),
        PoisonKind::NotJson => {
            // Not a real deflate stream: the decoder stops at the first byte either way,
            // and the JSON after the header keeps the line recognisable in a dead letter.
            let mut out = GZIP_HEADER.to_vec();
            out.extend_from_slice(&line);
            out
        }
        PoisonKind::UnknownSchemaVersion => {
            let mut v = as_object(t);
            v.insert(
                "schema_version".into(),
                Value::from(conclave_runtime::telemetry::SCHEMA_VERSION + 1),
            );
            Value::Object(v).to_string().into_bytes()
        }
        PoisonKind::WrongType => {
            let mut v = as_object(t);
            v.insert("ts".into(), Value::from(t.ts().as_millis()));
            Value::Object(v).to_string().into_bytes()
        }
        PoisonKind::NonFiniteNumber => {
            let mut v = as_object(t);
            let placeholder = Value::String(PLACEHOLDER.into());
            match t {
                Telemetry::Metrics(_) => {
                    v.insert("latency_p99_ms".into(), placeholder);
                }
                Telemetry::Health(_) => {
                    v.insert("ready_replicas".into(), placeholder);
                }
                Telemetry::Event(_) => {
                    if let Some(Value::Object(fields)) = v.get_mut("fields") {
                        fields.insert("amount".into(), placeholder);
                    }
                }
            }
            let quoted = Value::String(PLACEHOLDER.into()).to_string();
            Value::Object(v)
                .to_string()
                .replacen(&quoted, "NaN", 1)
                .into_bytes()
        }
    }
}

fn as_object(t: &Telemetry) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(&encode(t)) {
        Ok(Value::Object(map)) => map,
        // `encode` writes one JSON object (see its docs); this arm is unreachable, and an
        // empty object would still fail decoding, which is what a poisoned line must do.
        _ => serde_json::Map::new(),
    }
}

/// A checked poison burst: which lines, how many, and how they are corrupted.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonBurst {
    target: Option<String>,
    share: f64,
    kinds: Vec<PoisonKind>,
}

impl PoisonBurst {
    /// Only [`FaultSchedule::compile`](super::FaultSchedule::compile) builds one, after
    /// checking `share` is in `(0, 1]` and `kinds` is not empty.
    pub(super) fn new(target: Option<String>, share: f64, kinds: Vec<PoisonKind>) -> Self {
        PoisonBurst {
            target,
            share,
            kinds,
        }
    }

    /// The service or topic whose telemetry is hit; `None` for all.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// Share of matching lines corrupted.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The corruptions picked from.
    pub fn kinds(&self) -> &[PoisonKind] {
        &self.kinds
    }

    /// Whether `t` is telemetry this burst hits (by its key: service or topic).
    pub fn applies_to(&self, t: &Telemetry) -> bool {
        self.target
            .as_deref()
            .is_none_or(|target| t.key() == target)
    }

    /// For a line the burst hits: with probability `share`, a corruption (uniform over the
    /// kinds) and the corrupted bytes; otherwise `None`, and the line goes out intact.
    /// Draws from `rng` only for lines it hits.
    pub fn corrupt(&self, t: &Telemetry, rng: &mut impl Rng) -> Option<(PoisonKind, Vec<u8>)> {
        if !self.applies_to(t) || !rng.random_bool(self.share) {
            return None;
        }
        let kind = self.kinds[rng.random_range(0..self.kinds.len())];
        Some((kind, poison(t, kind)))
    }
}

/// A checked event schema change on one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    topic: String,
    rename: BTreeMap<String, String>,
    add: BTreeMap<String, Value>,
}

impl SchemaChange {
    /// Only [`FaultSchedule::compile`](super::FaultSchedule::compile) builds one, after
    /// checking that no two fields end up with one name.
    pub(super) fn new(
        topic: String,
        rename: BTreeMap<String, String>,
        add: BTreeMap<String, Value>,
    ) -> Self {
        SchemaChange { topic, rename, add }
    }

    /// The topic whose events change.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Top-level fields renamed, old name to new.
    pub fn renames(&self) -> &BTreeMap<String, String> {
        &self.rename
    }

    /// Top-level fields added where absent.
    pub fn additions(&self) -> &BTreeMap<String, Value> {
        &self.add
    }

    /// Changes `event`'s fields if it is on the topic: renames first (simultaneously, so
    /// `a→b, b→a` swaps), then adds fields that are still absent. Returns whether
    /// anything changed.
    pub fn apply(&self, event: &mut EventSample) -> bool {
        if event.topic != self.topic {
            return false;
        }
        let mut changed = false;
        let moved: Vec<(String, Value)> = self
            .rename
            .iter()
            .filter_map(|(old, new)| event.fields.remove(old).map(|v| (new.clone(), v)))
            .collect();
        for (new, value) in moved {
            event.fields.insert(new, value);
            changed = true;
        }
        for (name, value) in &self.add {
            if !event.fields.contains_key(name) {
                event.fields.insert(name.clone(), value.clone());
                changed = true;
            }
        }
        changed
    }

    /// A field path (`fields.customer.email`, as compliance findings and
    /// [`Truth`](crate::events::Truth) labels write them) after this change, so ground
    /// truth can follow renamed fields.
    pub fn renamed_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let Some(rest) = path.strip_prefix("fields.") else {
            return Cow::Borrowed(path);
        };
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        match self.rename.get(&rest[..end]) {
            Some(new) => Cow::Owned(format!("fields.{new}{}", &rest[end..])),
            None => Cow::Borrowed(path),
        }
    }
}
