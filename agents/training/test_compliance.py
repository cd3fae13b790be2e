"""Tests of the compliance fraud features, the label, the regex-only port, the scenarios and
the exported model.

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

from conclave_training import compliance_features as cf  # noqa: E402
import train_compliance  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> dict:
    with open(train_compliance.GOLDEN_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(train_compliance.ONNX_PATH)


@pytest.fixture(scope="module")
def meta(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


# ------------------------------------------------------------ a literal reading of the spec

def literal_rows(events: list[dict]) -> list[list[float]]:
    """compliance.features.json read literally, for the spec's caps where a short stream can
    reach them (64 orders per card): each row recomputed from every earlier event, no
    rolling state. Checks the incremental implementation (and so, through the golden file,
    Rust)."""
    now, stored, rows = None, [], []
    for e in events:
        ts = cf.parse_ts_ms(e["ts"])
        now = ts if now is None else max(now, ts)
        a = cf.amount_of(e["fields"])
        card = cf.card_of(e["fields"])
        same_card = [s for s in stored if card is not None and s["card"] == card][-cf.MAX_CARD_ORDERS:]
        in_card = [s for s in same_card if now - s["t"] <= cf.CARD_WINDOW_S * 1000]
        same_prod = [s for s in stored if s["producer"] == e["producer"]][-cf.MAX_PRODUCER_ORDERS:]
        in_prod = [s for s in same_prod if now - s["t"] <= cf.PRODUCER_WINDOW_S * 1000]
        n = len(in_prod)
        row = [
            math.log1p(a / 100),
            float(a >= cf.LARGE_ORDER_CENTS),
            float(card is not None),
            float(len(in_card)),
            float(sum(s["a"] >= cf.LARGE_ORDER_CENTS for s in in_card)),
            min(max((now - in_card[-1]["t"]) / 1000, 0), 3600) if in_card else 3600.0,
            math.log1p(sum(s["a"] for s in in_card) / 100) if in_card else 0.0,
            sum(s["a"] >= cf.LARGE_ORDER_CENTS for s in in_prod) / max(n, 1),
            sum(s["repeat"] for s in in_prod) / max(n, 1),
        ]
        rows.append(row)
        stored.append({"t": now, "card": card, "producer": e["producer"], "a": a,
                       "repeat": len(in_card) >= 1})
    return rows


# ------------------------------------------------------------ features

def test_golden_events_are_reproducible(golden):
    assert golden["events"] == train_compliance.golden_events()


def test_features_are_deterministic_and_match_the_golden_file(golden):
    points = train_compliance.golden_points(golden["events"])
    assert [p["features"] for p in points] == [p["features"] for p in golden["points"]]
    capped = train_compliance.golden_points(golden["events"], train_compliance.GOLDEN_CAPS)
    assert [p["features"] for p in capped] == [p["features"] for p in golden["capped"]["points"]]
    assert capped != points, "the small caps evict something"


def test_features_match_a_literal_reading_of_the_spec(golden):
    lit = np.array(literal_rows(golden["events"]), dtype=np.float64)
    got = np.array([p["features"] for p in golden["points"]], dtype=np.float64)
    assert lit.shape == got.shape == (len(golden["events"]), cf.N_FEATURES)
    assert np.allclose(lit.astype(np.float32), got, rtol=0, atol=1e-6)


def test_the_golden_stream_reaches_every_branch(golden):
    x = np.array([p["features"] for p in golden["points"]])
    col = cf.COL
    assert x[:, col["card_orders"]].max() >= 4  # the fast burst
    assert (x[:, col["has_card"]] == 0).any()
    assert ((x[:, col["card_gap_s"]] > 600) & (x[:, col["card_orders"]] >= 1)).any()  # the slow burst
    assert (x[:, col["producer_repeat_share"]] > 0).any()
    # the returning card came back after more than an hour: no earlier order in the window
    i = [k for k, e in enumerate(golden["events"]) if e["fields"].get("card", {}).get("fingerprint") == "fp_return"]
    assert len(i) == 2 and x[i[1], col["card_orders"]] == 0
    # the shared card counts across producers
    j = [k for k, e in enumerate(golden["events"]) if e["fields"].get("card", {}).get("fingerprint") == "fp_shared"]
    assert x[j[1], col["card_orders"]] == 1
    # late events are stamped before the newest yet see a gap of 0 to it at most
    stamps = [cf.parse_ts_ms(e["ts"]) for e in golden["events"]]
    assert any(b < a for a, b in zip(stamps, stamps[1:]))


def test_rows_do_not_depend_on_the_future(golden):
    ev = golden["events"]
    full = train_compliance.golden_points(ev)
    half = train_compliance.golden_points(ev[: len(ev) // 2])
    assert [p["features"] for p in half] == [p["features"] for p in full[: len(ev) // 2]]


def test_values_that_are_not_amounts_or_cards_read_as_absent():
    cases = [({"amount_cents": "120000"}, 0.0), ({"amount_cents": True}, 0.0),
             ({"amount_cents": -5}, 0.0), ({"amount_cents": float("nan")}, 0.0),
             ({"amount_cents": 1234.5}, 1234.5), ({"amount_cents": 7}, 7.0), ({}, 0.0)]
    for fields, want in cases:
        assert cf.amount_of(fields) == want, fields
    assert cf.card_of({"card": {"fingerprint": ""}}) is None
    assert cf.card_of({"card": "fp"}) is None
    assert cf.card_of({"card": {"fingerprint": "fp_x"}}) == "fp_x"


def test_fnv1a_matches_the_reference_values():
    assert cf.fnv1a("") == 0xCBF29CE484222325
    assert cf.fnv1a("a") == 0xAF63DC4C8601EC8C
    assert cf.fnv1a("foobar") == 0x85944171F73967E8


def test_labels_come_from_the_truth_file(tmp_path):
    def ev(key: str, producer: str, card: str, ts: str) -> str:
        return json.dumps({"type": "event", "schema_version": 1, "topic": "orders", "producer": producer,
                           "region": "eu-west-1", "key": key, "ts": ts,
                           "fields": {"amount_cents": 200000, "card": {"fingerprint": card}}},
                          separators=(",", ":"))
    tel = tmp_path / "telemetry.jsonl"
    tel.write_text("\n".join([
        ev("o1", "p", "fp_a", "2026-01-01T00:00:00.000Z"),
        "{not json",
        '{"type":"metrics","service":"x"}',
        ev("o2", "p", "fp_a", "2026-01-01T00:00:30.000Z"),
        ev("o3", "q", "fp_b", "2026-01-01T00:01:00.000Z"),
    ]) + "\n")
    truth = tmp_path / "truth.jsonl"
    truth.write_text("\n".join(json.dumps({"producer": p, "key": k, "truth": t}) for p, k, t in
                               [("p", "o1", "fraud"), ("p", "o2", "fraud"), ("q", "o3", "decoy")]) + "\n")
    rows = cf.rows_of_recording(str(tel), str(truth))
    assert rows.y.tolist() == [1, 1, 0]
    assert rows.truth == ["fraud", "fraud", "decoy"]
    assert rows.x[:, cf.COL["card_orders"]].tolist() == [0, 1, 0]


# ------------------------------------------------------------ the regex-only baseline

def test_regex_only_port_matches_naive_rs():
    """The cases of simulations/src/events/naive.rs's own test."""
    cases = [("13 digits", "1234567890123", True), ("12 digits", "123456789012", False),
             ("inside a longer run", "x 12345678901234567890123 y", True),
             ("spaced card", "4111 1111 1111 1111", True), ("phone", "+1 415-555-0132", True),
             ("short phone", "415-555-0132", False),
             ("trailing separators do not count", "123456789012 - ", False),
             ("ssn shape", "id 000-00-0000", True), ("at sign", "@oncall", True),
             ("plain words", "leave at the door", False), ("sku and last4", "sku-4821 4242", False)]
    for name, text, want in cases:
        assert train_compliance.regex_only_flags({"note": text}) == want, name
    # keys, nested values and numbers are read too
    assert train_compliance.regex_only_flags({"by_email": {"a@b": 1}})
    assert train_compliance.regex_only_flags({"created_ms": 1764000000000})
    assert train_compliance.regex_only_flags({"items": [{"sku": "x"}, {"n": "000-00-0000"}]})
    assert not train_compliance.regex_only_flags({"amount_cents": 250000, "ok": True, "x": None})


# ------------------------------------------------------------ the exported model

def test_spec_file_is_the_module_spec(meta):
    with open(train_compliance.SPEC_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == cf.spec_text() == meta["feature_spec"]
    spec = json.loads(text)
    assert spec["feature_names"] == cf.FEATURE_NAMES == json.loads(meta["feature_names"])
    assert spec["input"]["shape"] == ["N", cf.N_FEATURES] == ["N", 9]
    assert spec["output"]["range"] == [0.0, 1.0] == json.loads(meta["output_range"])
    assert spec["fields"] == {"amount": "fields.amount_cents", "card": "fields.card.fingerprint"}


def test_metadata_and_reference_stats(meta):
    assert meta["name"] == cf.MODEL_NAME and meta["version"] == train_compliance.MODEL_VERSION
    stats = json.loads(meta["reference_stats"])
    assert [s["name"] for s in stats] == cf.FEATURE_NAMES
    for s in stats:
        assert len(s["decile_edges"]) == 9 and len(s["proportions"]) == 10
        assert sum(s["proportions"]) == pytest.approx(1.0)
        assert s["decile_edges"] == sorted(s["decile_edges"])
    assert meta["threshold"] == "0.5" and meta["min_orders"] == "2"


def test_model_signature_and_size(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 9)
    assert (out.name, out.type, out.shape[1]) == ("fraud", "tensor(float)", 1)
    assert os.path.getsize(train_compliance.ONNX_PATH) < 5 * 1024 * 1024


def test_onnx_outputs_match_golden(golden):
    with open(train_compliance.ONNX_PATH, "rb") as f:
        data = f.read()
    assert golden["model_sha256"] == hashlib.sha256(data).hexdigest(), \
        "golden vectors are stale: retrain with agents/training/train_all.sh"
    sess = train_compliance.ort_session(data)
    x = np.array([p["features"] for p in golden["points"]], dtype=np.float32)
    y = train_compliance.ort_predict(sess, x)[:, 0]
    assert np.allclose(y, [p["output"] for p in golden["points"]], rtol=0, atol=golden["tolerance"])
    assert np.all((y >= 0.0) & (y <= 1.0))


def test_the_fast_burst_scores_from_its_second_order(golden):
    """The scripted burst (five large orders on fp_fast within two minutes): its first order is
    an ordinary large order to the model, every later one scores at or above the policy's
    threshold; no order on a card seen once scores that high."""
    fast = [i for i, e in enumerate(golden["events"])
            if e["fields"].get("card", {}).get("fingerprint") == "fp_fast"]
    out = [golden["points"][i]["output"] for i in fast]
    assert len(out) == 5
    assert out[0] < train_compliance.THRESHOLD <= min(out[1:])
    firsts = [p["output"] for p in golden["points"] if p["features"][cf.COL["card_orders"]] == 0]
    assert max(firsts) < train_compliance.THRESHOLD


def test_score_rises_with_the_burst_features(golden):
    """The monotonic constraints survive the conversion."""
    sess = train_compliance.ort_session(open(train_compliance.ONNX_PATH, "rb").read())
    base = np.array([p["features"] for p in golden["points"][:80]], dtype=np.float32)
    for name, step in (("card_orders", 1.0), ("card_large", 1.0), ("card_log_amount", 2.0),
                       ("log_amount", 1.0), ("producer_repeat_share", 0.2)):
        j = cf.COL[name]
        more = base.copy()
        more[:, j] += step
        lo = train_compliance.ort_predict(sess, base)[:, 0]
        hi = train_compliance.ort_predict(sess, more)[:, 0]
        assert np.all(hi >= lo - 1e-6), name
    j = cf.COL["card_gap_s"]
    later = base.copy()
    later[:, j] += 300.0
    assert np.all(train_compliance.ort_predict(sess, later)[:, 0]
                  <= train_compliance.ort_predict(sess, base)[:, 0] + 1e-6)


def test_heldout_scenarios_are_not_in_training(meta):
    train = json.loads(meta["training_scenarios"])
    heldout = json.loads(meta["heldout_scenarios"])
    assert train == list(train_compliance.TRAIN_SCENARIOS)
    assert heldout == list(train_compliance.HELDOUT_SCENARIOS)
    assert not set(train) & set(heldout)
    assert [s["scenario"] for s in json.loads(meta["training_samples"])] == train
    for name in train + heldout:
        assert os.path.isfile(train_compliance.scenario_path(name)), name
    with open(train_compliance.METRICS_PATH, encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["training_data_sha256"] == meta["training_data_sha256"]
    assert set(metrics["heldout"]) == set(heldout)
    recorded = [os.path.join(train_compliance.recording(n), f) for n in train
                for f in ("telemetry.jsonl", "truth.jsonl")]
    if all(os.path.isfile(p) for p in recorded):
        assert meta["training_data_sha256"] == train_compliance.training_digest()
        assert meta["training_data_sha256"] != train_compliance.training_digest(tuple(train[:-1]))


def test_scenario_files_are_what_the_generator_writes():
    path = os.path.join(train_compliance.SCENARIOS_DIR, "make_compliance_scenarios.py")
    spec = importlib.util.spec_from_file_location("make_compliance_scenarios", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    files = gen.scenarios()
    assert set(files) == {f"{n}.yaml" for n in train_compliance.TRAIN_SCENARIOS + train_compliance.HELDOUT_SCENARIOS}
    for name, text in files.items():
        with open(os.path.join(train_compliance.SCENARIOS_DIR, name), encoding="utf-8") as f:
            assert f.read() == text, f"{name} is stale: rerun make_compliance_scenarios.py"
