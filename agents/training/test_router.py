"""Tests of the router feature pipeline, its label and baselines, the scenarios and the
exported model.

    .venv/bin/python -m pytest agents/training -q
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conclave_training import router_features as rf  # noqa: E402
import train_router  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> dict:
    with open(train_router.GOLDEN_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(train_router.ONNX_PATH)


@pytest.fixture(scope="module")
def meta(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def parsed(samples: list[dict]) -> list[dict]:
    return [dict(m, ts_ms=rf.parse_ts_ms(m["ts"])) for m in samples]


# ------------------------------------------------------------ a literal reading of the spec

def literal_features(samples: list[dict], service: str, now_ms: int) -> list[float] | None:
    """router.features.json read literally: per-bucket dictionaries, loops, no numpy. Used
    to check the vectorised implementation (and so, through the golden file, Rust)."""
    k = now_ms // 15000
    own: dict[int, list[dict]] = {}
    stamps = []
    for m in samples:
        if m["service"] != service or m["ts_ms"] > now_ms:
            continue
        stamps.append(m["ts_ms"])
        j = math.ceil(m["ts_ms"] / 15000)
        if j <= k:
            own.setdefault(j, []).append(m)
    if not own:
        return None
    f = min(own)
    values: dict[int, dict] = {}
    cur: dict = {}
    fields = (("err", "error_rate"), ("p50", "latency_p50_ms"), ("p99", "latency_p99_ms"), ("cpu", "cpu"),
              ("backlog", "backlog"), ("rate_in", "rate_in"), ("rate_out", "rate_out"))
    for j in range(f, k + 1):
        ms = own.get(j, [])
        if ms:
            cur = {key: sum(float(m[field]) for m in ms) / len(ms) for key, field in fields}
        values[j] = dict(cur)

    def v(key: str, j: int) -> float:
        return values[max(j, f)][key]

    def cost(j: int) -> float:
        e = min(max(v("err", j), 0.0), 1.0)
        return (1 - e) * max(v("p99", j), 1.0) + e * 5000.0

    def mean(get, a: int, b: int) -> float:
        return sum(get(k - i) for i in range(a, b + 1)) / (b - a + 1)

    def clip(x: float, lo: float, hi: float) -> float:
        return min(max(x, lo), hi)

    def rel(key: str) -> float:
        if v(key, k) <= 0:
            return 1.0
        base = min(v(key, k - i) for i in range(120) if v(key, k - i) > 0)
        return clip(v(key, k) / base, 1.0, 1000.0)

    def err(j: int) -> float:
        return v("err", j)

    m1 = mean(cost, 0, 3)
    jumps = sum(1 for i in range(0, 39) if abs(math.log2(cost(k - i) / cost(k - i - 1))) >= 1.0)
    return [
        math.log2(cost(k)),
        math.log2(m1),
        clip(math.log2(cost(k) / cost(k - 4)), -10, 10),
        clip(math.log2(m1 / mean(cost, 16, 19)), -10, 10),
        math.log2(max(cost(k - i) for i in range(40))),
        float(jumps),
        math.log2(max(v("p99", k), 1.0)),
        rel("p99"),
        clip(math.log2(max(v("p99", k), 1) / max(v("p99", k - 4), 1)), -10, 10),
        clip(v("p99", k) / max(v("p50", k), 1), 0, 1000),
        v("err", k),
        mean(err, 0, 3),
        mean(err, 0, 3) - mean(err, 4, 7),
        max(err(k - i) for i in range(40)),
        mean(err, 0, 39),
        clip(v("cpu", k), 0, 10),
        clip(v("cpu", k) - v("cpu", k - 4), -10, 10),
        clip(v("backlog", k) / max(v("rate_out", k), 1), 0, 3600),
        clip((v("backlog", k) - v("backlog", k - 4)) / max(v("rate_out", k), 1), -3600, 3600),
        clip((v("rate_in", k) - v("rate_out", k)) / max(v("rate_in", k), 1), -1, 1),
        clip(v("rate_in", k) / max(mean(lambda j: v("rate_in", j), 0, 119), 0.01), 0, 100),
        clip((now_ms - max(stamps)) / 1000, 0, 3600),
        min(k - f + 1, 120) / 120,
    ]


# ------------------------------------------------------------ features

def test_golden_samples_are_reproducible(golden):
    assert golden["samples"] == train_router.golden_samples()
    assert golden["ticks_ms"] == train_router.golden_ticks()


def test_features_are_deterministic_and_match_the_golden_file(golden):
    points = train_router.golden_vectors(golden["samples"])
    assert len(points) == len(golden["points"]) > 90
    for got, want in zip(points, golden["points"]):
        assert (got["now_ms"], got["service"], got["k"]) == (want["now_ms"], want["service"], want["k"])
        assert got["features"] == want["features"]


def test_features_match_a_literal_reading_of_the_spec(golden):
    samples = parsed(golden["samples"])
    for p in golden["points"]:
        lit = literal_features(samples, p["service"], p["now_ms"])
        assert lit is not None
        for name, a, b in zip(rf.FEATURE_NAMES, lit, p["features"]):
            assert float(np.float32(a)) == pytest.approx(b, abs=1e-5), (name, p["service"], p["now_ms"])


def test_feature_rows_do_not_depend_on_the_future(golden):
    """The training rows (all buckets at once) equal the rows built from the samples up to
    each decision."""
    samples = parsed(golden["samples"])
    full = rf.build_series(samples)
    for service, s in full.items():
        x = rf.features(s)
        for i in (0, 5, 40, 100, len(x) - 1):
            k = s.first + i
            now = k * rf.BUCKET_MS
            lit = literal_features(samples, service, now)
            assert np.allclose(x[i], np.float32(lit), atol=1e-5), (service, k)


def test_gaps_repeat_the_previous_bucket_and_silence_is_measured():
    samples = parsed(train_router.golden_samples())
    s = rf.build_series(samples)["us"]
    # us starts at minute 2 and is silent at 20..24: its series starts late and carries
    # its last bucket through the gap.
    assert s.first * rf.BUCKET_MS >= train_router.GOLDEN_START_MS + 120_000
    now = train_router.GOLDEN_START_MS + 23 * 60_000
    lit = literal_features(samples, "us", now)
    assert lit[rf.FEATURE_NAMES.index("silent_s")] > 170.0
    assert lit[rf.FEATURE_NAMES.index("p99_log2")] == pytest.approx(math.log2(90), abs=0.05)


# ------------------------------------------------------------ label and baselines

def series_of(err: list[float], p99: list[float]) -> rf.BackendSeries:
    n = len(err)
    values = np.zeros((n, len(rf.SIGNALS)))
    values[:, rf.SIGNALS.index("err")] = err
    values[:, rf.SIGNALS.index("p99")] = p99
    values[:, rf.SIGNALS.index("p50")] = np.array(p99) / 2
    return rf.BackendSeries("b", 1000, values, np.arange(1000, 1000 + n) * rf.BUCKET_MS)


def test_cost_counts_a_failure_as_five_seconds():
    assert rf.cost_of(np.array([0.0, 0.01, 1.0, 0.0]), np.array([40.0, 40.0, 0.0, 0.0])).tolist() == \
        [40.0, 0.99 * 40.0 + 50.0, 5000.0, 1.0]


def test_the_label_is_the_mean_cost_of_the_next_minute():
    p99 = [100.0] * 10 + [200.0, 400.0, 800.0, 1600.0] + [100.0] * 6
    err = [0.0] * 20
    metrics = []
    for j, (e, p) in enumerate(zip(err, p99)):
        metrics.append({"service": "b", "ts_ms": (1000 + j) * rf.BUCKET_MS, "error_rate": e,
                        "latency_p50_ms": p / 2, "latency_p99_ms": p, "cpu": 0.5, "backlog": 0,
                        "rate_in": 10.0, "rate_out": 10.0})
    rows = rf.label_rows(metrics, ["b"])
    assert len(rows.y) == 20 - rf.HORIZON_BUCKETS
    # at bucket 9 the next minute is buckets 10..13: 200, 400, 800, 1600
    assert rows.y[9] == pytest.approx(math.log2((200 + 400 + 800 + 1600) / 4))
    assert rows.y[0] == pytest.approx(math.log2(100))
    assert rows.last[10] == pytest.approx(math.log2(200))
    assert rows.t_ms[9] == 1009 * rf.BUCKET_MS
    # the rule's EWMA (alpha 0.3, one sample per bucket here) at bucket 10: 0.3*200 + 0.7*100
    assert rows.ewma[10] == pytest.approx(math.log2(130))


def test_ranking_counts_pairs_a_forecast_orders_right(monkeypatch):
    monkeypatch.setattr(train_router, "ROUTES", {"r": ["a", "b", "c"]})
    rows = rf.Rows(x=np.zeros((3, rf.N_FEATURES), np.float32), y=np.array([1.0, 3.0, 3.1]),
                   ewma=np.array([2.0, 1.0, 0.0]), last=np.array([1.0, 2.0, 3.0]),
                   service=np.array(["a", "b", "c"]), t_ms=np.array([0, 0, 0]))
    r = train_router.ranking(rows, np.array([0.0, 5.0, 9.0]))
    # only a-b and a-c differ by 1.5x or more
    assert r == {"pairs": 2, "model": 1.0, "ewma": 0.0, "last_bucket": 1.0}


# ------------------------------------------------------------ spec, metadata, model

def test_spec_file_is_the_module_spec(meta):
    with open(train_router.SPEC_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == rf.spec_text() == meta["feature_spec"]
    spec = json.loads(text)
    assert spec["feature_names"] == rf.FEATURE_NAMES == json.loads(meta["feature_names"])
    assert spec["input"]["shape"] == ["N", rf.N_FEATURES] == ["N", 23]
    assert spec["output"]["range"] == [1.0, 600000.0] == json.loads(meta["output_range"])
    assert spec["drift_excluded"] == list(rf.DRIFT_EXCLUDED)
    assert set(rf.DRIFT_EXCLUDED) < set(rf.FEATURE_NAMES)


def test_metadata_and_reference_stats(meta):
    assert meta["name"] == rf.MODEL_NAME and meta["version"] == train_router.MODEL_VERSION
    stats = json.loads(meta["reference_stats"])
    assert [s["name"] for s in stats] == rf.FEATURE_NAMES
    for s in stats:
        assert len(s["decile_edges"]) == 9 and len(s["proportions"]) == 10
        assert sum(s["proportions"]) == pytest.approx(1.0)
        assert s["decile_edges"] == sorted(s["decile_edges"])
    assert meta["horizon_seconds"] == "60" and meta["failure_ms"] == "5000.0"
    assert len(meta["training_data_sha256"]) == 64


def test_model_signature_and_size(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 23)
    assert (out.name, out.type, out.shape[1]) == ("latency_ms", "tensor(float)", 1)
    assert os.path.getsize(train_router.ONNX_PATH) < 5 * 1024 * 1024


def test_onnx_outputs_match_golden(golden):
    with open(train_router.ONNX_PATH, "rb") as f:
        data = f.read()
    assert golden["model_sha256"] == hashlib.sha256(data).hexdigest(), \
        "golden vectors are stale: retrain with agents/training/train_all.sh"
    sess = train_router.ort_session(data)
    x = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    y = train_router.ort_predict(sess, x)[:, 0]
    want = np.array([p["output"] for p in golden["points"]])
    assert np.allclose(y, want, rtol=golden["tolerance"], atol=0)
    assert np.all((y >= 1.0) & (y <= 600000.0))


def test_a_failing_backend_is_forecast_to_cost_more(golden):
    """Rows of a backend failing 40 % of requests in its last bucket (the golden us flaps)
    are forecast to cost more than the same backend's rows without errors in 10 minutes."""
    sess = train_router.ort_session(open(train_router.ONNX_PATH, "rb").read())
    us = [p for p in golden["points"] if p["service"] == "us"]
    err = rf.FEATURE_NAMES.index("err")
    err_max = rf.FEATURE_NAMES.index("err_max_10m")
    failing = [p["output"] for p in us if p["features"][err] >= 0.1]
    calm = [p["output"] for p in us if p["features"][err_max] == 0.0]
    assert failing and calm
    assert min(failing) > max(calm)
    # and the model's output moves with its input: log2 cost up by 3 (8x) costs more
    x = np.array([p["features"] for p in us], dtype=np.float32)
    worse = x.copy()
    worse[:, rf.FEATURE_NAMES.index("cost_log2")] += 3.0
    worse[:, rf.FEATURE_NAMES.index("cost_1m_log2")] += 3.0
    worse[:, rf.FEATURE_NAMES.index("p99_log2")] += 3.0
    assert np.mean(train_router.ort_predict(sess, worse)) > np.mean(train_router.ort_predict(sess, x))


def test_test_models_compute_what_they_say(meta):
    x = np.zeros((2, rf.N_FEATURES), np.float32)
    x[0, rf.FEATURE_NAMES.index("cost_log2")] = math.log2(120)
    x[0, rf.FEATURE_NAMES.index("cost_trend")] = math.log2(1.2)
    x[1, rf.FEATURE_NAMES.index("cost_log2")] = math.log2(100)
    trend = train_router.ort_session(open(train_router.TREND_PATH, "rb").read())
    assert train_router.ort_predict(trend, x)[:, 0] == pytest.approx([144.0, 100.0], rel=1e-5)
    nan = train_router.ort_session(open(train_router.NAN_PATH, "rb").read())
    assert np.isnan(train_router.ort_predict(nan, x)).all()
    for path in (train_router.TREND_PATH, train_router.NAN_PATH):
        m = {p.key: p.value for p in onnx.load(path).metadata_props}
        assert json.loads(m["feature_names"]) == rf.FEATURE_NAMES
        assert m["reference_stats"] == meta["reference_stats"]


def test_heldout_scenarios_are_not_in_training(meta):
    train = json.loads(meta["training_scenarios"])
    heldout = json.loads(meta["heldout_scenarios"])
    assert train == list(train_router.TRAIN_SCENARIOS)
    assert heldout == list(train_router.HELDOUT_SCENARIOS)
    assert not set(train) & set(heldout)
    samples = json.loads(meta["training_samples"])
    assert [(s["scenario"], s["run"]) for s in samples] == \
        [(n, r) for n in train for r in train_router.RUNS]
    for name in train + heldout:
        assert os.path.isfile(train_router.scenario_path(name)), name
    with open(train_router.METRICS_PATH, encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["training_data_sha256"] == meta["training_data_sha256"]
    assert set(metrics["heldout"]) == set(heldout)
    recorded = [os.path.join(train_router.recording(n, r), "telemetry.jsonl")
                for n in train for r in train_router.RUNS]
    if all(os.path.isfile(p) for p in recorded):
        assert meta["training_data_sha256"] == train_router.training_digest()
        assert meta["training_data_sha256"] != train_router.training_digest(tuple(train[:-1]))


def test_scenario_files_are_what_the_generator_writes():
    path = os.path.join(train_router.SCENARIOS_DIR, "make_routing_scenarios.py")
    spec = importlib.util.spec_from_file_location("make_routing_scenarios_fresh", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    files = gen.scenarios()
    assert set(files) == {f"{n}.yaml" for n in train_router.TRAIN_SCENARIOS + train_router.HELDOUT_SCENARIOS}
    for name, text in files.items():
        with open(os.path.join(train_router.SCENARIOS_DIR, name), encoding="utf-8") as f:
            assert f.read() == text, f"{name} is stale: rerun make_routing_scenarios.py"
    # the trainer's routes are the scenarios' routes
    assert train_router.ROUTES == gen.ROUTES
    assert "routes:\n      api: [api-euw, api-euc, api-use]\n      search: [search-euw, search-use]" \
        in files["routing-degrade.yaml"]
