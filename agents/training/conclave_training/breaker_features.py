"""Feature definition of the breaker risk model.

This module is the Python implementation of agents/models/breaker.features.json;
`feature_spec()` produces that file (the trainer writes it, and embeds the same text in
the ONNX model's metadata_props). The Rust breaker agent implements the same
definitions (runtime/src/models/breaker_features.rs); agents/models/testdata/
breaker-parity.json holds golden vectors.

Time is cut into 15-second buckets: bucket j is (15 (j - 1), 15 j] seconds since the
Unix epoch, so a sample stamped ts belongs to bucket ceil(ts / 15 s) and a decision at
`now` sees the buckets up to k = floor(now / 15 s). Per service and bucket:

- own: the mean over the bucket's samples of error_rate, latency_p50_ms, latency_p99_ms,
  cpu, backlog, rate_in, rate_out, and of two per-sample dependency figures: the largest
  error_rate and the largest latency_p99_ms among the sample's dependencies with
  calls_per_s > 0 (other than itself; 0 when none);
- callers: over every dependency entry other services report for this one stamped in
  the bucket, the call-weighted error rate sum(calls * err) / sum(calls), the largest
  p99 among entries with calls, and has = 1 when sum(calls) > 0 (all 0 without calls);
- a bucket without samples of a group repeats that group's previous bucket (callers:
  zeros before the first entry). The series starts at the first bucket f with an own
  sample; history before f repeats bucket f.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPEC_VERSION = 1
MODEL_NAME = "breaker-risk"
BUCKET_SECONDS = 15
BUCKET_MS = BUCKET_SECONDS * 1000
HISTORY_BUCKETS = 120  # 30 min: latency bases, mean load, calm search
HORIZON_SECONDS = 60  # label: the trip condition within this many seconds
MINUTE = 4  # buckets per minute
HORIZON_BUCKETS = HORIZON_SECONDS // BUCKET_SECONDS
# The label's trip condition: resilience4j's default failureRateThreshold (50 %), the
# breaker rule's default, on the rule's default 60 s window.
TRIP_FAILURE_RATE = 0.5
CALM_ERROR_RATE = 0.01
CALM_CAP_MIN = 30.0
LATENCY_FLOOR_MS = 1.0
RATE_FLOOR = 1.0
LOAD_FLOOR = 0.01
REL_MAX = 1000.0
INPUT_NAME = "features"
OUTPUT_NAME = "risk"
OUTPUT_RANGE = (0.0, 1.0)

# The per-bucket signals, in the order the golden file stores them.
SIGNALS = ("err", "p50", "p99", "cpu", "backlog", "rate_in", "rate_out", "dep_err",
           "dep_p99", "caller_err", "caller_p99", "caller_has")

_REL = "rel(v) = v[k] / min(v[j] for j in k-119..k with v[j] > 0), clipped to [1, 1000]; 1.0 when v[k] <= 0"
_MEAN = "mean(v, a..b) = the mean of v[j] for j in k-b..k-a"

FEATURES: list[dict] = [
    {"name": "err", "definition": "own error_rate[k]"},
    {"name": "err_1m", "definition": "mean(err, 0..3): own error rate over the last minute"},
    {"name": "err_delta", "definition": "mean(err, 0..3) - mean(err, 4..7): change against the minute before"},
    {"name": "p99_rel", "definition": "rel(p99): own p99 against its lowest of the last 30 min"},
    {"name": "p99_trend", "definition": "clip(log2(max(p99[k], 1) / max(p99[k-4], 1)), -10, 10): p99 doublings over the last minute"},
    {"name": "tail_ratio", "definition": "clip(p99[k] / max(p50[k], 1), 0, 1000)"},
    {"name": "cpu", "definition": "clip(cpu[k], 0, 10)"},
    {"name": "cpu_delta", "definition": "clip(cpu[k] - cpu[k-4], -10, 10)"},
    {"name": "queue_s", "definition": "clip(backlog[k] / max(rate_out[k], 1), 0, 3600): seconds of queued work"},
    {"name": "queue_growth_s", "definition": "clip((backlog[k] - backlog[k-4]) / max(rate_out[k], 1), -3600, 3600): queued seconds added over the last minute"},
    {"name": "unserved", "definition": "clip((rate_in[k] - rate_out[k]) / max(rate_in[k], 1), -1, 1): share of arrivals not completed"},
    {"name": "load_rel", "definition": "clip(rate_in[k] / max(mean(rate_in, 0..119), 0.01), 0, 100): arrivals against the 30-min mean"},
    {"name": "caller_err", "definition": "callers' call-weighted error rate of calls to this service, [k]"},
    {"name": "caller_err_delta", "definition": "mean(caller_err, 0..3) - mean(caller_err, 4..7)"},
    {"name": "caller_p99_rel", "definition": "rel(caller_p99): the callers' p99 of this service against its lowest of the last 30 min"},
    {"name": "has_callers", "definition": "caller_has[k]: 1.0 when callers made calls in bucket k"},
    {"name": "dep_err", "definition": "dep_err[k]: the worst error rate among this service's own dependencies"},
    {"name": "dep_err_delta", "definition": "mean(dep_err, 0..3) - mean(dep_err, 4..7)"},
    {"name": "dep_p99_rel", "definition": "rel(dep_p99): the slowest dependency's p99 against its lowest of the last 30 min"},
    {"name": "calm_min", "definition": "(k - j) / 4 for the newest j in max(k-119, f)..k with max(err[j], caller_err[j]) >= 0.01; 30.0 when none: minutes since errors"},
    {"name": "warm", "definition": "min(k - f + 1, 120) / 120: how much of the 30-min history exists"},
]
FEATURE_NAMES: list[str] = [f["name"] for f in FEATURES]
N_FEATURES = len(FEATURES)


def feature_spec() -> dict:
    """The spec as written to agents/models/breaker.features.json."""
    return {
        "spec_version": SPEC_VERSION,
        "model_name": MODEL_NAME,
        "bucket_seconds": BUCKET_SECONDS,
        "history_buckets": HISTORY_BUCKETS,
        "horizon_seconds": HORIZON_SECONDS,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", N_FEATURES]},
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", 1],
            "range": list(OUTPUT_RANGE),
            "meaning": f"probability that the breaker's trip condition (see label) holds at a "
                       f"bucket within the next {HORIZON_SECONDS} s, given that it does not hold "
                       "now; outside range (or NaN/inf) is a model fault: use the rule.",
        },
        "label": {
            "fail_1m": "fail_1m[j] = mean(caller_err, j-3..j) when caller_has is 1 in any of "
                       "buckets j-3..j, else mean(err, j-3..j): the failure rate of calls to the "
                       "service over the last minute, the callers' view preferred as the rule does",
            "trip": f"trip[j] = fail_1m[j] >= {TRIP_FAILURE_RATE} (resilience4j's default "
                    "failure_rate_threshold of 50 % on the default 60 s window)",
            "y": f"y(k) = 1 when trip[j] for some j in k+1..k+{HORIZON_BUCKETS}",
            "rows": "training rows are the buckets with trip[k] = 0 (once the condition holds, "
                    "the rule opens the breaker itself) and a full horizon after them",
        },
        "buckets": {
            "index": f"bucket j covers ({BUCKET_SECONDS} (j - 1), {BUCKET_SECONDS} j] seconds since the "
                     f"Unix epoch: a sample stamped ts is in bucket ceil(ts / {BUCKET_SECONDS} s); a "
                     f"decision at now reads buckets up to k = floor(now / {BUCKET_SECONDS} s)",
            "own": "mean over the bucket's own metrics samples of error_rate (err), latency_p50_ms "
                   "(p50), latency_p99_ms (p99), cpu, backlog, rate_in, rate_out; and of dep_err = "
                   "max(error_rate) and dep_p99 = max(latency_p99_ms) over the sample's "
                   "dependencies with calls_per_s > 0 other than the service itself (0 when none)",
            "callers": "over every dependency entry about this service in other services' samples "
                       "stamped in the bucket: caller_err = sum(calls_per_s * error_rate) / "
                       "sum(calls_per_s), caller_p99 = max(latency_p99_ms) over entries with "
                       "calls_per_s > 0, caller_has = 1; all 0 when sum(calls_per_s) is 0",
            "gaps": "a bucket without samples of a group (own, callers) repeats that group's "
                    "previous bucket; callers are 0 before their first entry",
            "history": "the series starts at f, the first bucket with an own sample; an index j < f "
                       "reads bucket f (history before the first bucket repeats it)",
            "late": "the agent closes buckets at decisions (watermark); a sample for a closed "
                    "bucket is ignored",
            "arithmetic": "compute in float64 and cast each feature to float32 at the end",
        },
        "helpers": {"rel": _REL, "mean": _MEAN},
        "features": FEATURES,
        "feature_names": FEATURE_NAMES,
        "reference_stats": {
            "where": "ONNX metadata_props key 'reference_stats' (JSON): per feature, mean, std "
                     "(population), decile_edges (9 values: the 10%..90% quantiles of the "
                     "training features, numpy 'linear' method) and proportions (10 values)",
            "binning": "bin index = number of edges e with e <= x, 0..9",
            "psi": "PSI = sum_i (p_live_i - p_ref_i) * ln(p_live_i / p_ref_i), each proportion "
                   "floored at 1e-4",
        },
    }


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
    own: int = 0
    sums: list = field(default_factory=lambda: [0.0] * 9)
    callers: int = 0
    calls: float = 0.0
    weighted: float = 0.0
    caller_p99: float = 0.0


@dataclass
class ServiceSeries:
    """One service's buckets f..K after carry-forward: `first` = f, `values` [K-f+1, 12]
    in SIGNALS order."""

    service: str
    first: int
    values: np.ndarray

    def signal(self, name: str) -> np.ndarray:
        return self.values[:, SIGNALS.index(name)]


def own_figures(m: dict) -> list[float]:
    """The nine own figures of one metrics sample (SIGNALS[:9] order)."""
    dep_err = dep_p99 = 0.0
    for d in m.get("dependencies", ()):
        if d["service"] == m["service"] or not d["calls_per_s"] > 0.0:
            continue
        dep_err = max(dep_err, d["error_rate"])
        dep_p99 = max(dep_p99, d["latency_p99_ms"])
    return [m["error_rate"], m["latency_p50_ms"], m["latency_p99_ms"], m["cpu"],
            float(m["backlog"]), m["rate_in"], m["rate_out"], dep_err, dep_p99]


def build_series(metrics: list[dict], last_bucket: int | None = None) -> dict[str, ServiceSeries]:
    """Bucketed, carried-forward series of every service with own samples, from metrics
    samples (dicts as in telemetry.jsonl, with `ts_ms` added), up to `last_bucket`
    (default: the newest sample's bucket)."""
    acc: dict[str, dict[int, _Acc]] = {}
    newest = None
    for m in metrics:
        b = bucket_of(m["ts_ms"])
        newest = b if newest is None else max(newest, b)
        a = acc.setdefault(m["service"], {}).setdefault(b, _Acc())
        a.own += 1
        for i, v in enumerate(own_figures(m)):
            a.sums[i] += v
        for d in m.get("dependencies", ()):
            if d["service"] == m["service"]:
                continue
            c = acc.setdefault(d["service"], {}).setdefault(b, _Acc())
            c.callers += 1
            if d["calls_per_s"] > 0.0:
                c.calls += d["calls_per_s"]
                c.weighted += d["calls_per_s"] * d["error_rate"]
                c.caller_p99 = max(c.caller_p99, d["latency_p99_ms"])
    end = last_bucket if last_bucket is not None else newest
    out: dict[str, ServiceSeries] = {}
    for service in sorted(acc):
        buckets = acc[service]
        own = [b for b, a in buckets.items() if a.own > 0]
        if not own or end is None:
            continue
        first = min(own)
        if first > end:
            continue
        carried = [0.0] * len(SIGNALS)
        # callers before the first own bucket carry into it
        for b in sorted(x for x in buckets if x < first):
            _apply(carried, buckets[b])
        rows = np.zeros((end - first + 1, len(SIGNALS)))
        for j in range(first, end + 1):
            a = buckets.get(j)
            if a is not None:
                _apply(carried, a)
            rows[j - first] = carried
        out[service] = ServiceSeries(service, first, rows)
    return out


def _apply(carried: list[float], a: _Acc) -> None:
    if a.own > 0:
        for i in range(9):
            carried[i] = a.sums[i] / a.own
    if a.callers > 0:
        if a.calls > 0.0:
            carried[9] = a.weighted / a.calls
            carried[10] = a.caller_p99
            carried[11] = 1.0
        else:
            carried[9] = carried[10] = carried[11] = 0.0


# ------------------------------------------------------------------ features

def _windows(v: np.ndarray, n: int) -> np.ndarray:
    """[len(v), n]: row i = v[i-n+1 .. i] (oldest first), indices below 0 read v[0]."""
    padded = np.concatenate([np.full(n - 1, v[0]), v])
    return sliding_window_view(padded, n)


def _rel(v: np.ndarray) -> np.ndarray:
    w = _windows(v, HISTORY_BUCKETS)
    base = np.where(w > 0.0, w, np.inf).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(v / base, 1.0, REL_MAX)
    return np.where(v > 0.0, r, 1.0)


def _delta(v: np.ndarray) -> np.ndarray:
    w = _windows(v, 2 * MINUTE)
    return w[:, MINUTE:].sum(axis=1) / MINUTE - w[:, :MINUTE].sum(axis=1) / MINUTE


def features(s: ServiceSeries) -> np.ndarray:
    """Feature matrix [K-f+1, N_FEATURES] (float32): row i = the features at bucket f + i."""
    g = s.signal
    err, p50, p99, cpu = g("err"), g("p50"), g("p99"), g("cpu")
    backlog, rin, rout = g("backlog"), g("rate_in"), g("rate_out")
    cerr, cp99, chas = g("caller_err"), g("caller_p99"), g("caller_has")
    derr, dp99 = g("dep_err"), g("dep_p99")
    n = len(err)
    idx = np.arange(n)
    back = np.maximum(idx - MINUTE, 0)
    cols = []
    cols.append(err)
    cols.append(_windows(err, MINUTE).sum(axis=1) / MINUTE)
    cols.append(_delta(err))
    cols.append(_rel(p99))
    cols.append(np.clip(np.log2(np.maximum(p99, LATENCY_FLOOR_MS) / np.maximum(p99[back], LATENCY_FLOOR_MS)),
                        -10.0, 10.0))
    cols.append(np.clip(p99 / np.maximum(p50, LATENCY_FLOOR_MS), 0.0, REL_MAX))
    cols.append(np.clip(cpu, 0.0, 10.0))
    cols.append(np.clip(cpu - cpu[back], -10.0, 10.0))
    out = np.maximum(rout, RATE_FLOOR)
    cols.append(np.clip(backlog / out, 0.0, 3600.0))
    cols.append(np.clip((backlog - backlog[back]) / out, -3600.0, 3600.0))
    cols.append(np.clip((rin - rout) / np.maximum(rin, RATE_FLOOR), -1.0, 1.0))
    mean_in = _windows(rin, HISTORY_BUCKETS).sum(axis=1) / HISTORY_BUCKETS
    cols.append(np.clip(rin / np.maximum(mean_in, LOAD_FLOOR), 0.0, 100.0))
    cols.append(cerr)
    cols.append(_delta(cerr))
    cols.append(_rel(cp99))
    cols.append(chas)
    cols.append(derr)
    cols.append(_delta(derr))
    cols.append(_rel(dp99))
    # minutes since the newest bucket with an error rate >= 1 % (searched back 119 buckets,
    # not before f)
    mark = np.maximum(err, cerr) >= CALM_ERROR_RATE
    last = np.where(mark, idx, -1)
    last = np.maximum.accumulate(last)
    since = idx - last
    calm = np.where((last >= 0) & (since < HISTORY_BUCKETS), since / MINUTE, CALM_CAP_MIN)
    cols.append(calm)
    cols.append(np.minimum(idx + 1, HISTORY_BUCKETS) / HISTORY_BUCKETS)
    x = np.stack(cols, axis=1)
    assert x.shape[1] == N_FEATURES
    return x.astype(np.float32)


# ------------------------------------------------------------------ recordings

def read_metrics(path: str) -> list[dict]:
    """The metrics samples of a recording's telemetry.jsonl, in file order, each with
    `ts_ms`; event samples and lines that are not valid metrics JSON (poison faults) are
    skipped, as the runtime dead-letters them."""
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
            try:
                m["ts_ms"] = parse_ts_ms(m["ts"])
            except (KeyError, ValueError, TypeError):
                continue
            out.append(m)
    return out


def read_breaches(path: str) -> dict[str, dict[int, bool]]:
    """fleet.jsonl: per service, snapshot time (unix ms) -> is_breaching (the scenario's
    SLO), for the secondary metrics of the model card."""
    out: dict[str, dict[int, bool]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            s = d["service"]
            out.setdefault(s["service"], {})[parse_ts_ms(d["ts"])] = bool(s["is_breaching"])
    return out


# ------------------------------------------------------------------ label

def fail_1m(s: ServiceSeries) -> np.ndarray:
    """[K-f+1]: the failure rate of calls to the service over the last minute, as the
    breaker's rule sees it: mean(caller_err, 0..3) when callers made calls in any of those
    buckets, else mean(err, 0..3) (the service's own view)."""
    has = _windows(s.signal("caller_has"), MINUTE).max(axis=1) > 0.0
    callers = _windows(s.signal("caller_err"), MINUTE).sum(axis=1) / MINUTE
    own = _windows(s.signal("err"), MINUTE).sum(axis=1) / MINUTE
    return np.where(has, callers, own)


def tripped(s: ServiceSeries) -> np.ndarray:
    """[K-f+1] bool: the breaker's trip condition holds at the bucket (fail_1m >= 0.5)."""
    return fail_1m(s) >= TRIP_FAILURE_RATE


@dataclass
class Rows:
    """Feature rows of one recording, with labels."""

    x: np.ndarray  # [n, N_FEATURES] float32
    y: np.ndarray  # [n] 0/1: the trip condition holds at a bucket in k+1..k+4
    tripped: np.ndarray  # [n] bool: it holds at k already
    fail_now: np.ndarray  # [n] the failure rate of bucket k alone (callers' view if any)
    service: np.ndarray  # [n] service name
    t_ms: np.ndarray  # [n] decision time T = 15 s * k


def label_rows(series: dict[str, ServiceSeries]) -> Rows:
    """Rows at every bucket k with a full horizon after it (k + 4 <= K)."""
    xs, ys, now, names, ts, fails = [], [], [], [], [], []
    for name, s in series.items():
        x = features(s)
        trip = tripped(s)
        fail = np.where(s.signal("caller_has") > 0.0, s.signal("caller_err"), s.signal("err"))
        n = len(trip) - HORIZON_BUCKETS
        if n <= 0:
            continue
        ahead = sliding_window_view(trip[1:], HORIZON_BUCKETS)[:n].any(axis=1)
        xs.append(x[:n])
        ys.append(ahead.astype(np.int64))
        now.append(trip[:n])
        names.append(np.full(n, name))
        ts.append((s.first + np.arange(n, dtype=np.int64)) * BUCKET_MS)
        fails.append(fail[:n])
    if not xs:
        return Rows(np.zeros((0, N_FEATURES), np.float32), np.zeros(0, np.int64),
                    np.zeros(0, bool), np.zeros(0), np.zeros(0, str), np.zeros(0, np.int64))
    return Rows(np.concatenate(xs), np.concatenate(ys), np.concatenate(now),
                np.concatenate(fails), np.concatenate(names), np.concatenate(ts))


def spec_text() -> str:
    return json.dumps(feature_spec(), indent=2) + "\n"
