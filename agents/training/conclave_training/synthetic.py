"""Seeded synthetic 1-minute load for training the scaler forecast model.

Each service: a base rate drawn log-uniformly over 0.3..3000 req/s, a daily cycle
(first and second harmonic, random peak hour, in UTC), a weekend factor (Saturday and
Sunday UTC), a slow trend, AR(1) noise in log space, random level steps, flash crowds
(linear ramp over 1-15 min to 1.6-10x, then exponential decay over 10-120 min), and
Poisson counting noise per minute. Everything comes from numpy's default_rng seeded
with [seed, service index], so the same seed gives the same series.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .traces import MinuteSeries

SYNTH_SEED = 20260601
SYNTH_SERVICES = 8
SYNTH_DAYS = 21
# Monday 2024-01-01 00:00 UTC; each service starts at a random minute of that week.
SYNTH_EPOCH = calendar.timegm((2024, 1, 1, 0, 0, 0, 0, 0, 0))


@dataclass(frozen=True)
class SynthParams:
    seed: int = SYNTH_SEED
    services: int = SYNTH_SERVICES
    days: int = SYNTH_DAYS

    def describe(self) -> dict:
        return {"seed": self.seed, "services": self.services, "days": self.days,
                "generator": "conclave_training.synthetic v1"}


def synth_service(seed: int, index: int, days: int) -> MinuteSeries:
    rng = np.random.default_rng([seed, index])
    n = days * 1440
    start = SYNTH_EPOCH + 60 * int(rng.integers(0, 7 * 1440))
    m = np.arange(n, dtype=np.float64)
    tc = start + 60.0 * m + 30.0  # bucket centres
    hour = np.mod(tc, 86400.0) / 3600.0
    dow = np.floor_divide(tc + 3 * 86400.0, 86400.0) % 7  # 0 = Monday
    weekend = dow >= 5

    base = 10.0 ** rng.uniform(-0.5, 3.5)
    amp = rng.uniform(0.2, 0.8)
    peak = rng.uniform(0.0, 24.0)
    amp2 = rng.uniform(0.0, 0.3) * amp
    peak2 = rng.uniform(0.0, 24.0)
    daily = 1.0 + amp * np.cos(2 * np.pi * (hour - peak) / 24.0) \
        + amp2 * np.cos(4 * np.pi * (hour - peak2) / 24.0)
    daily = np.maximum(daily, 0.05)
    weekend_factor = rng.uniform(0.4, 1.05)
    week = np.where(weekend, weekend_factor, 1.0)
    trend = np.exp(rng.uniform(-0.3, 0.5) * m / n)

    phi = rng.uniform(0.9, 0.99)
    sigma = rng.uniform(0.01, 0.05)
    ar = lfilter([1.0], [1.0, -phi], rng.normal(0.0, sigma, n))

    level = np.ones(n)
    for _ in range(int(rng.poisson(1.0))):
        at = int(rng.integers(0, n))
        level[at:] *= rng.uniform(0.6, 1.6)

    flash = np.ones(n)
    for _ in range(int(rng.poisson(days / 3.0))):
        onset = int(rng.integers(0, n))
        peak_x = 10.0 ** rng.uniform(0.2, 1.0)
        rise = int(rng.integers(1, 16))
        decay = rng.uniform(10.0, 120.0)
        k = m - onset
        shape = np.where(k < 0, 0.0,
                         np.where(k < rise, (k + 1) / rise,
                                  np.exp(-np.maximum(k - rise, 0.0) / decay)))
        flash *= 1.0 + (peak_x - 1.0) * shape

    lam = base * daily * week * trend * np.exp(ar) * level * flash
    counts = rng.poisson(lam * 60.0)
    return MinuteSeries(f"synthetic-{index}", float(start), counts / 60.0, 60)


def synth_all(p: SynthParams = SynthParams()) -> list[MinuteSeries]:
    return [synth_service(p.seed, i, p.days) for i in range(p.services)]
