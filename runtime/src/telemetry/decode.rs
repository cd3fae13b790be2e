//! Bytes -> [`Telemetry`], or a [`DecodeError`] saying exactly why not.
//!
//! Decoding is total: every byte string becomes either telemetry or an error with a bounded
//! [`DeadLetterReason`], and nothing panics. When a payload has several faults the checks
//! run in a fixed order, so it always gets the same reason: size (before parsing), JSON
//! syntax, shape and version, values, and last the timestamp against the receive time.
//!
//! The decoder makes a single pass over the payload. serde's derive for an internally
//! tagged enum (`#[serde(tag = "type")]`) buffers the whole object into an intermediate
//! `Content` tree until it has seen `type`, which roughly doubles the cost per message.
//! Instead, every known key of every kind is read straight into one draft as it comes,
//! and the kind named by `type` (wherever it appears) decides at the end which of those
//! fields belong. Shape faults are recorded, not raised, so parsing continues to the end
//! and a later JSON syntax error or an unsupported `schema_version` still wins, as the
//! order above requires. The one exception is a non-finite number token (`NaN`,
//! `Infinity`, `1e999`): the JSON parser stops there, so nothing after it is checked.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::dead_letter::DeadLetterReason;
use super::types::{
    Dependency, EventSample, Health, HealthStatus, ServiceMetrics, Telemetry, TelemetryKind,
    SCHEMA_VERSION,
};
use crate::clock::Timestamp;

/// The `schema_version`s this build reads.
const SUPPORTED_VERSIONS: &[u32] = &[SCHEMA_VERSION];

/// Longest service, topic, producer or region name accepted, in characters: the limit on
/// a DNS name (RFC 1035), and so on a Kubernetes object name. Anything longer is a broken
/// producer, and would bloat every metric label and audit record it reached.
const MAX_NAME_CHARS: usize = 253;

/// Longest payload string quoted back in an error message, in characters. Quoted values
/// are only ever short enumerations or timestamps; clipping keeps a hostile payload from
/// pushing kilobytes into logs and dead letters.
const MAX_QUOTED_CHARS: usize = 32;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// How far ahead of `now` a timestamp may be.
    pub max_future_skew: Duration,
    /// How far behind `now` a timestamp may be.
    pub max_age: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_payload_bytes: 64 * 1024,
            max_future_skew: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a payload is not telemetry. Each variant maps to one [`DeadLetterReason`]
/// ([`DecodeError::reason`]).
///
/// Messages name the field and quote at most a short, clipped value; they never contain
/// the payload itself, and never any part of an event sample's `fields`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`DecodeLimits::max_payload_bytes`]; not parsed at all.
    #[error("expected a payload of at most {limit} bytes, found {size} bytes")]
    Oversized {
        /// Payload size in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Empty, or only whitespace.
    #[error("expected a JSON object, found an empty payload")]
    Empty,
    /// Not JSON: a syntax error, or the payload ends early.
    #[error("{}", describe_malformed(.source))]
    Malformed {
        /// The parser's complaint, with its position.
        #[source]
        source: serde_json::Error,
    },
    /// A number JSON cannot hold: `NaN`, `Infinity` and `-Infinity` (which Python's
    /// `json.dumps` writes) or a literal too large for `f64`, such as `1e999`.
    #[error("{}expected a finite number, found {}", FieldPrefix(.field.as_ref()), QuotedToken(.token.as_deref()))]
    NonFinite {
        /// Where it was, when known.
        field: Option<FieldPath>,
        /// The token as written (clipped); `None` inside `fields`, whose values are never
        /// shown.
        token: Option<Box<str>>,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Valid JSON, but not an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// What the payload is instead.
        found: Found,
    },
    /// No `schema_version`.
    #[error("missing field `schema_version`, expected {}", SupportedVersions)]
    MissingVersion,
    /// A `schema_version` this build does not read.
    #[error(
        "field `schema_version`: expected {}, found {found}",
        SupportedVersions
    )]
    UnsupportedVersion {
        /// The version (or other value) found.
        found: Found,
    },
    /// No `type`.
    #[error("missing field `type`, expected one of {}", QuotedList(KIND_NAMES))]
    MissingType,
    /// A `type` that is not a telemetry kind.
    #[error(
        "field `type`: expected one of {}, found {found}",
        QuotedList(KIND_NAMES)
    )]
    UnknownType {
        /// The value found.
        found: Found,
    },
    /// A field that is not part of this kind of message.
    #[error("`{}` message: unknown field `{field}`, expected one of {}", .kind.as_str(), QuotedList(.expected))]
    UnknownField {
        /// The kind named by `type`.
        kind: TelemetryKind,
        /// The field (its name is clipped).
        field: FieldPath,
        /// The fields allowed where it was found.
        expected: &'static [&'static str],
    },
    /// The same field twice in one object.
    #[error("duplicate field `{field}`")]
    DuplicateField {
        /// The field.
        field: FieldPath,
    },
    /// A required field is absent.
    #[error("`{}` message: missing field `{field}`", .kind.as_str())]
    MissingField {
        /// The kind named by `type`.
        kind: TelemetryKind,
        /// The field.
        field: FieldPath,
    },
    /// A field holds the wrong JSON type (a string where a number belongs, and so on).
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType {
        /// The field.
        field: FieldPath,
        /// What belongs there.
        expected: Expected,
        /// What was there (strings are never quoted).
        found: Found,
    },
    /// A field has the right JSON type but a value outside its domain: a negative rate, an
    /// error rate above 1, an empty service name, a timestamp that is not RFC 3339.
    #[error("field `{field}`: expected {expected}, found {found}")]
    InvalidValue {
        /// The field.
        field: FieldPath,
        /// What belongs there.
        expected: Expected,
        /// What was there.
        found: Found,
    },
    /// The median latency is above the 99th percentile.
    #[error(
        "field `latency_p50_ms`: expected at most `latency_p99_ms` (`{p99:?}`), found `{p50:?}`"
    )]
    LatencyOrder {
        /// `latency_p50_ms`.
        p50: f64,
        /// `latency_p99_ms`.
        p99: f64,
    },
    /// `ts` is too far ahead of, or behind, the time the message was received.
    #[error("field `ts`: expected a time between `{earliest}` and `{latest}`, found `{ts}`")]
    TimestampOutOfRange {
        /// The message's timestamp.
        ts: Timestamp,
        /// Receive time minus [`DecodeLimits::max_age`].
        earliest: Timestamp,
        /// Receive time plus [`DecodeLimits::max_future_skew`].
        latest: Timestamp,
    },
}

impl DecodeError {
    /// The bounded reason code for counters and the dead-letter record.
    pub fn reason(&self) -> DeadLetterReason {
        match self {
            DecodeError::Oversized { .. } => DeadLetterReason::OversizedPayload,
            DecodeError::Empty | DecodeError::Malformed { .. } => DeadLetterReason::MalformedJson,
            DecodeError::NotAnObject { .. }
            | DecodeError::MissingType
            | DecodeError::UnknownType { .. }
            | DecodeError::UnknownField { .. }
            | DecodeError::DuplicateField { .. }
            | DecodeError::MissingField { .. }
            | DecodeError::WrongType { .. } => DeadLetterReason::WrongShape,
            DecodeError::MissingVersion | DecodeError::UnsupportedVersion { .. } => {
                DeadLetterReason::UnsupportedVersion
            }
            DecodeError::NonFinite { .. }
            | DecodeError::InvalidValue { .. }
            | DecodeError::LatencyOrder { .. } => DeadLetterReason::InvalidValue,
            DecodeError::TimestampOutOfRange { .. } => DeadLetterReason::TimestampOutOfRange,
        }
    }
}

/// Where in a message a problem is, written as in the payload: `cpu`,
/// `dependencies[2]`, `dependencies[2].service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    name: Cow<'static, str>,
    item: Option<(usize, Option<Cow<'static, str>>)>,
}

impl FieldPath {
    fn top(name: impl Into<Cow<'static, str>>) -> Self {
        FieldPath {
            name: name.into(),
            item: None,
        }
    }

    fn item(name: &'static str, index: usize, field: Option<Cow<'static, str>>) -> Self {
        FieldPath {
            name: Cow::Borrowed(name),
            item: Some((index, field)),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some((index, field)) = &self.item {
            write!(f, "[{index}]")?;
            if let Some(field) = field {
                write!(f, ".{field}")?;
            }
        }
        Ok(())
    }
}

/// What belongs in a field, as said in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A number `>= 0`: rates, latencies, CPU.
    NonNegative,
    /// A number in `[0, 1]`: error rates.
    Fraction,
    /// An integer `>= 0` that fits in 64 bits: `backlog`.
    Count,
    /// An integer that fits in 32 bits unsigned: `replicas`.
    Replicas,
    /// [`Expected::Replicas`] or `null`: `ready_replicas`.
    ReplicasOrNull,
    /// Any string.
    String,
    /// A string or `null`.
    StringOrNull,
    /// A non-empty name of at most 253 characters: services, topics.
    Name,
    /// A string of at most 253 characters: producers, regions.
    ShortString,
    /// An RFC 3339 timestamp.
    Timestamp,
    /// A [`HealthStatus`] name.
    Status,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::NonNegative => f.write_str("a number >= 0"),
            Expected::Fraction => f.write_str("a number in [0, 1]"),
            Expected::Count => f.write_str("an integer >= 0"),
            Expected::Replicas => write!(f, "an integer in 0..={}", u32::MAX),
            Expected::ReplicasOrNull => write!(f, "an integer in 0..={} or null", u32::MAX),
            Expected::String => f.write_str("a string"),
            Expected::StringOrNull => f.write_str("a string or null"),
            Expected::Name => write!(f, "a name of 1 to {MAX_NAME_CHARS} characters"),
            Expected::ShortString => write!(f, "a string of at most {MAX_NAME_CHARS} characters"),
            Expected::Timestamp => {
                f.write_str("an RFC 3339 timestamp such as `2026-01-01T00:00:00Z`")
            }
            Expected::Status => write!(f, "one of {}", QuotedList(STATUS_NAMES)),
            Expected::Object => f.write_str("an object"),
            Expected::Array => f.write_str("an array"),
        }
    }
}

/// What a payload held where a problem was found, as said in error messages.
///
/// Strings from the payload are quoted only where they are short codes (`type`,
/// `schema_version`, `status`, `ts`), and then clipped; anywhere else a string is just
/// "a string", since it may be personal data.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Integer(i128),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string whose content is not shown.
    String,
    /// A string, quoted (clipped to 32 characters).
    Text(Box<str>),
    /// `""`.
    EmptyString,
    /// A string longer than allowed.
    LongString {
        /// Its length in characters.
        chars: usize,
    },
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Found {
    fn text(s: &str) -> Self {
        Found::Text(clip(s))
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Null => f.write_str("null"),
            Found::Bool(b) => write!(f, "`{b}`"),
            Found::Integer(n) => write!(f, "`{n}`"),
            // `{:?}` keeps the `.0` of whole floats, so `1.0` does not read as the integer 1.
            Found::Float(x) => write!(f, "`{x:?}`"),
            Found::String => f.write_str("a string"),
            Found::Text(s) => write!(f, "`{s}`"),
            Found::EmptyString => f.write_str("an empty string"),
            Found::LongString { chars } => write!(f, "a string of {chars} characters"),
            Found::Array => f.write_str("an array"),
            Found::Object => f.write_str("an object"),
        }
    }
}

fn clip(s: &str) -> Box<str> {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => s.into(),
        Some((end, _)) => format!("{}…", &s[..end]).into(),
    }
}

const KIND_NAMES: &[&str] = &["metrics", "event", "health"];
const STATUS_NAMES: &[&str] = &["healthy", "degraded", "down"];

/// `field `x`: ` before a message, when the field is known.
struct FieldPrefix<'a>(Option<&'a FieldPath>);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(field) => write!(f, "field `{field}`: "),
            None => Ok(()),
        }
    }
}

struct QuotedToken<'a>(Option<&'a str>);

impl fmt::Display for QuotedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(token) => write!(f, "`{token}`"),
            None => f.write_str("a non-finite number"),
        }
    }
}

/// `` `a`, `b`, `c` ``
struct QuotedList<'a>(&'a [&'a str]);

impl fmt::Display for QuotedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

struct SupportedVersions;

impl fmt::Display for SupportedVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a supported version (")?;
        for (i, v) in SUPPORTED_VERSIONS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{v}`")?;
        }
        f.write_str(")")
    }
}

fn describe_malformed(source: &serde_json::Error) -> String {
    let (line, column) = (source.line(), source.column());
    if source.is_eof() {
        format!(
            "expected a complete JSON object, found the end of the payload at line {line} column {column}"
        )
    } else {
        format!("expected a JSON object, found invalid JSON at line {line} column {column}")
    }
}

/// Decodes telemetry payloads under [`DecodeLimits`].
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    limits: DecodeLimits,
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Decodes one payload received at `now`.
    ///
    /// # Errors
    /// A [`DecodeError`] for anything that is not valid telemetry; see the module
    /// documentation for the order in which faults are reported.
    pub fn decode(&self, payload: &[u8], now: Timestamp) -> Result<Telemetry, DecodeError> {
        if payload.len() > self.limits.max_payload_bytes {
            return Err(DecodeError::Oversized {
                size: payload.len(),
                limit: self.limits.max_payload_bytes,
            });
        }
        let mut ctx = Ctx::default();
        let mut draft = Draft::default();
        // JSON is UTF-8 throughout. Checking the whole payload at once lets the parser skip
        // checking each string it reads, which is measurably faster; a payload that fails
        // the check goes through the byte parser, which finds where the JSON breaks.
        let parsed = match std::str::from_utf8(payload) {
            Ok(text) => read_draft(
                &mut serde_json::Deserializer::from_str(text),
                &mut ctx,
                &mut draft,
            ),
            Err(_) => read_draft(
                &mut serde_json::Deserializer::from_slice(payload),
                &mut ctx,
                &mut draft,
            ),
        };
        match parsed {
            Ok(()) => ctx.finish(draft, &self.limits, now),
            Err(source) => Err(json_error(payload, source, ctx.cursor)),
        }
    }
}

/// Reads one whole JSON document into `draft`.
fn read_draft<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    ctx: &mut Ctx,
    draft: &mut Draft,
) -> serde_json::Result<()> {
    DraftSeed { ctx, draft }.deserialize(&mut *de)?;
    de.end()
}

/// Classifies a JSON parse failure. The parser stops at the first bad token, so a
/// `NaN` is told apart from other syntax errors by looking at the token it stopped on.
fn json_error(payload: &[u8], source: serde_json::Error, cursor: Cursor) -> DecodeError {
    if source.is_eof() && payload.trim_ascii().is_empty() {
        return DecodeError::Empty;
    }
    if source.is_syntax() {
        if let Some(token) = non_finite_token(payload, source.line(), source.column()) {
            let in_fields = matches!(cursor, Cursor::Top(Field::Fields));
            return DecodeError::NonFinite {
                field: cursor.path(),
                token: (!in_fields).then(|| clip(token)),
                source,
            };
        }
    }
    DecodeError::Malformed { source }
}

/// The token at a parser error position (1-based line and column), if it is a number
/// `f64` cannot hold. Rust's float parser reads `NaN`, `Infinity`, `-Infinity` and
/// `1e999` alike, so one test covers Python's tokens and overflowing literals.
fn non_finite_token(payload: &[u8], line: usize, column: usize) -> Option<&str> {
    let line_start = if line <= 1 {
        0
    } else {
        payload
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    let at = (line_start + column.max(1) - 1).min(payload.len().checked_sub(1)?);
    let is_token_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    if !is_token_byte(payload[at]) {
        return None;
    }
    let start = payload[..at]
        .iter()
        .rposition(|&b| !is_token_byte(b))
        .map_or(0, |i| i + 1);
    let end = payload[at..]
        .iter()
        .position(|&b| !is_token_byte(b))
        .map_or(payload.len(), |i| at + i);
    let token = std::str::from_utf8(&payload[start..end]).ok()?;
    match token.parse::<f64>() {
        Ok(x) if !x.is_finite() => Some(token),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Wire keys

/// Every top-level key of every kind; the discriminant indexes [`Ctx::position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    SchemaVersion,
    Service,
    Topic,
    Producer,
    Region,
    Key,
    Ts,
    RateIn,
    RateOut,
    Backlog,
    LatencyP50Ms,
    LatencyP99Ms,
    ErrorRate,
    Cpu,
    Replicas,
    Dependencies,
    Fields,
    Status,
    ReadyReplicas,
    Detail,
}

const FIELD_COUNT: usize = 21;

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::SchemaVersion => "schema_version",
            Field::Service => "service",
            Field::Topic => "topic",
            Field::Producer => "producer",
            Field::Region => "region",
            Field::Key => "key",
            Field::Ts => "ts",
            Field::RateIn => "rate_in",
            Field::RateOut => "rate_out",
            Field::Backlog => "backlog",
            Field::LatencyP50Ms => "latency_p50_ms",
            Field::LatencyP99Ms => "latency_p99_ms",
            Field::ErrorRate => "error_rate",
            Field::Cpu => "cpu",
            Field::Replicas => "replicas",
            Field::Dependencies => "dependencies",
            Field::Fields => "fields",
            Field::Status => "status",
            Field::ReadyReplicas => "ready_replicas",
            Field::Detail => "detail",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Keys of a [`Dependency`] object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DepField {
    Service,
    CallsPerS,
    ErrorRate,
    LatencyP99Ms,
}

impl DepField {
    const ALL: [DepField; 4] = [
        DepField::Service,
        DepField::CallsPerS,
        DepField::ErrorRate,
        DepField::LatencyP99Ms,
    ];

    fn name(self) -> &'static str {
        DEPENDENCY_FIELDS[self as usize]
    }
}

const DEPENDENCY_FIELDS: &[&str] = &["service", "calls_per_s", "error_rate", "latency_p99_ms"];

trait WireKey: Sized {
    fn from_name(name: &str) -> Option<Self>;
}

impl WireKey for Field {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "type" => Field::Type,
            "schema_version" => Field::SchemaVersion,
            "service" => Field::Service,
            "topic" => Field::Topic,
            "producer" => Field::Producer,
            "region" => Field::Region,
            "key" => Field::Key,
            "ts" => Field::Ts,
            "rate_in" => Field::RateIn,
            "rate_out" => Field::RateOut,
            "backlog" => Field::Backlog,
            "latency_p50_ms" => Field::LatencyP50Ms,
            "latency_p99_ms" => Field::LatencyP99Ms,
            "error_rate" => Field::ErrorRate,
            "cpu" => Field::Cpu,
            "replicas" => Field::Replicas,
            "dependencies" => Field::Dependencies,
            "fields" => Field::Fields,
            "status" => Field::Status,
            "ready_replicas" => Field::ReadyReplicas,
            "detail" => Field::Detail,
            _ => return None,
        })
    }
}

impl WireKey for DepField {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "service" => DepField::Service,
            "calls_per_s" => DepField::CallsPerS,
            "error_rate" => DepField::ErrorRate,
            "latency_p99_ms" => DepField::LatencyP99Ms,
            _ => return None,
        })
    }
}

/// Which keys a kind allows, in schema order (the order missing fields are reported in),
/// and which of them it requires.
struct Schema {
    names: &'static [&'static str],
    keys: &'static [(Field, bool)],
    /// [`Field::bit`]s of `keys`.
    allowed: u32,
    /// [`Field::bit`]s of the required `keys`.
    required: u32,
}

const METRICS: Schema = Schema::new(
    &[
        "type",
        "schema_version",
        "service",
        "ts",
        "rate_in",
        "rate_out",
        "backlog",
        "latency_p50_ms",
        "latency_p99_ms",
        "error_rate",
        "cpu",
        "replicas",
        "region",
        "dependencies",
    ],
    &[
        (Field::Type, true),
        (Field::SchemaVersion, true),
        (Field::Service, true),
        (Field::Ts, true),
        (Field::RateIn, true),
        (Field::RateOut, true),
        (Field::Backlog, true),
        (Field::LatencyP50Ms, true),
        (Field::LatencyP99Ms, true),
        (Field::ErrorRate, true),
        (Field::Cpu, true),
        (Field::Replicas, true),
        (Field::Region, false),
        (Field::Dependencies, false),
    ],
);

const EVENT: Schema = Schema::new(
    &[
        "type",
        "schema_version",
        "topic",
        "producer",
        "region",
        "key",
        "ts",
        "fields",
    ],
    &[
        (Field::Type, true),
        (Field::SchemaVersion, true),
        (Field::Topic, true),
        (Field::Producer, true),
        (Field::Region, true),
        (Field::Key, false),
        (Field::Ts, true),
        (Field::Fields, true),
    ],
);

const HEALTH: Schema = Schema::new(
    &[
        "type",
        "schema_version",
        "service",
        "ts",
        "status",
        "ready_replicas",
        "detail",
    ],
    &[
        (Field::Type, true),
        (Field::SchemaVersion, true),
        (Field::Service, true),
        (Field::Ts, true),
        (Field::Status, true),
        (Field::ReadyReplicas, false),
        (Field::Detail, false),
    ],
);

impl Schema {
    fn of(kind: TelemetryKind) -> &'static Schema {
        match kind {
            TelemetryKind::Metrics => &METRICS,
            TelemetryKind::Event => &EVENT,
            TelemetryKind::Health => &HEALTH,
        }
    }

    const fn new(names: &'static [&'static str], keys: &'static [(Field, bool)]) -> Schema {
        let (mut allowed, mut required) = (0, 0);
        let mut i = 0;
        while i < keys.len() {
            let bit = keys[i].0.bit();
            allowed |= bit;
            if keys[i].1 {
                required |= bit;
            }
            i += 1;
        }
        Schema {
            names,
            keys,
            allowed,
            required,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The draft: the fields of every kind, filled in one pass

/// The fields of all three kinds, as read so far. A slot is `None` when the key was
/// absent or its value was rejected (the rejection is recorded in [`Ctx`]).
#[derive(Default)]
struct Draft {
    kind: Option<Result<TelemetryKind, Found>>,
    version: Option<Result<u32, Found>>,
    service: Option<String>,
    topic: Option<String>,
    producer: Option<String>,
    region: Option<String>,
    /// `"region": null`: allowed for metrics, not for events.
    region_is_null: bool,
    key: Option<String>,
    ts: Option<Timestamp>,
    rate_in: Option<f64>,
    rate_out: Option<f64>,
    backlog: Option<u64>,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    error_rate: Option<f64>,
    cpu: Option<f64>,
    replicas: Option<u32>,
    dependencies: Option<Vec<Dependency>>,
    fields: Option<BTreeMap<String, serde_json::Value>>,
    status: Option<HealthStatus>,
    ready_replicas: Option<u32>,
    detail: Option<String>,
}

/// Which value the parser is in, so a syntax error there (a `NaN`) can name its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Cursor {
    #[default]
    Outside,
    /// The value of a key no kind has.
    Unknown,
    Top(Field),
    DependencyItem(usize),
    Dependency(usize, DepField),
}

impl Cursor {
    fn path(self) -> Option<FieldPath> {
        match self {
            Cursor::Outside | Cursor::Unknown => None,
            Cursor::Top(key) => Some(FieldPath::top(key.name())),
            Cursor::DependencyItem(i) => Some(FieldPath::item("dependencies", i, None)),
            Cursor::Dependency(i, key) => Some(FieldPath::item(
                "dependencies",
                i,
                Some(Cow::Borrowed(key.name())),
            )),
        }
    }

    /// The path of the value being read. Only called while reading a known field's value,
    /// where there always is one; `?` stands in should that ever change.
    fn field(self) -> FieldPath {
        self.path().unwrap_or_else(|| FieldPath::top("?"))
    }
}

/// Problems found so far, and where the parser is.
#[derive(Default)]
struct Ctx {
    /// 1-based position of each key among the object's keys; 0 when absent.
    position: [u32; FIELD_COUNT],
    /// Bit per [`Field`] present.
    present: u32,
    keys_read: u32,
    /// The first key that no kind has, with its position.
    first_unknown: Option<(u32, FieldPath)>,
    not_an_object: Option<Found>,
    /// First shape fault (wrong JSON type, duplicate, fault inside `dependencies`).
    shape: Option<DecodeError>,
    /// First value fault.
    value: Option<DecodeError>,
    cursor: Cursor,
}

impl Ctx {
    fn shape_fault(&mut self, e: DecodeError) {
        if self.shape.is_none() {
            self.shape = Some(e);
        }
    }

    fn value_fault(&mut self, e: DecodeError) {
        if self.value.is_none() {
            self.value = Some(e);
        }
    }

    fn wrong_type(&mut self, expected: Expected, found: Found) {
        let field = self.cursor.field();
        self.shape_fault(DecodeError::WrongType {
            field,
            expected,
            found,
        });
    }

    fn invalid(&mut self, expected: Expected, found: Found) {
        let field = self.cursor.field();
        self.value_fault(DecodeError::InvalidValue {
            field,
            expected,
            found,
        });
    }

    fn number(&mut self, v: Scalar<'_>, expected: Expected) -> Option<f64> {
        let x = match v {
            Scalar::U64(n) => n as f64,
            Scalar::I64(n) => n as f64,
            Scalar::F64(x) => x,
            other => {
                self.wrong_type(expected, other.found());
                return None;
            }
        };
        let ok = match expected {
            Expected::Fraction => (0.0..=1.0).contains(&x),
            Expected::NonNegative => x.is_finite() && x >= 0.0,
            _ => x.is_finite(),
        };
        if ok {
            Some(x)
        } else {
            self.invalid(expected, v.found());
            None
        }
    }

    fn integer(&mut self, v: Scalar<'_>, expected: Expected, max: u64) -> Option<u64> {
        match v {
            Scalar::U64(n) if n <= max => Some(n),
            Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_) => {
                self.invalid(expected, v.found());
                None
            }
            other => {
                self.wrong_type(expected, other.found());
                None
            }
        }
    }

    /// A string of at most [`MAX_NAME_CHARS`], non-empty when `expected` is a name.
    fn name(&mut self, v: Scalar<'_>, expected: Expected) -> Option<String> {
        let Scalar::Str(s) = v else {
            self.wrong_type(expected, v.found());
            return None;
        };
        if s.is_empty() && expected == Expected::Name {
            self.invalid(expected, Found::EmptyString);
            return None;
        }
        // Bytes bound characters from above, so the count is needed only for long strings.
        if s.len() > MAX_NAME_CHARS {
            let chars = s.chars().count();
            if chars > MAX_NAME_CHARS {
                self.invalid(expected, Found::LongString { chars });
                return None;
            }
        }
        Some(s.into_owned())
    }

    fn string(&mut self, v: Scalar<'_>, expected: Expected) -> Option<String> {
        match v {
            Scalar::Str(s) => Some(s.into_owned()),
            other => {
                self.wrong_type(expected, other.found());
                None
            }
        }
    }

    fn store(&mut self, draft: &mut Draft, key: Field, v: Scalar<'_>) {
        match key {
            Field::Type => {
                draft.kind = Some(match v {
                    Scalar::Str(s) => match &*s {
                        "metrics" => Ok(TelemetryKind::Metrics),
                        "event" => Ok(TelemetryKind::Event),
                        "health" => Ok(TelemetryKind::Health),
                        other => Err(Found::text(other)),
                    },
                    other => Err(other.found()),
                })
            }
            Field::SchemaVersion => {
                draft.version = Some(match v {
                    Scalar::U64(n) => match u32::try_from(n) {
                        Ok(n) if SUPPORTED_VERSIONS.contains(&n) => Ok(n),
                        _ => Err(Found::Integer(n.into())),
                    },
                    other => Err(other.found()),
                })
            }
            Field::Service => draft.service = self.name(v, Expected::Name),
            Field::Topic => draft.topic = self.name(v, Expected::Name),
            Field::Producer => draft.producer = self.name(v, Expected::ShortString),
            Field::Region => {
                if matches!(v, Scalar::Null) {
                    draft.region_is_null = true;
                } else {
                    draft.region = self.name(v, Expected::ShortString);
                }
            }
            Field::Key => draft.key = self.string(v, Expected::String),
            Field::Ts => {
                draft.ts = match v {
                    Scalar::Str(s) => match s.parse::<Timestamp>() {
                        Ok(ts) => Some(ts),
                        Err(_) => {
                            self.invalid(Expected::Timestamp, Found::text(&s));
                            None
                        }
                    },
                    other => {
                        self.wrong_type(Expected::Timestamp, other.found());
                        None
                    }
                }
            }
            Field::RateIn => draft.rate_in = self.number(v, Expected::NonNegative),
            Field::RateOut => draft.rate_out = self.number(v, Expected::NonNegative),
            Field::Backlog => draft.backlog = self.integer(v, Expected::Count, u64::MAX),
            Field::LatencyP50Ms => draft.latency_p50_ms = self.number(v, Expected::NonNegative),
            Field::LatencyP99Ms => draft.latency_p99_ms = self.number(v, Expected::NonNegative),
            Field::ErrorRate => draft.error_rate = self.number(v, Expected::Fraction),
            Field::Cpu => draft.cpu = self.number(v, Expected::NonNegative),
            Field::Replicas => {
                draft.replicas = self
                    .integer(v, Expected::Replicas, u32::MAX.into())
                    .and_then(|n| u32::try_from(n).ok());
            }
            Field::ReadyReplicas => {
                draft.ready_replicas = match v {
                    Scalar::Null => None,
                    v => self
                        .integer(v, Expected::ReplicasOrNull, u32::MAX.into())
                        .and_then(|n| u32::try_from(n).ok()),
                }
            }
            Field::Detail => {
                draft.detail = match v {
                    Scalar::Null => None,
                    v => self.string(v, Expected::StringOrNull),
                }
            }
            Field::Status => {
                draft.status = match v {
                    Scalar::Str(s) => match &*s {
                        "healthy" => Some(HealthStatus::Healthy),
                        "degraded" => Some(HealthStatus::Degraded),
                        "down" => Some(HealthStatus::Down),
                        other => {
                            self.invalid(Expected::Status, Found::text(other));
                            None
                        }
                    },
                    other => {
                        self.wrong_type(Expected::Status, other.found());
                        None
                    }
                }
            }
            // Read by their own seeds, never as scalars.
            Field::Dependencies | Field::Fields => {}
        }
    }

    /// Turns the draft into telemetry, reporting faults in the documented order.
    fn finish(
        mut self,
        draft: Draft,
        limits: &DecodeLimits,
        now: Timestamp,
    ) -> Result<Telemetry, DecodeError> {
        if let Some(found) = self.not_an_object {
            return Err(DecodeError::NotAnObject { found });
        }
        let version = match draft.version {
            None => return Err(DecodeError::MissingVersion),
            Some(Err(found)) => return Err(DecodeError::UnsupportedVersion { found }),
            Some(Ok(v)) => v,
        };
        let kind = match draft.kind {
            None => return Err(DecodeError::MissingType),
            Some(Err(found)) => return Err(DecodeError::UnknownType { found }),
            Some(Ok(kind)) => kind,
        };
        let schema = Schema::of(kind);

        let mut unknown = self.first_unknown.take();
        let mut foreign = self.present & !schema.allowed;
        while foreign != 0 {
            let i = foreign.trailing_zeros() as usize;
            foreign &= foreign - 1;
            let pos = self.position[i];
            if unknown.as_ref().is_none_or(|(first, _)| pos < *first) {
                unknown = Some((pos, FieldPath::top(FIELDS[i].name())));
            }
        }
        if let Some((_, field)) = unknown {
            return Err(DecodeError::UnknownField {
                kind,
                field,
                expected: schema.names,
            });
        }
        if let Some(e) = self.shape.take() {
            return Err(e);
        }
        if kind == TelemetryKind::Event && draft.region_is_null {
            return Err(DecodeError::WrongType {
                field: FieldPath::top(Field::Region.name()),
                expected: Expected::ShortString,
                found: Found::Null,
            });
        }
        if schema.required & !self.present != 0 {
            if let Some(&(key, _)) = schema
                .keys
                .iter()
                .find(|&&(key, required)| required && self.present & key.bit() == 0)
            {
                return Err(DecodeError::MissingField {
                    kind,
                    field: FieldPath::top(key.name()),
                });
            }
        }
        if let Some(e) = self.value.take() {
            return Err(e);
        }

        let telemetry = assemble(kind, version, draft)?;
        if let Telemetry::Metrics(m) = &telemetry {
            if m.latency_p50_ms > m.latency_p99_ms {
                return Err(DecodeError::LatencyOrder {
                    p50: m.latency_p50_ms,
                    p99: m.latency_p99_ms,
                });
            }
        }
        let ts = telemetry.ts();
        let earliest = now.minus(limits.max_age);
        let latest = now.plus(limits.max_future_skew);
        if ts < earliest || ts > latest {
            return Err(DecodeError::TimestampOutOfRange {
                ts,
                earliest,
                latest,
            });
        }
        Ok(telemetry)
    }
}

/// Every [`Field`], indexed by discriminant.
const FIELDS: [Field; FIELD_COUNT] = [
    Field::Type,
    Field::SchemaVersion,
    Field::Service,
    Field::Topic,
    Field::Producer,
    Field::Region,
    Field::Key,
    Field::Ts,
    Field::RateIn,
    Field::RateOut,
    Field::Backlog,
    Field::LatencyP50Ms,
    Field::LatencyP99Ms,
    Field::ErrorRate,
    Field::Cpu,
    Field::Replicas,
    Field::Dependencies,
    Field::Fields,
    Field::Status,
    Field::ReadyReplicas,
    Field::Detail,
];

/// Builds the value once every check has passed. A slot can only be empty here if a
/// check above missed it; that is reported as the field missing rather than trusted.
fn assemble(kind: TelemetryKind, version: u32, d: Draft) -> Result<Telemetry, DecodeError> {
    let need = |key: Field| DecodeError::MissingField {
        kind,
        field: FieldPath::top(key.name()),
    };
    Ok(match kind {
        TelemetryKind::Metrics => Telemetry::Metrics(ServiceMetrics {
            schema_version: version,
            service: d.service.ok_or_else(|| need(Field::Service))?,
            ts: d.ts.ok_or_else(|| need(Field::Ts))?,
            rate_in: d.rate_in.ok_or_else(|| need(Field::RateIn))?,
            rate_out: d.rate_out.ok_or_else(|| need(Field::RateOut))?,
            backlog: d.backlog.ok_or_else(|| need(Field::Backlog))?,
            latency_p50_ms: d.latency_p50_ms.ok_or_else(|| need(Field::LatencyP50Ms))?,
            latency_p99_ms: d.latency_p99_ms.ok_or_else(|| need(Field::LatencyP99Ms))?,
            error_rate: d.error_rate.ok_or_else(|| need(Field::ErrorRate))?,
            cpu: d.cpu.ok_or_else(|| need(Field::Cpu))?,
            replicas: d.replicas.ok_or_else(|| need(Field::Replicas))?,
            region: d.region,
            dependencies: d.dependencies.unwrap_or_default(),
        }),
        TelemetryKind::Event => Telemetry::Event(EventSample {
            schema_version: version,
            topic: d.topic.ok_or_else(|| need(Field::Topic))?,
            producer: d.producer.ok_or_else(|| need(Field::Producer))?,
            region: d.region.ok_or_else(|| need(Field::Region))?,
            key: d.key.unwrap_or_default(),
            ts: d.ts.ok_or_else(|| need(Field::Ts))?,
            fields: d.fields.ok_or_else(|| need(Field::Fields))?,
        }),
        TelemetryKind::Health => Telemetry::Health(Health {
            schema_version: version,
            service: d.service.ok_or_else(|| need(Field::Service))?,
            ts: d.ts.ok_or_else(|| need(Field::Ts))?,
            status: d.status.ok_or_else(|| need(Field::Status))?,
            ready_replicas: d.ready_replicas,
            detail: d.detail,
        }),
    })
}

// ---------------------------------------------------------------------------------------
// serde plumbing: seeds that record faults in the Ctx instead of failing

/// The `visit_*` methods for values of the wrong JSON type, each calling
/// `self.reject(found)`.
macro_rules! reject_scalars {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.reject(Found::Null))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(self.reject(Found::Bool(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(self.reject(Found::Integer(v.into())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(self.reject(Found::Integer(v.into())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(self.reject(Found::Float(v)))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.reject(Found::String))
        }
    };
}

/// One JSON value, with arrays and objects skipped (their contents are never needed where
/// a scalar belongs). Strings borrow from the payload when they have no escapes.
enum Scalar<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    Array,
    Object,
}

impl Scalar<'_> {
    /// What it is, for a message; string contents are not kept.
    fn found(&self) -> Found {
        match self {
            Scalar::Null => Found::Null,
            Scalar::Bool(b) => Found::Bool(*b),
            Scalar::U64(n) => Found::Integer((*n).into()),
            Scalar::I64(n) => Found::Integer((*n).into()),
            Scalar::F64(x) => Found::Float(*x),
            Scalar::Str(_) => Found::String,
            Scalar::Array => Found::Array,
            Scalar::Object => Found::Object,
        }
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// An object key: one of `K`, or another name (kept, clipped, for the message).
enum KeyName<K> {
    Known(K),
    Unknown(Box<str>),
}

struct KeySeed<K>(PhantomData<K>);

impl<K> KeySeed<K> {
    fn new() -> Self {
        KeySeed(PhantomData)
    }
}

impl<'de, K: WireKey> DeserializeSeed<'de> for KeySeed<K> {
    type Value = KeyName<K>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<K: WireKey> Visitor<'_> for KeySeed<K> {
    type Value = KeyName<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match K::from_name(v) {
            Some(k) => KeyName::Known(k),
            None => KeyName::Unknown(clip(v)),
        })
    }
}

/// Reads the whole message into a [`Draft`].
struct DraftSeed<'c> {
    ctx: &'c mut Ctx,
    draft: &'c mut Draft,
}

impl<'de> DeserializeSeed<'de> for DraftSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DraftSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a telemetry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let DraftSeed { ctx, draft } = self;
        while let Some(key) = map.next_key_seed(KeySeed::<Field>::new())? {
            ctx.keys_read += 1;
            let key = match key {
                KeyName::Known(key) => key,
                KeyName::Unknown(name) => {
                    if ctx.first_unknown.is_none() {
                        ctx.first_unknown =
                            Some((ctx.keys_read, FieldPath::top(name.into_string())));
                    }
                    ctx.cursor = Cursor::Unknown;
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            ctx.cursor = Cursor::Top(key);
            if ctx.present & key.bit() != 0 {
                ctx.shape_fault(DecodeError::DuplicateField {
                    field: FieldPath::top(key.name()),
                });
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            ctx.present |= key.bit();
            ctx.position[key as usize] = ctx.keys_read;
            match key {
                Field::Dependencies => {
                    draft.dependencies = map.next_value_seed(DependenciesSeed { ctx: &mut *ctx })?
                }
                Field::Fields => {
                    draft.fields = map.next_value_seed(FieldsSeed { ctx: &mut *ctx })?
                }
                _ => {
                    let v = map.next_value_seed(ScalarSeed)?;
                    ctx.store(draft, key, v);
                }
            }
        }
        ctx.cursor = Cursor::Outside;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.ctx.not_an_object = Some(Found::Array);
        Ok(())
    }

    reject_scalars!();
}

impl DraftSeed<'_> {
    fn reject(self, found: Found) {
        self.ctx.not_an_object = Some(found);
    }
}

/// `dependencies`: an array of [`Dependency`] objects.
struct DependenciesSeed<'c> {
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for DependenciesSeed<'_> {
    type Value = Option<Vec<Dependency>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DependenciesSeed<'_> {
    type Value = Option<Vec<Dependency>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of dependencies")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut complete = true;
        let mut index = 0;
        loop {
            self.ctx.cursor = Cursor::DependencyItem(index);
            match seq.next_element_seed(DependencySeed {
                ctx: &mut *self.ctx,
                index,
            })? {
                None => break,
                Some(Some(dep)) => out.push(dep),
                Some(None) => complete = false,
            }
            index += 1;
        }
        self.ctx.cursor = Cursor::Top(Field::Dependencies);
        Ok(complete.then_some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.reject(Found::Object))
    }

    reject_scalars!();
}

impl DependenciesSeed<'_> {
    fn reject(self, found: Found) -> Option<Vec<Dependency>> {
        self.ctx.wrong_type(Expected::Array, found);
        None
    }
}

/// One element of `dependencies`.
struct DependencySeed<'c> {
    ctx: &'c mut Ctx,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for DependencySeed<'_> {
    type Value = Option<Dependency>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DependencySeed<'_> {
    type Value = Option<Dependency>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dependency object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (ctx, index) = (self.ctx, self.index);
        let mut seen = [false; 4];
        let (mut service, mut calls_per_s, mut error_rate, mut latency_p99_ms) =
            (None, None, None, None);
        let mut complete = true;
        while let Some(key) = map.next_key_seed(KeySeed::<DepField>::new())? {
            let key = match key {
                KeyName::Known(key) => key,
                KeyName::Unknown(name) => {
                    ctx.shape_fault(DecodeError::UnknownField {
                        kind: TelemetryKind::Metrics,
                        field: FieldPath::item(
                            "dependencies",
                            index,
                            Some(name.into_string().into()),
                        ),
                        expected: DEPENDENCY_FIELDS,
                    });
                    ctx.cursor = Cursor::DependencyItem(index);
                    map.next_value::<IgnoredAny>()?;
                    complete = false;
                    continue;
                }
            };
            ctx.cursor = Cursor::Dependency(index, key);
            if std::mem::replace(&mut seen[key as usize], true) {
                ctx.shape_fault(DecodeError::DuplicateField {
                    field: ctx.cursor.field(),
                });
                map.next_value::<IgnoredAny>()?;
                complete = false;
                continue;
            }
            let v = map.next_value_seed(ScalarSeed)?;
            match key {
                DepField::Service => service = ctx.name(v, Expected::Name),
                DepField::CallsPerS => calls_per_s = ctx.number(v, Expected::NonNegative),
                DepField::ErrorRate => error_rate = ctx.number(v, Expected::Fraction),
                DepField::LatencyP99Ms => latency_p99_ms = ctx.number(v, Expected::NonNegative),
            }
        }
        if let Some(missing) = DepField::ALL.into_iter().find(|&k| !seen[k as usize]) {
            ctx.shape_fault(DecodeError::MissingField {
                kind: TelemetryKind::Metrics,
                field: FieldPath::item("dependencies", index, Some(missing.name().into())),
            });
            return Ok(None);
        }
        Ok(
            match (complete, service, calls_per_s, error_rate, latency_p99_ms) {
                (
                    true,
                    Some(service),
                    Some(calls_per_s),
                    Some(error_rate),
                    Some(latency_p99_ms),
                ) => Some(Dependency {
                    service,
                    calls_per_s,
                    error_rate,
                    latency_p99_ms,
                }),
                _ => None,
            },
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.reject(Found::Array))
    }

    reject_scalars!();
}

impl DependencySeed<'_> {
    fn reject(self, found: Found) -> Option<Dependency> {
        self.ctx.wrong_type(Expected::Object, found);
        None
    }
}

/// An event sample's `fields`: an object of arbitrary JSON values, kept as they are.
struct FieldsSeed<'c> {
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Option<BTreeMap<String, serde_json::Value>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Option<BTreeMap<String, serde_json::Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of event fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            fields.insert(k, v);
        }
        Ok(Some(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.reject(Found::Array))
    }

    reject_scalars!();
}

impl FieldsSeed<'_> {
    fn reject(self, found: Found) -> Option<BTreeMap<String, serde_json::Value>> {
        self.ctx.wrong_type(Expected::Object, found);
        None
    }
}
