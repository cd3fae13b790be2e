"""What every trainer shares: file digests, ONNX Runtime sessions, the reference
statistics drift is judged against, and the deterministic ONNX export fix-ups (same data,
same bytes)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import onnxruntime as ort
from onnx import helper


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rfc3339(ts_ms: int) -> str:
    secs, ms = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def ort_session(model_bytes: bytes) -> ort.InferenceSession:
    """One thread, CPU: what the Rust host runs, so outputs compare to 1e-5."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def reference_stats(x: np.ndarray, names: list[str]) -> list[dict]:
    """Per feature: mean, std, decile edges and the share of rows per decile bin — the
    reference the Rust drift monitor computes PSI against (metadata `reference_stats`)."""
    out = []
    qs = np.arange(1, 10) / 10.0
    for j, name in enumerate(names):
        col = x[:, j].astype(np.float64)
        edges = np.quantile(col, qs)
        bins = np.searchsorted(edges, col, side="right")  # count of edges <= x
        props = np.bincount(bins, minlength=10) / len(col)
        out.append({"name": name, "mean": float(col.mean()), "std": float(col.std()),
                    "decile_edges": [float(e) for e in edges],
                    "proportions": [float(p) for p in props]})
    return out


def patch_skl2onnx_missing_flag() -> None:
    """skl2onnx 1.20 passes HistGradientBoosting's `missing_go_to_left` to the ONNX
    `nodes_missing_value_tracks_true` attribute as a Python bool for leaves, which onnx's
    helper refuses for an ints attribute; cast it (0/1, the same meaning)."""
    from skl2onnx.common import tree_ensemble

    if getattr(tree_ensemble.add_node, "_conclave_patched", False):
        return
    original = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true),
                        **kwargs)

    add_node._conclave_patched = True
    tree_ensemble.add_node = add_node


def sort_opsets(onx) -> None:
    """One opset entry per domain (the highest), sorted, so the same data gives the same
    bytes."""
    highest: dict[str, int] = {}
    for o in onx.opset_import:
        highest[o.domain] = max(highest.get(o.domain, 0), o.version)
    del onx.opset_import[:]
    for domain, version in sorted(highest.items()):
        onx.opset_import.append(helper.make_opsetid(domain, version))
