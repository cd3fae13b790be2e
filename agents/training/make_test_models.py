#!/usr/bin/env python3
"""Write the tiny ONNX models the Rust ModelHost tests use (Conclave issue #6).

    .venv/bin/python agents/training/make_test_models.py

Writes, under agents/models/testdata/ (each a few hundred bytes, byte-for-byte
reproducible: no random weights, fixed producer and opsets):

    identity.onnx  x: float32 [N, 1] -> y: float32 [N, 1], y = x.
                   metadata output_range [0.0, 10.0]: feeding 11 gives an output out of
                   range, feeding NaN a non-finite output.
    nan.onnx       x: float32 [N, 1] -> y: float32 [N, 1], y = x * NaN (always NaN).
    slow.onnx      x: float32 [N, 1] -> y: float32 [N, 1], y = x + 0 * v where v counts
                   the iterations of a Loop of SLOW_ITERATIONS steps: seconds of work
                   for one call, for the timeout tests.
    scaler-nan.onnx
                   features: float32 [N, 24] -> p90_ratio: float32 [N, 1], always NaN
                   (MatMul with a column of NaN): the scaler forecast model's signature,
                   for the scaler agent's non-finite-output fallback test.
    scaler-out-of-range.onnx
                   features: float32 [N, 24] -> p90_ratio: float32 [N, 1], always 50
                   (MatMul with zeros, plus 50), outside the declared [0, 20]: the
                   scaler agent's out-of-range fallback test.
    breaker-nan.onnx
                   features: float32 [N, 21] -> risk: float32 [N, 1], always NaN: the
                   breaker risk model's signature, for the breaker agent's
                   non-finite-output fallback test.
    breaker-out-of-range.onnx
                   features: float32 [N, 21] -> risk: float32 [N, 1], always 2, outside
                   the declared [0, 1]: the breaker agent's out-of-range fallback test.
    breaker-certain.onnx
                   features: float32 [N, 21] -> risk: float32 [N, 1], always 0.9 (within
                   range): a model that always predicts a trip, for the breaker's
                   act-mode guard tests (minimum calls, closed for a window, never
                   closing on the model).
    compliance-nan.onnx
                   features: float32 [N, 9] -> fraud: float32 [N, 1], always NaN: the
                   compliance fraud model's signature, for the compliance agent's
                   non-finite-output fallback test.
    compliance-certain.onnx
                   features: float32 [N, 9] -> fraud: float32 [N, 1], always 0.9: a
                   model that calls every event fraud, for the compliance agent's exact
                   proposal, mode and gate tests (and, its reference statistics being
                   uniform on [0, 1], drift on any real event stream).

All carry the metadata_props keys the host reads (name, version,
training_data_sha256, feature_names, reference_stats, output_range), so a test can
check them; the scaler-signature models name the scaler's 24 features (their uniform
reference_stats are placeholders, not training statistics).
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "models", "testdata")
OPSET = 17
IR_VERSION = 8
# One Loop iteration (Add on a scalar) costs ORT about a microsecond; 2e7 steps are
# many seconds, far beyond any test timeout, yet end by themselves if ORT ever did not
# honour RunOptions terminate.
SLOW_ITERATIONS = 20_000_000


# The scaler forecast model's input columns (agents/models/scaler.features.json).
SCALER_FEATURES = [
    "r_lag0", "r_lag1", "r_lag2", "r_lag5", "r_lag10", "r_lag15", "r_lag30", "r_lag60",
    "ewma_hl2", "ewma_hl30", "ewma_hl120", "ewma_hl720", "std30", "max60",
    "day_now", "day_ahead", "week_now", "week_ahead", "has_day", "has_week",
    "tod_sin", "tod_cos", "dow_sin", "dow_cos",
]


# The breaker risk model's input columns (agents/models/breaker.features.json).
BREAKER_FEATURES = [
    "err", "err_1m", "err_delta", "p99_rel", "p99_trend", "tail_ratio", "cpu", "cpu_delta",
    "queue_s", "queue_growth_s", "unserved", "load_rel", "caller_err", "caller_err_delta",
    "caller_p99_rel", "has_callers", "dep_err", "dep_err_delta", "dep_p99_rel", "calm_min", "warm",
]


def _io(name: str, width: int = 1) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])


def _stats(names: list[str] | None = None) -> str:
    edges = [0.1 * (i + 1) for i in range(9)]
    return json.dumps(
        [{"name": n, "mean": 0.5, "std": 0.2887, "decile_edges": edges,
          "proportions": [0.1] * 10} for n in (names or ["x"])],
        separators=(",", ":"),
    )


def _model(
    name: str,
    graph: onnx.GraphProto,
    features: list[str] | None = None,
    output_range: tuple[float, float] = (0.0, 10.0),
) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        producer_name="conclave-test-models",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    props = {
        "name": name,
        "version": "0.0.1",
        "training_data_sha256": "0" * 64,
        "feature_names": json.dumps(features or ["x"]),
        "reference_stats": _stats(features),
        "output_range": json.dumps(list(output_range)),
    }
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def identity() -> onnx.ModelProto:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "identity", [_io("x")], [_io("y")])
    return _model("test-identity", graph)


def nan() -> onnx.ModelProto:
    k = numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "k")
    node = helper.make_node("Mul", ["x", "k"], ["y"])
    graph = helper.make_graph([node], "nan", [_io("x")], [_io("y")], initializer=[k])
    return _model("test-nan", graph)


def slow() -> onnx.ModelProto:
    # Loop body: (iter, cond, v) -> (cond, v + 1).
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "count",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, []),
        ],
        initializer=[one],
    )
    inits = [
        numpy_helper.from_array(np.array(SLOW_ITERATIONS, dtype=np.int64), "trip"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "v0"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Loop", ["trip", "cond", "v0"], ["v"], body=body),
        helper.make_node("Mul", ["v", "zero"], ["v_zero"]),
        helper.make_node("Add", ["x", "v_zero"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "slow", [_io("x")], [_io("y")], initializer=inits)
    return _model("test-slow", graph)


def _scaler_constant(name: str, weight: float, bias: float) -> onnx.ModelProto:
    """features [N, 24] -> p90_ratio [N, 1] = features @ full(weight) + bias."""
    w = numpy_helper.from_array(np.full((24, 1), weight, dtype=np.float32), "w")
    b = numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["wx"]),
        helper.make_node("Add", ["wx", "b"], ["p90_ratio"]),
    ]
    graph = helper.make_graph(
        nodes, name, [_io("features", 24)], [_io("p90_ratio")], initializer=[w, b]
    )
    return _model(name, graph, features=SCALER_FEATURES, output_range=(0.0, 20.0))


def _breaker_constant(name: str, weight: float, bias: float) -> onnx.ModelProto:
    """features [N, 21] -> risk [N, 1] = features @ full(weight) + bias."""
    n = len(BREAKER_FEATURES)
    w = numpy_helper.from_array(np.full((n, 1), weight, dtype=np.float32), "w")
    b = numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["wx"]),
        helper.make_node("Add", ["wx", "b"], ["risk"]),
    ]
    graph = helper.make_graph(
        nodes, name, [_io("features", n)], [_io("risk")], initializer=[w, b]
    )
    return _model(name, graph, features=BREAKER_FEATURES, output_range=(0.0, 1.0))


# The compliance fraud model's input columns (agents/models/compliance.features.json).
COMPLIANCE_FEATURES = [
    "log_amount", "is_large", "has_card", "card_orders", "card_large", "card_gap_s",
    "card_log_amount", "producer_large_share", "producer_repeat_share",
]


def _compliance_constant(name: str, weight: float, bias: float) -> onnx.ModelProto:
    """features [N, 9] -> fraud [N, 1] = features @ full(weight) + bias."""
    n = len(COMPLIANCE_FEATURES)
    w = numpy_helper.from_array(np.full((n, 1), weight, dtype=np.float32), "w")
    b = numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["wx"]),
        helper.make_node("Add", ["wx", "b"], ["fraud"]),
    ]
    graph = helper.make_graph(
        nodes, name, [_io("features", n)], [_io("fraud")], initializer=[w, b]
    )
    return _model(name, graph, features=COMPLIANCE_FEATURES, output_range=(0.0, 1.0))


def compliance_nan() -> onnx.ModelProto:
    return _compliance_constant("test-compliance-nan", float("nan"), 0.0)


def compliance_certain() -> onnx.ModelProto:
    return _compliance_constant("test-compliance-certain", 0.0, 0.9)


def breaker_nan() -> onnx.ModelProto:
    return _breaker_constant("test-breaker-nan", float("nan"), 0.0)


def breaker_out_of_range() -> onnx.ModelProto:
    return _breaker_constant("test-breaker-out-of-range", 0.0, 2.0)


def breaker_certain() -> onnx.ModelProto:
    return _breaker_constant("test-breaker-certain", 0.0, 0.9)


def scaler_nan() -> onnx.ModelProto:
    return _scaler_constant("test-scaler-nan", float("nan"), 0.0)


def scaler_out_of_range() -> onnx.ModelProto:
    return _scaler_constant("test-scaler-out-of-range", 0.0, 50.0)


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for file, build in (
        ("identity.onnx", identity),
        ("nan.onnx", nan),
        ("slow.onnx", slow),
        ("scaler-nan.onnx", scaler_nan),
        ("scaler-out-of-range.onnx", scaler_out_of_range),
        ("breaker-nan.onnx", breaker_nan),
        ("breaker-out-of-range.onnx", breaker_out_of_range),
        ("breaker-certain.onnx", breaker_certain),
        ("compliance-nan.onnx", compliance_nan),
        ("compliance-certain.onnx", compliance_certain),
    ):
        path = os.path.normpath(os.path.join(OUT_DIR, file))
        data = build().SerializeToString(deterministic=True)
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
