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

All three carry the metadata_props keys the host reads (name, version,
training_data_sha256, feature_names, reference_stats, output_range), so a test can
check them.
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


def _io(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])


def _stats() -> str:
    edges = [0.1 * (i + 1) for i in range(9)]
    return json.dumps(
        [{"name": "x", "mean": 0.5, "std": 0.2887, "decile_edges": edges,
          "proportions": [0.1] * 10}],
        separators=(",", ":"),
    )


def _model(name: str, graph: onnx.GraphProto) -> onnx.ModelProto:
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
        "feature_names": json.dumps(["x"]),
        "reference_stats": _stats(),
        "output_range": json.dumps([0.0, 10.0]),
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


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for file, build in (("identity.onnx", identity), ("nan.onnx", nan), ("slow.onnx", slow)):
        path = os.path.normpath(os.path.join(OUT_DIR, file))
        data = build().SerializeToString(deterministic=True)
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
