"""Tests of the breaker feature pipeline, its label, the scenarios and the exported model.

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

from conclave_training import breaker_features as bf  # noqa: E402
import compare_breaker  # noqa: E402
import train_breaker  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> dict:
    with open(train_breaker.GOLDEN_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(train_breaker.ONNX_PATH)


@pytest.fixture(scope="module")
def meta(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def parsed(samples: list[dict]) -> list[dict]:
    return [dict(m, ts_ms=bf.parse_ts_ms(m["ts"])) for m in samples]


# ------------------------------------------------------------ a literal reading of the spec

def literal_features(samples: list[dict], service: str, k: int) -> list[float] | None:
    """breaker.features.json read literally: per-bucket dictionaries, loops, no numpy.
    Used to check the vectorised implementation (and so, through the golden file, Rust)."""
    own: dict[int, list[dict]] = {}
    callers: dict[int, list[dict]] = {}
    for m in samples:
        j = math.ceil(m["ts_ms"] / 15000)
        if j > k:
            continue
        if m["service"] == service:
            own.setdefault(j, []).append(m)
        for d in m.get("dependencies", []):
            if d["service"] == service and m["service"] != service:
                callers.setdefault(j, []).append(d)
    if not own:
        return None
    f = min(own)
    values: dict[int, dict] = {}
    cur = {"err": 0.0, "p50": 0.0, "p99": 0.0, "cpu": 0.0, "backlog": 0.0, "rate_in": 0.0,
           "rate_out": 0.0, "dep_err": 0.0, "dep_p99": 0.0, "caller_err": 0.0, "caller_p99": 0.0,
           "caller_has": 0.0}
    for j in range(min(list(own) + list(callers)), k + 1):
        ms = own.get(j, [])
        if ms:
            n = len(ms)
            for key, field in (("err", "error_rate"), ("p50", "latency_p50_ms"), ("p99", "latency_p99_ms"),
                               ("cpu", "cpu"), ("backlog", "backlog"), ("rate_in", "rate_in"),
                               ("rate_out", "rate_out")):
                cur[key] = sum(float(m[field]) for m in ms) / n
            de, dp = [], []
            for m in ms:
                live = [d for d in m.get("dependencies", []) if d["service"] != service and d["calls_per_s"] > 0]
                de.append(max([d["error_rate"] for d in live], default=0.0))
                dp.append(max([d["latency_p99_ms"] for d in live], default=0.0))
            cur["dep_err"], cur["dep_p99"] = sum(de) / n, sum(dp) / n
        ds = callers.get(j, [])
        if ds:
            calls = sum(d["calls_per_s"] for d in ds)
            if calls > 0:
                cur["caller_err"] = sum(d["calls_per_s"] * d["error_rate"] for d in ds) / calls
                cur["caller_p99"] = max(d["latency_p99_ms"] for d in ds if d["calls_per_s"] > 0)
                cur["caller_has"] = 1.0
            else:
                cur["caller_err"] = cur["caller_p99"] = cur["caller_has"] = 0.0
        values[j] = dict(cur)

    def v(key: str, j: int) -> float:
        return values[max(j, f)][key]

    def mean(key: str, a: int, b: int) -> float:
        return sum(v(key, k - i) for i in range(a, b + 1)) / (b - a + 1)

    def rel(key: str) -> float:
        if v(key, k) <= 0:
            return 1.0
        base = min(v(key, k - i) for i in range(120) if v(key, k - i) > 0)
        return min(max(v(key, k) / base, 1.0), 1000.0)

    def clip(x: float, lo: float, hi: float) -> float:
        return min(max(x, lo), hi)

    out = [v("err", k), mean("err", 0, 3), mean("err", 0, 3) - mean("err", 4, 7), rel("p99"),
           clip(math.log2(max(v("p99", k), 1) / max(v("p99", k - 4), 1)), -10, 10),
           clip(v("p99", k) / max(v("p50", k), 1), 0, 1000), clip(v("cpu", k), 0, 10),
           clip(v("cpu", k) - v("cpu", k - 4), -10, 10),
           clip(v("backlog", k) / max(v("rate_out", k), 1), 0, 3600),
           clip((v("backlog", k) - v("backlog", k - 4)) / max(v("rate_out", k), 1), -3600, 3600),
           clip((v("rate_in", k) - v("rate_out", k)) / max(v("rate_in", k), 1), -1, 1),
           clip(v("rate_in", k) / max(mean("rate_in", 0, 119), 0.01), 0, 100),
           v("caller_err", k), mean("caller_err", 0, 3) - mean("caller_err", 4, 7), rel("caller_p99"),
           v("caller_has", k), v("dep_err", k), mean("dep_err", 0, 3) - mean("dep_err", 4, 7),
           rel("dep_p99")]
    calm = 30.0
    for i in range(0, min(120, k - f + 1)):
        if max(v("err", k - i), v("caller_err", k - i)) >= 0.01:
            calm = i / 4
            break
    out += [calm, min(k - f + 1, 120) / 120]
    return out


# ------------------------------------------------------------ features

def test_golden_samples_are_reproducible(golden):
    assert golden["samples"] == train_breaker.golden_samples()
    assert golden["ticks_ms"] == train_breaker.golden_ticks()


def test_features_are_deterministic_and_match_the_golden_file(golden):
    points = train_breaker.golden_vectors(golden["samples"])
    assert [(p["now_ms"], p["service"], p["k"]) for p in points] == \
        [(p["now_ms"], p["service"], p["k"]) for p in golden["points"]]
    got = np.array([p["features"] for p in points], dtype=np.float32)
    want = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    assert np.array_equal(got, want)
    assert {p["service"] for p in golden["points"]} == {"api", "cache", "db", "worker"}


def test_features_match_a_literal_reading_of_the_spec(golden):
    samples = parsed(golden["samples"])
    for p in golden["points"]:
        want = literal_features(samples, p["service"], p["k"])
        assert want is not None
        got = np.array(p["features"], dtype=np.float64)
        assert np.allclose(got, np.array(want, dtype=np.float32), rtol=0, atol=1e-5), \
            (p["service"], p["now_ms"], [bf.FEATURE_NAMES[j] for j in np.flatnonzero(~np.isclose(got, want, atol=1e-5))])


def test_feature_rows_do_not_depend_on_the_future(golden):
    samples = parsed(golden["samples"])
    k = bf.complete_at(samples[len(samples) // 2]["ts_ms"])
    full = bf.features(bf.build_series(samples)["api"])
    cut_series = bf.build_series([m for m in samples if bf.bucket_of(m["ts_ms"]) <= k], last_bucket=k)["api"]
    cut = bf.features(cut_series)
    assert np.array_equal(full[: len(cut)], cut)


def test_buckets_gaps_and_the_callers_before_the_first_own_sample():
    base = 1_800_000_000_000
    m = lambda svc, s, err=0.0, deps=(): {"service": svc, "ts_ms": base + s * 1000, "error_rate": err,  # noqa: E731
                                         "latency_p50_ms": 10.0, "latency_p99_ms": 20.0, "cpu": 0.5,
                                         "backlog": 0, "rate_in": 5.0, "rate_out": 5.0,
                                         "dependencies": list(deps)}
    dep = lambda calls, err: {"service": "db", "calls_per_s": calls, "error_rate": err,  # noqa: E731
                              "latency_p99_ms": 30.0}
    samples = [m("api", 5, deps=[dep(10.0, 0.5)]), m("api", 20, deps=[dep(0.0, 0.0)]),
               m("db", 30, err=0.2), m("db", 75)]
    s = bf.build_series(samples)
    db = s["db"]
    assert db.first == bf.bucket_of(base + 30_000) == base // 15000 + 2
    # bucket 2 (db's first): api's calls stopped in bucket 2 (calls 0) -> callers zeroed
    assert db.signal("caller_has")[0] == 0.0 and db.signal("err")[0] == pytest.approx(0.2)
    # buckets 3, 4 carry db's own figures forward; bucket 5 has its second sample
    assert list(db.signal("err")) == pytest.approx([0.2, 0.2, 0.2, 0.0])
    # a sample on a boundary belongs to the bucket ending there
    assert bf.bucket_of(base + 15_000) == base // 15000 + 1
    assert bf.bucket_of(base + 15_001) == base // 15000 + 2
    assert bf.complete_at(base + 29_999) == base // 15000 + 1


# ------------------------------------------------------------ label

def series_of(caller_err: list[float], own_err: list[float] | None = None) -> bf.ServiceSeries:
    n = len(caller_err)
    values = np.zeros((n, len(bf.SIGNALS)))
    values[:, bf.SIGNALS.index("caller_err")] = caller_err
    values[:, bf.SIGNALS.index("caller_has")] = 1.0
    if own_err is not None:
        values[:, bf.SIGNALS.index("caller_has")] = 0.0
        values[:, bf.SIGNALS.index("err")] = own_err
    values[:, bf.SIGNALS.index("p99")] = 20.0
    values[:, bf.SIGNALS.index("p50")] = 10.0
    return bf.ServiceSeries("svc", 1000, values)


def test_the_label_is_the_trip_condition_within_60_s():
    # calls fail at buckets 5..9: the last minute's failure rate is 0.25 at 5, 0.5 at 6 (the
    # condition holds), ... 0.5 at 11, 0.25 at 12
    s = series_of([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    fail = bf.fail_1m(s)
    assert list(bf.tripped(s)) == [f >= 0.5 for f in fail]
    assert list(np.flatnonzero(bf.tripped(s))) == [6, 7, 8, 9, 10, 11]
    rows = bf.label_rows({"svc": s})
    assert len(rows.y) == len(fail) - bf.HORIZON_BUCKETS
    # y(k) = trip in k+1..k+4: buckets 2..5 see the trip at 6 coming
    assert list(np.flatnonzero(rows.y)) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert list(np.flatnonzero(rows.tripped)) == [6, 7, 8, 9, 10, 11][: len(rows.y) - 6]
    # the own view when no caller made calls
    own = series_of([0] * 8, own_err=[0, 0, 0, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert list(bf.tripped(own)) == [False] * 6 + [True] * 2


def test_training_rows_leave_out_buckets_where_the_condition_holds(monkeypatch):
    s = series_of([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    rows = bf.label_rows({"svc": s})
    monkeypatch.setattr(train_breaker, "TRAIN_SCENARIOS", ("a",))
    monkeypatch.setattr(train_breaker, "rows_of", lambda name: rows)
    x, y, info = train_breaker.training_set()
    assert len(y) == int((~rows.tripped).sum())
    assert info == [{"scenario": "a", "rows": len(y), "positives": int(y.sum()),
                     "tripped_rows_left_out": int(rows.tripped.sum())}]


# ------------------------------------------------------------ spec, metadata, model

def test_spec_file_is_the_module_spec(meta):
    with open(train_breaker.SPEC_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == bf.spec_text() == meta["feature_spec"]
    spec = json.loads(text)
    assert spec["feature_names"] == bf.FEATURE_NAMES == json.loads(meta["feature_names"])
    assert spec["input"]["shape"] == ["N", bf.N_FEATURES] == ["N", 21]
    assert spec["output"]["range"] == [0.0, 1.0] == json.loads(meta["output_range"])


def test_metadata_and_reference_stats(meta):
    assert meta["name"] == bf.MODEL_NAME and meta["version"] == train_breaker.MODEL_VERSION
    stats = json.loads(meta["reference_stats"])
    assert [s["name"] for s in stats] == bf.FEATURE_NAMES
    for s in stats:
        assert len(s["decile_edges"]) == 9 and len(s["proportions"]) == 10
        assert sum(s["proportions"]) == pytest.approx(1.0)
        assert s["decile_edges"] == sorted(s["decile_edges"])
    assert meta["horizon_seconds"] == "60" and meta["trip_failure_rate"] == "0.5"


def test_model_signature_and_size(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 21)
    assert (out.name, out.type, out.shape[1]) == ("risk", "tensor(float)", 1)
    assert os.path.getsize(train_breaker.ONNX_PATH) < 1024 * 1024


def test_onnx_outputs_match_golden(golden):
    with open(train_breaker.ONNX_PATH, "rb") as f:
        data = f.read()
    assert golden["model_sha256"] == hashlib.sha256(data).hexdigest(), \
        "golden vectors are stale: retrain with agents/training/train_all.sh"
    sess = train_breaker.ort_session(data)
    x = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    y = train_breaker.ort_predict(sess, x)[:, 0]
    assert np.allclose(y, [p["output"] for p in golden["points"]], rtol=0, atol=golden["tolerance"])
    assert np.all((y >= 0.0) & (y <= 1.0))


def test_risk_rises_with_the_failure_features(golden):
    """The monotonic constraints survive the conversion: more errors, a slower service or
    longer queues never lower the risk."""
    sess = train_breaker.ort_session(open(train_breaker.ONNX_PATH, "rb").read())
    base = np.array([p["features"] for p in golden["points"][:40]], dtype=np.float32)
    for name, step in (("err", 0.3), ("caller_err", 0.3), ("p99_rel", 5.0), ("queue_s", 30.0),
                       ("caller_p99_rel", 5.0)):
        j = bf.FEATURE_NAMES.index(name)
        worse = base.copy()
        worse[:, j] += step
        lo = train_breaker.ort_predict(sess, base)[:, 0]
        hi = train_breaker.ort_predict(sess, worse)[:, 0]
        assert np.all(hi >= lo - 1e-6), name
    j = bf.FEATURE_NAMES.index("calm_min")
    calmer = base.copy()
    calmer[:, j] += 5.0
    assert np.all(train_breaker.ort_predict(sess, calmer)[:, 0] <= train_breaker.ort_predict(sess, base)[:, 0] + 1e-6)


def test_heldout_scenarios_are_not_in_training(meta):
    train = json.loads(meta["training_scenarios"])
    heldout = json.loads(meta["heldout_scenarios"])
    assert train == list(train_breaker.TRAIN_SCENARIOS)
    assert heldout == list(train_breaker.HELDOUT_SCENARIOS)
    assert not set(train) & set(heldout)
    assert [s["scenario"] for s in json.loads(meta["training_samples"])] == train
    for name in train + heldout:
        assert os.path.isfile(train_breaker.scenario_path(name)), name
    with open(train_breaker.METRICS_PATH, encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["training_data_sha256"] == meta["training_data_sha256"]
    assert set(metrics["heldout"]) == set(heldout)
    # With the recordings at hand (after a training run), the digest covers exactly the
    # training recordings' bytes.
    recorded = [os.path.join(train_breaker.recording(n), "telemetry.jsonl") for n in train]
    if all(os.path.isfile(p) for p in recorded):
        assert meta["training_data_sha256"] == train_breaker.training_digest()
        assert meta["training_data_sha256"] != train_breaker.training_digest(tuple(train[:-1]))


def test_scenario_files_are_what_the_generator_writes():
    path = os.path.join(train_breaker.SCENARIOS_DIR, "make_breaker_scenarios.py")
    spec = importlib.util.spec_from_file_location("make_breaker_scenarios", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    files = gen.scenarios()
    assert set(files) == {f"{n}.yaml" for n in train_breaker.TRAIN_SCENARIOS + train_breaker.HELDOUT_SCENARIOS}
    for name, text in files.items():
        with open(os.path.join(train_breaker.SCENARIOS_DIR, name), encoding="utf-8") as f:
            assert f.read() == text, f"{name} is stale: rerun make_breaker_scenarios.py"


def test_false_trips_need_a_breach_of_the_service_or_a_caller_in_the_none_run():
    breaches = {"payments": {100_000: False, 115_000: True}, "checkout": {400_000: True}}
    callers = {"payments": {"checkout"}, "search": {"storefront"}}
    trip = lambda target, at: {"target": target, "at_ms": at, "model": True}  # noqa: E731
    assert not compare_breaker.is_false(trip("payments", 100_000), breaches, callers)
    # checkout (a caller) breaches 2 min after: protected
    assert not compare_breaker.is_false(trip("payments", 280_000), breaches, callers)
    assert compare_breaker.is_false(trip("payments", 600_000), breaches, callers)
    assert compare_breaker.is_false(trip("search", 100_000), breaches, callers)
