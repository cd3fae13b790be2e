"""Feature definition and label of the router latency model.

This module is the Python implementation of agents/models/router.features.json;
`feature_spec()` produces that file (the trainer writes it, and embeds the same text in
the ONNX model's metadata_props). The Rust router agent implements the same definitions
(runtime/src/models/router_features.rs); agents/models/testdata/router-parity.json holds
golden vectors.

Time is cut into 15-second buckets: bucket j is (15 (j - 1), 15 j] seconds since the
Unix epoch, so a sample stamped ts belongs to bucket ceil(ts / 15 s) and a decision at
`now` sees the buckets up to k = floor(now / 15 s). Per backend and bucket: the mean over
the bucket's own metrics samples of error_rate, latency_p50_ms, latency_p99_ms, cpu,
backlog, rate_in and rate_out; a bucket without samples repeats the previous one; the
series starts at the first bucket f with a sample, and history before f repeats bucket f.

The quantity the model forecasts is a backend's **cost**: the expected latency of a request
sent to it, counting a failed request as FAILURE_MS (a client that has to retry elsewhere or
give up):

    cost[j] = (1 - e) * max(p99[j], 1) + e * 5000,  e = clip(err[j], 0, 1)

so a backend failing 1 % of requests costs 50 ms more, and one that is down costs 5 s. The
label is log2 of the mean cost over the next 60 s (buckets k+1..k+4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPEC_VERSION = 1
MODEL_NAME = "router-latency"
BUCKET_SECONDS = 15
BUCKET_MS = BUCKET_SECONDS * 1000
HISTORY_BUCKETS = 120  # 30 min: latency base, mean load
RECENT_BUCKETS = 40  # 10 min: worst cost, error history, jumps
HORIZON_SECONDS = 60  # label: the mean cost over this many seconds
MINUTE = 4  # buckets per minute
HORIZON_BUCKETS = HORIZON_SECONDS // BUCKET_SECONDS
FAILURE_MS = 5000.0
LATENCY_FLOOR_MS = 1.0
RATE_FLOOR = 1.0
LOAD_FLOOR = 0.01
REL_MAX = 1000.0
SILENT_MAX_S = 3600.0
TREND_MAX = 10.0
INPUT_NAME = "features"
OUTPUT_NAME = "latency_ms"
# The output is the forecast cost in ms: at least the latency floor, at most the
# simulator's latency ceiling (10 minutes).
OUTPUT_RANGE = (1.0, 600000.0)

# The per-bucket signals, in order.
SIGNALS = ("err", "p50", "p99", "cpu", "backlog", "rate_in", "rate_out")

_REL = "rel(v) = v[k] / min(v[j] for j in k-119..k with v[j] > 0), clipped to [1, 1000]; 1.0 when v[k] <= 0"
_MEAN = "mean(v, a..b) = the mean of v[j] for j in k-b..k-a; max(v, a..b) likewise the largest"
_COST = (f"cost[j] = (1 - e) * max(p99[j], 1) + e * {FAILURE_MS:g}, e = clip(err[j], 0, 1): the expected "
         "latency of a request sent to the backend, a failed request counted as 5 s")

FEATURES: list[dict] = [
    {"name": "cost_log2", "definition": "log2(cost[k])"},
    {"name": "cost_1m_log2", "definition": "log2(mean(cost, 0..3))"},
    {"name": "cost_trend", "definition": "clip(log2(cost[k] / cost[k-4]), -10, 10): cost doublings over the last minute"},
    {"name": "cost_trend_5m", "definition": "clip(log2(mean(cost, 0..3) / mean(cost, 16..19)), -10, 10): against the minute 4-5 minutes ago"},
    {"name": "cost_max_10m_log2", "definition": "log2(max(cost, 0..39)): the worst bucket of the last 10 minutes"},
    {"name": "cost_jumps_10m", "definition": "the number of j in k-38..k with |log2(cost[j] / cost[j-1])| >= 1: how often the cost doubled or halved from one bucket to the next over the last 10 minutes (flapping)"},
    {"name": "p99_log2", "definition": "log2(max(p99[k], 1))"},
    {"name": "p99_rel", "definition": "rel(p99): p99 against its lowest of the last 30 min"},
    {"name": "p99_trend", "definition": "clip(log2(max(p99[k], 1) / max(p99[k-4], 1)), -10, 10)"},
    {"name": "tail_ratio", "definition": "clip(p99[k] / max(p50[k], 1), 0, 1000)"},
    {"name": "err", "definition": "err[k]"},
    {"name": "err_1m", "definition": "mean(err, 0..3)"},
    {"name": "err_delta", "definition": "mean(err, 0..3) - mean(err, 4..7)"},
    {"name": "err_max_10m", "definition": "max(err, 0..39)"},
    {"name": "err_10m", "definition": "mean(err, 0..39)"},
    {"name": "cpu", "definition": "clip(cpu[k], 0, 10)"},
    {"name": "cpu_delta", "definition": "clip(cpu[k] - cpu[k-4], -10, 10)"},
    {"name": "queue_s", "definition": "clip(backlog[k] / max(rate_out[k], 1), 0, 3600): seconds of queued work"},
    {"name": "queue_growth_s", "definition": "clip((backlog[k] - backlog[k-4]) / max(rate_out[k], 1), -3600, 3600)"},
    {"name": "unserved", "definition": "clip((rate_in[k] - rate_out[k]) / max(rate_in[k], 1), -1, 1)"},
    {"name": "load_rel", "definition": "clip(rate_in[k] / max(mean(rate_in, 0..119), 0.01), 0, 100): arrivals against the 30-min mean"},
    {"name": "silent_s", "definition": "clip((now - ts of the newest sample stamped at or before now) / 1 s, 0, 3600): time since the backend last reported"},
    {"name": "warm", "definition": "min(k - f + 1, 120) / 120: how much of the 30-min history exists"},
]
FEATURE_NAMES: list[str] = [f["name"] for f in FEATURES]
N_FEATURES = len(FEATURES)
# Left out of drift monitoring: `warm` rises on every start, `silent_s` is 0 whenever
# reports arrive on time (the rule's stale_after handles silence), and the levels (cost,
# p99, tail ratio, cpu, load against the 30-min mean) follow the time of day and which
# backends a route has: over a drift window of 1000 rows (50 minutes of five backends) their
# PSI against the pooled training rows is above 0.2 in most windows of the training
# recordings themselves. What is watched are the shapes: trends, jumps, errors, queues.
DRIFT_EXCLUDED = ("cost_log2", "cost_1m_log2", "cost_max_10m_log2", "p99_log2", "p99_rel",
                  "tail_ratio", "cpu", "load_rel", "silent_s", "warm")


def feature_spec() -> dict:
    """The spec as written to agents/models/router.features.json."""
    return {
        "spec_version": SPEC_VERSION,
        "model_name": MODEL_NAME,
        "bucket_seconds": BUCKET_SECONDS,
        "history_buckets": HISTORY_BUCKETS,
        "recent_buckets": RECENT_BUCKETS,
        "horizon_seconds": HORIZON_SECONDS,
        "failure_ms": FAILURE_MS,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", N_FEATURES]},
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", 1],
            "range": list(OUTPUT_RANGE),
            "meaning": f"the backend's forecast cost (see label) over the next {HORIZON_SECONDS} s, "
                       "in ms; outside range (or NaN/inf) is a model fault: use the rule.",
        },
        "label": {
            "cost": _COST,
            "y": f"y(k) = log2(mean(cost[j] for j in k+1..k+{HORIZON_BUCKETS})); the model is "
                 "fitted on y and its ONNX graph returns 2^y (ms)",
            "rows": "every bucket of every route backend with a full horizon after it",
            "ewma_forecast": "the rule's implicit forecast, for comparison: cost with err and p99 "
                             "replaced by their EWMAs over the samples (alpha 0.3, the router's "
                             "default), as of the decision",
        },
        "buckets": {
            "index": f"bucket j covers ({BUCKET_SECONDS} (j - 1), {BUCKET_SECONDS} j] seconds since the "
                     f"Unix epoch: a sample stamped ts is in bucket ceil(ts / {BUCKET_SECONDS} s); a "
                     f"decision at now reads buckets up to k = floor(now / {BUCKET_SECONDS} s)",
            "own": "mean over the bucket's metrics samples of the backend of error_rate (err), "
                   "latency_p50_ms (p50), latency_p99_ms (p99), cpu, backlog, rate_in, rate_out",
            "gaps": "a bucket without samples repeats the previous bucket",
            "history": "the series starts at f, the first bucket with a sample; an index j < f "
                       "reads bucket f (history before the first bucket repeats it)",
            "late": "the agent closes buckets at decisions (watermark); a sample for a closed "
                    "bucket is ignored",
            "arithmetic": "compute in float64 and cast each feature to float32 at the end",
        },
        "helpers": {"rel": _REL, "mean": _MEAN, "cost": _COST},
        "features": FEATURES,
        "feature_names": FEATURE_NAMES,
        "drift_excluded": list(DRIFT_EXCLUDED),
        "reference_stats": {
            "where": "ONNX metadata_props key 'reference_stats' (JSON): per feature, mean, std "
                     "(population), decile_edges (9 values: the 10%..90% quantiles of the "
                     "training features, numpy 'linear' method) and proportions (10 values)",
            "binning": "bin index = number of edges e with e <= x, 0..9",
            "psi": "PSI = sum_i (p_live_i - p_ref_i) * ln(p_live_i / p_ref_i), each proportion "
                   "floored at 1e-4",
        },
    }


def spec_text() -> str:
    return json.dumps(feature_spec(), indent=2) + "\n"


# ------------------------------------------------------------------ time

def parse_ts_ms(text: str) -> int:
    """RFC 3339 (as the telemetry writes it, e.g. 2026-11-27T11:00:05.000Z) to unix ms."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1000))


def bucket_of(ts_ms: int) -> int:
    return -((-ts_ms) // BUCKET_MS)  # ceil


def complete_at(now_ms: int) -> int:
    return now_ms // BUCKET_MS


# ------------------------------------------------------------------ buckets

@dataclass
class _Acc:
    n: int = 0
    sums: list = field(default_factory=lambda: [0.0] * len(SIGNALS))


@dataclass
class BackendSeries:
    """One backend's buckets f..K after carry-forward: `first` = f, `values` [K-f+1, 7] in
    SIGNALS order; `sample_ts` the sorted stamps of its samples (for silent_s)."""

    service: str
    first: int
    values: np.ndarray
    sample_ts: np.ndarray

    def signal(self, name: str) -> np.ndarray:
        return self.values[:, SIGNALS.index(name)]


def figures(m: dict) -> list[float] | None:
    """The own figures of one metrics sample (SIGNALS order), None when one is not finite
    (the decoder refuses those; the agent ignores them too)."""
    v = [m["error_rate"], m["latency_p50_ms"], m["latency_p99_ms"], m["cpu"], float(m["backlog"]),
         m["rate_in"], m["rate_out"]]
    if not all(np.isfinite(x) for x in v):
        return None
    return v


def build_series(metrics: list[dict], services=None, last_bucket: int | None = None) -> dict[str, BackendSeries]:
    """Bucketed, carried-forward series of every service with samples (or of `services`
    only), from metrics samples (dicts as in telemetry.jsonl, with `ts_ms` added), up to
    `last_bucket` (default: the newest sample's bucket)."""
    wanted = None if services is None else set(services)
    acc: dict[str, dict[int, _Acc]] = {}
    stamps: dict[str, list[int]] = {}
    newest = None
    for m in metrics:
        if wanted is not None and m["service"] not in wanted:
            continue
        v = figures(m)
        if v is None:
            continue
        b = bucket_of(m["ts_ms"])
        newest = b if newest is None else max(newest, b)
        a = acc.setdefault(m["service"], {}).setdefault(b, _Acc())
        a.n += 1
        for i, x in enumerate(v):
            a.sums[i] += x
        stamps.setdefault(m["service"], []).append(m["ts_ms"])
    end = last_bucket if last_bucket is not None else newest
    out: dict[str, BackendSeries] = {}
    for service in sorted(acc):
        buckets = acc[service]
        first = min(buckets)
        if end is None or first > end:
            continue
        carried = [0.0] * len(SIGNALS)
        rows = np.zeros((end - first + 1, len(SIGNALS)))
        for j in range(first, end + 1):
            a = buckets.get(j)
            if a is not None:
                carried = [s / a.n for s in a.sums]
            rows[j - first] = carried
        out[service] = BackendSeries(service, first, rows, np.array(sorted(stamps[service]), dtype=np.int64))
    return out


# ------------------------------------------------------------------ features

def cost_of(err: np.ndarray, p99: np.ndarray) -> np.ndarray:
    e = np.clip(err, 0.0, 1.0)
    return (1.0 - e) * np.maximum(p99, LATENCY_FLOOR_MS) + e * FAILURE_MS


def _windows(v: np.ndarray, n: int) -> np.ndarray:
    """[len(v), n]: row i = v[i-n+1 .. i] (oldest first), indices below 0 read v[0]."""
    padded = np.concatenate([np.full(n - 1, v[0]), v])
    return sliding_window_view(padded, n)


def _mean(v: np.ndarray, a: int, b: int) -> np.ndarray:
    """mean(v, a..b) at every index."""
    w = _windows(v, b + 1)
    return w[:, : b + 1 - a].sum(axis=1) / (b - a + 1)


def _rel(v: np.ndarray) -> np.ndarray:
    w = _windows(v, HISTORY_BUCKETS)
    base = np.where(w > 0.0, w, np.inf).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(v / base, 1.0, REL_MAX)
    return np.where(v > 0.0, r, 1.0)


def silent_s(sample_ts: np.ndarray, now_ms: np.ndarray) -> np.ndarray:
    """Seconds since the newest sample stamped at or before each `now` (3600 when none)."""
    i = np.searchsorted(sample_ts, now_ms, side="right") - 1
    last = np.where(i >= 0, sample_ts[np.maximum(i, 0)], now_ms - int(SILENT_MAX_S * 1000))
    return np.clip((now_ms - last) / 1000.0, 0.0, SILENT_MAX_S)


def features(s: BackendSeries, now_ms: np.ndarray | None = None) -> np.ndarray:
    """Feature matrix [K-f+1, N_FEATURES] (float32): row i = the features at bucket f + i,
    decided at now_ms[i] (default: the bucket's end, 15 s * (f + i))."""
    g = s.signal
    err, p50, p99, cpu = g("err"), g("p50"), g("p99"), g("cpu")
    backlog, rin, rout = g("backlog"), g("rate_in"), g("rate_out")
    n = len(err)
    idx = np.arange(n)
    back = np.maximum(idx - MINUTE, 0)
    if now_ms is None:
        now_ms = (s.first + idx) * BUCKET_MS
    cost = cost_of(err, p99)
    m1 = _mean(cost, 0, MINUTE - 1)
    cols = []
    cols.append(np.log2(cost))
    cols.append(np.log2(m1))
    cols.append(np.clip(np.log2(cost / cost[back]), -TREND_MAX, TREND_MAX))
    cols.append(np.clip(np.log2(m1 / _mean(cost, 4 * MINUTE, 5 * MINUTE - 1)), -TREND_MAX, TREND_MAX))
    recent = _windows(cost, RECENT_BUCKETS)
    cols.append(np.log2(recent.max(axis=1)))
    jumps = np.abs(np.log2(recent[:, 1:] / recent[:, :-1])) >= 1.0
    cols.append(jumps.sum(axis=1).astype(np.float64))
    cols.append(np.log2(np.maximum(p99, LATENCY_FLOOR_MS)))
    cols.append(_rel(p99))
    cols.append(np.clip(np.log2(np.maximum(p99, LATENCY_FLOOR_MS) / np.maximum(p99[back], LATENCY_FLOOR_MS)),
                        -TREND_MAX, TREND_MAX))
    cols.append(np.clip(p99 / np.maximum(p50, LATENCY_FLOOR_MS), 0.0, REL_MAX))
    cols.append(err)
    cols.append(_mean(err, 0, MINUTE - 1))
    cols.append(_mean(err, 0, MINUTE - 1) - _mean(err, MINUTE, 2 * MINUTE - 1))
    cols.append(_windows(err, RECENT_BUCKETS).max(axis=1))
    cols.append(_mean(err, 0, RECENT_BUCKETS - 1))
    cols.append(np.clip(cpu, 0.0, 10.0))
    cols.append(np.clip(cpu - cpu[back], -10.0, 10.0))
    out = np.maximum(rout, RATE_FLOOR)
    cols.append(np.clip(backlog / out, 0.0, 3600.0))
    cols.append(np.clip((backlog - backlog[back]) / out, -3600.0, 3600.0))
    cols.append(np.clip((rin - rout) / np.maximum(rin, RATE_FLOOR), -1.0, 1.0))
    cols.append(np.clip(rin / np.maximum(_mean(rin, 0, HISTORY_BUCKETS - 1), LOAD_FLOOR), 0.0, 100.0))
    cols.append(silent_s(s.sample_ts, np.asarray(now_ms, dtype=np.int64)))
    cols.append(np.minimum(idx + 1, HISTORY_BUCKETS) / HISTORY_BUCKETS)
    x = np.stack(cols, axis=1)
    assert x.shape[1] == N_FEATURES
    return x.astype(np.float32)


# ------------------------------------------------------------------ recordings

def read_metrics(path: str, services=None) -> list[dict]:
    """The metrics samples of a recording's telemetry.jsonl (of `services` only, when
    given), in file order, each with `ts_ms`; event samples and lines that are not valid
    metrics JSON (poison faults) are skipped, as the runtime dead-letters them."""
    wanted = None if services is None else set(services)
    out = []
    with open(path, "rb") as f:
        for line in f:
            if b'"type":"metrics"' not in line:
                continue
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if not isinstance(m, dict) or m.get("type") != "metrics":
                continue
            if wanted is not None and m.get("service") not in wanted:
                continue
            try:
                m["ts_ms"] = parse_ts_ms(m["ts"])
            except (KeyError, ValueError, TypeError):
                continue
            out.append(m)
    return out


# ------------------------------------------------------------------ label and baselines

def ewma_costs(metrics: list[dict], service: str, now_ms: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """The rule's implicit forecast at each decision time: cost with err and p99 replaced by
    the router's EWMAs (starting at the first sample, newer samples only) over the samples
    stamped at or before the decision."""
    ts, p, e = [], [], []
    cur_p = cur_e = None
    last = None
    for m in metrics:
        if m["service"] != service or figures(m) is None:
            continue
        if last is not None and m["ts_ms"] <= last:
            continue
        last = m["ts_ms"]
        if cur_p is None:
            cur_p, cur_e = m["latency_p99_ms"], m["error_rate"]
        else:
            cur_p = alpha * m["latency_p99_ms"] + (1 - alpha) * cur_p
            cur_e = alpha * m["error_rate"] + (1 - alpha) * cur_e
        ts.append(m["ts_ms"])
        p.append(cur_p)
        e.append(cur_e)
    ts_a = np.array(ts, dtype=np.int64)
    i = np.searchsorted(ts_a, now_ms, side="right") - 1
    i = np.maximum(i, 0)
    return cost_of(np.array(e)[i], np.array(p)[i])


@dataclass
class Rows:
    """Feature rows of one recording, with labels."""

    x: np.ndarray  # [n, N_FEATURES] float32
    y: np.ndarray  # [n] log2(mean cost over the next 60 s)
    ewma: np.ndarray  # [n] log2 of the rule's implicit forecast
    last: np.ndarray  # [n] log2 of cost[k] (the naive forecast)
    service: np.ndarray  # [n] backend name
    t_ms: np.ndarray  # [n] decision time T = 15 s * k


def label_rows(metrics: list[dict], backends) -> Rows:
    """Rows at every bucket k of every backend with a full horizon after it (k + 4 <= K)."""
    series = build_series(metrics, services=backends)
    xs, ys, ew, la, names, ts = [], [], [], [], [], []
    for name, s in series.items():
        x = features(s)
        cost = cost_of(s.signal("err"), s.signal("p99"))
        n = len(cost) - HORIZON_BUCKETS
        if n <= 0:
            continue
        ahead = sliding_window_view(cost[1:], HORIZON_BUCKETS)[:n].mean(axis=1)
        t = (s.first + np.arange(n, dtype=np.int64)) * BUCKET_MS
        xs.append(x[:n])
        ys.append(np.log2(ahead))
        ew.append(np.log2(ewma_costs(metrics, name, t)))
        la.append(np.log2(cost[:n]))
        names.append(np.full(n, name))
        ts.append(t)
    if not xs:
        z = np.zeros(0)
        return Rows(np.zeros((0, N_FEATURES), np.float32), z, z, z, np.zeros(0, str), np.zeros(0, np.int64))
    return Rows(np.concatenate(xs), np.concatenate(ys), np.concatenate(ew), np.concatenate(la),
                np.concatenate(names), np.concatenate(ts))
