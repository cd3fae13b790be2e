"""Real load traces: loading, resampling to 1-minute steps, digest.

The traces are the byte-for-byte copies in simulations/traces/ (attribution and
licences: simulations/traces/SOURCES.md). Each file is `t_seconds,rate` with a fixed
bucket size (60 s, 300 s or 3600 s). The scaler model works on a 1-minute series, so
coarser traces are resampled by linear interpolation between bucket centres (see
`to_minutes`); that makes the 5-min and 1-h traces smoother at minute scale than real
minute data would be.
"""

from __future__ import annotations

import calendar
import hashlib
import os
from dataclasses import dataclass

import numpy as np

# project root = agents/training/conclave_training/../../..
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TRACES_DIR = os.path.join(ROOT, "simulations", "traces")


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


# Start of bucket 0 in UTC (unix seconds) and bucket size, from SOURCES.md.
TRACE_INFO: dict[str, tuple[int, int]] = {
    "appserver-cluster-2015-2020-1h.csv": (_utc(2015, 3, 26, 13, 0), 3600),
    "nab-twitter-aapl-2015-5min.csv": (_utc(2015, 2, 26, 21, 42, 53), 300),
    "nasa-http-1995-07-1min.csv": (_utc(1995, 7, 1, 4, 0), 60),
    "wikipedia-2009-1h.csv": (_utc(2009, 1, 1, 0, 0), 3600),
    "worldcup98-1min.csv": (_utc(1998, 4, 30, 21, 30), 60),
}

# Kept out of training entirely; the model card reports the forecast error on it.
HELDOUT_TRACES: tuple[str, ...] = ("nasa-http-1995-07-1min.csv",)
# Everything else, in the fixed (sorted) order used for the training-data digest.
TRAINING_TRACES: tuple[str, ...] = tuple(
    sorted(f for f in TRACE_INFO if f not in HELDOUT_TRACES)
)


@dataclass(frozen=True)
class MinuteSeries:
    """A gap-free 1-minute rate series. Minute m covers [start_unix + 60 m, +60)."""

    name: str
    start_unix: float
    rate: np.ndarray  # float64, arrivals per second averaged over the minute
    source_bucket_s: int


def read_trace(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a `t_seconds,rate` file; checks the header and a constant bucket size."""
    with open(path, "r", encoding="ascii") as f:
        header = f.readline().strip()
        if header != "t_seconds,rate":
            raise ValueError(f"{path}: header is {header!r}, expected 't_seconds,rate'")
        data = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    t, rate = data[:, 0], data[:, 1]
    if len(t) < 2:
        raise ValueError(f"{path}: fewer than 2 rows")
    b = t[1] - t[0]
    if t[0] != 0 or not np.all(np.diff(t) == b):
        raise ValueError(f"{path}: t_seconds is not 0, b, 2b, ...")
    if not np.all(np.isfinite(rate)) or np.any(rate < 0):
        raise ValueError(f"{path}: rate must be finite and >= 0")
    return t, rate


def to_minutes(t: np.ndarray, rate: np.ndarray, bucket_s: int) -> np.ndarray:
    """Resample a bucketed rate series to 1-minute steps.

    60-s buckets are returned as they are. For a coarser bucket b, each bucket's
    rate is placed at the bucket centre (t + b/2) and the rate of minute m (centre
    60 m + 30) is linearly interpolated between neighbouring centres; minutes before
    the first or after the last centre take the first / last bucket's rate.
    The series covers len(t) * b / 60 minutes.
    """
    if bucket_s == 60:
        return rate.astype(np.float64, copy=True)
    if bucket_s % 60 != 0:
        raise ValueError(f"bucket {bucket_s}s is not a multiple of 60 s")
    n_min = len(t) * bucket_s // 60
    centres = t + bucket_s / 2.0
    minute_centres = np.arange(n_min, dtype=np.float64) * 60.0 + 30.0
    return np.interp(minute_centres, centres, rate)


def load_minute_series(filename: str, traces_dir: str = TRACES_DIR) -> MinuteSeries:
    start, bucket = TRACE_INFO[filename]
    t, rate = read_trace(os.path.join(traces_dir, filename))
    if int(t[1] - t[0]) != bucket:
        raise ValueError(f"{filename}: bucket {t[1] - t[0]} s, expected {bucket} s")
    return MinuteSeries(filename, float(start), to_minutes(t, rate, bucket), bucket)


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def training_digest(files: tuple[str, ...] = TRAINING_TRACES, traces_dir: str = TRACES_DIR) -> str:
    """sha256 over the bytes of the training CSVs concatenated in the given order
    (TRAINING_TRACES is sorted by file name)."""
    h = hashlib.sha256()
    for name in files:
        with open(os.path.join(traces_dir, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()
