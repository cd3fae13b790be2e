//! The compliance fraud model's feature vector, exactly as
//! `agents/training/conclave_training/compliance_features.py` defines it (the spec is
//! `agents/models/compliance.features.json`, also in the model's `metadata_props`).
//!
//! One row per event sample, from the event and what came before it, in arrival order.
//! Two kinds of rolling state, keyed by the 64-bit FNV-1a hash of the key, so no card
//! fingerprint is ever stored and eviction order is defined:
//!
//! - per card (the string at [`CARD_PATH`]): its earlier orders within the last
//!   [`CARD_WINDOW_S`] seconds, at most [`MAX_CARD_ORDERS`], each with its amount;
//! - per producer: its earlier orders within the last [`PRODUCER_WINDOW_S`] seconds, at
//!   most [`MAX_PRODUCER_ORDERS`], each with whether it was large and whether its card had
//!   an earlier order in the window (a repeat).
//!
//! No feature counts a producer's events or their rate: those follow a deployment's
//! sampling rate and number of producers, not behaviour; the producer features are shares.
//!
//! Time is the watermark: `now` is the largest `ts` seen so far, this event's included, so
//! a late event counts as arriving at `now` (its own stamp cannot reopen entries already
//! dropped). An entry stamped `t` is in a window of `W` seconds when `now - t <= W`; older
//! entries are dropped. At most [`MAX_CARDS`] cards and [`MAX_PRODUCERS`] producers are
//! kept: keys whose newest entry left the window go first, then the key with the oldest
//! newest entry (ties: the smaller hash).
//!
//! Values are read only to compute the numbers below and never leave this module: a
//! rationale may show the feature names and [`AMOUNT_PATH`]/[`CARD_PATH`], never a value.
//! Everything is computed in `f64` and each feature cast to `f32` at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::Value;

use crate::clock::Timestamp;
use crate::telemetry::EventSample;

/// Features per row.
pub const N_FEATURES: usize = 9;

/// Feature names, in column order (the model's `feature_names`).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "log_amount",
    "is_large",
    "has_card",
    "card_orders",
    "card_large",
    "card_gap_s",
    "card_log_amount",
    "producer_large_share",
    "producer_repeat_share",
];

/// Where the order amount is read, in cents.
pub const AMOUNT_PATH: &str = "fields.amount_cents";
/// Where the card fingerprint is read.
pub const CARD_PATH: &str = "fields.card.fingerprint";
/// A large order: 1,000 units of currency or more.
pub const LARGE_ORDER_CENTS: f64 = 100_000.0;
/// The card window: long enough for the slowest bursts the training scenarios hold (four
/// orders over 30 minutes).
pub const CARD_WINDOW_S: i64 = 3600;
/// The producer window.
pub const PRODUCER_WINDOW_S: i64 = 600;
/// Orders kept per card: a card with more in an hour is a burst whatever the count.
pub const MAX_CARD_ORDERS: usize = 64;
/// Orders kept per producer: about 7 a second over the window.
pub const MAX_PRODUCER_ORDERS: usize = 4096;
/// Cards kept: an hour of 27 events a second, each on a new card.
pub const MAX_CARDS: usize = 100_000;
/// Producers kept.
pub const MAX_PRODUCERS: usize = 10_000;

const CENTS_PER_UNIT: f64 = 100.0;
const CARD_WINDOW_MS: i64 = CARD_WINDOW_S * 1000;
const PRODUCER_WINDOW_MS: i64 = PRODUCER_WINDOW_S * 1000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `text`'s UTF-8 bytes.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// One event's features, with the figures a rationale names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComplianceVector {
    /// The features, in [`FEATURE_NAMES`] order.
    pub features: [f32; N_FEATURES],
    /// The card's earlier orders in its window (0 without a card).
    pub card_orders: u32,
    /// Whether the event named a card.
    pub has_card: bool,
}

impl ComplianceVector {
    /// The value of feature `name`; `None` for a name not in [`FEATURE_NAMES`].
    pub fn get(&self, name: &str) -> Option<f32> {
        FEATURE_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.features[i])
    }
}

/// One key's entries, oldest first, and the stamp of its newest.
#[derive(Debug, Clone)]
struct Window<E> {
    entries: VecDeque<(i64, E)>,
    newest: i64,
}

/// Windows by key hash, with the eviction order of the module docs.
#[derive(Debug, Clone)]
struct Keyed<E> {
    windows: HashMap<u64, Window<E>>,
    /// `(newest, key)` of every window: the eviction order.
    by_newest: BTreeSet<(i64, u64)>,
    window_ms: i64,
    max_keys: usize,
}

impl<E> Keyed<E> {
    fn new(window_ms: i64, max_keys: usize) -> Self {
        Keyed {
            windows: HashMap::new(),
            by_newest: BTreeSet::new(),
            window_ms,
            max_keys,
        }
    }

    /// Drops every key whose newest entry left the window at `now`.
    fn expire(&mut self, now: i64) {
        while let Some(&(newest, key)) = self.by_newest.first() {
            if now - newest <= self.window_ms {
                break;
            }
            self.by_newest.pop_first();
            self.windows.remove(&key);
        }
    }

    /// Appends `entry` at `now` to `key`'s window (creating it), then applies the key cap.
    /// Returns the entry dropped from the front when the window held `max_entries`.
    fn push(&mut self, key: u64, now: i64, entry: E, max_entries: usize) -> Option<E> {
        let w = self.windows.entry(key).or_insert_with(|| Window {
            entries: VecDeque::new(),
            newest: now,
        });
        self.by_newest.remove(&(w.newest, key));
        w.newest = now;
        self.by_newest.insert((now, key));
        w.entries.push_back((now, entry));
        let dropped = if w.entries.len() > max_entries {
            w.entries.pop_front().map(|(_, e)| e)
        } else {
            None
        };
        while self.windows.len() > self.max_keys {
            let Some((_, oldest)) = self.by_newest.pop_first() else {
                break;
            };
            self.windows.remove(&oldest);
        }
        dropped
    }
}

/// A producer's entry: whether the order was large, and whether it was a repeat on its card.
#[derive(Debug, Clone, Copy)]
struct ProducerEntry {
    is_large: bool,
    is_repeat: bool,
}

/// The compliance agent's rolling feature state: an event in, its feature row out.
#[derive(Debug, Clone)]
pub struct ComplianceFeatures {
    now: Option<i64>,
    /// Per card: amounts in cents.
    cards: Keyed<f64>,
    producers: Keyed<ProducerEntry>,
    /// Per producer: `(large, repeats)` among its kept entries.
    counts: HashMap<u64, (u32, u32)>,
}

impl Default for ComplianceFeatures {
    fn default() -> Self {
        Self::new()
    }
}

impl ComplianceFeatures {
    /// No events yet, with the spec's caps.
    pub fn new() -> Self {
        Self::with_caps(MAX_CARDS, MAX_PRODUCERS)
    }

    /// No events yet, keeping at most `max_cards` cards and `max_producers` producers
    /// (the spec's caps are [`MAX_CARDS`] and [`MAX_PRODUCERS`]; smaller ones exercise
    /// eviction in tests).
    pub fn with_caps(max_cards: usize, max_producers: usize) -> Self {
        ComplianceFeatures {
            now: None,
            cards: Keyed::new(CARD_WINDOW_MS, max_cards.max(1)),
            producers: Keyed::new(PRODUCER_WINDOW_MS, max_producers.max(1)),
            counts: HashMap::new(),
        }
    }

    /// Cards held.
    pub fn cards(&self) -> usize {
        self.cards.windows.len()
    }

    /// Producers held.
    pub fn producers(&self) -> usize {
        self.producers.windows.len()
    }

    /// The row of `event`, from the state before it; then adds it.
    pub fn observe(&mut self, event: &EventSample) -> ComplianceVector {
        self.observe_parts(event.ts, &event.producer, &event.fields)
    }

    /// [`observe`](Self::observe) on an event's parts.
    pub fn observe_parts(
        &mut self,
        ts: Timestamp,
        producer: &str,
        fields: &BTreeMap<String, Value>,
    ) -> ComplianceVector {
        let ts = ts.as_millis();
        let now = self.now.map_or(ts, |n| n.max(ts));
        self.now = Some(now);
        self.cards.expire(now);
        self.producers.expire(now);
        let producer_key = fnv1a(producer);
        for key in self.producers_gone() {
            self.counts.remove(&key);
        }

        let amount = amount_of(fields);
        let is_large = amount >= LARGE_ORDER_CENTS;
        let card_key = card_of(fields).map(fnv1a);
        let mut f = [0f64; N_FEATURES];
        f[0] = (amount / CENTS_PER_UNIT).ln_1p();
        f[1] = f64::from(u8::from(is_large));
        f[2] = f64::from(u8::from(card_key.is_some()));

        let mut card_orders = 0usize;
        f[5] = CARD_WINDOW_S as f64;
        if let Some(w) = card_key.and_then(|k| self.cards.windows.get_mut(&k)) {
            while w
                .entries
                .front()
                .is_some_and(|(t, _)| now - t > CARD_WINDOW_MS)
            {
                w.entries.pop_front();
            }
            card_orders = w.entries.len();
            if let Some((newest, _)) = w.entries.back() {
                f[5] = ((now - newest) as f64 / 1000.0).clamp(0.0, CARD_WINDOW_S as f64);
                let total: f64 = w.entries.iter().map(|(_, a)| *a).sum();
                let large = w
                    .entries
                    .iter()
                    .filter(|(_, a)| *a >= LARGE_ORDER_CENTS)
                    .count();
                f[4] = large as f64;
                f[6] = (total / CENTS_PER_UNIT).ln_1p();
            }
        }
        f[3] = card_orders as f64;

        if let Some(w) = self.producers.windows.get_mut(&producer_key) {
            let counts = self.counts.entry(producer_key).or_default();
            while w
                .entries
                .front()
                .is_some_and(|(t, _)| now - t > PRODUCER_WINDOW_MS)
            {
                if let Some((_, e)) = w.entries.pop_front() {
                    uncount(counts, e);
                }
            }
            let denominator = w.entries.len().max(1) as f64;
            f[7] = f64::from(counts.0) / denominator;
            f[8] = f64::from(counts.1) / denominator;
        }

        if let Some(key) = card_key {
            self.cards.push(key, now, amount, MAX_CARD_ORDERS);
        }
        let entry = ProducerEntry {
            is_large,
            is_repeat: card_orders >= 1,
        };
        let dropped = self
            .producers
            .push(producer_key, now, entry, MAX_PRODUCER_ORDERS);
        let counts = self.counts.entry(producer_key).or_default();
        counts.0 += u32::from(entry.is_large);
        counts.1 += u32::from(entry.is_repeat);
        if let Some(e) = dropped {
            uncount(counts, e);
        }
        if self.counts.len() > self.producers.windows.len() {
            for key in self.producers_gone() {
                self.counts.remove(&key);
            }
        }

        ComplianceVector {
            features: f.map(|v| v as f32),
            card_orders: u32::try_from(card_orders).unwrap_or(u32::MAX),
            has_card: card_key.is_some(),
        }
    }

    /// Producers with counts but no window (expired or evicted).
    fn producers_gone(&self) -> Vec<u64> {
        if self.counts.len() == self.producers.windows.len() {
            return Vec::new();
        }
        self.counts
            .keys()
            .filter(|k| !self.producers.windows.contains_key(k))
            .copied()
            .collect()
    }
}

fn uncount(counts: &mut (u32, u32), e: ProducerEntry) {
    counts.0 -= u32::from(e.is_large);
    counts.1 -= u32::from(e.is_repeat);
}

/// The amount in cents: a finite JSON number above 0 at `fields.amount_cents`, else 0.
fn amount_of(fields: &BTreeMap<String, Value>) -> f64 {
    match fields.get("amount_cents") {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The non-empty string at `fields.card.fingerprint`.
fn card_of(fields: &BTreeMap<String, Value>) -> Option<&str> {
    match fields.get("card")?.get("fingerprint")? {
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Parity with the Python definition (golden vectors written by
    //! `agents/training/train_compliance.py`), and the state rules stated in the module docs.

    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::clock::SimClock;
    use crate::models::host::{HostOptions, ModelHost};
    use crate::models::library::{LibrarySearch, OrtEnvironment};
    use crate::policy::{ModelRef, TensorSpec, TensorType};

    fn models_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join("agents/models")
    }

    #[derive(Debug, Deserialize)]
    struct Golden {
        feature_names: Vec<String>,
        tolerance: f64,
        events: Vec<EventSample>,
        points: Vec<Point>,
        capped: Capped,
    }

    #[derive(Debug, Deserialize)]
    struct Capped {
        max_cards: usize,
        max_producers: usize,
        points: Vec<Point>,
    }

    #[derive(Debug, Deserialize)]
    struct Point {
        index: usize,
        features: Vec<f64>,
        #[serde(default)]
        output: Option<f64>,
    }

    fn golden() -> Golden {
        let path = models_dir().join("testdata/compliance-parity.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    fn replay(events: &[EventSample], mut state: ComplianceFeatures) -> Vec<ComplianceVector> {
        events.iter().map(|e| state.observe(e)).collect()
    }

    fn assert_points(name: &str, got: &[ComplianceVector], points: &[Point], tol: f64) {
        assert_eq!(got.len(), points.len(), "{name}: a point per event");
        for p in points {
            let v = &got[p.index];
            for (j, (r, py)) in v.features.iter().zip(&p.features).enumerate() {
                assert!(
                    (f64::from(*r) - py).abs() <= tol,
                    "{name}: {} of event {}: rust {r}, python {py}",
                    FEATURE_NAMES[j],
                    p.index
                );
            }
        }
    }

    #[test]
    fn golden_file_matches_the_rust_constants() {
        let g = golden();
        assert_eq!(g.feature_names, FEATURE_NAMES);
        assert_eq!(g.tolerance, 1e-5);
    }

    #[test]
    fn compliance_features_match_python_golden_vectors() {
        let g = golden();
        assert!(g.events.len() >= 200, "golden events: {}", g.events.len());
        let got = replay(&g.events, ComplianceFeatures::new());
        assert_points("spec caps", &got, &g.points, g.tolerance);
        // The stream reaches every branch: repeats on a card, a card past its window, late
        // events, events without a card or an amount.
        let col = |n: &str| {
            FEATURE_NAMES
                .iter()
                .position(|x| *x == n)
                .expect("a feature")
        };
        assert!(got.iter().any(|v| v.features[col("card_orders")] >= 3.0));
        assert!(got.iter().any(|v| v.features[col("has_card")] == 0.0));
        assert!(got
            .iter()
            .any(|v| v.features[col("producer_repeat_share")] > 0.0));
        let capped = replay(
            &g.events,
            ComplianceFeatures::with_caps(g.capped.max_cards, g.capped.max_producers),
        );
        assert_points("small caps", &capped, &g.capped.points, g.tolerance);
        assert_ne!(got, capped, "the small caps evict something");
    }

    #[test]
    fn ort_outputs_match_python_onnxruntime() {
        let g = golden();
        let root = models_dir().join("../..");
        let env = match OrtEnvironment::init(&LibrarySearch::from_env().with_project_root(root)) {
            Ok(env) => env,
            Err(e) => panic!("ONNX Runtime is needed for this test: {e}"),
        };
        let spec = |name: &str, width: i64| TensorSpec {
            name: name.to_string(),
            elem_type: TensorType::Float32,
            shape: vec![-1, width],
        };
        let model = ModelRef {
            path: models_dir().join("compliance-fraud.onnx"),
            version: Some("1.0.0".into()),
            inputs: vec![spec("features", N_FEATURES as i64)],
            outputs: vec![spec("fraud", 1)],
            timeout: Duration::from_secs(5),
        };
        let clock = SimClock::new(Timestamp::from_millis(0));
        let host = ModelHost::load(env, &model, HostOptions::default(), Arc::new(clock))
            .unwrap_or_else(|e| panic!("loading the compliance model: {e}"));
        assert_eq!(host.metadata().output_range(), Some((0.0, 1.0)));
        assert_eq!(host.metadata().feature_names(), FEATURE_NAMES);
        // Rust features -> ort, against Python features -> Python onnxruntime.
        let got = replay(&g.events, ComplianceFeatures::new());
        let flat: Vec<f32> = got.iter().flat_map(|v| v.features).collect();
        let out = host.infer(&flat, got.len()).expect("inference");
        for (p, o) in g.points.iter().zip(&out) {
            let want = p.output.expect("every spec-caps point has an output");
            assert!(
                (f64::from(*o) - want).abs() <= g.tolerance,
                "fraud score of event {}: rust {o}, python {want}",
                p.index
            );
        }
    }

    fn event(ts_ms: i64, producer: &str, fields: Value) -> EventSample {
        let Value::Object(map) = fields else {
            panic!("test fields must be an object");
        };
        EventSample {
            schema_version: 1,
            topic: "orders".into(),
            producer: producer.into(),
            region: "eu-west-1".into(),
            key: String::new(),
            ts: Timestamp::from_millis(ts_ms),
            fields: map.into_iter().collect(),
        }
    }

    fn order(ts_s: i64, producer: &str, card: &str, cents: u64) -> EventSample {
        event(
            1_800_000_000_000 + ts_s * 1000,
            producer,
            json!({"amount_cents": cents, "card": {"fingerprint": card, "last4": "4242"}}),
        )
    }

    #[test]
    fn a_burst_on_one_card_counts_up_and_ages_out() {
        let mut f = ComplianceFeatures::new();
        let rows: Vec<[f32; N_FEATURES]> = [
            order(0, "shop", "fp_a", 250_000),
            order(30, "shop", "fp_a", 300_000),
            order(90, "shop", "fp_b", 1_000),
            order(100, "shop", "fp_a", 200_000),
            // 3,601 s after the third order on fp_a: the first two are out of the window,
            // the third too (3,601 > 3,600).
            order(3_701, "shop", "fp_a", 500),
        ]
        .iter()
        .map(|e| f.observe(e).features)
        .collect();
        let ln = |units: f64| units.ln_1p() as f32;
        let third = |n: f64| (n / 3.0) as f32;
        let want: [[f32; N_FEATURES]; 5] = [
            [ln(2500.0), 1.0, 1.0, 0.0, 0.0, 3600.0, 0.0, 0.0, 0.0],
            [ln(3000.0), 1.0, 1.0, 1.0, 1.0, 30.0, ln(2500.0), 1.0, 0.0],
            // fp_b is new; the producer's two earlier orders were large, one a repeat.
            [ln(10.0), 0.0, 1.0, 0.0, 0.0, 3600.0, 0.0, 1.0, 0.5],
            [
                ln(2000.0),
                1.0,
                1.0,
                2.0,
                2.0,
                70.0,
                ln(5500.0),
                third(2.0),
                third(1.0),
            ],
            [ln(5.0), 0.0, 1.0, 0.0, 0.0, 3600.0, 0.0, 0.0, 0.0],
        ];
        for (i, (got, want)) in rows.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "row {i}");
        }
        // Expired keys are gone: only the cards and producer of the last event remain.
        assert_eq!((f.cards(), f.producers()), (1, 1));
    }

    #[test]
    fn late_events_count_at_the_watermark_and_bad_values_read_as_absent() {
        let mut f = ComplianceFeatures::new();
        f.observe(&order(100, "shop", "fp_a", 1_000));
        // Stamped 50 s earlier than the last: counted at the watermark (gap 0).
        let late = f.observe(&order(50, "shop", "fp_a", 1_000));
        assert_eq!(late.get("card_gap_s"), Some(0.0));
        assert_eq!(late.card_orders, 1);
        let cases = [
            (
                "negative amount",
                json!({"amount_cents": -5, "card": {"fingerprint": "x"}}),
            ),
            (
                "string amount",
                json!({"amount_cents": "120000", "card": {"fingerprint": "x"}}),
            ),
            (
                "empty fingerprint",
                json!({"amount_cents": 0, "card": {"fingerprint": ""}}),
            ),
            ("card not an object", json!({"card": "fp_a"})),
            ("no fields", json!({})),
        ];
        for (name, fields) in cases {
            let v = f.observe(&event(1_800_000_200_000, "other", fields));
            assert_eq!(v.get("log_amount"), Some(0.0), "case `{name}`");
            assert_eq!(v.get("is_large"), Some(0.0), "case `{name}`");
        }
        let v = f.observe(&event(1_800_000_200_000, "other", json!({})));
        assert_eq!((v.has_card, v.card_orders), (false, 0));
        assert_eq!(v.get("card_gap_s"), Some(3600.0));
    }

    #[test]
    fn caps_evict_the_key_with_the_oldest_newest_entry() {
        let mut f = ComplianceFeatures::with_caps(2, 1);
        f.observe(&order(0, "p1", "fp_a", 250_000));
        f.observe(&order(10, "p2", "fp_b", 1_000));
        // A third card evicts fp_a (oldest); p2 evicts p1 already (one producer kept).
        f.observe(&order(20, "p2", "fp_c", 1_000));
        assert_eq!((f.cards(), f.producers()), (2, 1));
        let again = f.observe(&order(30, "p1", "fp_a", 1_000));
        assert_eq!(again.card_orders, 0, "fp_a was evicted");
        // Kept, p1's large order would make this 1.
        assert_eq!(
            again.get("producer_large_share"),
            Some(0.0),
            "p1 was evicted"
        );
        let b = f.observe(&order(40, "p1", "fp_c", 1_000));
        assert_eq!(b.card_orders, 1, "fp_c was kept");
        // Per-card cap: 64 orders kept.
        let mut f = ComplianceFeatures::new();
        for i in 0..70 {
            f.observe(&order(i, "p", "fp_x", 1_000));
        }
        let v = f.observe(&order(70, "p", "fp_x", 1_000));
        assert_eq!(v.card_orders, 64);
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        // From the FNV reference test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }
}
