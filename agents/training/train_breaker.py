#!/usr/bin/env python3
"""Train, evaluate and export the breaker risk model (Conclave issue #6).

    .venv/bin/python agents/training/train_breaker.py        (or agents/training/train_all.sh)

Needs the `conclave` binary (`cargo build`; CONCLAVE_BIN or --conclave to point elsewhere):

1. records the `none` run (nothing intervenes) of every breaker scenario with
   `conclave simulate SCENARIO --compare none --record DIR` under a policy with every agent
   off (only the `none` recording is used; the policy run is wasted work kept short);
   recordings are cached under target/breaker-training/ by scenario digest (--fresh
   re-records);
2. builds the features of conclave_training.breaker_features at every 15 s bucket of every
   service, and the label: the breaker's trip condition (the last minute's failure rate of
   calls to the service >= 50 %) holds within the next 60 s; rows where it holds already
   are left out (the rule opens the breaker itself then);
3. fits a GradientBoostingClassifier on the training scenarios (breaker-train-1..3),
   evaluates it on the held-out ones (breaker-heldout: the same generator with another
   seed; breaker-cascade: the comparison story), with the rule's own openings from a
   replay of the held-out telemetry through `conclave run` (lead time vs the rule);
4. writes

    agents/models/breaker.features.json       the feature spec (Rust implements it)
    agents/models/breaker-risk.onnx           the model, spec + stats in metadata_props
    agents/models/breaker-risk.md             the model card
    agents/models/breaker-risk.metrics.json   held-out metrics, machine-readable
    agents/models/testdata/breaker-parity.json golden vectors for the Rust parity tests
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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
from conclave_training import breaker_features as bf  # noqa: E402
from conclave_training.traces import ROOT  # noqa: E402

MODEL_VERSION = "1.0.0"
MODEL_VERSION_INT = 1
MODEL_SEED = 11
GB_PARAMS = dict(
    max_iter=150,
    learning_rate=0.1,
    max_depth=4,
    min_samples_leaf=20,
    l2_regularization=1.0,
    early_stopping=False,
    random_state=MODEL_SEED,
)
# Risk may only rise with these features (more errors, slower, more queued, ...) and only
# fall with `calm_min`; the rest are unconstrained. Besides being what an operator expects,
# the constraints keep the trees from learning holes from a few hundred positives.
RISING = ("err", "err_1m", "err_delta", "p99_rel", "p99_trend", "tail_ratio", "cpu", "queue_s",
          "queue_growth_s", "unserved", "caller_err", "caller_err_delta", "caller_p99_rel",
          "dep_err", "dep_p99_rel")
FALLING = ("calm_min",)
MONOTONIC = [1 if n in RISING else -1 if n in FALLING else 0 for n in bf.FEATURE_NAMES]
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PARITY_TOL = 1e-5
OPEN_AT = 0.8  # the policy's risk.open_at in policies/ecommerce-learned-breaker.yaml
THRESHOLDS = (0.5, OPEN_AT)
# An alarm in a bucket whose failure rate was under this came before calls had started to
# fail (rather than in the first seconds of a failure the 60 s window has not caught up with).
BEFORE_FAILURES = 0.05

SCENARIOS_DIR = os.path.join(ROOT, "simulations", "scenarios")
TRAIN_SCENARIOS: tuple[str, ...] = ("breaker-train-1", "breaker-train-2", "breaker-train-3")
HELDOUT_SCENARIOS: tuple[str, ...] = ("breaker-heldout", "breaker-cascade")
RECORD_DIR = os.path.join(ROOT, "target", "breaker-training")
WINDOW_MS = 15_000  # the decision window of the recording policy (fleet snapshots)

MODELS_DIR = os.path.join(ROOT, "agents", "models")
SPEC_PATH = os.path.join(MODELS_DIR, "breaker.features.json")
ONNX_PATH = os.path.join(MODELS_DIR, "breaker-risk.onnx")
CARD_PATH = os.path.join(MODELS_DIR, "breaker-risk.md")
METRICS_PATH = os.path.join(MODELS_DIR, "breaker-risk.metrics.json")
GOLDEN_PATH = os.path.join(MODELS_DIR, "testdata", "breaker-parity.json")
RETRAIN_CMD = "agents/training/train_all.sh"

# Every agent off: the `none` run is what the model learns from; the policy run that
# `conclave simulate` always makes next to it then costs the least.
QUIET_POLICY = """apiVersion: conclave/v1
kind: Policy
metadata: {name: breaker-training-recorder}
spec:
  agents:
    scaler: {mode: off}
    breaker: {mode: off}
    router: {mode: off}
    compliance: {mode: off}
  arbiter:
    window: 15s
"""

# The breaker on its rule alone (resilience4j defaults, as in the learned policy), on
# every service, replayed over a `none` recording: when the rule would have opened.
RULE_POLICY = """apiVersion: conclave/v1
kind: Policy
metadata: {name: breaker-rule-replay}
spec:
  agents:
    scaler: {mode: off}
    breaker: {mode: enforce, targets: {globs: ["*"]}, settings: {shed: {enabled: false}}}
    router: {mode: off}
    compliance: {mode: off}
  arbiter:
    window: 15s
"""


def log(msg: str) -> None:
    print(f"[train_breaker] {msg}", file=sys.stderr, flush=True)


def spec_text() -> str:
    return bf.spec_text()


# ---------------------------------------------------------------- recordings

def conclave_binary(arg: str | None) -> str:
    path = arg or os.environ.get("CONCLAVE_BIN") or os.path.join(ROOT, "target", "debug", "conclave")
    if not os.path.isfile(path):
        raise SystemExit(f"train_breaker: the conclave binary `{path}` does not exist; build it "
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
            and os.path.isfile(os.path.join(recording(name), "telemetry.jsonl")):
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
    """sha256 of the training recordings' telemetry.jsonl bytes, concatenated in order."""
    h = hashlib.sha256()
    for name in names:
        with open(os.path.join(recording(name), "telemetry.jsonl"), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def rows_of(name: str) -> bf.Rows:
    series = bf.build_series(bf.read_metrics(os.path.join(recording(name), "telemetry.jsonl")))
    return bf.label_rows(series)


def rule_openings(binary: str, name: str) -> dict[str, list[int]]:
    """When the rule breaker opens each service's breaker, replaying the `none` telemetry
    (unix ms, sorted)."""
    base = os.path.join(RECORD_DIR, name, "rule-replay")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    policy = os.path.join(base, "policy.yaml")
    with open(policy, "w", encoding="utf-8") as f:
        f.write(RULE_POLICY)
    audit = os.path.join(base, "audit.jsonl")
    subprocess.run([binary, "run", "--policy", policy, "--telemetry",
                    os.path.join(recording(name), "telemetry.jsonl"), "--audit", audit,
                    "--dead-letters", os.path.join(base, "dead-letters.jsonl"),
                    "--actions", os.path.join(base, "actions.log"), "--quiet"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    out: dict[str, list[int]] = {}
    with open(audit, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line).get("record", {})
            if r.get("type") != "decision" or r.get("agent") != "breaker":
                continue
            if r.get("action") == {"breaker": {"state": "open"}}:
                out.setdefault(r["target"], []).append(bf.parse_ts_ms(r["at"]))
    return {k: sorted(v) for k, v in out.items()}


# ---------------------------------------------------------------- evaluation

def row_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    out = {"rows": int(len(y)), "positives": int(y.sum()),
           "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None}
    for th in THRESHOLDS:
        alarm = p >= th
        out[f"at_{th}"] = {
            "precision": float(precision_score(y, alarm, zero_division=0)),
            "recall": float(recall_score(y, alarm, zero_division=0)),
            "alarms": int(alarm.sum()),
        }
    return out


def episodes(rows: bf.Rows, p: np.ndarray, openings: dict[str, list[int]], th: float,
             breaches: dict[str, dict[int, bool]]) -> dict:
    """Per trip episode (a run of buckets where the trip condition holds, on one service):
    did the model warn within the 60 s before it (an alarm in k-4..k-1 while not tripped),
    how early, and when the rule opened; alarms (runs of alarms) followed by no trip; and
    how alarms relate to the scenario's SLO (fleet snapshots)."""
    h = bf.HORIZON_BUCKETS
    found = []
    false_runs = 0
    alarm_rows = alarm_slo = 0
    hours = 0.0
    # rows are per service in bucket order; rebuild per-service arrays (tripped rows too)
    for svc in sorted(set(rows.service.tolist())):
        m = rows.service == svc
        t = rows.t_ms[m]
        trip = rows.tripped[m]
        alarm = (p[m] >= th) & ~trip
        hours += len(t) * bf.BUCKET_SECONDS / 3600.0
        opens = openings.get(svc, [])
        snaps = breaches.get(svc, {})
        for i in np.flatnonzero(alarm):
            alarm_rows += 1
            ahead = range(int(t[i]) + WINDOW_MS, int(t[i]) + bf.HORIZON_SECONDS * 1000 + 1, WINDOW_MS)
            alarm_slo += any(snaps.get(u, False) for u in ahead) or snaps.get(int(t[i]), False)
        # alarm runs with no trip in the horizon after their last alarm
        i = 0
        while i < len(t):
            if not alarm[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(t) and alarm[j + 1]:
                j += 1
            if not trip[j + 1:j + 1 + h].any():
                false_runs += 1
            i = j + 1
        fail = rows.fail_now[m]
        for k in np.flatnonzero(trip[1:] & ~trip[:-1]) + 1:
            onset = int(t[k])
            early = [i for i in range(max(k - h, 0), k) if alarm[i]]
            model_ms = int(t[early[0]]) if early else None
            rule = [o for o in opens if onset - 120_000 <= o <= onset + 300_000]
            found.append({"service": svc, "onset_ms": onset, "model_ms": model_ms,
                          "rule_ms": rule[0] if rule else None,
                          # the failure rate of the alarm's own bucket: under 5 %, the model
                          # warned before calls had started to fail
                          "bucket_failure_at_alarm": float(fail[early[0]]) if early else None})
    warned = [e for e in found if e["model_ms"] is not None]
    before = [e for e in warned if e["bucket_failure_at_alarm"] < BEFORE_FAILURES]
    ruled = [e for e in found if e["rule_ms"] is not None]
    both = [e for e in warned if e["rule_ms"] is not None]
    med = lambda v: float(np.median(v)) if v else None  # noqa: E731
    return {
        "trip_episodes": len(found),
        "warned_by_model": len(warned),
        "warned_before_failures": len(before),
        "lead_s_median_when_warned_before_failures": med([(e["onset_ms"] - e["model_ms"]) / 1000 for e in before]),
        "model_lead_s_median": med([(e["onset_ms"] - e["model_ms"]) / 1000 for e in warned]),
        "rule_opened": len(ruled),
        "rule_delay_s_median": med([(e["rule_ms"] - e["onset_ms"]) / 1000 for e in ruled]),
        "model_ahead_of_rule_s_median": med([(e["rule_ms"] - e["model_ms"]) / 1000 for e in both]),
        "model_ahead_of_rule_s_mean": float(np.mean([(e["rule_ms"] - e["model_ms"]) / 1000 for e in both]))
        if both else None,
        "false_alarm_runs": false_runs,
        "false_alarm_runs_per_service_hour": false_runs / hours if hours else None,
        "alarm_rows": alarm_rows,
        "alarm_rows_followed_by_slo_breach": alarm_slo,
        "episodes": found,
    }


def evaluate(model, binary: str, names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        rows = rows_of(name)
        p = model.predict_proba(rows.x)[:, 1]
        untripped = ~rows.tripped
        breaches = bf.read_breaches(os.path.join(recording(name), "fleet.jsonl"))
        openings = rule_openings(binary, name)
        out[name] = {
            "untripped_rows": row_metrics(rows.y[untripped], p[untripped]),
            "episodes": {str(th): episodes(rows, p, openings, th, breaches) for th in THRESHOLDS},
            "x": rows.x[untripped],
        }
    return out


# ---------------------------------------------------------------- export

def export_onnx(model, stats: list[dict], digest: str, train_info: list[dict]) -> bytes:
    patch_skl2onnx_missing_flag()
    onx = to_onnx(model, initial_types=[(bf.INPUT_NAME, FloatTensorType([None, bf.N_FEATURES]))],
                  options={id(model): {"zipmap": False}}, target_opset=TARGET_OPSET)
    # Keep one output: column 1 of the class probabilities (the positive class), [N, 1].
    probs = next(o.name for o in onx.graph.output if o.name != "label")
    starts = numpy_helper.from_array(np.array([1], dtype=np.int64), "risk_col_start")
    ends = numpy_helper.from_array(np.array([2], dtype=np.int64), "risk_col_end")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "risk_col_axis")
    onx.graph.initializer.extend([starts, ends, axes])
    onx.graph.node.append(helper.make_node(
        "Slice", [probs, "risk_col_start", "risk_col_end", "risk_col_axis"], [bf.OUTPUT_NAME],
        name="positive_class"))
    del onx.graph.output[:]
    onx.graph.output.append(helper.make_tensor_value_info(bf.OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    # skl2onnx lists opset imports in set order and, for this converter, the default domain
    # twice: one entry per domain (the highest version), sorted, so the same training data
    # gives the same bytes
    sort_opsets(onx)
    onx.model_version = MODEL_VERSION_INT
    onx.producer_name = "conclave-training"
    onx.producer_version = MODEL_VERSION
    onx.doc_string = ("Conclave breaker: probability that the breaker's trip condition (failure "
                      f"rate of calls >= 50 % over a minute) holds within {bf.HORIZON_SECONDS} s; "
                      "see metadata 'feature_spec'.")
    onx.graph.name = "breaker_risk"
    props = {
        "name": bf.MODEL_NAME,
        "version": MODEL_VERSION,
        "training_data_sha256": digest,
        "training_scenarios": json.dumps(list(TRAIN_SCENARIOS)),
        "heldout_scenarios": json.dumps(list(HELDOUT_SCENARIOS)),
        "training_samples": json.dumps(train_info, separators=(",", ":")),
        "feature_spec": spec_text(),
        "feature_names": json.dumps(bf.FEATURE_NAMES),
        "reference_stats": json.dumps(stats, separators=(",", ":")),
        "output_range": json.dumps(list(bf.OUTPUT_RANGE)),
        "horizon_seconds": str(bf.HORIZON_SECONDS),
        "trip_failure_rate": str(bf.TRIP_FAILURE_RATE),
        "trainer": f"sklearn {sklearn.__version__} HistGradientBoostingClassifier (monotonic); "
                   f"skl2onnx {skl2onnx.__version__}",
    }
    helper.set_model_props(onx, props)
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def ort_predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return sess.run([bf.OUTPUT_NAME], {bf.INPUT_NAME: x.astype(np.float32)})[0]


# ---------------------------------------------------------------- golden vectors

GOLDEN_START_MS = 1_800_000_000_000 + 7_000  # not on a bucket boundary
GOLDEN_MINUTES = 36


def golden_samples() -> list[dict]:
    """A scripted fleet of four services for the parity tests: `api` (every 10 s) calls `db`
    and `cache`; `worker` (every 15 s, silent for 3 minutes at 12..15) calls `db`; `db`
    reports every 10 s but only from minute 2 (its callers' figures come first); `cache`
    reports every 7 s. db slows down from minute 18 and fails from minute 21 to 25; cache
    is down at 28..29; worker's calls to db stop at 31..33 (a breaker open there). Values
    are rounded to 3 decimals so the JSON holds them exactly."""
    rng = np.random.default_rng(60606)
    end = GOLDEN_START_MS + GOLDEN_MINUTES * 60_000
    r = lambda v: round(float(v), 3)  # noqa: E731

    def minute(ts: int) -> float:
        return (ts - GOLDEN_START_MS) / 60_000

    def db_state(m: float) -> tuple[float, float]:
        slow = 1.0 + (3.0 * min(m - 18, 4) if m >= 18 else 0.0)
        err = 0.0 if not 21 <= m < 25 else min(0.2 * (m - 20), 0.9)
        return slow, err

    def sample(service: str, ts: int, rate: float, p50: float, p99: float, err: float,
               cpu: float, backlog: int, deps: list[dict]) -> dict:
        noise = 1.0 + 0.02 * rng.uniform(-1, 1)
        m = {"schema_version": 1, "service": service, "ts": rfc3339(ts), "rate_in": r(rate * noise),
             "rate_out": r(rate * (1.0 - min(backlog, 50) / 500.0)), "backlog": backlog,
             "latency_p50_ms": r(p50 * noise), "latency_p99_ms": r(p99 * noise), "error_rate": r(err),
             "cpu": r(cpu * noise), "replicas": 3}
        if deps:
            m["dependencies"] = deps
        return m

    events = []
    for service, every, first in (("api", 10_000, 0), ("worker", 15_000, 0), ("db", 10_000, 120_000),
                                  ("cache", 7_000, 0)):
        ts = GOLDEN_START_MS + first
        while ts <= end:
            mm = minute(ts)
            slow, db_err = db_state(mm)
            cache_down = 28 <= mm < 29
            if service == "api":
                deps = [{"service": "db", "calls_per_s": r(40 * (1 + db_err)), "error_rate": r(db_err),
                         "latency_p99_ms": r(min(30 * slow, 500))},
                        {"service": "cache", "calls_per_s": r(80), "error_rate": 1.0 if cache_down else 0.0,
                         "latency_p99_ms": 0.0 if cache_down else r(4)}]
                err = max(db_err, 1.0 if cache_down else 0.0)
                events.append(sample("api", ts, 100, 20 + 10 * slow, 60 * slow, err, 0.5 + 0.05 * slow,
                                     int(3 * slow), deps))
            elif service == "worker":
                if 12 <= mm < 15:
                    ts += every
                    continue
                calls = 0.0 if 31 <= mm < 33 else 10.0
                deps = [{"service": "db", "calls_per_s": calls, "error_rate": r(db_err) if calls else 0.0,
                         "latency_p99_ms": r(min(30 * slow, 1000)) if calls else 0.0},
                        {"service": "worker", "calls_per_s": 1.0, "error_rate": 0.5, "latency_p99_ms": 9.0}]
                events.append(sample("worker", ts, 10, 50, 120, r(db_err * 0.5), 0.3, 0, deps))
            elif service == "db":
                events.append(sample("db", ts, 50 * (1 + db_err), 8 * slow, 25 * slow, db_err,
                                     0.4 * slow, int(max(0, 40 * (slow - 2))), []))
            else:
                if not cache_down:
                    events.append(sample("cache", ts, 80, 1.5, 4, 0.0, 0.2, 0, []))
            ts += every
    events.sort(key=lambda m: (bf.parse_ts_ms(m["ts"]), m["service"]))
    return events


def golden_ticks() -> list[int]:
    """Decision times: every 10 s (so not always on a bucket boundary)."""
    return list(range(GOLDEN_START_MS + 10_000, GOLDEN_START_MS + GOLDEN_MINUTES * 60_000 + 1, 10_000))


# Ticks (indices into golden_ticks()) whose vectors the golden file stores.
GOLDEN_POINTS = [0, 1, 2, 5, 11, 12, 13, 40, 71, 72, 80, 89, 95, 107, 110, 112, 125, 126, 128,
                 131, 140, 150, 165, 168, 171, 174, 180, 186, 190, 200, 210, 215]


def golden_vectors(samples: list[dict]) -> list[dict]:
    ticks = golden_ticks()
    parsed = [dict(m, ts_ms=bf.parse_ts_ms(m["ts"])) for m in samples]
    out = []
    for i in GOLDEN_POINTS:
        now = ticks[i]
        k = bf.complete_at(now)
        seen = [m for m in parsed if bf.bucket_of(m["ts_ms"]) <= k]
        series = bf.build_series(seen, last_bucket=k)
        for service, s in series.items():
            x = bf.features(s)[-1]
            out.append({"now_ms": now, "service": service, "k": k,
                        "fail_1m": float(bf.fail_1m(s)[-1]),
                        "features": [float(v) for v in x]})
    return out


def write_golden(sess: ort.InferenceSession, model_sha: str) -> dict:
    samples = golden_samples()
    points = golden_vectors(samples)
    y = ort_predict(sess, np.array([p["features"] for p in points], dtype=np.float32))
    for p, v in zip(points, y[:, 0]):
        p["output"] = float(v)
    golden = {
        "description": "Golden vectors for the Rust breaker parity tests: feed `samples` (metrics "
                       "messages, in order) to per-service feature state (own samples to their "
                       "service, dependency entries to the called service), deciding at each "
                       "tick time after every sample stamped at or before it; each point gives "
                       "the features of a service at a tick and the ONNX output. Features are "
                       "float32, computed in float64. Compare with abs tolerance 1e-5.",
        "model": os.path.basename(ONNX_PATH),
        "model_version": MODEL_VERSION,
        "model_sha256": model_sha,
        "spec_version": bf.SPEC_VERSION,
        "feature_names": bf.FEATURE_NAMES,
        "input_name": bf.INPUT_NAME,
        "output_name": bf.OUTPUT_NAME,
        "tolerance": PARITY_TOL,
        "ticks_ms": golden_ticks(),
        "samples": samples,
        "points": points,
    }
    os.makedirs(os.path.dirname(GOLDEN_PATH), exist_ok=True)
    with open(GOLDEN_PATH, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
        f.write("\n")
    return golden


# ---------------------------------------------------------------- card

def fmt(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def write_card(ev: dict, size: int, model_sha: str, digest: str, train_info: list[dict],
               parity: float, opsets: str, train_s: float) -> None:
    feats = "\n".join(f"| {j} | `{f['name']}` | {f['definition']} |" for j, f in enumerate(bf.FEATURES))
    samples = "\n".join(f"| `{i['scenario']}` | {i['rows']:,} | {i['positives']:,} | {i['tripped_rows_left_out']:,} |"
                        for i in train_info)
    rows = []
    for name, r in ev.items():
        m = r["untripped_rows"]
        for th in THRESHOLDS:
            a = m[f"at_{th}"]
            rows.append(f"| `{name}` | {m['rows']:,} | {m['positives']:,} | {fmt(m['auc'])} | {th} | "
                        f"{fmt(a['precision'], 2)} | {fmt(a['recall'], 2)} | {a['alarms']:,} |")
    eps = []
    for name, r in ev.items():
        for th in THRESHOLDS:
            e = r["episodes"][str(th)]
            eps.append(f"| `{name}` | {th} | {e['trip_episodes']} | {e['warned_by_model']} | "
                       f"{e['warned_before_failures']} | "
                       f"{fmt(e['model_lead_s_median'], 0)} | {e['rule_opened']} | "
                       f"{fmt(e['rule_delay_s_median'], 0)} | {fmt(e['model_ahead_of_rule_s_median'], 0)} | "
                       f"{e['false_alarm_runs']} | {e['alarm_rows_followed_by_slo_breach']} of {e['alarm_rows']} |")
    text = f"""# Model card: breaker-risk {MODEL_VERSION}

Generated by `agents/training/train_breaker.py`; retrain everything with `{RETRAIN_CMD}`
(sets up `.venv` with the pinned requirements, builds `conclave`, then trains).

## What it predicts

For one protected service at a decision: the probability that the **breaker's trip
condition** holds within the next {bf.HORIZON_SECONDS} s, given that it does not hold now. The
trip condition is what the rule breaker opens on with its defaults: over the last minute, the
failure rate of calls to the service (the callers' view, as the rule prefers it; the
service's own error rate when no caller reports on it) is at or above
{int(bf.TRIP_FAILURE_RATE * 100)} % (resilience4j's default `failureRateThreshold`). So the model anticipates the
rule: once the condition holds, the rule opens the breaker itself.

Why this label and not "the service breaches its SLO": on the simulator a dependency's
latency or error breach is felt by its callers in the same step, so a breach onset gives
almost no warning (in experiments with an SLO-breach label, a model like this one ranked
onsets at an AUC of about 0.8 but never reached 20 % precision with more than 8 % recall on
the held-out seed), and opening a breaker on a service that fails 5-30 % of calls turns
those into 100 % failures for its callers. The trip condition is where a breaker belongs,
and the rule's 60 s window takes time to reach it, which the model can see coming. How the
model's alarms relate to the scenarios' SLO is reported below as well.

- Model: scikit-learn `HistGradientBoostingClassifier`, {GB_PARAMS['max_iter']} trees of depth at most
  {GB_PARAMS['max_depth']}, learning rate {GB_PARAMS['learning_rate']}, min_samples_leaf {GB_PARAMS['min_samples_leaf']},
  l2_regularization {GB_PARAMS['l2_regularization']}, no early stopping, random_state {MODEL_SEED}; monotonic
  constraints: the risk can only rise with {', '.join(f'`{n}`' for n in RISING)} and only fall with
  {', '.join(f'`{n}`' for n in FALLING)} (in the experiments, scikit-learn's `GradientBoostingClassifier`
  without constraints reached a held-out AUC of 0.83 against 0.85, raised three times as many
  alarms on `breaker-cascade`, and its risk fell to 0 in a bucket where calls had started to
  fail); fitted in {train_s:.0f} s;
  converted with skl2onnx {skl2onnx.__version__} (`zipmap: False`), plus a `Slice` keeping the
  positive class's probability; opset imports {opsets}.
- File: `agents/models/breaker-risk.onnx`, {size:,} bytes, sha256 `{model_sha}`.
- Version {MODEL_VERSION} (ONNX `model_version` {MODEL_VERSION_INT}).

## Inputs and outputs

| tensor | name | dtype | shape | meaning |
|---|---|---|---|---|
| input | `{bf.INPUT_NAME}` | float32 | [N, {bf.N_FEATURES}] | one row per protected service, features in spec order |
| output | `{bf.OUTPUT_NAME}` | float32 | [N, 1] | probability of the trip condition within {bf.HORIZON_SECONDS} s; declared range [{bf.OUTPUT_RANGE[0]}, {bf.OUTPUT_RANGE[1]}] |

Outside the declared range, NaN or inf: a model fault, the agent uses its rule.

The feature definitions are in `agents/models/breaker.features.json` (the same text is in the
model's `metadata_props` under `feature_spec`). Time is cut into 15 s buckets; per bucket a
service has its own figures (means of its samples), its callers' view of it (call-weighted
error rate, worst p99) and its own dependencies' worst error rate and p99; missing buckets
repeat the previous one. `rel(v)` is `v[k]` over the lowest positive `v` of the last 30 min,
clipped to [1, 1000].

| # | name | definition |
|---|---|---|
{feats}

`metadata_props` keys: `name`, `version`, `training_data_sha256`, `training_scenarios`,
`heldout_scenarios`, `training_samples`, `feature_spec`, `feature_names`, `reference_stats`
(per feature: mean, std, decile edges, decile proportions for PSI), `output_range`,
`horizon_seconds`, `trip_failure_rate`, `trainer`.

## Training data

The `none` runs (nothing intervenes, so incidents run their course) of three generated
scenarios, `simulations/scenarios/breaker-train-1..3.yaml` (written by
`simulations/scenarios/make_breaker_scenarios.py`, seeds 1-3): a 9-service shop in two
regions for 12 h each, diurnal load with flash crowds, and a random stream of incidents —
dependency slowdowns that ramp up in stages or arrive at once, error bursts that grow,
outages of a region, and benign blips that trip nothing — recorded with
`conclave simulate SCENARIO --compare none --record DIR` (5 s telemetry steps).

| scenario | rows (trip condition not holding) | positives | rows left out (condition holding) |
|---|---|---|---|
{samples}

Training-data digest (sha256 of the three recordings' `none/telemetry.jsonl` bytes,
concatenated in the order above; the simulator is deterministic, so re-recording gives the
same bytes): `{digest}`.

## Held-out evaluation

Two scenarios never trained on: `breaker-heldout` (the same generator with seed 4, 12 h) and
`breaker-cascade` (the fixed 4 h story of the learned-vs-rules comparison in BENCHMARKS.md).
Rows are every 15 s bucket of every service where the trip condition does not hold.

| scenario | rows | positives | AUC | threshold | precision | recall | alarms |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**Lead time.** A trip episode is a run of buckets where the condition holds on one service;
the model *warned* when it alarmed (risk at or above the threshold) in the 60 s before the
episode began; it warned *before failures* when, at that first alarm, under 5 % of the
calls of the alarm's 15 s bucket had failed. The rule's opening comes from replaying the
same `none` telemetry through `conclave run` with the breaker on its rule (resilience4j
defaults, every service): its first `open` from 2 min before to 5 min after the onset. A
false alarm run is a run of consecutive alarms with no trip in the 60 s after it. The last
column: alarms after which the service breached the scenario's SLO (p99 or error objective,
overflow, down) within 60 s, or was breaching already.

| scenario | threshold | trip episodes | warned by the model | of them before failures | median lead before onset, s | rule opened | median rule delay after onset, s | median model ahead of the rule, s | false alarm runs | alarms with an SLO breach |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(eps)}

What the lead is made of: the simulator's faults are steps, so in most episodes calls go
from succeeding to failing within one 15 s bucket. The rule judges the failure rate over its
60 s window and reaches 50 % two buckets later; the model reads the last bucket (and the
latency jump that comes with it) and alarms at once. That is most of the 30 s median lead.
The episodes warned *before failures* are the ones where the model saw the trip coming from
latency, queues and trends alone (a dependency slowing down towards its callers' timeouts).

## Checks

- ONNX Runtime {ort.__version__} output vs scikit-learn `predict_proba` on the held-out rows:
  max abs diff {parity:.2e} (limit {PARITY_TOL:g}).
- Golden vectors for the Rust feature and output parity tests (a scripted four-service stream
  with gaps, late-starting reporters, an outage and a breaker-open stretch):
  `agents/models/testdata/breaker-parity.json`.
- `.venv/bin/python -m pytest agents/training -q`.

## Limits

- Trained and evaluated on one simulated topology. The simulator's faults are steps (a
  ramp is a few steps), its callers feel a dependency within one step, and it has no
  client-side fallbacks; a real fleet will look different, and the model must be
  re-trained on its own recordings (or run in `risk.mode: report` first, which records the
  predicted risk against the trips that followed without acting).
- The label is the rule's trip condition with the default 50 % threshold on a 60 s window;
  a policy with another `failure_rate_threshold` gets a model tuned for 50 %.
- Sudden failures (an outage, a stall) give the features nothing to see before calls fail:
  there the model's lead is only that it reads the last 15 s where the rule averages 60 s
  (a rule with a shorter window would get much of it too, with more false trips on
  blips).
- Machine-readable metrics, with every episode: `agents/models/breaker-risk.metrics.json`.
"""
    with open(CARD_PATH, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def training_set() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    xs, ys, info = [], [], []
    for name in TRAIN_SCENARIOS:
        rows = rows_of(name)
        keep = ~rows.tripped
        xs.append(rows.x[keep])
        ys.append(rows.y[keep])
        info.append({"scenario": name, "rows": int(keep.sum()), "positives": int(rows.y[keep].sum()),
                     "tripped_rows_left_out": int((~keep).sum())})
    return np.concatenate(xs), np.concatenate(ys), info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conclave", help="the conclave binary (default: $CONCLAVE_BIN or target/debug/conclave)")
    ap.add_argument("--fresh", action="store_true", help="re-record every scenario")
    args = ap.parse_args()
    binary = conclave_binary(args.conclave)

    os.makedirs(MODELS_DIR, exist_ok=True)
    with open(SPEC_PATH, "w", encoding="utf-8") as f:
        f.write(spec_text())
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

    ev = evaluate(model, binary, HELDOUT_SCENARIOS)
    stats = reference_stats(x, bf.FEATURE_NAMES)
    model_bytes = export_onnx(model, stats, digest, train_info)
    with open(ONNX_PATH, "wb") as f:
        f.write(model_bytes)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    log(f"wrote {ONNX_PATH}: {len(model_bytes):,} bytes, sha256 {model_sha}")
    if len(model_bytes) >= 1024 * 1024:
        raise SystemExit("model is not under 1 MB")

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
        "model": bf.MODEL_NAME,
        "version": MODEL_VERSION,
        "model_bytes": len(model_bytes),
        "model_sha256": model_sha,
        "training_data_sha256": digest,
        "training": train_info,
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
        m = r["untripped_rows"]
        print(f"{name}: AUC {fmt(m['auc'])}", *(f"@{th} P {m[f'at_{th}']['precision']:.2f} "
                                               f"R {m[f'at_{th}']['recall']:.2f}" for th in THRESHOLDS))
        for th in THRESHOLDS:
            e = {k: v for k, v in r["episodes"][str(th)].items() if k != "episodes"}
            print(f"  @{th}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
