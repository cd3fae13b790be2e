"""Tests of the scaler feature pipeline and the exported model.

    .venv/bin/python -m pytest agents/training -q
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conclave_training import scaler_features as sf  # noqa: E402
from conclave_training import synthetic, traces  # noqa: E402
import train_scaler  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> dict:
    with open(train_scaler.GOLDEN_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(train_scaler.ONNX_PATH)


@pytest.fixture(scope="module")
def meta(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


# ------------------------------------------------------------ a literal reading of the spec

def spec_features_at(r: list[float], start_unix: float, t: int) -> list[float]:
    """Straight per-minute translation of scaler.features.json (loops, recursions, no
    numpy): what the Rust implementation does. Used to check the vectorised one."""
    def ewma_at(hl: float) -> float:
        a = 1.0 - 2.0 ** (-1.0 / hl)
        e = r[0]
        for i in range(1, t + 1):
            e = e + a * (r[i] - e)
        return e

    def at(i: int) -> float:
        return r[max(i, 0)]

    d = max(ewma_at(sf.LEVEL_HALF_LIFE_MIN), sf.LEVEL_FLOOR)

    def ratio(v: float) -> float:
        return min(max(v / d, sf.RATIO_MIN), sf.RATIO_MAX)

    out = [ratio(at(t - k)) for k in sf.LAGS_MIN]
    out += [ratio(ewma_at(hl)) for hl in sf.EWMA_HALF_LIVES_MIN]
    w = [at(t - j) for j in range(sf.STD_WINDOW_MIN)]
    m = sum(w) / len(w)
    out.append(ratio(math.sqrt(sum((v - m) ** 2 for v in w) / len(w))))
    out.append(ratio(max(at(t - j) for j in range(sf.MAX_WINDOW_MIN))))
    s = sf.SEASONAL_HALF_WIDTH_MIN
    flags = []
    for period in (sf.DAY_MIN, sf.WEEK_MIN):
        ok = t - period - s >= 0
        flags.append(1.0 if ok else 0.0)
        for offset in (0, sf.HORIZON_MIN):
            c = t + offset - period
            out.append(ratio(sum(r[c + j] for j in range(-s, s + 1)) / (2 * s + 1)) if ok else 1.0)
    out += flags
    now = start_unix + 60.0 * (t + 1)
    day = (now % 86400.0) / 86400.0
    week = ((now + 3 * 86400.0) % 604800.0) / 604800.0
    out += [math.sin(2 * math.pi * day), math.cos(2 * math.pi * day),
            math.sin(2 * math.pi * week), math.cos(2 * math.pi * week)]
    return out


# ------------------------------------------------------------ features

def test_features_are_deterministic(golden):
    r = np.array(golden["rates"])
    pts = [p["t"] for p in golden["points"]]
    a = sf.SeriesState(r, golden["start_unix"]).features(pts)
    b = sf.SeriesState(r.copy(), golden["start_unix"]).features(np.array(pts))
    assert a.dtype == np.float32 and a.shape == (len(pts), sf.N_FEATURES)
    assert np.array_equal(a, b)
    # and the same values as the committed golden vectors (exactly: same code, same pins)
    want = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    assert np.array_equal(a, want)


def test_golden_series_is_reproducible(golden):
    assert golden["start_unix"] == train_scaler.GOLDEN_START_UNIX
    assert np.array_equal(np.array(golden["rates"]), train_scaler.golden_series())


def test_features_match_a_literal_reading_of_the_spec(golden):
    r = [float(v) for v in golden["rates"]]
    for p in golden["points"]:
        want = np.array(spec_features_at(r, golden["start_unix"], p["t"]), dtype=np.float32)
        got = np.array(p["features"], dtype=np.float32)
        assert np.allclose(got, want, rtol=0, atol=1e-6), (p["t"], got - want)


def test_feature_rows_do_not_depend_on_the_future():
    r = train_scaler.golden_series()
    full = sf.SeriesState(r, 0).features([3000])
    cut = sf.SeriesState(r[:3001], 0).features([3000])
    assert np.allclose(full, cut, rtol=0, atol=1e-6)


def test_missing_history_rules():
    r = np.array([5.0, 7.0, 6.0])
    x = sf.SeriesState(r, 0).features([0, 2])
    names = sf.FEATURE_NAMES
    # at t = 0 everything is r[0] / D = 1 and the window std is 0
    for n in ("r_lag0", "r_lag60", "ewma_hl2", "ewma_hl720", "max60"):
        assert x[0, names.index(n)] == pytest.approx(1.0)
    assert x[0, names.index("std30")] == pytest.approx(0.0, abs=1e-6)
    for n in ("day_now", "day_ahead", "week_now", "week_ahead"):
        assert x[1, names.index(n)] == 1.0
    assert x[1, names.index("has_day")] == 0.0 and x[1, names.index("has_week")] == 0.0


def test_ratios_are_clipped_and_level_is_floored():
    assert sf.SeriesState(np.zeros(5), 0).denominator(np.array([4]))[0] == sf.LEVEL_FLOOR
    r = np.concatenate([np.full(300, 1000.0), np.zeros(100)])
    x = sf.SeriesState(r, 0).features([399])
    ratios = [j for j, f in enumerate(sf.FEATURES) if f["kind"].endswith("ratio")]
    assert x[0, ratios].max() == sf.RATIO_MAX and x[0, ratios].min() >= sf.RATIO_MIN
    assert x[0, sf.FEATURE_NAMES.index("ewma_hl720")] == sf.RATIO_MAX
    assert x[0, sf.FEATURE_NAMES.index("r_lag0")] == 0.0


def test_clock_features():
    monday_noon = 1704110400  # 2024-01-01 12:00 UTC, a Monday
    st = sf.SeriesState(np.ones(2), monday_noon - 60)  # now at t = 0 is Monday 12:00
    x = st.features([0])[0]
    n = sf.FEATURE_NAMES
    assert x[n.index("tod_sin")] == pytest.approx(0.0, abs=1e-6)
    assert x[n.index("tod_cos")] == pytest.approx(-1.0, abs=1e-6)
    week = 0.5 / 7
    assert x[n.index("dow_sin")] == pytest.approx(math.sin(2 * math.pi * week), abs=1e-6)
    assert x[n.index("dow_cos")] == pytest.approx(math.cos(2 * math.pi * week), abs=1e-6)


def test_resampling_interpolates_between_bucket_centres():
    t = np.array([0.0, 3600.0, 7200.0])
    rate = np.array([10.0, 70.0, 10.0])
    m = traces.to_minutes(t, rate, 3600)
    assert len(m) == 180
    assert m[0] == 10.0 and m[29] == 10.0          # before the first centre: held
    assert m[30] == pytest.approx(10.5)             # centre 1830 s: 30 s past 1800 s
    assert m[89] == pytest.approx(69.5)             # centre 5370 s: 30 s before 5400 s
    assert m[90] == pytest.approx(69.5)             # centre 5430 s: 30 s past 5400 s
    assert m[179] == 10.0
    assert np.array_equal(traces.to_minutes(t, rate, 60), rate)


def test_synthetic_load_is_seeded():
    a = synthetic.synth_service(synthetic.SYNTH_SEED, 3, 2)
    b = synthetic.synth_service(synthetic.SYNTH_SEED, 3, 2)
    c = synthetic.synth_service(synthetic.SYNTH_SEED + 1, 3, 2)
    assert a.start_unix == b.start_unix and np.array_equal(a.rate, b.rate)
    assert not np.array_equal(a.rate, c.rate)


# ------------------------------------------------------------ spec, metadata, model

def test_spec_file_is_the_module_spec():
    with open(train_scaler.SPEC_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == train_scaler.spec_text()
    spec = json.loads(text)
    assert spec["feature_names"] == sf.FEATURE_NAMES
    assert [f["name"] for f in spec["features"]] == sf.FEATURE_NAMES
    assert spec["input"]["shape"] == ["N", sf.N_FEATURES]


def test_spec_order_matches_model_metadata(model, meta):
    with open(train_scaler.SPEC_PATH, encoding="utf-8") as f:
        text = f.read()
    assert meta["feature_spec"] == text
    assert json.loads(meta["feature_names"]) == sf.FEATURE_NAMES
    stats = json.loads(meta["reference_stats"])
    assert [s["name"] for s in stats] == sf.FEATURE_NAMES
    for s in stats:
        assert len(s["decile_edges"]) == 9 and len(s["proportions"]) == 10
        assert sum(s["proportions"]) == pytest.approx(1.0)
        assert s["decile_edges"] == sorted(s["decile_edges"])
    assert meta["name"] == sf.MODEL_NAME and meta["version"] == train_scaler.MODEL_VERSION
    assert json.loads(meta["output_range"]) == [sf.RATIO_MIN, sf.RATIO_MAX]


def test_model_signature(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == (sf.INPUT_NAME, "tensor(float)", sf.N_FEATURES)
    assert (out.name, out.type, out.shape[1]) == (sf.OUTPUT_NAME, "tensor(float)", 1)
    assert os.path.getsize(train_scaler.ONNX_PATH) < 5 * 1024 * 1024


def test_heldout_trace_not_in_training_set(meta):
    assert traces.HELDOUT_TRACES, "at least one trace must be held out"
    for h in traces.HELDOUT_TRACES:
        assert h in traces.TRACE_INFO
        assert h not in traces.TRAINING_TRACES
        assert h not in json.loads(meta["training_files"])
        assert h in json.loads(meta["heldout_files"])
        assert h not in [s["series"] for s in json.loads(meta["training_samples"])]
    assert json.loads(meta["training_files"]) == list(traces.TRAINING_TRACES)
    # the digest in the model covers exactly the training files' bytes
    assert meta["training_data_sha256"] == traces.training_digest()
    with_heldout = tuple(sorted(traces.TRAINING_TRACES + traces.HELDOUT_TRACES))
    assert meta["training_data_sha256"] != traces.training_digest(with_heldout)


def test_onnx_outputs_match_golden(golden):
    with open(train_scaler.ONNX_PATH, "rb") as f:
        data = f.read()
    assert golden["model_sha256"] == hashlib.sha256(data).hexdigest(), \
        "golden vectors are stale: retrain with agents/training/train_all.sh"
    sess = train_scaler.ort_session(data)
    x = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    y = train_scaler.ort_predict(sess, x)[:, 0]
    want = np.array([p["output"] for p in golden["points"]])
    assert np.allclose(y, want, rtol=0, atol=golden["tolerance"])
    assert np.all((y >= sf.RATIO_MIN) & (y <= sf.RATIO_MAX))
    for p in golden["points"]:
        assert p["forecast_rate"] == pytest.approx(p["output"] * p["D"], rel=1e-12)


def test_reference_stats_binning_reproduces_proportions(meta):
    """The spec's binning rule (bin = number of edges <= x) on a 0/1 flag: the stored
    proportions put the zeros in bin 0 and the ones in bin 9."""
    stats = {s["name"]: s for s in json.loads(meta["reference_stats"])}
    flag = stats["has_day"]
    # a 0/1 flag: 0 falls below every edge (bin 0), 1 is >= every edge equal to 1 (bin 9)
    edges = flag["decile_edges"]
    assert sum(e <= 0.0 for e in edges) == 0 and sum(e <= 1.0 for e in edges) == 9
    assert flag["proportions"][9] == pytest.approx(flag["mean"])
    assert flag["proportions"][0] == pytest.approx(1.0 - flag["mean"])
