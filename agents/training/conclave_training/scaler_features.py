"""Feature definition of the scaler forecast model.

This module is the Python implementation of agents/models/scaler.features.json;
`feature_spec()` produces that file (the trainer writes it, and embeds the same text
in the ONNX model's metadata_props). The Rust scaler agent implements the same
definitions; agents/models/testdata/scaler-parity.json holds golden vectors.

Notation: r[i] is the mean arrival rate (per second) over 1-minute bucket i of one
target, i = 0 is the first bucket observed. t is the last complete bucket at
decision time, so `now` (unix seconds) = start of bucket t + 60.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

SPEC_VERSION = 1
MODEL_NAME = "scaler-forecast"
STEP_SECONDS = 60
HORIZON_MIN = 10  # forecast target: bucket t + 10
QUANTILE = 0.9
LEVEL_HALF_LIFE_MIN = 10.0  # the normaliser D
LEVEL_FLOOR = 1e-3  # req/s
RATIO_MIN = 0.0
RATIO_MAX = 20.0
LAGS_MIN = (0, 1, 2, 5, 10, 15, 30, 60)
EWMA_HALF_LIVES_MIN = (2.0, 30.0, 120.0, 720.0)
STD_WINDOW_MIN = 30
MAX_WINDOW_MIN = 60
DAY_MIN = 1440
WEEK_MIN = 10080
SEASONAL_HALF_WIDTH_MIN = 2  # seasonal windows are 2 * 2 + 1 = 5 minutes
# Monday 1970-01-05 00:00 UTC is unix 345600; 1970-01-01 was a Thursday.
WEEK_EPOCH_OFFSET_S = 3 * 86400
INPUT_NAME = "features"
OUTPUT_NAME = "p90_ratio"


def _feature_list() -> list[dict]:
    feats: list[dict] = []
    for k in LAGS_MIN:
        feats.append({
            "name": f"r_lag{k}",
            "kind": "lag_ratio",
            "lag_min": k,
            "definition": f"clip(r[max(t - {k}, 0)] / D, {RATIO_MIN}, {RATIO_MAX})",
        })
    for hl in EWMA_HALF_LIVES_MIN:
        feats.append({
            "name": f"ewma_hl{int(hl)}",
            "kind": "ewma_ratio",
            "half_life_min": hl,
            "definition": f"clip(ewma_{int(hl)}[t] / D, {RATIO_MIN}, {RATIO_MAX}); "
                          f"ewma with half-life {hl} min (see ewma)",
        })
    feats.append({
        "name": f"std{STD_WINDOW_MIN}",
        "kind": "window_std_ratio",
        "window_min": STD_WINDOW_MIN,
        "definition": f"clip(pstd(w) / D, {RATIO_MIN}, {RATIO_MAX}) where w = "
                      f"[r[max(t - j, 0)] for j in 0..{STD_WINDOW_MIN - 1}] ({STD_WINDOW_MIN} values, "
                      "history before bucket 0 repeats r[0]); pstd = population standard "
                      "deviation, two-pass: m = sum(w)/n, sqrt(sum((w - m)^2)/n)",
    })
    feats.append({
        "name": f"max{MAX_WINDOW_MIN}",
        "kind": "window_max_ratio",
        "window_min": MAX_WINDOW_MIN,
        "definition": f"clip(max(r[max(t - j, 0)] for j in 0..{MAX_WINDOW_MIN - 1}) / D, "
                      f"{RATIO_MIN}, {RATIO_MAX})",
    })
    s = SEASONAL_HALF_WIDTH_MIN
    for name, period, offset, flag in (
        ("day_now", DAY_MIN, 0, "has_day"),
        ("day_ahead", DAY_MIN, HORIZON_MIN, "has_day"),
        ("week_now", WEEK_MIN, 0, "has_week"),
        ("week_ahead", WEEK_MIN, HORIZON_MIN, "has_week"),
    ):
        c = f"t + {offset} - {period}" if offset else f"t - {period}"
        feats.append({
            "name": name,
            "kind": "seasonal_ratio",
            "period_min": period,
            "offset_min": offset,
            "half_width_min": s,
            "definition": f"if {flag} == 1: clip(mean(r[c - {s} ..= c + {s}]) / D, {RATIO_MIN}, "
                          f"{RATIO_MAX}) with c = {c} (mean of {2 * s + 1} buckets); else 1.0",
        })
    feats.append({
        "name": "has_day",
        "kind": "flag",
        "definition": f"1.0 if t >= {DAY_MIN + s} (i.e. t - {DAY_MIN} - {s} >= 0) else 0.0",
    })
    feats.append({
        "name": "has_week",
        "kind": "flag",
        "definition": f"1.0 if t >= {WEEK_MIN + s} (i.e. t - {WEEK_MIN} - {s} >= 0) else 0.0",
    })
    feats.append({"name": "tod_sin", "kind": "clock",
                  "definition": "sin(2*pi*day_phase), day_phase = (now mod 86400) / 86400"})
    feats.append({"name": "tod_cos", "kind": "clock",
                  "definition": "cos(2*pi*day_phase)"})
    feats.append({"name": "dow_sin", "kind": "clock",
                  "definition": f"sin(2*pi*week_phase), week_phase = ((now + {WEEK_EPOCH_OFFSET_S}) "
                                "mod 604800) / 604800 (0 = Monday 00:00 UTC)"})
    feats.append({"name": "dow_cos", "kind": "clock",
                  "definition": "cos(2*pi*week_phase)"})
    return feats


FEATURES: list[dict] = _feature_list()
FEATURE_NAMES: list[str] = [f["name"] for f in FEATURES]
N_FEATURES = len(FEATURES)


def feature_spec() -> dict:
    """The spec as written to agents/models/scaler.features.json."""
    return {
        "spec_version": SPEC_VERSION,
        "model_name": MODEL_NAME,
        "step_seconds": STEP_SECONDS,
        "horizon_minutes": HORIZON_MIN,
        "quantile": QUANTILE,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", N_FEATURES]},
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", 1],
            "range": [RATIO_MIN, RATIO_MAX],
            "meaning": f"p{int(QUANTILE * 100)} forecast of r[t + {HORIZON_MIN}] / D. "
                       f"Forecast rate (req/s) = output * D. Trained on targets "
                       f"clip(r[t + {HORIZON_MIN}] / D, {RATIO_MIN}, {RATIO_MAX}); an output "
                       "outside range (or NaN/inf) is a model fault: use the rule.",
        },
        "series": {
            "r": "r[i] = mean arrival rate in requests per second over 1-minute bucket i "
                 "[start + 60 i, start + 60 i + 60) of one target; i = 0 is the first bucket "
                 "observed for that target. Rates are >= 0 and finite.",
            "t": "index of the last complete bucket at decision time",
            "now": "unix seconds (UTC) at decision time = start of bucket t + 60",
            "gaps": "the series has one value per minute; a minute without telemetry repeats "
                    "the previous minute's value (last observation carried forward). No "
                    "features exist before bucket 0.",
            "arithmetic": "compute in float64 and cast each feature to float32 at the end",
        },
        "normalisation": {
            "D": f"max(ewma_{int(LEVEL_HALF_LIFE_MIN)}[t], {LEVEL_FLOOR}): the level, an ewma "
                 f"of r with half-life {LEVEL_HALF_LIFE_MIN} min, floored at {LEVEL_FLOOR} req/s",
            "level_half_life_min": LEVEL_HALF_LIFE_MIN,
            "level_floor": LEVEL_FLOOR,
            "ratio_clip": [RATIO_MIN, RATIO_MAX],
            "note": "every *_ratio feature and the target divide by D and are then clipped to "
                    "ratio_clip; flags and clock features are not clipped",
        },
        "ewma": {
            "definition": "alpha = 1 - 2^(-1/half_life_min); e[0] = r[0]; "
                          "e[i] = e[i-1] + alpha * (r[i] - e[i-1]) for i >= 1 (one update per "
                          "minute, including minutes carried forward)",
            "half_lives_min": [LEVEL_HALF_LIFE_MIN, *EWMA_HALF_LIVES_MIN],
        },
        "missing_history": {
            "lags_and_windows": "an index below 0 is replaced by 0: history before the first "
                                "bucket is taken to equal r[0] (the ewma start e[0] = r[0] "
                                "says the same)",
            "seasonal": f"day_* features need t >= {DAY_MIN + SEASONAL_HALF_WIDTH_MIN}, week_* "
                        f"features need t >= {WEEK_MIN + SEASONAL_HALF_WIDTH_MIN}; otherwise "
                        "they are 1.0 and has_day / has_week is 0.0",
        },
        "features": FEATURES,
        "feature_names": FEATURE_NAMES,
        "reference_stats": {
            "where": "ONNX metadata_props key 'reference_stats' (JSON): per feature, "
                     "mean, std (population), decile_edges (9 values: the 10%..90% "
                     "quantiles of the training features, numpy 'linear' method) and "
                     "proportions (10 values)",
            "binning": "bin index = number of edges e with e <= x, 0..9 (edges[i-1] <= x < "
                       "edges[i]); equal edges give empty bins, so a 0/1 flag falls in bin 0 "
                       "or bin 9",
            "psi": "PSI = sum_i (p_live_i - p_ref_i) * ln(p_live_i / p_ref_i), each "
                   "proportion floored at 1e-4",
        },
    }


def ewma(r: np.ndarray, half_life_min: float) -> np.ndarray:
    """e[0] = r[0]; e[i] = e[i-1] + alpha * (r[i] - e[i-1]), alpha = 1 - 2^(-1/hl).

    Computed with lfilter as e[i] = alpha r[i] + (1 - alpha) e[i-1]: the same
    recursion, rounding may differ in the last bits."""
    r = np.asarray(r, dtype=np.float64)
    alpha = 1.0 - 2.0 ** (-1.0 / half_life_min)
    y, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], r, zi=[(1.0 - alpha) * r[0]])
    return y


class SeriesState:
    """Precomputed ewmas of one 1-minute series, so that features can be taken at
    any set of indices."""

    def __init__(self, rate: np.ndarray, start_unix: float):
        r = np.asarray(rate, dtype=np.float64)
        if r.ndim != 1 or len(r) == 0:
            raise ValueError("rate must be a non-empty 1-d series")
        if not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ValueError("rate must be finite and >= 0")
        self.r = r
        self.start_unix = float(start_unix)
        self.level = ewma(r, LEVEL_HALF_LIFE_MIN)
        self.ewmas = [ewma(r, hl) for hl in EWMA_HALF_LIVES_MIN]

    def denominator(self, idx: np.ndarray) -> np.ndarray:
        return np.maximum(self.level[idx], LEVEL_FLOOR)

    def features(self, idx) -> np.ndarray:
        """Feature matrix [len(idx), N_FEATURES] (float32) at bucket indices idx."""
        idx = np.asarray(idx, dtype=np.int64)
        if np.any(idx < 0) or np.any(idx >= len(self.r)):
            raise IndexError("index out of range")
        r = self.r
        d = self.denominator(idx)
        cols: list[np.ndarray] = []

        def ratio(x: np.ndarray) -> np.ndarray:
            return np.clip(x / d, RATIO_MIN, RATIO_MAX)

        for k in LAGS_MIN:
            cols.append(ratio(r[np.maximum(idx - k, 0)]))
        for e in self.ewmas:
            cols.append(ratio(e[idx]))
        w = r[np.maximum(idx[:, None] - np.arange(STD_WINDOW_MIN)[None, :], 0)]
        m = w.sum(axis=1) / STD_WINDOW_MIN
        cols.append(ratio(np.sqrt(((w - m[:, None]) ** 2).sum(axis=1) / STD_WINDOW_MIN)))
        w = r[np.maximum(idx[:, None] - np.arange(MAX_WINDOW_MIN)[None, :], 0)]
        cols.append(ratio(w.max(axis=1)))

        s = SEASONAL_HALF_WIDTH_MIN
        offs = np.arange(-s, s + 1)
        has = {}
        for period, flag in ((DAY_MIN, "has_day"), (WEEK_MIN, "has_week")):
            ok = idx >= period + s
            has[flag] = ok
            for offset in (0, HORIZON_MIN):
                c = idx + offset - period
                j = np.clip(c[:, None] + offs[None, :], 0, len(r) - 1)
                mean = r[j].sum(axis=1) / (2 * s + 1)
                cols.append(np.where(ok, ratio(mean), 1.0))
        cols.append(has["has_day"].astype(np.float64))
        cols.append(has["has_week"].astype(np.float64))

        now = self.start_unix + 60.0 * (idx.astype(np.float64) + 1.0)
        day_phase = np.mod(now, 86400.0) / 86400.0
        week_phase = np.mod(now + WEEK_EPOCH_OFFSET_S, 604800.0) / 604800.0
        cols.append(np.sin(2.0 * math.pi * day_phase))
        cols.append(np.cos(2.0 * math.pi * day_phase))
        cols.append(np.sin(2.0 * math.pi * week_phase))
        cols.append(np.cos(2.0 * math.pi * week_phase))
        x = np.stack(cols, axis=1)
        assert x.shape[1] == N_FEATURES
        return x.astype(np.float32)

    def target(self, idx) -> np.ndarray:
        """clip(r[t + h] / D, 0, RATIO_MAX); idx must satisfy t + h < len(r)."""
        idx = np.asarray(idx, dtype=np.int64)
        return np.clip(r_at(self.r, idx + HORIZON_MIN) / self.denominator(idx), RATIO_MIN, RATIO_MAX)


def r_at(r: np.ndarray, idx: np.ndarray) -> np.ndarray:
    if np.any(idx >= len(r)):
        raise IndexError("target beyond the end of the series")
    return r[idx]
