"""Feature definition of the compliance fraud model.

This module is the Python implementation of agents/models/compliance.features.json;
`feature_spec()` produces that file (the trainer writes it, and embeds the same text in
the ONNX model's metadata_props). The Rust compliance agent implements the same
definition (runtime/src/models/compliance_features.rs); agents/models/testdata/
compliance-parity.json holds golden vectors.

One row per event sample, computed from the event and what came before it, in arrival
order. Two kinds of rolling state, both keyed by a 64-bit FNV-1a hash (so no card
fingerprint is ever stored, and eviction order is defined):

- per card (the string at `fields.card.fingerprint`): its earlier orders within the last
  CARD_WINDOW_S seconds, at most MAX_CARD_ORDERS, each with its amount;
- per producer: its earlier orders within the last PRODUCER_WINDOW_S seconds, at most
  MAX_PRODUCER_ORDERS, each with whether it was large and whether its card had an earlier
  order in the window (a repeat).

Time is the watermark: `now` is the largest `ts` seen so far, this event's included, so a
late event is treated as arriving at `now`. An entry stamped t is in a window of W seconds
when now - t <= W; older entries are dropped. At most MAX_CARDS cards and MAX_PRODUCERS
producers are kept: keys whose newest entry left the window are dropped first, then the
key with the oldest newest entry (ties: the smaller hash).

Values are read only to compute the numbers below and never leave this module: the
feature names and field paths are what a rationale may show.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

SPEC_VERSION = 1
MODEL_NAME = "compliance-fraud"
INPUT_NAME = "features"
OUTPUT_NAME = "fraud"
OUTPUT_RANGE = (0.0, 1.0)

AMOUNT_PATH = "fields.amount_cents"
CARD_PATH = "fields.card.fingerprint"
CENTS_PER_UNIT = 100.0
# A large order: 1,000 units of currency or more.
LARGE_ORDER_CENTS = 100_000
CARD_WINDOW_S = 3600
PRODUCER_WINDOW_S = 600
MAX_CARD_ORDERS = 64
MAX_PRODUCER_ORDERS = 4096
MAX_CARDS = 100_000
MAX_PRODUCERS = 10_000

CARD_WINDOW_MS = CARD_WINDOW_S * 1000
PRODUCER_WINDOW_MS = PRODUCER_WINDOW_S * 1000

FEATURES: list[dict] = [
    {"name": "log_amount", "definition": "ln(1 + a / 100), a = the amount in cents at fields.amount_cents "
                                         "(a JSON number, finite and >= 0; otherwise 0)"},
    {"name": "is_large", "definition": f"1 when a >= {LARGE_ORDER_CENTS}, else 0"},
    {"name": "has_card", "definition": "1 when fields.card.fingerprint is a non-empty string, else 0"},
    {"name": "card_orders", "definition": f"the card's earlier orders in its window (at most {MAX_CARD_ORDERS}); "
                                          "0 without a card"},
    {"name": "card_large", "definition": "how many of those were large"},
    {"name": "card_gap_s", "definition": f"(now - t of the card's newest earlier order) / 1000 s, clipped to "
                                         f"[0, {CARD_WINDOW_S}]; {CARD_WINDOW_S} when it has none in the window "
                                         "or there is no card"},
    {"name": "card_log_amount", "definition": "ln(1 + (sum of those orders' a) / 100)"},
    {"name": "producer_large_share", "definition": f"large orders among the producer's n earlier orders in its "
                                                   f"window (at most {MAX_PRODUCER_ORDERS}) / max(n, 1)"},
    {"name": "producer_repeat_share", "definition": "repeats among them (card_orders >= 1 when they "
                                                    "came) / max(n, 1)"},
]
FEATURE_NAMES: list[str] = [f["name"] for f in FEATURES]
N_FEATURES = len(FEATURES)
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def feature_spec() -> dict:
    """The spec as written to agents/models/compliance.features.json."""
    return {
        "spec_version": SPEC_VERSION,
        "model_name": MODEL_NAME,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", N_FEATURES]},
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", 1],
            "range": list(OUTPUT_RANGE),
            "meaning": "probability that the event is an order of a fraud burst (one card, one "
                       "producer, several large orders in a short span); outside range (or NaN/inf) "
                       "is a model fault: the deterministic detectors decide alone.",
        },
        "label": "y = 1 for an event the simulator labelled `fraud` (truth.jsonl), else 0; "
                 "personal data and residency breaches are the detectors' and count as 0 here",
        "fields": {"amount": AMOUNT_PATH, "card": CARD_PATH},
        "state": {
            "order": "events are processed in arrival order; each row is computed from the state "
                     "before the event, then the event is added",
            "now": "now = the largest ts (unix ms) seen so far, this event's included; the event "
                   "is stored at now",
            "keys": "cards and producers are keyed by the 64-bit FNV-1a hash of their UTF-8 bytes "
                    "(offset 0xcbf29ce484222325, prime 0x100000001b3)",
            "windows": f"an entry stamped t is in a window of W s when now - t <= W * 1000; card "
                       f"window {CARD_WINDOW_S} s, producer window {PRODUCER_WINDOW_S} s",
            "caps": f"per card the newest {MAX_CARD_ORDERS} orders, per producer the newest "
                    f"{MAX_PRODUCER_ORDERS}; at most {MAX_CARDS} cards and {MAX_PRODUCERS} producers: "
                    "keys whose newest entry left the window go first, then the key with the "
                    "oldest newest entry (ties: the smaller hash)",
            "repeat": "a producer entry is a repeat when the event's card_orders was >= 1",
            "volume": "no feature counts a producer's events or their rate: those follow a "
                      "deployment's sampling rate and number of producers, not behaviour (and "
                      "drifted on every scenario not trained on); producer features are shares",
            "arithmetic": "compute in float64 and cast each feature to float32 at the end",
        },
        "constants": {
            "large_order_cents": LARGE_ORDER_CENTS,
            "card_window_s": CARD_WINDOW_S,
            "producer_window_s": PRODUCER_WINDOW_S,
            "max_card_orders": MAX_CARD_ORDERS,
            "max_producer_orders": MAX_PRODUCER_ORDERS,
            "max_cards": MAX_CARDS,
            "max_producers": MAX_PRODUCERS,
        },
        "features": FEATURES,
        "feature_names": FEATURE_NAMES,
        "reference_stats": {
            "where": "ONNX metadata_props `reference_stats`: per feature mean, std, decile edges "
                     "and decile proportions over the training rows (for PSI drift checks)",
        },
    }


def spec_text() -> str:
    return json.dumps(feature_spec(), indent=2) + "\n"


def parse_ts_ms(text: str) -> int:
    """RFC 3339 (as the telemetry writes it, e.g. 2026-11-27T11:00:05.000Z) to unix ms."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1000))


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a(text: str) -> int:
    h = FNV_OFFSET
    for b in text.encode("utf-8"):
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def amount_of(fields: dict) -> float:
    """The amount in cents: a finite JSON number >= 0 at fields.amount_cents, else 0."""
    v = fields.get("amount_cents")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0.0
    v = float(v)
    return v if math.isfinite(v) and v > 0.0 else 0.0


def card_of(fields: dict) -> str | None:
    card = fields.get("card")
    if not isinstance(card, dict):
        return None
    fp = card.get("fingerprint")
    return fp if isinstance(fp, str) and fp else None


@dataclass
class _Keyed:
    """Entries of one key, oldest first."""
    entries: deque = field(default_factory=deque)
    newest: int = 0


class ComplianceFeatures:
    """The rolling state: `observe(ts_ms, producer, fields)` returns the event's row (float32)
    and then adds the event. The same definition as the Rust ComplianceFeatures."""

    def __init__(self, max_cards: int = MAX_CARDS, max_producers: int = MAX_PRODUCERS) -> None:
        self.max_cards = max_cards
        self.max_producers = max_producers
        self.now: int | None = None
        self.cards: dict[int, _Keyed] = {}
        self.producers: dict[int, _Keyed] = {}
        # per producer: running counts of large and repeat entries
        self.prod_counts: dict[int, list[int]] = {}

    def observe(self, ts_ms: int, producer: str, fields: dict) -> np.ndarray:
        now = ts_ms if self.now is None else max(self.now, ts_ms)
        self.now = now
        a = amount_of(fields)
        large = a >= LARGE_ORDER_CENTS
        fp = card_of(fields)
        f = [0.0] * N_FEATURES
        f[COL["log_amount"]] = math.log1p(a / CENTS_PER_UNIT)
        f[COL["is_large"]] = 1.0 if large else 0.0
        f[COL["has_card"]] = 1.0 if fp is not None else 0.0

        card_n = 0
        card_gap = float(CARD_WINDOW_S)
        card_key = fnv1a(fp) if fp is not None else None
        if card_key is not None:
            c = self.cards.get(card_key)
            if c is not None:
                while c.entries and now - c.entries[0][0] > CARD_WINDOW_MS:
                    c.entries.popleft()
                card_n = len(c.entries)
                if card_n:
                    card_gap = min(max((now - c.entries[-1][0]) / 1000.0, 0.0), float(CARD_WINDOW_S))
                    total = 0.0
                    n_large = 0
                    for _, amt in c.entries:
                        total += amt
                        n_large += amt >= LARGE_ORDER_CENTS
                    f[COL["card_large"]] = float(n_large)
                    f[COL["card_log_amount"]] = math.log1p(total / CENTS_PER_UNIT)
        f[COL["card_orders"]] = float(card_n)
        f[COL["card_gap_s"]] = card_gap

        pkey = fnv1a(producer)
        p = self.producers.get(pkey)
        counts = self.prod_counts.setdefault(pkey, [0, 0])
        if p is not None:
            while p.entries and now - p.entries[0][0] > PRODUCER_WINDOW_MS:
                _, lg, rp = p.entries.popleft()
                counts[0] -= lg
                counts[1] -= rp
            n = len(p.entries)
            f[COL["producer_large_share"]] = counts[0] / max(n, 1)
            f[COL["producer_repeat_share"]] = counts[1] / max(n, 1)

        # Add the event.
        if card_key is not None:
            c = self.cards.setdefault(card_key, _Keyed())
            c.entries.append((now, a))
            c.newest = now
            if len(c.entries) > MAX_CARD_ORDERS:
                c.entries.popleft()
            if len(self.cards) > self.max_cards:
                self._shrink(self.cards, now, CARD_WINDOW_MS, self.max_cards, None)
        p = self.producers.setdefault(pkey, _Keyed())
        p.entries.append((now, int(large), int(card_n >= 1)))
        p.newest = now
        counts[0] += int(large)
        counts[1] += int(card_n >= 1)
        if len(p.entries) > MAX_PRODUCER_ORDERS:
            _, lg, rp = p.entries.popleft()
            counts[0] -= lg
            counts[1] -= rp
        if len(self.producers) > self.max_producers:
            self._shrink(self.producers, now, PRODUCER_WINDOW_MS, self.max_producers, self.prod_counts)
        return np.array(f, dtype=np.float64).astype(np.float32)

    @staticmethod
    def _shrink(keyed: dict, now: int, window_ms: int, cap: int, counts: dict | None) -> None:
        for k in [k for k, v in keyed.items() if now - v.newest > window_ms]:
            del keyed[k]
            if counts is not None:
                counts.pop(k, None)
        while len(keyed) > cap:
            k = min(keyed, key=lambda k: (keyed[k].newest, k))
            del keyed[k]
            if counts is not None:
                counts.pop(k, None)


# ------------------------------------------------------------------ recordings

@dataclass
class Rows:
    x: np.ndarray          # [n, N_FEATURES] float32
    y: np.ndarray          # [n] int: fraud or not
    truth: list[str]       # the simulator's label per row
    producer: list[str]
    card: list[str | None]  # the fingerprint (for burst bookkeeping in evaluation only)
    t_ms: np.ndarray


def read_events(telemetry_path: str) -> list[dict]:
    """The event samples of a recording's telemetry.jsonl, in file order, each with `ts_ms`;
    other telemetry and lines that are not valid JSON (poison faults) are skipped, as the
    runtime dead-letters them."""
    out = []
    with open(telemetry_path, "rb") as f:
        for line in f:
            if b'"type":"event"' not in line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if not isinstance(e, dict) or e.get("type") != "event" or not isinstance(e.get("fields"), dict):
                continue
            try:
                e["ts_ms"] = parse_ts_ms(e["ts"])
            except (KeyError, ValueError, TypeError, AttributeError):
                continue
            out.append(e)
    return out


def read_truth(truth_path: str) -> dict[tuple[str, str], str]:
    """(producer, key) -> the simulator's label (`clean`, `decoy`, `pii`, `residency`,
    `fraud`)."""
    out = {}
    with open(truth_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[(r["producer"], r["key"])] = r["truth"]
    return out


def rows_of_recording(telemetry_path: str, truth_path: str) -> Rows:
    events = read_events(telemetry_path)
    truth = read_truth(truth_path)
    state = ComplianceFeatures()
    xs = np.empty((len(events), N_FEATURES), dtype=np.float32)
    labels, producers, cards = [], [], []
    t = np.empty(len(events), dtype=np.int64)
    for i, e in enumerate(events):
        xs[i] = state.observe(e["ts_ms"], e["producer"], e["fields"])
        labels.append(truth.get((e["producer"], e.get("key", "")), "clean"))
        producers.append(e["producer"])
        cards.append(card_of(e["fields"]))
        t[i] = e["ts_ms"]
    y = np.array([lbl == "fraud" for lbl in labels], dtype=np.int64)
    return Rows(x=xs, y=y, truth=labels, producer=producers, card=cards, t_ms=t)
