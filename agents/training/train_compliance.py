#!/usr/bin/env python3
"""Train, evaluate and export the compliance fraud model (Conclave issue #6).

    .venv/bin/python agents/training/train_compliance.py      (or agents/training/train_all.sh)

Needs the `conclave` binary (`cargo build`; CONCLAVE_BIN or --conclave to point elsewhere):

1. records the `none` run of every compliance scenario with
   `conclave simulate SCENARIO --compare none --record DIR` under a policy with every agent
   off (the `none` run sends every event: nothing is quarantined); recordings are cached
   under target/compliance-training/ by scenario digest (--fresh re-records);
2. builds the features of conclave_training.compliance_features for every event sample, in
   arrival order, and the label: the simulator's ground truth says `fraud`;
3. fits a HistGradientBoostingClassifier on the training scenarios (compliance-train-1..3)
   and evaluates it on the held-out ones (compliance-heldout: the same generator with
   another seed; compliance-fraud: the fixed marketplace of the comparison), per event, per
   fraud burst and per producer, the way the agent acts (a producer is flagged at its first
   event scoring at or above the threshold whose card has at least MIN_ORDERS orders in
   the window, this one included); next to it, per producer, the regex-only baseline
   (simulations/src/events/naive.rs) and ideal detectors (every personal-data and
   residency event found) on the same events;
4. writes

    agents/models/compliance.features.json         the feature spec (Rust implements it)
    agents/models/compliance-fraud.onnx            the model, spec + stats in metadata_props
    agents/models/compliance-fraud.md              the model card
    agents/models/compliance-fraud.metrics.json    held-out metrics, machine-readable
    agents/models/testdata/compliance-parity.json  golden vectors for the Rust parity tests
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import sklearn  # noqa: E402
import skl2onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import precision_score, recall_score, roc_auc_score  # noqa: E402

from conclave_training.export import ort_session, patch_skl2onnx_missing_flag, reference_stats, rfc3339, sha256_file, sort_opsets  # noqa: E402
from conclave_training import compliance_features as cf  # noqa: E402
from conclave_training.traces import ROOT  # noqa: E402

MODEL_VERSION = "1.0.0"
MODEL_VERSION_INT = 1
MODEL_SEED = 13
GB_PARAMS = dict(
    max_iter=100,
    learning_rate=0.1,
    max_depth=4,
    min_samples_leaf=40,
    l2_regularization=1.0,
    early_stopping=False,
    random_state=MODEL_SEED,
)
# The score may only rise with the burst signals and only fall with the time since the
# card's last order; the rest are unconstrained. Besides being what an analyst expects,
# the constraints keep the trees from learning holes where the training data is thin
# (cards with many orders).
RISING = ("log_amount", "is_large", "card_orders", "card_large", "card_log_amount",
          "producer_repeat_share")
FALLING = ("card_gap_s",)
MONOTONIC = [1 if n in RISING else -1 if n in FALLING else 0 for n in cf.FEATURE_NAMES]
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PARITY_TOL = 1e-5
THRESHOLD = 0.5  # the policy's fraud.threshold in policies/compliance-learned.yaml
MIN_ORDERS = 2  # the policy's fraud.min_orders
THRESHOLDS = (0.3, THRESHOLD, 0.8)

SCENARIOS_DIR = os.path.join(ROOT, "simulations", "scenarios")
TRAIN_SCENARIOS: tuple[str, ...] = ("compliance-train-1", "compliance-train-2", "compliance-train-3")
HELDOUT_SCENARIOS: tuple[str, ...] = ("compliance-heldout", "compliance-fraud")
RECORD_DIR = os.path.join(ROOT, "target", "compliance-training")

MODELS_DIR = os.path.join(ROOT, "agents", "models")
SPEC_PATH = os.path.join(MODELS_DIR, "compliance.features.json")
ONNX_PATH = os.path.join(MODELS_DIR, "compliance-fraud.onnx")
CARD_PATH = os.path.join(MODELS_DIR, "compliance-fraud.md")
METRICS_PATH = os.path.join(MODELS_DIR, "compliance-fraud.metrics.json")
GOLDEN_PATH = os.path.join(MODELS_DIR, "testdata", "compliance-parity.json")
RETRAIN_CMD = "agents/training/train_all.sh"
MAX_MODEL_BYTES = 5 * 1024 * 1024

QUIET_POLICY = """apiVersion: conclave/v1
kind: Policy
metadata: {name: compliance-training-recorder}
spec:
  agents:
    scaler: {mode: off}
    breaker: {mode: off}
    router: {mode: off}
    compliance: {mode: off}
  arbiter:
    window: 15s
"""


def log(msg: str) -> None:
    print(f"[train_compliance] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- recordings

def conclave_binary(arg: str | None) -> str:
    path = arg or os.environ.get("CONCLAVE_BIN") or os.path.join(ROOT, "target", "debug", "conclave")
    if not os.path.isfile(path):
        raise SystemExit(f"train_compliance: the conclave binary `{path}` does not exist; build it "
                         "with `cargo build` (or set CONCLAVE_BIN / pass --conclave)")
    return path


def scenario_path(name: str) -> str:
    return os.path.join(SCENARIOS_DIR, f"{name}.yaml")


def recording(name: str) -> str:
    """The folder of scenario `name`'s `none` recording."""
    return os.path.join(RECORD_DIR, name, "record", "none")


def record(binary: str, name: str, fresh: bool) -> None:
    """Records scenario `name` unless a recording of the same scenario bytes exists."""
    os.makedirs(RECORD_DIR, exist_ok=True)
    policy = os.path.join(RECORD_DIR, "quiet-policy.yaml")
    with open(policy, "w", encoding="utf-8") as f:
        f.write(QUIET_POLICY)
    digest = sha256_file(scenario_path(name))
    base = os.path.join(RECORD_DIR, name)
    stamp = os.path.join(base, "scenario.sha256")
    if not fresh and os.path.isfile(stamp) and open(stamp).read().strip() == digest \
            and os.path.isfile(os.path.join(recording(name), "truth.jsonl")):
        log(f"{name}: recording is current")
        return
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    t0 = time.time()
    subprocess.run([binary, "simulate", scenario_path(name), "--policy", policy, "--compare", "none",
                    "--record", os.path.join(base, "record"), "--out", os.path.join(base, "report"),
                    "--quiet"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    log(f"{name}: recorded in {time.time() - t0:.1f} s")


def training_digest(names: tuple[str, ...] = TRAIN_SCENARIOS) -> str:
    """sha256 of the training recordings' telemetry.jsonl then truth.jsonl bytes, scenario by
    scenario, in order."""
    h = hashlib.sha256()
    for name in names:
        for file in ("telemetry.jsonl", "truth.jsonl"):
            with open(os.path.join(recording(name), file), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def rows_of(name: str) -> cf.Rows:
    return cf.rows_of_recording(os.path.join(recording(name), "telemetry.jsonl"),
                                os.path.join(recording(name), "truth.jsonl"))


# ---------------------------------------------------------------- the regex-only baseline

# simulations/src/events/naive.rs, the same three unanchored patterns.
_CARD_LIKE = re.compile(r"\d[\d -]{11,17}\d", re.ASCII)
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}", re.ASCII)


def _text_flags(s: str) -> bool:
    return "@" in s or _CARD_LIKE.search(s) is not None or _SSN_SHAPE.search(s) is not None


def _value_flags(v) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, str):
        return _text_flags(v)
    if isinstance(v, (int, float)):
        # serde_json writes integers in decimal; the simulator's events hold no floats
        # whose Python repr differs from serde_json's.
        return _text_flags(str(v))
    if isinstance(v, list):
        return any(_value_flags(x) for x in v)
    if isinstance(v, dict):
        return any(_text_flags(k) or _value_flags(x) for k, x in v.items())
    return False


def regex_only_flags(fields: dict) -> bool:
    """Whether the regex-only baseline (naive.rs) flags an event with these fields."""
    return any(_text_flags(k) or _value_flags(v) for k, v in fields.items())


# ---------------------------------------------------------------- evaluation

def event_metrics(y: np.ndarray, p: np.ndarray, card_orders: np.ndarray) -> dict:
    out = {"events": int(len(y)), "fraud_events": int(y.sum()),
           "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None}
    for th in THRESHOLDS:
        alarm = p >= th
        gated = alarm & (card_orders + 1 >= MIN_ORDERS)
        out[f"at_{th}"] = {
            "precision": float(precision_score(y, alarm, zero_division=0)),
            "recall": float(recall_score(y, alarm, zero_division=0)),
            "alarms": int(alarm.sum()),
            "false_alarms": int((alarm & (y == 0)).sum()),
            f"with_min_orders_{MIN_ORDERS}": {
                "precision": float(precision_score(y, gated, zero_division=0)),
                "recall": float(recall_score(y, gated, zero_division=0)),
                "alarms": int(gated.sum()),
                "false_alarms": int((gated & (y == 0)).sum()),
            },
        }
    return out


def producer_metrics(rows: cf.Rows, p: np.ndarray, regex: np.ndarray, th: float) -> dict:
    """Per producer, as the agent acts: a producer is flagged at its first event with a score
    >= th and a card with >= MIN_ORDERS orders in the window (this one included). Also the
    regex-only baseline and ideal detectors per producer on the same events."""
    card_orders = rows.x[:, cf.COL["card_orders"]]
    producers = sorted(set(rows.producer))
    fraud, pii_or_res, any_violation = set(), set(), set()
    flagged: dict[str, int] = {}
    regex_flagged = set()
    for i, (prod, truth) in enumerate(zip(rows.producer, rows.truth)):
        if truth == "fraud":
            fraud.add(prod)
        if truth in ("pii", "residency"):
            pii_or_res.add(prod)
        if truth in ("fraud", "pii", "residency"):
            any_violation.add(prod)
        if prod not in flagged and p[i] >= th and card_orders[i] + 1 >= MIN_ORDERS:
            flagged[prod] = i
        if regex[i]:
            regex_flagged.add(prod)

    def score(quarantined: set, violators: set) -> dict:
        caught = len(quarantined & violators)
        return {"violators": len(violators), "quarantined": len(quarantined), "caught": caught,
                "false_positives": len(quarantined - violators),
                "recall": caught / len(violators) if violators else 1.0,
                "precision": caught / len(quarantined) if quarantined else 1.0}

    model = set(flagged)
    velocity = {prod for prod, n in zip(rows.producer, card_orders) if n + 1 >= MIN_ORDERS}
    # How many of its fraud orders a fraud producer sent before the flag (the flag's own
    # event included when it is fraud).
    before = []
    for prod in sorted(fraud & model):
        before.append(sum(1 for i in range(flagged[prod] + 1)
                          if rows.producer[i] == prod and rows.truth[i] == "fraud"))
    return {
        "producers": len(producers),
        "fraud_only_model": score(model, fraud),
        "fraud_only_velocity_rule": score(velocity, fraud),
        "regex_only": score(regex_flagged, any_violation),
        "ideal_detectors": score(pii_or_res, any_violation),
        "ideal_detectors_plus_model": score(pii_or_res | model, any_violation),
        "fraud_orders_until_flag": {"median": float(np.median(before)) if before else None,
                                    "max": int(max(before)) if before else None},
    }


def burst_metrics(rows: cf.Rows, p: np.ndarray, th: float) -> dict:
    """Fraud bursts (fraud events sharing producer and card): how many had at least
    MIN_ORDERS orders, how many the model flagged, and at which order."""
    card_orders = rows.x[:, cf.COL["card_orders"]]
    bursts: dict[tuple, list[int]] = {}
    for i, truth in enumerate(rows.truth):
        if truth == "fraud":
            bursts.setdefault((rows.producer[i], rows.card[i]), []).append(i)
    sizes = [len(v) for v in bursts.values()]
    flagged_at = []
    for idx in bursts.values():
        hit = [k for k, i in enumerate(idx) if p[i] >= th and card_orders[i] + 1 >= MIN_ORDERS]
        if hit:
            flagged_at.append(hit[0] + 1)
    return {"bursts": len(bursts),
            "with_min_orders": int(sum(s >= MIN_ORDERS for s in sizes)),
            "orders_per_burst_median": float(np.median(sizes)) if sizes else None,
            "flagged": len(flagged_at),
            "flagged_at_order_median": float(np.median(flagged_at)) if flagged_at else None}


def evaluate(model, names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        rows = rows_of(name)
        p = model.predict_proba(rows.x)[:, 1]
        events = cf.read_events(os.path.join(recording(name), "telemetry.jsonl"))
        regex = np.array([regex_only_flags(e["fields"]) for e in events], dtype=bool)
        card_orders = rows.x[:, cf.COL["card_orders"]]
        out[name] = {
            "events": event_metrics(rows.y, p, card_orders),
            "bursts": {str(th): burst_metrics(rows, p, th) for th in THRESHOLDS},
            "producers": {str(th): producer_metrics(rows, p, regex, th) for th in THRESHOLDS},
            "truth_counts": {k: int(sum(t == k for t in rows.truth))
                             for k in ("clean", "decoy", "pii", "residency", "fraud")},
            "x": rows.x,
        }
    return out


# ---------------------------------------------------------------- export

def export_onnx(model, stats: list[dict], digest: str, train_info: list[dict]) -> bytes:
    patch_skl2onnx_missing_flag()
    onx = to_onnx(model, initial_types=[(cf.INPUT_NAME, FloatTensorType([None, cf.N_FEATURES]))],
                  options={id(model): {"zipmap": False}}, target_opset=TARGET_OPSET)
    # Keep one output: column 1 of the class probabilities (the positive class), [N, 1].
    probs = next(o.name for o in onx.graph.output if o.name != "label")
    starts = numpy_helper.from_array(np.array([1], dtype=np.int64), "fraud_col_start")
    ends = numpy_helper.from_array(np.array([2], dtype=np.int64), "fraud_col_end")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "fraud_col_axis")
    onx.graph.initializer.extend([starts, ends, axes])
    onx.graph.node.append(helper.make_node(
        "Slice", [probs, "fraud_col_start", "fraud_col_end", "fraud_col_axis"], [cf.OUTPUT_NAME],
        name="positive_class"))
    del onx.graph.output[:]
    onx.graph.output.append(helper.make_tensor_value_info(cf.OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    sort_opsets(onx)
    onx.model_version = MODEL_VERSION_INT
    onx.producer_name = "conclave-training"
    onx.producer_version = MODEL_VERSION
    onx.doc_string = ("Conclave compliance: probability that an order event belongs to a fraud burst "
                      "(one card, one producer, several large orders); see metadata 'feature_spec'.")
    onx.graph.name = "compliance_fraud"
    props = {
        "name": cf.MODEL_NAME,
        "version": MODEL_VERSION,
        "training_data_sha256": digest,
        "training_scenarios": json.dumps(list(TRAIN_SCENARIOS)),
        "heldout_scenarios": json.dumps(list(HELDOUT_SCENARIOS)),
        "training_samples": json.dumps(train_info, separators=(",", ":")),
        "feature_spec": cf.spec_text(),
        "feature_names": json.dumps(cf.FEATURE_NAMES),
        "reference_stats": json.dumps(stats, separators=(",", ":")),
        "output_range": json.dumps(list(cf.OUTPUT_RANGE)),
        "threshold": str(THRESHOLD),
        "min_orders": str(MIN_ORDERS),
        "trainer": f"sklearn {sklearn.__version__} HistGradientBoostingClassifier (monotonic); "
                   f"skl2onnx {skl2onnx.__version__}",
    }
    helper.set_model_props(onx, props)
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def ort_predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return sess.run([cf.OUTPUT_NAME], {cf.INPUT_NAME: x.astype(np.float32)})[0]


# ---------------------------------------------------------------- golden vectors

GOLDEN_START_MS = 1_800_000_000_000 + 3_250  # not on a second boundary
GOLDEN_CAPS = {"max_cards": 5, "max_producers": 3}


def golden_events() -> list[dict]:
    """A scripted stream for the parity tests (about 3 h, 260 events): five producers
    sending ordinary orders on new cards; a fast burst (5 large orders on one card within
    2 min) and a slow one (4 over 45 min); a card that comes back after more than an hour;
    a card shared by two producers; a 15-minute silence; late events (stamped before the
    newest); and events without a card, with a string, float, negative or boolean amount,
    or no amount."""
    rng = np.random.default_rng(60607)
    producers = ["shop-a", "shop-b", "shop-c", "partner", "pos"]
    out: list[dict] = []
    seq = [0]

    def emit(t_ms: int, producer: str, fields: dict) -> None:
        seq[0] += 1
        out.append({"schema_version": 1, "topic": "orders", "producer": producer, "region": "eu-west-1",
                    "key": f"ord_{seq[0]:04d}", "ts": rfc3339(t_ms), "fields": fields})

    def order(cents, card: str | None) -> dict:
        f = {"amount_cents": cents, "currency": "EUR", "status": "paid"}
        if card is not None:
            f["card"] = {"fingerprint": card, "last4": "4242"}
        return f

    t = GOLDEN_START_MS
    n = 0
    scripted = {
        20: [(0, "shop-a", 250_000, "fp_fast")],
        21: [(20_000, "shop-a", 310_000, "fp_fast")],
        22: [(25_000, "shop-a", 180_000, "fp_fast")],
        24: [(10_000, "shop-a", 420_000, "fp_fast")],
        25: [(30_000, "shop-a", 150_000, "fp_fast")],
        40: [(0, "shop-b", 200_000, "fp_slow"), (1_000, "shop-c", 4_000, "fp_return")],
        70: [(0, "shop-b", 220_000, "fp_slow")],
        100: [(0, "shop-b", 210_000, "fp_slow"), (0, "partner", 9_000, "fp_shared")],
        101: [(0, "pos", 9_500, "fp_shared")],
        130: [(0, "shop-b", 500_000, "fp_slow")],
        230: [(0, "shop-c", 4_000, "fp_return")],
    }
    while n < 240:
        n += 1
        t += int(rng.integers(15_000, 60_000))
        if n == 150:
            t += 15 * 60_000  # a silence longer than the producer window
        for offset, producer, cents, card in scripted.get(n, []):
            emit(t + offset, producer, order(cents, card))
        producer = producers[int(rng.integers(0, len(producers)))]
        cents = int(rng.integers(500, 25_000)) if rng.random() > 0.1 else int(rng.integers(150_000, 900_000))
        card = f"fp_{int(rng.integers(0, 1 << 40)):010x}"
        kind = n % 23
        if kind == 3:
            emit(t - 40_000, producer, order(cents, card))  # late: stamped before the newest
        elif kind == 7:
            emit(t, producer, order(cents, None))
        elif kind == 11:
            emit(t, producer, order(str(cents), card))
        elif kind == 13:
            emit(t, producer, order(cents + 0.5, card))
        elif kind == 17:
            emit(t, producer, order(-cents, card))
        elif kind == 19:
            emit(t, producer, order(True, card))
        elif kind == 21:
            emit(t, producer, {"note": "no amount", "card": {"fingerprint": card}})
        else:
            emit(t, producer, order(cents, card))
    return out


def golden_points(events: list[dict], caps: dict | None = None) -> list[dict]:
    state = cf.ComplianceFeatures(**(caps or {}))
    return [{"index": i, "features": [float(v) for v in state.observe(cf.parse_ts_ms(e["ts"]),
                                                                      e["producer"], e["fields"])]}
            for i, e in enumerate(events)]


def write_golden(sess: ort.InferenceSession, model_sha: str) -> dict:
    events = golden_events()
    points = golden_points(events)
    y = ort_predict(sess, np.array([p["features"] for p in points], dtype=np.float32))
    for p, v in zip(points, y[:, 0]):
        p["output"] = float(v)
    golden = {
        "description": "Golden vectors for the Rust compliance parity tests: feed `events` (event "
                       "samples, in order) to one ComplianceFeatures; point i is the row of event i "
                       "and the ONNX output for it. `capped` repeats the stream with small caps "
                       "(eviction). Features are float32, computed in float64. Compare with abs "
                       "tolerance 1e-5.",
        "model": os.path.basename(ONNX_PATH),
        "model_version": MODEL_VERSION,
        "model_sha256": model_sha,
        "spec_version": cf.SPEC_VERSION,
        "feature_names": cf.FEATURE_NAMES,
        "input_name": cf.INPUT_NAME,
        "output_name": cf.OUTPUT_NAME,
        "tolerance": PARITY_TOL,
        "events": events,
        "points": points,
        "capped": dict(GOLDEN_CAPS, points=golden_points(events, GOLDEN_CAPS)),
    }
    os.makedirs(os.path.dirname(GOLDEN_PATH), exist_ok=True)
    with open(GOLDEN_PATH, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
        f.write("\n")
    return golden


# ---------------------------------------------------------------- card

def fmt(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def same_at_every_threshold(ev: dict) -> str:
    """A sentence for the card when the per-event results do not depend on the threshold."""
    for r in ev.values():
        at = [{k: v for k, v in r["events"][f"at_{th}"].items()} for th in THRESHOLDS]
        if any(a != at[0] for a in at[1:]):
            return ""
    return (f"The thresholds {', '.join(str(t) for t in THRESHOLDS)} give the same alarms on both scenarios: "
            f"no event scores in [{THRESHOLDS[0]}, {THRESHOLDS[-1]}).\n\n")


def write_card(ev: dict, size: int, model_sha: str, digest: str, train_info: list[dict],
               parity: float, opsets: str, train_s: float) -> None:
    feats = "\n".join(f"| {j} | `{f['name']}` | {f['definition']} |" for j, f in enumerate(cf.FEATURES))
    samples = "\n".join(f"| `{i['scenario']}` | {i['events']:,} | {i['fraud_events']:,} |" for i in train_info)
    ev_rows, burst_rows, prod_rows = [], [], []
    g = f"with_min_orders_{MIN_ORDERS}"
    for name, r in ev.items():
        m = r["events"]
        for th in THRESHOLDS:
            a = m[f"at_{th}"]
            ev_rows.append(f"| `{name}` | {m['events']:,} | {m['fraud_events']:,} | {fmt(m['auc'], 4)} | {th} | "
                           f"{fmt(a['precision'], 3)} | {fmt(a['recall'], 3)} | {a['false_alarms']:,} | "
                           f"{fmt(a[g]['precision'], 3)} | {fmt(a[g]['recall'], 3)} | {a[g]['false_alarms']:,} |")
            b = r["bursts"][str(th)]
            burst_rows.append(f"| `{name}` | {th} | {b['bursts']} | {b['with_min_orders']} | "
                              f"{fmt(b['orders_per_burst_median'], 1)} | {b['flagged']} | "
                              f"{fmt(b['flagged_at_order_median'], 1)} |")
        for th in (THRESHOLD,):
            pm = r["producers"][str(th)]
            for label, key in (("regex-only (naive.rs)", "regex_only"),
                               ("ideal detectors (every PII and residency event)", "ideal_detectors"),
                               ("ideal detectors + model", "ideal_detectors_plus_model"),
                               ("model alone, against fraud producers only", "fraud_only_model"),
                               (f"velocity rule alone (any card with >= {MIN_ORDERS} orders in the window), "
                                "against fraud producers only", "fraud_only_velocity_rule")):
                s = pm[key]
                prod_rows.append(f"| `{name}` | {label} | {s['violators']} | {s['quarantined']} | {s['caught']} | "
                                 f"{s['false_positives']} | {fmt(s['recall'], 2)} | {fmt(s['precision'], 2)} |")
    text = f"""# Model card: compliance-fraud {MODEL_VERSION}

Generated by `agents/training/train_compliance.py`; retrain everything with `{RETRAIN_CMD}`
(sets up `.venv` with the pinned requirements, builds `conclave`, then trains).

## What it predicts

For one order event sample, in the context of the events before it: the probability that
it is an order of a **fraud burst** as the simulator generates them (one card and one
producer, several large orders within the burst's span). The compliance agent runs it on
every event in scope after its deterministic detectors (card numbers with Luhn, e-mail,
IBAN, SSN, NINO, residency), which always run and decide alone when the model cannot be
used; a score at or above `fraud.threshold` ({THRESHOLD} in `policies/compliance-learned.yaml`) on
an event whose card has at least `fraud.min_orders` ({MIN_ORDERS}) orders in the window, this one
included, is a fraud finding: the producer is quarantined (or an alert raised, per
`fraud.action`).

- Model: scikit-learn `HistGradientBoostingClassifier`, {GB_PARAMS['max_iter']} trees of depth at most
  {GB_PARAMS['max_depth']}, learning rate {GB_PARAMS['learning_rate']}, min_samples_leaf {GB_PARAMS['min_samples_leaf']},
  l2_regularization {GB_PARAMS['l2_regularization']}, no early stopping, random_state {MODEL_SEED}; monotonic
  constraints: the score can only rise with {', '.join(f'`{n}`' for n in RISING)} and only fall with
  {', '.join(f'`{n}`' for n in FALLING)}; fitted in {train_s:.0f} s; converted with skl2onnx
  {skl2onnx.__version__} (`zipmap: False`), plus a `Slice` keeping the positive class's probability;
  opset imports {opsets}.
- File: `agents/models/compliance-fraud.onnx`, {size:,} bytes, sha256 `{model_sha}`.
- Version {MODEL_VERSION} (ONNX `model_version` {MODEL_VERSION_INT}).

## Inputs and outputs

| tensor | name | dtype | shape | meaning |
|---|---|---|---|---|
| input | `{cf.INPUT_NAME}` | float32 | [N, {cf.N_FEATURES}] | one row per event sample, features in spec order |
| output | `{cf.OUTPUT_NAME}` | float32 | [N, 1] | probability that the event is a fraud-burst order; declared range [{cf.OUTPUT_RANGE[0]}, {cf.OUTPUT_RANGE[1]}] |

Outside the declared range, NaN or inf: a model fault, the detectors decide alone and the
proposal records `fallback: <reason>`.

The feature definitions are in `agents/models/compliance.features.json` (the same text is in
the model's `metadata_props` under `feature_spec`). Two rolling windows, keyed by a 64-bit
FNV-1a hash (no card fingerprint is stored): per card (`{cf.CARD_PATH}`) its orders of the
last {cf.CARD_WINDOW_S} s, per producer its orders of the last {cf.PRODUCER_WINDOW_S} s; time is the
watermark (the newest event time seen); at most {cf.MAX_CARDS:,} cards and {cf.MAX_PRODUCERS:,}
producers are kept (expired keys first, then the oldest). Only feature names and the two
field paths (`{cf.AMOUNT_PATH}`, `{cf.CARD_PATH}`) ever reach a rationale, never a value.

| # | name | definition |
|---|---|---|
{feats}

`metadata_props` keys: `name`, `version`, `training_data_sha256`, `training_scenarios`,
`heldout_scenarios`, `training_samples`, `feature_spec`, `feature_names`, `reference_stats`
(per feature: mean, std, decile edges, decile proportions for PSI), `output_range`,
`threshold`, `min_orders`, `trainer`. The agent checks drift (PSI against `reference_stats`)
on `log_amount`, `is_large`, `has_card` and `producer_large_share` only: how often the burst
features are non-zero follows the fraud rate, so a quieter stream than training's (every
held-out scenario) or a fraud wave would read as drift.

## Training data

The `none` runs of three generated scenarios, `simulations/scenarios/compliance-train-1..3.yaml`
(written by `simulations/scenarios/make_compliance_scenarios.py`, seeds 1-3): an order-event
platform for 8 h each with random topics (2-4), producers (4-30 per topic), event rates
(1-6 events/s), shares of personal data, residency breaches, decoys and fraud (0.05-2 % of
events, log-uniform) and fraud burst shapes (2-10 orders within 1-30 min), recorded with
`conclave simulate SCENARIO --compare none --record DIR`. Labels are the simulator's ground
truth (`truth.jsonl`): `fraud` is 1, everything else 0.

| scenario | events | fraud events |
|---|---|---|
{samples}

Training-data digest (sha256 of the three recordings' `none/telemetry.jsonl` and
`none/truth.jsonl` bytes, scenario by scenario; the simulator is deterministic, so
re-recording gives the same bytes): `{digest}`.

## Held-out evaluation

Two scenarios never trained on: `compliance-heldout` (the same generator with seed 4) and
`compliance-fraud` (the fixed fraud-heavy marketplace of the comparison in BENCHMARKS.md:
80 producers, bursts of 4 large orders spread over up to 30 min, rare personal data).

**Per event.** The last three columns apply the agent's gate (the card has at least
{MIN_ORDERS} orders in the window, this one included).

| scenario | events | fraud | AUC | threshold | precision | recall | false alarms | gated precision | gated recall | gated false alarms |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(ev_rows)}

{same_at_every_threshold(ev)}The first order of a burst looks like any large order on a new card (3 % of the simulator's
ordinary orders are large), so per-event recall is bounded by the share of orders that
follow another on the same card.

**Per burst** (fraud events sharing producer and card):

| scenario | threshold | bursts | with >= {MIN_ORDERS} orders | median orders | flagged | median order flagged at |
|---|---|---|---|---|---|---|
{chr(10).join(burst_rows)}

**Per producer**, as the simulator scores compliance (violators: producers that sent any
violation; quarantined producers that never did are false positives), at threshold
{THRESHOLD}, on the `none` run's events. *Regex-only* is the baseline of
`simulations/src/events/naive.rs` (the same three patterns, ported); *ideal detectors*
assumes the deterministic detectors find every personal-data and residency event and
nothing else (the simulator's decoys are built to fail their validation); the real agent's
numbers from a simulation, where a quarantine also stops later events, are in BENCHMARKS.md.

| scenario | who quarantines | violators | quarantined | caught | false positives | recall | precision |
|---|---|---|---|---|---|---|---|
{chr(10).join(prod_rows)}

**What the model adds over a velocity rule: nothing measurable here.** The last row of each
scenario is a plain rule with no model: quarantine a producer as soon as one of its cards has
{MIN_ORDERS} orders within the card window. On these scenarios it does exactly as well as the
model, because the simulator's ordinary orders never reuse a card (see Limits). The model is
the mechanism (a learned score over several signals, with a threshold, drift checks and
fallbacks) that real traffic, where customers do reuse cards, would need; these scenarios
cannot show that it beats the rule.

## Checks

- ONNX Runtime {ort.__version__} output vs scikit-learn `predict_proba` on the held-out rows:
  max abs diff {parity:.2e} (limit {PARITY_TOL:g}).
- Golden vectors for the Rust feature and output parity tests (a scripted stream with fast
  and slow bursts, a returning card, a shared card, a silence, late events and malformed
  amounts, also replayed with small caps): `agents/models/testdata/compliance-parity.json`.
- `.venv/bin/python -m pytest agents/training -q`.

## Limits

- The simulator's ordinary orders never reuse a card: a repeat on a card within the hour
  is, in these scenarios, always fraud, and the model leans on that (`card_orders`,
  `card_gap_s`). Real customers reorder with the same card; on real traffic the model must
  be retrained on labelled recordings of it (or run with `fraud.mode: report` first, which
  records the score on the detectors' proposals without acting on it).
- A burst's first order cannot be told from an ordinary large order, so the model flags a
  fraudulent producer at its second order at the earliest (with `min_orders: 2`, by
  design).
- The label is the simulator's fraud pattern only; card testing with small amounts,
  account takeover or fraud spread over many cards are not in the training data.
- Machine-readable metrics: `agents/models/compliance-fraud.metrics.json`.
"""
    with open(CARD_PATH, "w", encoding="utf-8") as f:
        f.write(text)



# ---------------------------------------------------------------- main

def training_set() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    xs, ys, info = [], [], []
    for name in TRAIN_SCENARIOS:
        rows = rows_of(name)
        xs.append(rows.x)
        ys.append(rows.y)
        info.append({"scenario": name, "events": int(len(rows.y)), "fraud_events": int(rows.y.sum())})
    return np.concatenate(xs), np.concatenate(ys), info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conclave", help="the conclave binary (default: $CONCLAVE_BIN or target/debug/conclave)")
    ap.add_argument("--fresh", action="store_true", help="re-record every scenario")
    args = ap.parse_args()
    binary = conclave_binary(args.conclave)

    os.makedirs(MODELS_DIR, exist_ok=True)
    with open(SPEC_PATH, "w", encoding="utf-8") as f:
        f.write(cf.spec_text())
    log(f"wrote {SPEC_PATH}")

    for name in TRAIN_SCENARIOS + HELDOUT_SCENARIOS:
        record(binary, name, args.fresh)
    digest = training_digest()
    x, y, train_info = training_set()
    log(f"training rows {x.shape[0]:,} x {x.shape[1]} features, {int(y.sum())} positive; digest {digest}")

    model = HistGradientBoostingClassifier(**GB_PARAMS, monotonic_cst=MONOTONIC)
    t0 = time.time()
    model.fit(x, y)
    train_s = time.time() - t0
    log(f"fitted in {train_s:.1f} s")

    ev = evaluate(model, HELDOUT_SCENARIOS)
    stats = reference_stats(x, cf.FEATURE_NAMES)
    model_bytes = export_onnx(model, stats, digest, train_info)
    with open(ONNX_PATH, "wb") as f:
        f.write(model_bytes)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    log(f"wrote {ONNX_PATH}: {len(model_bytes):,} bytes, sha256 {model_sha}")
    if len(model_bytes) >= MAX_MODEL_BYTES:
        raise SystemExit("model is not under 5 MB")

    sess = ort_session(model_bytes)
    parity = 0.0
    for r in ev.values():
        xh = r.pop("x")
        diff = np.abs(ort_predict(sess, xh)[:, 0].astype(np.float64) - model.predict_proba(xh)[:, 1])
        parity = max(parity, float(diff.max()))
    log(f"onnxruntime vs sklearn on the held-out rows: max abs diff {parity:.3e}")
    if not parity <= PARITY_TOL:
        raise SystemExit(f"ONNX parity {parity} > {PARITY_TOL}")

    write_golden(sess, model_sha)
    log(f"wrote {GOLDEN_PATH}")
    out_metrics = {
        "model": cf.MODEL_NAME,
        "version": MODEL_VERSION,
        "model_bytes": len(model_bytes),
        "model_sha256": model_sha,
        "training_data_sha256": digest,
        "training": train_info,
        "threshold": THRESHOLD,
        "min_orders": MIN_ORDERS,
        "onnx_vs_sklearn_max_abs_diff": parity,
        "heldout": ev,
    }
    with open(METRICS_PATH, "w", encoding="utf-8") as f:
        json.dump(out_metrics, f, indent=1)
        f.write("\n")
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}"
                       for o in onnx.load_from_string(model_bytes).opset_import)
    write_card(ev, len(model_bytes), model_sha, digest, train_info, parity, opsets, train_s)
    log(f"wrote {METRICS_PATH} and {CARD_PATH}")
    for name, r in ev.items():
        m = r["events"]
        print(f"{name}: AUC {fmt(m['auc'], 4)}", *(f"@{th} P {m[f'at_{th}']['precision']:.3f} "
                                                  f"R {m[f'at_{th}']['recall']:.3f}" for th in THRESHOLDS))
        print(f"  bursts @{THRESHOLD}: {r['bursts'][str(THRESHOLD)]}")
        for k, v in r["producers"][str(THRESHOLD)].items():
            print(f"  producers @{THRESHOLD} {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
