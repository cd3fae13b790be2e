//! Event samples with ground truth, so compliance precision, recall and false positives
//! are measured, not guessed.
//!
//! An [`EventGenerator`] turns an [`EventMixSpec`] into a stream of order-like
//! [`EventSample`]s, each with a [`Truth`] label. A configured share of events carries
//! personal data (valid card numbers, e-mail addresses, IBANs, SSNs, NINOs, at a known
//! field path), comes from a region its topic may not use, or belongs to a fraud burst
//! (high-value orders on one card from one producer in a short span). Another share are
//! hard negatives ("decoys"): clean events holding values that a regex without
//! validation flags (16-digit order numbers failing Luhn, epoch milliseconds, tracking
//! numbers, `user@localhost`, phone numbers). [`regex_only_flags`] is that regex-only
//! baseline.
//!
//! Each event has exactly one label: a PII event breaks no residency rule, a fraud
//! event holds no personal data, and so on, so each detector's score is its own.

mod naive;
mod values;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_agents::compliance::PiiKind;
use conclave_runtime::telemetry::{EventSample, SCHEMA_VERSION};
use conclave_runtime::Timestamp;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::seed::Seed;

pub use naive::regex_only_flags;

/// Fraud bursts when a spec gives no size: enough orders to stand out from one card's
/// normal one or two.
const DEFAULT_BURST_SIZE: u32 = 6;

/// Longest a fraud burst lasts when a spec gives no span.
const DEFAULT_MAX_SPAN_S: f64 = 120.0;

/// Ordinary order values, in cents: 5 to 250 units of currency.
const ORDER_CENTS: std::ops::RangeInclusive<u64> = 500..=25_000;

/// Share of ordinary orders that are large anyway, so value alone does not give fraud
/// away.
const LARGE_ORDER_SHARE: f64 = 0.03;

/// Large orders, ordinary or fraudulent, in cents: 1,500 to 9,000 units of currency.
const LARGE_ORDER_CENTS: std::ops::RangeInclusive<u64> = 150_000..=900_000;

/// An event mix, as written in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMixSpec {
    /// Every region producers run in.
    pub regions: Vec<String>,
    /// The topics events are sampled from, each equally often.
    pub topics: Vec<TopicSpec>,
    /// Shares of labelled events; the rest are clean.
    pub shares: Option<SharesSpec>,
    /// Kinds of personal data planted, by detector name (`card_number`, `email`, `iban`,
    /// `us_ssn`, `uk_nino`), each equally often (default: all).
    pub pii_kinds: Option<Vec<String>>,
    /// Kinds of hard negatives planted, each equally often (default: all).
    pub decoy_kinds: Option<Vec<DecoyKind>>,
    /// Fraud bursts.
    pub fraud: Option<FraudSpec>,
}

/// One topic, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Producers publishing on it, each equally often.
    pub producers: Vec<String>,
    /// Regions its events may come from (a residency rule); default: every region, and
    /// no rule. Residency breaches are drawn from the other regions.
    pub allowed_regions: Option<Vec<String>>,
}

/// Shares of each label, as written; each in `0..=1`, together at most 1.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharesSpec {
    /// Events carrying personal data (default 0).
    pub pii: Option<f64>,
    /// Events from a region their topic does not allow (default 0).
    pub residency: Option<f64>,
    /// Events in fraud bursts (default 0).
    pub fraud: Option<f64>,
    /// Clean events holding a hard negative (default 0).
    pub decoy: Option<f64>,
}

/// Fraud bursts, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudSpec {
    /// Orders per burst, `2..=1000` (default 6).
    pub burst_size: Option<u32>,
    /// Longest a burst lasts, in seconds, above 0 (default 120). A burst whose next order
    /// would come later is closed short, and a new one starts.
    pub max_span_s: Option<f64>,
}

/// A hard negative: a clean value that a regex-only detector flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoyKind {
    /// A 16-digit order number that fails Luhn (`fields.order_number`).
    OrderNumber,
    /// A 13-digit epoch-milliseconds timestamp, as a number (`fields.created_ms`).
    EpochMillis,
    /// A 22-digit USPS tracking number (`fields.shipping.tracking_number`).
    TrackingNumber,
    /// `user@localhost` and other addresses without a public domain (`fields.reply_to`).
    LocalAddress,
    /// A phone number (`fields.customer.phone`).
    PhoneNumber,
}

impl DecoyKind {
    /// Every kind.
    pub const ALL: [DecoyKind; 5] = [
        DecoyKind::OrderNumber,
        DecoyKind::EpochMillis,
        DecoyKind::TrackingNumber,
        DecoyKind::LocalAddress,
        DecoyKind::PhoneNumber,
    ];

    /// The spec name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecoyKind::OrderNumber => "order_number",
            DecoyKind::EpochMillis => "epoch_millis",
            DecoyKind::TrackingNumber => "tracking_number",
            DecoyKind::LocalAddress => "local_address",
            DecoyKind::PhoneNumber => "phone_number",
        }
    }
}

/// What an event really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    /// Nothing to find.
    Clean,
    /// Clean, but holds a value a regex-only detector flags.
    Decoy {
        /// What kind of look-alike.
        kind: DecoyKind,
        /// Where, as compliance findings write paths (`fields.order_number`).
        path: String,
    },
    /// Holds personal data; the compliance agent should find it.
    Pii {
        /// What kind.
        kind: PiiKind,
        /// Where (`fields.customer.email`).
        path: String,
    },
    /// Comes from a region its topic does not allow.
    Residency {
        /// The event's region.
        region: String,
        /// The regions the topic allows.
        allowed: Vec<String>,
    },
    /// One order of a fraud burst.
    Fraud {
        /// The burst, numbered from 1 in order of start.
        burst: u64,
        /// Its position in the burst, from 0.
        index: u32,
    },
}

/// The label of a [`Truth`], for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TruthKind {
    /// [`Truth::Clean`].
    Clean,
    /// [`Truth::Decoy`].
    Decoy,
    /// [`Truth::Pii`].
    Pii,
    /// [`Truth::Residency`].
    Residency,
    /// [`Truth::Fraud`].
    Fraud,
}

impl TruthKind {
    /// The report name.
    pub fn as_str(self) -> &'static str {
        match self {
            TruthKind::Clean => "clean",
            TruthKind::Decoy => "decoy",
            TruthKind::Pii => "pii",
            TruthKind::Residency => "residency",
            TruthKind::Fraud => "fraud",
        }
    }
}

impl Truth {
    /// The label.
    pub fn kind(&self) -> TruthKind {
        match self {
            Truth::Clean => TruthKind::Clean,
            Truth::Decoy { .. } => TruthKind::Decoy,
            Truth::Pii { .. } => TruthKind::Pii,
            Truth::Residency { .. } => TruthKind::Residency,
            Truth::Fraud { .. } => TruthKind::Fraud,
        }
    }

    /// Whether a detector should flag the event: personal data, a residency breach or
    /// fraud. Clean events and decoys are negatives.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            Truth::Pii { .. } | Truth::Residency { .. } | Truth::Fraud { .. }
        )
    }
}

/// A generated event and what it really is.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledEvent {
    /// The event, as a producer would send it.
    pub event: EventSample,
    /// Its ground truth.
    pub truth: Truth,
}

/// An event mix spec that could not be compiled: each names the spec path, what was
/// expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventSpecError {
    /// A number outside its domain (NaN and infinities included).
    #[error("{at}: expected {expected}, found `{found}`")]
    OutOfRange {
        /// Spec path of the value.
        at: String,
        /// The domain.
        expected: &'static str,
        /// The value.
        found: f64,
    },
    /// An empty name.
    #[error("{at}: expected a {expected} name, found an empty string")]
    EmptyName {
        /// Spec path of the name.
        at: String,
        /// What belongs there.
        expected: &'static str,
    },
    /// An empty list.
    #[error("{at}: expected at least one {expected}, found none")]
    EmptyList {
        /// Spec path of the list.
        at: String,
        /// What belongs in it.
        expected: &'static str,
    },
    /// A name listed twice.
    #[error("{at}: expected each {what} once, found `{name}` again")]
    Duplicate {
        /// Spec path of the repeat.
        at: String,
        /// What is named.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A region not in `regions`.
    #[error("{at}: expected one of the regions in `regions`, found `{region}`")]
    UnknownRegion {
        /// Spec path of the region.
        at: String,
        /// The region.
        region: String,
    },
    /// A kind of personal data no detector knows.
    #[error("{at}: expected one of `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`, found `{found}`")]
    UnknownPiiKind {
        /// Spec path of the name.
        at: String,
        /// The name.
        found: String,
    },
    /// Shares adding up to more than 1.
    #[error("{at}: expected shares adding up to at most 1, found `{sum}`")]
    SharesAboveOne {
        /// Spec path of `shares`.
        at: String,
        /// Their sum.
        sum: f64,
    },
    /// A residency share but no topic with a region it forbids.
    #[error("{at}: expected a topic whose `allowed_regions` leave out a region of `regions`, found none; a residency breach needs one")]
    NoResidencyTarget {
        /// Spec path of `shares.residency`.
        at: String,
    },
    /// A burst size outside `2..=1000`.
    #[error("{at}: expected a burst size in 2..=1000, found `{found}`")]
    BurstSize {
        /// Spec path of `burst_size`.
        at: String,
        /// The size.
        found: u32,
    },
}

#[derive(Debug, Clone)]
struct Topic {
    name: String,
    producers: Vec<String>,
    /// Regions events may come from: the rule's, or every region.
    allowed: Vec<String>,
    /// Regions the rule forbids (empty without a rule).
    forbidden: Vec<String>,
    /// Whether `allowed_regions` was given.
    has_rule: bool,
}

#[derive(Debug, Clone, Copy)]
struct Shares {
    pii: f64,
    residency: f64,
    fraud: f64,
    decoy: f64,
}

#[derive(Debug, Clone)]
struct Burst {
    id: u64,
    topic: usize,
    producer: String,
    region: String,
    fingerprint: String,
    last4: String,
    next_index: u32,
    deadline: Timestamp,
}

/// Generates labelled events; build one with [`EventGenerator::compile`].
#[derive(Debug, Clone)]
pub struct EventGenerator {
    rng: ChaCha8Rng,
    topics: Vec<Topic>,
    shares: Shares,
    pii_kinds: Vec<PiiKind>,
    decoy_kinds: Vec<DecoyKind>,
    burst_size: u32,
    max_span: Duration,
    burst: Option<Burst>,
    bursts_started: u64,
}

/// Collects every problem of a spec.
struct Check {
    errors: Vec<EventSpecError>,
}

impl Check {
    fn range(&mut self, at: String, value: f64, ok: bool, expected: &'static str) {
        if !(ok && value.is_finite()) {
            self.errors.push(EventSpecError::OutOfRange {
                at,
                expected,
                found: value,
            });
        }
    }

    /// Checks a list of names: not empty, none empty, none twice.
    fn names(&mut self, at: &str, names: &[String], what: &'static str) {
        if names.is_empty() {
            self.errors.push(EventSpecError::EmptyList {
                at: at.to_string(),
                expected: what,
            });
        }
        let mut seen = BTreeSet::new();
        for (i, n) in names.iter().enumerate() {
            let at = format!("{at}[{i}]");
            if n.is_empty() {
                self.errors
                    .push(EventSpecError::EmptyName { at, expected: what });
            } else if !seen.insert(n) {
                self.errors.push(EventSpecError::Duplicate {
                    at,
                    what,
                    name: n.clone(),
                });
            }
        }
    }
}

impl EventGenerator {
    /// Checks every field of `spec`, then builds a generator drawing from `seed`'s
    /// stream for `component` (`events/orders`).
    ///
    /// # Errors
    /// Every problem, each with its spec path under `at`.
    pub fn compile(
        spec: EventMixSpec,
        seed: Seed,
        component: &str,
        at: &str,
    ) -> Result<EventGenerator, Vec<EventSpecError>> {
        let mut check = Check { errors: Vec::new() };
        check.names(&format!("{at}.regions"), &spec.regions, "region");
        let topic_names: Vec<String> = spec.topics.iter().map(|t| t.name.clone()).collect();
        check.names(&format!("{at}.topics"), &topic_names, "topic");
        let topics: Vec<Topic> = spec
            .topics
            .into_iter()
            .enumerate()
            .map(|(i, t)| compile_topic(t, &spec.regions, &mut check, &format!("{at}.topics[{i}]")))
            .collect();

        let raw = spec.shares.unwrap_or_default();
        let shares_at = format!("{at}.shares");
        let mut share = |name: &str, v: Option<f64>| {
            let v = v.unwrap_or(0.0);
            check.range(
                format!("{shares_at}.{name}"),
                v,
                (0.0..=1.0).contains(&v),
                "a share in 0..=1",
            );
            v
        };
        let shares = Shares {
            pii: share("pii", raw.pii),
            residency: share("residency", raw.residency),
            fraud: share("fraud", raw.fraud),
            decoy: share("decoy", raw.decoy),
        };
        let sum = shares.pii + shares.residency + shares.fraud + shares.decoy;
        if sum > 1.0 + 1e-9 {
            check.errors.push(EventSpecError::SharesAboveOne {
                at: shares_at.clone(),
                sum,
            });
        }
        if shares.residency > 0.0 && !topics.iter().any(|t| !t.forbidden.is_empty()) {
            check.errors.push(EventSpecError::NoResidencyTarget {
                at: format!("{shares_at}.residency"),
            });
        }

        let pii_kinds = match spec.pii_kinds {
            None => PiiKind::ALL.to_vec(),
            Some(names) => {
                let at = format!("{at}.pii_kinds");
                if names.is_empty() {
                    check.errors.push(EventSpecError::EmptyList {
                        at: at.clone(),
                        expected: "kind of personal data",
                    });
                }
                let mut kinds = BTreeSet::new();
                for (i, name) in names.iter().enumerate() {
                    match PiiKind::from_name(name) {
                        Some(k) => {
                            kinds.insert(k);
                        }
                        None => check.errors.push(EventSpecError::UnknownPiiKind {
                            at: format!("{at}[{i}]"),
                            found: name.clone(),
                        }),
                    }
                }
                kinds.into_iter().collect()
            }
        };
        let decoy_kinds = match spec.decoy_kinds {
            None => DecoyKind::ALL.to_vec(),
            Some(kinds) => {
                if kinds.is_empty() {
                    check.errors.push(EventSpecError::EmptyList {
                        at: format!("{at}.decoy_kinds"),
                        expected: "kind of hard negative",
                    });
                }
                kinds
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }
        };

        let fraud = spec.fraud.unwrap_or(FraudSpec {
            burst_size: None,
            max_span_s: None,
        });
        let burst_size = fraud.burst_size.unwrap_or(DEFAULT_BURST_SIZE);
        if !(2..=1000).contains(&burst_size) {
            check.errors.push(EventSpecError::BurstSize {
                at: format!("{at}.fraud.burst_size"),
                found: burst_size,
            });
        }
        let max_span_s = fraud.max_span_s.unwrap_or(DEFAULT_MAX_SPAN_S);
        check.range(
            format!("{at}.fraud.max_span_s"),
            max_span_s,
            max_span_s > 0.0 && max_span_s <= 1e9,
            "a span above 0 seconds",
        );

        if !check.errors.is_empty() {
            return Err(check.errors);
        }
        Ok(EventGenerator {
            rng: seed.rng(component),
            topics,
            shares,
            pii_kinds,
            decoy_kinds,
            burst_size,
            max_span: Duration::from_secs_f64(max_span_s),
            burst: None,
            bursts_started: 0,
        })
    }

    /// The residency rules the mix follows, `topic -> allowed regions`, in the shape of
    /// the compliance agent's `residency` setting, so a scenario can configure the agent
    /// to match.
    pub fn residency_rules(&self) -> BTreeMap<String, Vec<String>> {
        self.topics
            .iter()
            .filter(|t| t.has_rule)
            .map(|t| (t.name.clone(), t.allowed.clone()))
            .collect()
    }

    /// The next event, produced at `ts`, with its label. The label is drawn first, by the
    /// configured shares; everything else follows from it.
    pub fn next_event(&mut self, ts: Timestamp) -> LabelledEvent {
        let s = self.shares;
        let u: f64 = self.rng.random();
        if u < s.pii {
            self.pii_event(ts)
        } else if u < s.pii + s.residency {
            self.residency_event(ts)
        } else if u < s.pii + s.residency + s.fraud {
            self.fraud_event(ts)
        } else if u < s.pii + s.residency + s.fraud + s.decoy {
            self.decoy_event(ts)
        } else {
            let (event, _) = self.clean_event(ts);
            LabelledEvent {
                event,
                truth: Truth::Clean,
            }
        }
    }

    /// A clean order on a random topic, from one of its producers in an allowed region;
    /// also returns the topic index.
    fn clean_event(&mut self, ts: Timestamp) -> (EventSample, usize) {
        let t = self.rng.random_range(0..self.topics.len());
        let topic = &self.topics[t];
        let producer = choose(&mut self.rng, &topic.producers);
        let region = choose(&mut self.rng, &topic.allowed);
        let name = topic.name.clone();
        let cents = if self.rng.random_bool(LARGE_ORDER_SHARE) {
            self.rng.random_range(LARGE_ORDER_CENTS)
        } else {
            self.rng.random_range(ORDER_CENTS)
        };
        let card = (
            format!("fp_{}", values::letters(&mut self.rng, 12)),
            format!("{:04}", self.rng.random_range(0..10_000)),
        );
        let event = self.order(ts, name, producer, region, cents, card);
        (event, t)
    }

    /// An order event; every value is clean (see [`values`]).
    fn order(
        &mut self,
        ts: Timestamp,
        topic: String,
        producer: String,
        region: String,
        cents: u64,
        (fingerprint, last4): (String, String),
    ) -> EventSample {
        const CURRENCIES: &[&str] = &["EUR", "USD", "GBP"];
        const STATUSES: &[&str] = &["authorized", "paid", "pending"];
        const CHANNELS: &[&str] = &["app", "pos", "web"];
        const TIERS: &[&str] = &["plus", "standard", "standard", "standard"];
        const NOTES: &[&str] = &[
            "leave at the door",
            "gift wrap please",
            "call on arrival",
            "fragile",
        ];
        let rng = &mut self.rng;
        let order_id = format!("ord_{}", values::letters(rng, 10));
        let items: Vec<Value> = (0..rng.random_range(1..=3))
            .map(|_| {
                json!({
                    "sku": format!("sku-{:04}", rng.random_range(0..10_000)),
                    "qty": rng.random_range(1..=3),
                })
            })
            .collect();
        let mut fields = BTreeMap::from([
            ("amount_cents".to_string(), json!(cents)),
            (
                "currency".to_string(),
                json!(CURRENCIES.choose(rng).copied().unwrap_or("EUR")),
            ),
            ("order_id".to_string(), json!(order_id)),
            ("items".to_string(), Value::Array(items)),
            (
                "customer".to_string(),
                json!({
                    "id": format!("cus_{}", values::letters(rng, 10)),
                    "tier": TIERS.choose(rng).copied().unwrap_or("standard"),
                }),
            ),
            (
                "card".to_string(),
                json!({"fingerprint": fingerprint, "last4": last4}),
            ),
            (
                "status".to_string(),
                json!(STATUSES.choose(rng).copied().unwrap_or("paid")),
            ),
            (
                "channel".to_string(),
                json!(CHANNELS.choose(rng).copied().unwrap_or("web")),
            ),
        ]);
        if rng.random_bool(0.3) {
            fields.insert(
                "note".to_string(),
                json!(NOTES.choose(rng).copied().unwrap_or("fragile")),
            );
        }
        EventSample {
            schema_version: SCHEMA_VERSION,
            topic,
            producer,
            region,
            key: order_id,
            ts,
            fields,
        }
    }

    fn pii_event(&mut self, ts: Timestamp) -> LabelledEvent {
        let (mut event, _) = self.clean_event(ts);
        let kind = *self
            .pii_kinds
            .choose(&mut self.rng)
            .unwrap_or(&PiiKind::Email);
        let rng = &mut self.rng;
        let value = match kind {
            PiiKind::CardNumber => values::card_number(rng),
            PiiKind::Email => values::email(rng),
            PiiKind::Iban => values::iban(rng),
            PiiKind::UsSsn => values::ssn(rng),
            PiiKind::UkNino => values::nino(rng),
        };
        let path = if rng.random_bool(0.5) {
            // In a field made for it.
            let (object, key) = match kind {
                PiiKind::CardNumber => ("payment", "card_number"),
                PiiKind::Email => ("customer", "email"),
                PiiKind::Iban => ("payout", "iban"),
                PiiKind::UsSsn => ("customer", "ssn"),
                PiiKind::UkNino => ("customer", "ni_number"),
            };
            set(&mut event.fields, object, key, Value::String(value));
            format!("fields.{object}.{key}")
        } else {
            // Pasted into free text, where schemas do not look.
            let text = match kind {
                PiiKind::CardNumber => format!("customer read card {value} over the phone"),
                PiiKind::Email => format!("send the invoice to {value} please"),
                PiiKind::Iban => format!("refund to {value} instead"),
                PiiKind::UsSsn => format!("tax id {value} for the invoice"),
                PiiKind::UkNino => format!("NI number {value} on file"),
            };
            event.fields.insert("note".into(), Value::String(text));
            "fields.note".to_string()
        };
        LabelledEvent {
            event,
            truth: Truth::Pii { kind, path },
        }
    }

    fn decoy_event(&mut self, ts: Timestamp) -> LabelledEvent {
        let (mut event, _) = self.clean_event(ts);
        let kind = *self
            .decoy_kinds
            .choose(&mut self.rng)
            .unwrap_or(&DecoyKind::OrderNumber);
        let rng = &mut self.rng;
        let f = &mut event.fields;
        let path = match kind {
            DecoyKind::OrderNumber => {
                f.insert("order_number".into(), json!(values::order_number(rng)));
                "fields.order_number"
            }
            DecoyKind::EpochMillis => {
                f.insert(
                    "created_ms".into(),
                    json!(values::epoch_millis(ts.as_millis())),
                );
                "fields.created_ms"
            }
            DecoyKind::TrackingNumber => {
                let n = values::tracking_number(rng);
                set(f, "shipping", "carrier", json!("usps"));
                set(f, "shipping", "tracking_number", json!(n));
                "fields.shipping.tracking_number"
            }
            DecoyKind::LocalAddress => {
                f.insert("reply_to".into(), json!(values::local_address(rng)));
                "fields.reply_to"
            }
            DecoyKind::PhoneNumber => {
                set(f, "customer", "phone", json!(values::phone_number(rng)));
                "fields.customer.phone"
            }
        };
        LabelledEvent {
            event,
            truth: Truth::Decoy {
                kind,
                path: path.to_string(),
            },
        }
    }

    fn residency_event(&mut self, ts: Timestamp) -> LabelledEvent {
        let candidates: Vec<usize> = (0..self.topics.len())
            .filter(|&i| !self.topics[i].forbidden.is_empty())
            .collect();
        let t = *candidates.choose(&mut self.rng).unwrap_or(&0);
        let topic = &self.topics[t];
        let (name, allowed) = (topic.name.clone(), topic.allowed.clone());
        let producer = choose(&mut self.rng, &topic.producers);
        let region = choose(&mut self.rng, &topic.forbidden);
        let card = (
            format!("fp_{}", values::letters(&mut self.rng, 12)),
            format!("{:04}", self.rng.random_range(0..10_000)),
        );
        let cents = self.rng.random_range(ORDER_CENTS);
        let event = self.order(ts, name, producer, region.clone(), cents, card);
        LabelledEvent {
            event,
            truth: Truth::Residency { region, allowed },
        }
    }

    fn fraud_event(&mut self, ts: Timestamp) -> LabelledEvent {
        let mut burst = match self.burst.take() {
            Some(b) if b.next_index < self.burst_size && ts <= b.deadline => b,
            _ => self.start_burst(ts),
        };
        let index = burst.next_index;
        burst.next_index += 1;
        let cents = self.rng.random_range(LARGE_ORDER_CENTS);
        let topic = self.topics[burst.topic].name.clone();
        let event = self.order(
            ts,
            topic,
            burst.producer.clone(),
            burst.region.clone(),
            cents,
            (burst.fingerprint.clone(), burst.last4.clone()),
        );
        let truth = Truth::Fraud {
            burst: burst.id,
            index,
        };
        self.burst = Some(burst);
        LabelledEvent { event, truth }
    }

    /// A new burst: one producer and one card on a random topic, from `ts` for at most
    /// the configured span.
    fn start_burst(&mut self, ts: Timestamp) -> Burst {
        self.bursts_started += 1;
        let t = self.rng.random_range(0..self.topics.len());
        let topic = &self.topics[t];
        let producer = choose(&mut self.rng, &topic.producers);
        let region = choose(&mut self.rng, &topic.allowed);
        Burst {
            id: self.bursts_started,
            topic: t,
            producer,
            region,
            fingerprint: format!("fp_{}", values::letters(&mut self.rng, 12)),
            last4: format!("{:04}", self.rng.random_range(0..10_000)),
            next_index: 0,
            deadline: ts.plus(self.max_span),
        }
    }
}

fn compile_topic(spec: TopicSpec, regions: &[String], check: &mut Check, at: &str) -> Topic {
    check.names(&format!("{at}.producers"), &spec.producers, "producer");
    let has_rule = spec.allowed_regions.is_some();
    let allowed = match spec.allowed_regions {
        None => regions.to_vec(),
        Some(allowed) => {
            let list_at = format!("{at}.allowed_regions");
            check.names(&list_at, &allowed, "region");
            for (i, r) in allowed.iter().enumerate() {
                if !r.is_empty() && !regions.contains(r) {
                    check.errors.push(EventSpecError::UnknownRegion {
                        at: format!("{list_at}[{i}]"),
                        region: r.clone(),
                    });
                }
            }
            allowed
        }
    };
    let forbidden = regions
        .iter()
        .filter(|r| !allowed.contains(r))
        .cloned()
        .collect();
    Topic {
        name: spec.name,
        producers: spec.producers,
        allowed,
        forbidden,
        has_rule,
    }
}

/// One of `from`, which compile has checked is not empty.
fn choose(rng: &mut ChaCha8Rng, from: &[String]) -> String {
    from.choose(rng).cloned().unwrap_or_default()
}

/// Sets `fields.<object>.<key>`, creating the object (or replacing a non-object).
fn set(fields: &mut BTreeMap<String, Value>, object: &str, key: &str, value: Value) {
    let slot = fields
        .entry(object.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(map) = slot {
        map.insert(key.to_string(), value);
    }
}
