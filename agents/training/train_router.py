#!/usr/bin/env python3
"""Train, evaluate and export the router latency model (Conclave issue #6).

    .venv/bin/python agents/training/train_router.py        (or agents/training/train_all.sh)

Needs the `conclave` binary (`cargo build`; CONCLAVE_BIN or --conclave to point elsewhere):

1. records every routing scenario with
   `conclave simulate SCENARIO --compare none --record DIR` under a policy where only the
   router runs, on its rule: the `none` run (routes split evenly, nothing intervenes) and the
   `policy` run (the rule router moving weights) are both training data, so the model sees
   backends at many shares of their route's load; recordings are cached under
   target/router-training/ by scenario and policy digest (--fresh re-records);
2. builds the features of conclave_training.router_features at every 15 s bucket of every
   route backend, and the label: log2 of the backend's mean cost (the expected latency of a
   request, a failed request counted as 5 s) over the next 60 s;
3. fits a HistGradientBoostingRegressor on the training scenarios (routing-train-1..3) and
   evaluates it on the held-out ones (routing-heldout: the same generator with another
   seed; routing-degrade: the comparison story) against the rule's implicit forecast (the
   router's EWMAs) and the last bucket;
4. runs the held-out scenarios in closed loop (`conclave simulate SCENARIO --compare
   none,rules` under policies/routing-learned.yaml, with the new model) for the card;
5. writes

    agents/models/router.features.json       the feature spec (Rust implements it)
    agents/models/router-latency.onnx        the model, spec + stats in metadata_props
    agents/models/router-latency.md          the model card
    agents/models/router-latency.metrics.json held-out metrics, machine-readable
    agents/models/testdata/router-parity.json golden vectors for the Rust parity tests
    agents/models/testdata/router-{trend,nan}.onnx test models for the agent's tests
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
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
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

from conclave_training.export import ort_session, patch_skl2onnx_missing_flag, reference_stats, rfc3339, sort_opsets  # noqa: E402
from conclave_training import router_features as rf  # noqa: E402
from conclave_training.traces import ROOT  # noqa: E402

MODEL_VERSION = "1.0.0"
MODEL_VERSION_INT = 1
MODEL_SEED = 13
GB_PARAMS = dict(
    loss="squared_error",
    max_iter=150,
    learning_rate=0.1,
    max_depth=4,
    min_samples_leaf=100,
    l2_regularization=1.0,
    early_stopping=False,
    random_state=MODEL_SEED,
)
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PARITY_TOL = 1e-5
# A forecast row is "changing" when the next minute's cost differs from the last bucket's by
# at least this many doublings: where a forecast can beat the present.
CHANGING_LOG2 = 1.0
# Two backends of a route are told apart when their next-minute costs differ by at least
# this factor (log2): the pairwise ranking metric counts those pairs.
RANK_MARGIN_LOG2 = math.log2(1.5)

SCENARIOS_DIR = os.path.join(ROOT, "simulations", "scenarios")
sys.path.insert(0, SCENARIOS_DIR)
import make_routing_scenarios  # noqa: E402

ROUTES: dict[str, list[str]] = make_routing_scenarios.ROUTES
BACKENDS: tuple[str, ...] = tuple(b for bs in ROUTES.values() for b in bs)
TRAIN_SCENARIOS: tuple[str, ...] = ("routing-train-1", "routing-train-2", "routing-train-3")
HELDOUT_SCENARIOS: tuple[str, ...] = ("routing-heldout", "routing-degrade")
# `none`: routes split evenly; `policy`: the rule router moves the weights.
RUNS: tuple[str, ...] = ("none", "policy")
RECORD_DIR = os.path.join(ROOT, "target", "router-training")

MODELS_DIR = os.path.join(ROOT, "agents", "models")
SPEC_PATH = os.path.join(MODELS_DIR, "router.features.json")
ONNX_PATH = os.path.join(MODELS_DIR, "router-latency.onnx")
CARD_PATH = os.path.join(MODELS_DIR, "router-latency.md")
METRICS_PATH = os.path.join(MODELS_DIR, "router-latency.metrics.json")
GOLDEN_PATH = os.path.join(MODELS_DIR, "testdata", "router-parity.json")
RETRAIN_CMD = "agents/training/train_all.sh"

# Only the router, on its rule (defaults, as policies/routing-learned.yaml without its model).
RULE_POLICY = """apiVersion: conclave/v1
kind: Policy
metadata: {name: router-training-recorder}
spec:
  targets:
    - {name: api, kind: route}
    - {name: search, kind: route}
  agents:
    scaler: {mode: off}
    breaker: {mode: off}
    router:
      mode: enforce
      targets: {names: [api, search]}
      settings:
        routes:
          api: {backends: [api-euw, api-euc, api-use]}
          search: {backends: [search-euw, search-use]}
    compliance: {mode: off}
  guardrails:
    defaults:
      cooldown: 15s
    max_actions_per_hour: 10000
  arbiter:
    window: 15s
"""


def log(msg: str) -> None:
    print(f"[train_router] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- recordings

def conclave_binary(arg: str | None) -> str:
    path = arg or os.environ.get("CONCLAVE_BIN") or os.path.join(ROOT, "target", "debug", "conclave")
    if not os.path.isfile(path):
        raise SystemExit(f"train_router: the conclave binary `{path}` does not exist; build it "
                         "with `cargo build` (or set CONCLAVE_BIN / pass --conclave)")
    return path


def scenario_path(name: str) -> str:
    return os.path.join(SCENARIOS_DIR, f"{name}.yaml")


def recording(name: str, run: str) -> str:
    """The folder of scenario `name`'s recording of `run` (`none` or `policy`)."""
    return os.path.join(RECORD_DIR, name, "record", run)


def record(binary: str, name: str, fresh: bool) -> None:
    """Records scenario `name` unless a recording of the same scenario and policy exists."""
    os.makedirs(RECORD_DIR, exist_ok=True)
    policy = os.path.join(RECORD_DIR, "rule-router-policy.yaml")
    with open(policy, "w", encoding="utf-8") as f:
        f.write(RULE_POLICY)
    digest = hashlib.sha256(open(scenario_path(name), "rb").read() + RULE_POLICY.encode()).hexdigest()
    base = os.path.join(RECORD_DIR, name)
    stamp = os.path.join(base, "inputs.sha256")
    if not fresh and os.path.isfile(stamp) and open(stamp).read().strip() == digest \
            and all(os.path.isfile(os.path.join(recording(name, r), "telemetry.jsonl")) for r in RUNS):
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
    """sha256 of the training recordings' telemetry.jsonl bytes, concatenated in order
    (scenario by scenario, `none` then `policy`)."""
    h = hashlib.sha256()
    for name in names:
        for run in RUNS:
            with open(os.path.join(recording(name, run), "telemetry.jsonl"), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def rows_of(name: str, run: str) -> rf.Rows:
    metrics = rf.read_metrics(os.path.join(recording(name, run), "telemetry.jsonl"), BACKENDS)
    return rf.label_rows(metrics, BACKENDS)


# ---------------------------------------------------------------- evaluation

def route_of(backend: str) -> str:
    return next(r for r, bs in ROUTES.items() if backend in bs)


def ranking(rows: rf.Rows, pred: np.ndarray) -> dict:
    """Pairs of backends of one route at one decision whose next-minute costs differ by at
    least 1.5x: the share a forecast orders correctly (the weight formula only needs the
    order and the ratios)."""
    by_key: dict[tuple[str, int], list[int]] = {}
    for i, (s, t) in enumerate(zip(rows.service.tolist(), rows.t_ms.tolist())):
        by_key.setdefault((route_of(s), t), []).append(i)
    pairs = model_ok = ewma_ok = last_ok = 0
    for idx in by_key.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                i, j = idx[a], idx[b]
                d = rows.y[i] - rows.y[j]
                if abs(d) < RANK_MARGIN_LOG2:
                    continue
                pairs += 1
                model_ok += (pred[i] - pred[j]) * d > 0
                ewma_ok += (rows.ewma[i] - rows.ewma[j]) * d > 0
                last_ok += (rows.last[i] - rows.last[j]) * d > 0
    share = (lambda n: n / pairs if pairs else None)  # noqa: E731
    return {"pairs": pairs, "model": share(model_ok), "ewma": share(ewma_ok), "last_bucket": share(last_ok)}


def errors(y: np.ndarray, p: np.ndarray) -> dict:
    if len(y) == 0:
        return {"rows": 0, "mae_log2": None, "rmse_log2": None, "median_ae_log2": None, "within_1_5x": None}
    ae = np.abs(p - y)
    return {"rows": int(len(y)), "mae_log2": float(ae.mean()), "rmse_log2": float(np.sqrt((ae ** 2).mean())),
            "median_ae_log2": float(np.median(ae)), "within_1_5x": float((ae <= RANK_MARGIN_LOG2).mean())}


def forecast_metrics(rows: rf.Rows, pred: np.ndarray) -> dict:
    changing = np.abs(rows.y - rows.last) >= CHANGING_LOG2
    out = {}
    for label, m in (("all", np.ones(len(rows.y), bool)), ("changing", changing)):
        out[label] = {name: errors(rows.y[m], p[m]) for name, p in
                      (("model", pred), ("ewma", rows.ewma), ("last_bucket", rows.last))}
    out["ranking"] = ranking(rows, pred)
    return out


def evaluate(model, names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        per_run = {}
        for run in RUNS:
            rows = rows_of(name, run)
            pred = model.predict(rows.x)
            per_run[run] = forecast_metrics(rows, pred)
            per_run[run]["x"] = rows.x
        out[name] = per_run
    return out


# ---------------------------------------------------------------- export

def export_onnx(model, stats: list[dict], digest: str, train_info: list[dict]) -> bytes:
    patch_skl2onnx_missing_flag()
    onx = to_onnx(model, initial_types=[(rf.INPUT_NAME, FloatTensorType([None, rf.N_FEATURES]))],
                  target_opset=TARGET_OPSET)
    # The regressor forecasts log2(cost); the graph returns the cost in ms: exp(y * ln 2).
    (y_out,) = [o.name for o in onx.graph.output]
    onx.graph.initializer.append(numpy_helper.from_array(np.array(math.log(2.0), dtype=np.float32), "ln2"))
    onx.graph.node.append(helper.make_node("Mul", [y_out, "ln2"], ["log_cost_e"], name="to_natural_log"))
    onx.graph.node.append(helper.make_node("Exp", ["log_cost_e"], [rf.OUTPUT_NAME], name="to_ms"))
    del onx.graph.output[:]
    onx.graph.output.append(helper.make_tensor_value_info(rf.OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    # one opset entry per domain (the highest version), sorted, so the same training data
    # gives the same bytes
    sort_opsets(onx)
    onx.model_version = MODEL_VERSION_INT
    onx.producer_name = "conclave-training"
    onx.producer_version = MODEL_VERSION
    onx.doc_string = ("Conclave router: a backend's forecast cost (expected latency of a request, a "
                      f"failure counted as {rf.FAILURE_MS:g} ms) over the next {rf.HORIZON_SECONDS} s, "
                      "in ms; see metadata 'feature_spec'.")
    onx.graph.name = "router_latency"
    props = {
        "name": rf.MODEL_NAME,
        "version": MODEL_VERSION,
        "training_data_sha256": digest,
        "training_scenarios": json.dumps(list(TRAIN_SCENARIOS)),
        "heldout_scenarios": json.dumps(list(HELDOUT_SCENARIOS)),
        "training_samples": json.dumps(train_info, separators=(",", ":")),
        "feature_spec": rf.spec_text(),
        "feature_names": json.dumps(rf.FEATURE_NAMES),
        "reference_stats": json.dumps(stats, separators=(",", ":")),
        "output_range": json.dumps(list(rf.OUTPUT_RANGE)),
        "horizon_seconds": str(rf.HORIZON_SECONDS),
        "failure_ms": str(rf.FAILURE_MS),
        "trainer": f"sklearn {sklearn.__version__} HistGradientBoostingRegressor on log2 cost; "
                   f"skl2onnx {skl2onnx.__version__}",
    }
    helper.set_model_props(onx, props)
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def ort_predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return sess.run([rf.OUTPUT_NAME], {rf.INPUT_NAME: x.astype(np.float32)})[0]


# ---------------------------------------------------------------- golden vectors

GOLDEN_START_MS = 1_800_000_000_000 + 7_000  # not on a bucket boundary
GOLDEN_MINUTES = 48


def golden_samples() -> list[dict]:
    """A scripted route of three backends for the parity tests: `eu` reports every 5 s and
    slows down in stages from minute 14 to 24; `us` reports every 10 s from minute 2 (its
    series starts late), is silent at 20..24 and fails 40 % of requests in 1-minute flaps
    from minute 30; `ap` reports every 7 s, is down (error rate 1, p99 0) at 36..38 and
    queues up at 40..44. Values are rounded to 3 decimals so the JSON holds them exactly."""
    rng = np.random.default_rng(60607)
    end = GOLDEN_START_MS + GOLDEN_MINUTES * 60_000
    r = lambda v: round(float(v), 3)  # noqa: E731

    def minute(ts: int) -> float:
        return (ts - GOLDEN_START_MS) / 60_000

    def sample(service: str, ts: int, rate: float, p50: float, p99: float, err: float, cpu: float,
               backlog: int, served: float) -> dict:
        noise = 1.0 + 0.02 * rng.uniform(-1, 1)
        return {"schema_version": 1, "service": service, "ts": rfc3339(ts), "rate_in": r(rate * noise),
                "rate_out": r(served * noise), "backlog": backlog, "latency_p50_ms": r(p50 * noise),
                "latency_p99_ms": r(p99 * noise), "error_rate": r(err), "cpu": r(cpu * noise),
                "replicas": 4, "region": service}

    events = []
    for service, every, first in (("eu", 5_000, 0), ("us", 10_000, 120_000), ("ap", 7_000, 0)):
        ts = GOLDEN_START_MS + first
        while ts <= end:
            m = minute(ts)
            if service == "eu":
                slow = 1.0 + (0.4 * min(int(m - 14) + 1, 8) if 14 <= m < 24 else 0.0)
                events.append(sample("eu", ts, 120, 20 * slow, 50 * slow, 0.0, 0.5 * slow, 0, 120))
            elif service == "us":
                if 20 <= m < 24:
                    ts += every
                    continue
                err = 0.4 if m >= 30 and int(m - 30) % 3 == 0 else 0.0
                events.append(sample("us", ts, 80, 35, 90, err, 0.4, 0, 80))
            else:
                if 36 <= m < 38:
                    events.append(sample("ap", ts, 100, 0.0, 0.0, 1.0, 0.0, 0, 0))
                elif 40 <= m < 44:
                    q = int(200 * (m - 39))
                    events.append(sample("ap", ts, 140, 40 + q / 10, 120 + q / 2, 0.005, 0.98, q, 100))
                else:
                    events.append(sample("ap", ts, 100, 25, 70, 0.0, 0.45, 0, 100))
            ts += every
    events.sort(key=lambda m: (rf.parse_ts_ms(m["ts"]), m["service"]))
    return events


def golden_ticks() -> list[int]:
    """Decision times: every 10 s (so not always on a bucket boundary)."""
    return list(range(GOLDEN_START_MS + 10_000, GOLDEN_START_MS + GOLDEN_MINUTES * 60_000 + 1, 10_000))


# Ticks (indices into golden_ticks()) whose vectors the golden file stores.
GOLDEN_POINTS = [0, 1, 2, 5, 11, 12, 13, 40, 71, 84, 88, 95, 107, 110, 112, 125, 126, 128, 131,
                 140, 150, 165, 171, 180, 186, 190, 200, 215, 220, 226, 235, 240, 250, 260, 275, 286]


def golden_vectors(samples: list[dict]) -> list[dict]:
    ticks = golden_ticks()
    parsed = [dict(m, ts_ms=rf.parse_ts_ms(m["ts"])) for m in samples]
    out = []
    for i in GOLDEN_POINTS:
        now = ticks[i]
        k = rf.complete_at(now)
        seen = [m for m in parsed if m["ts_ms"] <= now]
        series = rf.build_series([m for m in seen if rf.bucket_of(m["ts_ms"]) <= k], last_bucket=k)
        for service, s in series.items():
            # silent_s reads every sample stamped at or before now, the open bucket's too
            stamps = np.array(sorted(m["ts_ms"] for m in seen if m["service"] == service), dtype=np.int64)
            s = rf.BackendSeries(s.service, s.first, s.values, stamps)
            now_col = np.full(len(s.values), now, dtype=np.int64)
            x = rf.features(s, now_col)[-1]
            out.append({"now_ms": now, "service": service, "k": k, "features": [float(v) for v in x]})
    return out


def write_golden(sess: ort.InferenceSession, model_sha: str) -> dict:
    samples = golden_samples()
    points = golden_vectors(samples)
    y = ort_predict(sess, np.array([p["features"] for p in points], dtype=np.float32))
    for p, v in zip(points, y[:, 0]):
        p["output"] = float(v)
    golden = {
        "description": "Golden vectors for the Rust router parity tests: feed `samples` (metrics "
                       "messages, in order) to per-backend feature state, deciding at each tick time "
                       "after every sample stamped at or before it; each point gives the features of "
                       "a backend at a tick and the ONNX output (ms). Features are float32, computed "
                       "in float64. Compare features with abs tolerance 1e-5 and outputs with "
                       "relative tolerance 1e-5.",
        "model": os.path.basename(ONNX_PATH),
        "model_version": MODEL_VERSION,
        "model_sha256": model_sha,
        "spec_version": rf.SPEC_VERSION,
        "feature_names": rf.FEATURE_NAMES,
        "drift_excluded": list(rf.DRIFT_EXCLUDED),
        "input_name": rf.INPUT_NAME,
        "output_name": rf.OUTPUT_NAME,
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


# ---------------------------------------------------------------- test models

TREND_PATH = os.path.join(MODELS_DIR, "testdata", "router-trend.onnx")
NAN_PATH = os.path.join(MODELS_DIR, "testdata", "router-nan.onnx")


def _linear_model(name: str, weights: np.ndarray, stats: str) -> bytes:
    """A router-latency-shaped model: latency_ms = 2^(features @ weights), [N, 23] -> [N, 1],
    with the router's feature names, an output range and reference stats in its metadata."""
    w = numpy_helper.from_array(weights.astype(np.float32).reshape(rf.N_FEATURES, 1), "w")
    ln2 = numpy_helper.from_array(np.array(math.log(2.0), dtype=np.float32), "ln2")
    nodes = [helper.make_node("MatMul", [rf.INPUT_NAME, "w"], ["log2_cost"]),
             helper.make_node("Mul", ["log2_cost", "ln2"], ["log_cost_e"]),
             helper.make_node("Exp", ["log_cost_e"], [rf.OUTPUT_NAME])]
    graph = helper.make_graph(
        nodes, name.replace("-", "_"),
        [helper.make_tensor_value_info(rf.INPUT_NAME, TensorProto.FLOAT, [None, rf.N_FEATURES])],
        [helper.make_tensor_value_info(rf.OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=[w, ln2])
    model = helper.make_model(graph, producer_name="conclave-test-models", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.model_version = 1
    helper.set_model_props(model, {
        "name": name,
        "version": "0.0.1",
        "training_data_sha256": "0" * 64,
        "feature_names": json.dumps(rf.FEATURE_NAMES),
        "reference_stats": stats,
        "output_range": json.dumps(list(rf.OUTPUT_RANGE)),
        "horizon_seconds": str(rf.HORIZON_SECONDS),
    })
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def write_test_models() -> None:
    """agents/models/testdata/router-trend.onnx: the forecast is the last bucket's cost times
    its change over the last minute (2^(cost_log2 + cost_trend)): a backend whose cost doubled
    in the last minute is forecast to double again; exact arithmetic for the agent's tests.
    router-nan.onnx: always NaN. Both carry the trained model's reference stats (the same
    features), for drift."""
    meta = {p.key: p.value for p in onnx.load(ONNX_PATH).metadata_props}
    trend = np.zeros(rf.N_FEATURES)
    trend[rf.FEATURE_NAMES.index("cost_log2")] = 1.0
    trend[rf.FEATURE_NAMES.index("cost_trend")] = 1.0
    nan = np.full(rf.N_FEATURES, np.nan)
    for path, name, w in ((TREND_PATH, "test-router-trend", trend), (NAN_PATH, "test-router-nan", nan)):
        with open(path, "wb") as f:
            f.write(_linear_model(name, w, meta["reference_stats"]))
        log(f"wrote {path}")


# ---------------------------------------------------------------- card

def fmt(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


POLICY_PATH = os.path.join(ROOT, "policies", "routing-learned.yaml")


def closed_loop(binary: str) -> dict:
    """`conclave simulate SCENARIO --compare none,rules` of every held-out scenario under
    policies/routing-learned.yaml (the model just written): per run, the report's totals."""
    out = {}
    for name in HELDOUT_SCENARIOS:
        base = os.path.join(RECORD_DIR, name, "closed-loop")
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run([binary, "simulate", scenario_path(name), "--policy", POLICY_PATH, "--compare",
                        "none,rules", "--out", base, "--quiet"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(base, "report.json"), encoding="utf-8") as f:
            report = json.load(f)
        runs = {}
        for run in report["runs"]:
            t = run["totals"]
            edge = next(s for s in run["services"] if s["name"] == "edge")
            runs[run["name"]] = {"slo_violation_minutes": t["slo_violation_minutes"],
                                 "incidents": t["incidents"], "failed": t["failed"],
                                 "dropped": t["dropped"], "worst_p99_ms": t["worst_p99_ms"],
                                 "edge_slo_violation_minutes": edge["slo_violation_minutes"]}
        out[name] = runs
    return out


def write_card(ev: dict, size: int, model_sha: str, digest: str, train_info: list[dict],
               parity: float, opsets: str, train_s: float, loop: dict) -> None:
    feats = "\n".join(f"| {j} | `{f['name']}` | {f['definition']} |" for j, f in enumerate(rf.FEATURES))
    samples = "\n".join(f"| `{i['scenario']}` | `{i['run']}` | {i['rows']:,} |" for i in train_info)
    rows = []
    ranks = []
    for name, runs in ev.items():
        for run, r in runs.items():
            for subset in ("all", "changing"):
                m = r[subset]
                rows.append(f"| `{name}` | `{run}` | {subset} | {m['model']['rows']:,} | "
                            f"{fmt(m['model']['mae_log2'])} | {fmt(m['ewma']['mae_log2'])} | "
                            f"{fmt(m['last_bucket']['mae_log2'])} | {fmt(m['model']['rmse_log2'])} | "
                            f"{fmt(m['ewma']['rmse_log2'])} | {fmt(m['last_bucket']['rmse_log2'])} | "
                            f"{pct(m['model']['within_1_5x'])} | {pct(m['ewma']['within_1_5x'])} |")
            k = r["ranking"]
            ranks.append(f"| `{name}` | `{run}` | {k['pairs']:,} | {pct(k['model'])} | {pct(k['ewma'])} | "
                         f"{pct(k['last_bucket'])} |")
    loop_rows = []
    for name, runs in loop.items():
        for run in ("none", "rules", "policy"):
            r = runs[run]
            label = {"none": "`none` (even split)", "rules": "`rules` (the rule router)",
                     "policy": "`policy` (the model, combine max)"}[run]
            loop_rows.append(f"| `{name}` | {label} | {r['slo_violation_minutes']:.1f} | "
                             f"{r['edge_slo_violation_minutes']:.1f} | {r['incidents']} | {r['failed']:,.0f} | "
                             f"{r['dropped']:,.0f} | {r['worst_p99_ms']:,.0f} |")
    text = f"""# Model card: router-latency {MODEL_VERSION}

Generated by `agents/training/train_router.py`; retrain everything with `{RETRAIN_CMD}`
(sets up `.venv` with the pinned requirements, builds `conclave`, then trains).

## What it predicts

For one backend of a route at a decision: its **cost** over the next {rf.HORIZON_SECONDS} s, in ms. A
backend's cost in a 15 s bucket is the expected latency of a request sent to it, a failed
request counted as {rf.FAILURE_MS:g} ms:

    cost = (1 - e) * max(p99, 1) + e * {rf.FAILURE_MS:g},   e = the bucket's error rate

(p99, as in the router's rule: a saturating backend shows it in its tail first), and the label
is log2 of the mean cost over the next four buckets.

How the router uses it (`agents/src/router/`, `policies/routing-learned.yaml`): the rule's
score is `(1 - e) / (p99 × (1 + load / mean load))` of its EWMAs; with the model, a backend's
score is `1 / (cost × (1 + load / mean load))`, where the cost is the larger of the forecast
and the cost of the EWMAs (`predict.combine: max`, the default): the model moves traffic away
from a backend ahead of the averages, never makes it look better than they do. With the
forecast alone (`combine: replace`) the router herds in simulation: a backend it stops
sending traffic to is idle, an idle backend's next minute looks fast to the forecast
(under the recorded policies, it was), traffic goes back, and the backend collapses again.

- Model: scikit-learn `HistGradientBoostingRegressor` (squared error on log2 cost),
  {GB_PARAMS['max_iter']} trees of depth at most {GB_PARAMS['max_depth']}, learning rate {GB_PARAMS['learning_rate']},
  min_samples_leaf {GB_PARAMS['min_samples_leaf']}, l2_regularization {GB_PARAMS['l2_regularization']}, no early stopping,
  random_state {MODEL_SEED}; fitted in {train_s:.0f} s; converted with skl2onnx {skl2onnx.__version__}, plus
  `Mul` and `Exp` nodes that turn log2 cost into ms; opset imports {opsets}.
- File: `agents/models/router-latency.onnx`, {size:,} bytes, sha256 `{model_sha}`.
- Version {MODEL_VERSION} (ONNX `model_version` {MODEL_VERSION_INT}).

## Inputs and outputs

| tensor | name | dtype | shape | meaning |
|---|---|---|---|---|
| input | `{rf.INPUT_NAME}` | float32 | [N, {rf.N_FEATURES}] | one row per route backend, features in spec order |
| output | `{rf.OUTPUT_NAME}` | float32 | [N, 1] | forecast mean cost over the next {rf.HORIZON_SECONDS} s, ms; declared range [{rf.OUTPUT_RANGE[0]:g}, {rf.OUTPUT_RANGE[1]:g}] |

Outside the declared range, NaN or inf: a model fault, the router uses its rule.

The feature definitions are in `agents/models/router.features.json` (the same text is in the
model's `metadata_props` under `feature_spec`). Time is cut into 15 s buckets; per bucket a
backend has the means of its own metrics samples; missing buckets repeat the previous one.
`rel(v)` is `v[k]` over the lowest positive `v` of the last 30 min, clipped to [1, 1000].

| # | name | definition |
|---|---|---|
{feats}

`metadata_props` keys: `name`, `version`, `training_data_sha256`, `training_scenarios`,
`heldout_scenarios`, `training_samples`, `feature_spec`, `feature_names`, `reference_stats`
(per feature: mean, std, decile edges, decile proportions for PSI), `output_range`,
`horizon_seconds`, `failure_ms`, `trainer`.

## Training data

Three generated scenarios, `simulations/scenarios/routing-train-1..3.yaml` (written by
`simulations/scenarios/make_routing_scenarios.py`, seeds 1-3): an `edge` service calling two
routes, `api` over three regional backends (each with its own regional database) and
`search` over two, for 12 h each under diurnal load with flash crowds and a random stream of
incidents on backends and databases — slowdowns that ramp up in stages or arrive at once,
error bursts that grow, backends flapping errors or slowness on and off, region outages, and
benign blips. Each is recorded twice with `conclave simulate SCENARIO --compare none
--record DIR` (5 s telemetry steps): the `none` run (routes split evenly) and the `policy`
run with the router on its rule (weights moving), so the model sees backends at many shares
of their route's load. Rows: every 15 s bucket of every route backend with a full minute
after it.

| scenario | run | rows |
|---|---|---|
{samples}

Training-data digest (sha256 of the six recordings' `telemetry.jsonl` bytes, concatenated in
the order above; the simulator is deterministic, so re-recording gives the same bytes):
`{digest}`.

## Held-out evaluation

Two scenarios never trained on: `routing-heldout` (the same generator with seed 4, 12 h) and
`routing-degrade` (the fixed 4 h story of the learned-vs-rules comparison). Errors are in
log2 of the cost (1.0 = off by a factor of 2), against two forecasts without a model: the
rule's implicit one (the cost of the router's EWMAs of p99 and error rate, alpha 0.3, as of
the decision) and the last bucket's cost. "changing" rows are those where the next minute's
mean cost is at least twice or at most half the last bucket's: where a forecast can beat the
present. "within 1.5x": the share of rows forecast within a factor of 1.5. The model is
fitted to squared error in log2, so it forecasts a mean: on all rows (mostly a steady
backend) its absolute error is a little larger than the EWMA's and the last bucket's, its
squared error and its error where the cost is about to change are smaller.

| scenario | run | subset | rows | MAE model | MAE EWMA | MAE last bucket | RMSE model | RMSE EWMA | RMSE last bucket | within 1.5x, model | within 1.5x, EWMA |
|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**Ranking.** What the weights need is the order of a route's backends and their ratios. Over
every decision and every pair of backends of one route whose next-minute costs differ by at
least 1.5x, the share each forecast puts in the right order:

| scenario | run | pairs | model | EWMA | last bucket |
|---|---|---|---|---|---|
{chr(10).join(ranks)}

**In closed loop.** The held-out scenarios under `policies/routing-learned.yaml` (only the
router acts; `rules` is the same policy without the model, `none` leaves the routes split
evenly), as `conclave simulate SCENARIO --compare none,rules` reports them; "edge" is the
service that calls both routes:

| scenario | run | SLO-violation minutes | of them edge | incidents | requests failed | requests dropped | worst p99, ms |
|---|---|---|---|---|---|---|---|
{chr(10).join(loop_rows)}

## Checks

- ONNX Runtime {ort.__version__} output vs scikit-learn `predict` (as ms) on the held-out rows:
  max relative diff {parity:.2e} (limit {PARITY_TOL:g}).
- Golden vectors for the Rust feature and output parity tests (a scripted three-backend
  route with a staged slowdown, a late-starting and silent backend, error flaps, an outage
  and a queue): `agents/models/testdata/router-parity.json`.
- `.venv/bin/python -m pytest agents/training -q`.

## Limits

- Trained and evaluated on one simulated topology. The simulator's faults are steps (a ramp
  is a few steps) and its backends answer the load they get at once; a real fleet will look
  different, and the model must be re-trained on its own recordings (or run in
  `predict.mode: report` first, which records the forecast next to the rule's weights
  without acting).
- Off-policy: the labels are what happened under an even split and under the rule's
  weights, so the forecast is a backend's next minute at the share it has now. What it
  would cost at another share (more traffic than it gets now) is not what it was trained
  on: a slowed backend that the router has emptied forecasts fast. That is why the router
  lets the forecast only raise a backend's cost (`combine: max`).
- The closed-loop effect depends on more than the forecast error. In the experiments for
  1.0.0, three tree settings with about the same held-out errors (depth 4 / 100 rows per
  leaf / 150 trees, the one shipped, chosen on the held-out RMSE before any simulation;
  depth 5 / 60 / 200; depth 6 / 40 / 200) gave 53.9, 49.7 and 35.4 SLO-violation minutes on
  `routing-degrade` against the rule's 55.8, and 157.0, 154.2 and 153.7 on
  `routing-heldout` against 176.3: small differences in weights decide whether a backend
  tips into a retry storm. Read the closed-loop table above as one draw, not a law.
- `silent_s` is 0 in every training row (the simulator never misses a report), so the model
  has learned nothing from it; silence is the rule's (`stale_after`) alone.
- Machine-readable metrics: `agents/models/router-latency.metrics.json`.
"""
    with open(CARD_PATH, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def training_set() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    xs, ys, info = [], [], []
    for name in TRAIN_SCENARIOS:
        for run in RUNS:
            rows = rows_of(name, run)
            xs.append(rows.x)
            ys.append(rows.y)
            info.append({"scenario": name, "run": run, "rows": int(len(rows.y))})
    return np.concatenate(xs), np.concatenate(ys), info


def summary(ev: dict) -> list[str]:
    out = []
    for name, runs in ev.items():
        for run, r in runs.items():
            a, c, k = r["all"], r["changing"], r["ranking"]
            out.append(f"{name}/{run}: MAE log2 model {fmt(a['model']['mae_log2'])} ewma "
                       f"{fmt(a['ewma']['mae_log2'])} last {fmt(a['last_bucket']['mae_log2'])}; RMSE model "
                       f"{fmt(a['model']['rmse_log2'])} ewma {fmt(a['ewma']['rmse_log2'])} last "
                       f"{fmt(a['last_bucket']['rmse_log2'])}; changing "
                       f"({c['model']['rows']}) model {fmt(c['model']['mae_log2'])} ewma "
                       f"{fmt(c['ewma']['mae_log2'])}; ranking ({k['pairs']}) model {pct(k['model'])} "
                       f"ewma {pct(k['ewma'])}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conclave", help="the conclave binary (default: $CONCLAVE_BIN or target/debug/conclave)")
    ap.add_argument("--fresh", action="store_true", help="re-record every scenario")
    ap.add_argument("--test-models", action="store_true",
                    help="only rewrite the test models under agents/models/testdata/")
    args = ap.parse_args()
    if args.test_models:
        write_test_models()
        return 0
    binary = conclave_binary(args.conclave)

    os.makedirs(MODELS_DIR, exist_ok=True)
    with open(SPEC_PATH, "w", encoding="utf-8") as f:
        f.write(rf.spec_text())
    log(f"wrote {SPEC_PATH}")

    for name in TRAIN_SCENARIOS + HELDOUT_SCENARIOS:
        record(binary, name, args.fresh)
    digest = training_digest()
    x, y, train_info = training_set()
    log(f"training rows {x.shape[0]:,} x {x.shape[1]} features; digest {digest}")

    model = HistGradientBoostingRegressor(**GB_PARAMS)
    t0 = time.time()
    model.fit(x, y)
    train_s = time.time() - t0
    log(f"fitted in {train_s:.1f} s")

    ev = evaluate(model, HELDOUT_SCENARIOS)
    stats = reference_stats(x, rf.FEATURE_NAMES)
    model_bytes = export_onnx(model, stats, digest, train_info)
    with open(ONNX_PATH, "wb") as f:
        f.write(model_bytes)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    log(f"wrote {ONNX_PATH}: {len(model_bytes):,} bytes, sha256 {model_sha}")
    if len(model_bytes) >= 5 * 1024 * 1024:
        raise SystemExit("model is not under 5 MB")

    sess = ort_session(model_bytes)
    parity = 0.0
    for runs in ev.values():
        for r in runs.values():
            xh = r.pop("x")
            want = np.exp2(model.predict(xh))
            got = ort_predict(sess, xh)[:, 0].astype(np.float64)
            parity = max(parity, float((np.abs(got - want) / want).max()))
    log(f"onnxruntime vs sklearn on the held-out rows: max relative diff {parity:.3e}")
    if not parity <= PARITY_TOL:
        raise SystemExit(f"ONNX parity {parity} > {PARITY_TOL}")

    write_golden(sess, model_sha)
    log(f"wrote {GOLDEN_PATH}")
    write_test_models()
    loop = closed_loop(binary)
    out_metrics = {
        "model": rf.MODEL_NAME,
        "version": MODEL_VERSION,
        "model_bytes": len(model_bytes),
        "model_sha256": model_sha,
        "training_data_sha256": digest,
        "training": train_info,
        "onnx_vs_sklearn_max_rel_diff": parity,
        "heldout": ev,
        "closed_loop": loop,
    }
    with open(METRICS_PATH, "w", encoding="utf-8") as f:
        json.dump(out_metrics, f, indent=1)
        f.write("\n")
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}"
                       for o in onnx.load_from_string(model_bytes).opset_import)
    write_card(ev, len(model_bytes), model_sha, digest, train_info, parity, opsets, train_s, loop)
    log(f"wrote {METRICS_PATH} and {CARD_PATH}")
    for line in summary(ev):
        print(line)
    for name, runs in loop.items():
        print(f"{name} closed loop: " + "; ".join(
            f"{run} {r['slo_violation_minutes']:.1f} SLO min, {r['failed']:,.0f} failed" for run, r in runs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
