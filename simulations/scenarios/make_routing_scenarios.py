#!/usr/bin/env python3
"""Writes the routing scenarios (issue #6): training data for the router latency model and
the learned-vs-rules comparison of the router.

    python3 simulations/scenarios/make_routing_scenarios.py

writes, next to this script, five scenarios on one multi-region topology (9 services in
four regions): `edge` (region `edge`, never down) takes the external load and calls two
routes, `api` (backends api-euw, api-euc, api-use: one per region, each calling its own
regional database db-euw, db-euc, db-use) and `search` (search-euw, search-use). The us-east
backends are slower at rest (a farther region). The routes have one backend of spare
capacity off-peak (the others can take a failed backend's share) but not at the daily peak
with a flash crowd, so routing everything away from a slow backend is not always an answer.

* `routing-train-1.yaml` .. `routing-train-3.yaml` — 12 h each, seeds 1..3: diurnal load
  with flash crowds and a random stream of incidents on backends and their databases:
  slowdowns that ramp up in stages or arrive at once, error bursts that grow, backends
  that flap (errors or slowness switching on and off for a while), region outages, and
  benign blips. The model trains on their recordings.
* `routing-heldout.yaml` — the same generator with seed 4: kept out of training, the
  model card's held-out split.
* `routing-degrade.yaml` — 4 h, a fixed story (a regional database degrading in stages, a
  backend flapping errors, a search backend slowing, an eu-central outage, a backend
  flapping slowness, a benign blip): the learned-vs-rules comparison. Also not trained on.

Every scenario names `policies/routing-learned.yaml`. Deterministic and standard-library
only (`random.Random(seed)`): the output is byte-identical on every run. The files are
committed; rerun this script after changing it and commit them all.
"""

import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = "../../policies/routing-learned.yaml"

# name: (region, capacity/replica, base ms, replicas, slo p99 ms, slo error rate, max queue,
#        retries, dependencies [(service or route, calls/request, timeout ms)])
SERVICES = [
    ("edge", "edge", 400, 5, 4, 1000, 0.01, 20000, 2, [("api", 1.0, 800), ("search", 0.4, 600)]),
    ("api-euw", "eu-west", 80, 25, 6, 400, 0.02, 5000, 1, [("db-euw", 1.0, 300)]),
    ("api-euc", "eu-central", 80, 25, 6, 400, 0.02, 5000, 1, [("db-euc", 1.0, 300)]),
    ("api-use", "us-east", 80, 40, 6, 400, 0.02, 5000, 1, [("db-use", 1.0, 300)]),
    ("db-euw", "eu-west", 250, 8, 3, 150, 0.02, 5000, 1, []),
    ("db-euc", "eu-central", 250, 8, 3, 150, 0.02, 5000, 1, []),
    ("db-use", "us-east", 250, 8, 3, 150, 0.02, 5000, 1, []),
    ("search-euw", "eu-west", 100, 30, 4, 500, 0.02, 3000, 1, []),
    ("search-use", "us-east", 100, 45, 4, 500, 0.02, 3000, 1, []),
]
ROUTES = {"api": ["api-euw", "api-euc", "api-use"], "search": ["search-euw", "search-use"]}
COST = {"edge": 0.05, "db-euw": 0.2, "db-euc": 0.2, "db-use": 0.2}
# What an incident may hit: a backend, or a database behind one.
BACKENDS = ["api-euw", "api-euc", "api-use", "search-euw", "search-use"]
DATABASES = ["db-euw", "db-euc", "db-use"]
# eu-west is the primary region: it is never down as a whole in these scenarios.
OUTAGE_REGIONS = ["eu-central", "us-east"]
KEY = ["edge", "api-euw", "api-euc", "api-use", "search-euw"]
BASE_RATE = 500


def fleet_yaml() -> str:
    lines = ["  fleet:", "    routes:"]
    for route, backends in ROUTES.items():
        lines.append(f"      {route}: [{', '.join(backends)}]")
    lines.append("    services:")
    for (name, region, cap, base, reps, slo, slo_err, queue, retries, deps) in SERVICES:
        parts = [f"name: {name}", f"region: {region}", f"capacity_per_replica: {cap}",
                 f"base_latency_ms: {base}", f"initial_replicas: {reps}", "cold_start_s: 60",
                 f"cost_per_replica_hour: {COST.get(name, 0.1)}", f"slo_p99_ms: {slo}",
                 f"slo_error_rate: {slo_err}", f"max_queue: {queue}"]
        if retries > 1:
            parts.append(f"retry_attempts: {retries}")
        line = "      - {" + ", ".join(parts)
        if deps:
            d = ", ".join(f"{{service: {s}, calls_per_request: {c}, timeout_ms: {t}}}"
                          for s, c, t in deps)
            line += f",\n         dependencies: [{d}]"
        lines.append(line + "}")
    return "\n".join(lines)


def load_yaml(crowds: list[tuple[int, int, float, int]], peak_hour: int) -> str:
    fc = ", ".join(f"{{at_s: {a}, duration_s: {d}, multiplier: {m}, ramp_s: {r}}}"
                   for a, d, m, r in crowds)
    return f"""  load:
    edge:
      synthetic:
        base_rate_per_s: {BASE_RATE}
        diurnal_amplitude: 0.25
        peak_hour: {peak_hour}
        weekly_amplitude: 0.0
        trend_per_day: 0.0
        noise_sd: 0.05
        flash_crowds: [{fc}]"""


def fault(name: str, kind: str, start: int, duration: int) -> str:
    return (f"    - name: {name}\n      fault: {kind}\n"
            f"      when: {{at: {{start_s: {start}, duration_s: {duration}}}}}")


def slowdown(service: str, factor: float) -> str:
    return f"{{dependency_slowdown: {{service: {service}, factor: {factor}}}}}"


def errors(service: str, rate: float) -> str:
    return f"{{error_burst: {{service: {service}, extra_error_rate: {rate}}}}}"


def outage(region: str) -> str:
    return f"{{region_outage: {{region: {region}}}}}"


def staged(name: str, make, service: str, start: int, end: int, values: list[float],
           spacing: list[int]) -> list[str]:
    """Stages that start `spacing` apart and all end at `end` (slowdowns multiply, error
    bursts compound): a fault that grows."""
    out, t = [], start
    for i, v in enumerate(values):
        out.append(fault(f"{name}-stage{i + 1}", make(service, v), t, end - t))
        if i < len(spacing):
            t += spacing[i]
    return out


def flapping(name: str, kind: str, start: int, on: list[int], off: list[int]) -> tuple[list[str], int]:
    """`kind` switched on for on[i] seconds, then off for off[i], repeatedly; returns the
    faults and the end of the last off period."""
    out, t = [], start
    for i, (a, b) in enumerate(zip(on, off)):
        out.append(fault(f"{name}-{i + 1}", kind, t, a))
        t += a + b
    return out, t


def random_incidents(rng: random.Random, hours: int) -> list[str]:
    out = []
    t = rng.randint(15, 30) * 60
    n = 0
    horizon = hours * 3600 - 20 * 60
    while t < horizon:
        n += 1
        kind = rng.choices(["slow_ramp", "slow_step", "error_ramp", "flap_errors", "flap_slow",
                            "outage", "benign"], weights=[25, 10, 12, 18, 12, 8, 15])[0]
        service = rng.choice(BACKENDS + DATABASES)
        if kind == "slow_ramp":
            stages = rng.randint(3, 8)
            values = [round(rng.uniform(1.15, 1.5), 2) for _ in range(stages)]
            spacing = [rng.randint(20, 90) for _ in range(stages - 1)]
            dur = max(sum(spacing) + 180, rng.randint(8, 25) * 60)
            out += staged(f"i{n}-{service}-slowing", slowdown, service, t, t + dur, values, spacing)
        elif kind == "slow_step":
            dur = rng.randint(3, 12) * 60
            out.append(fault(f"i{n}-{service}-stall", slowdown(service, round(rng.uniform(2.5, 8), 2)),
                             t, dur))
        elif kind == "error_ramp":
            stages = rng.randint(1, 3)
            values = [round(rng.uniform(0.03, 0.3), 3) for _ in range(stages)]
            spacing = [rng.randint(30, 120) for _ in range(stages - 1)]
            dur = max(sum(spacing) + 120, rng.randint(4, 12) * 60)
            out += staged(f"i{n}-{service}-errors", errors, service, t, t + dur, values, spacing)
        elif kind == "flap_errors":
            cycles = rng.randint(4, 10)
            rate = round(rng.uniform(0.1, 0.6), 3)
            on = [rng.randint(30, 90) for _ in range(cycles)]
            off = [rng.randint(60, 240) for _ in range(cycles)]
            faults, end = flapping(f"i{n}-{service}-flapping-errors", errors(service, rate), t, on, off)
            out += faults
            dur = end - t
        elif kind == "flap_slow":
            cycles = rng.randint(4, 10)
            factor = round(rng.uniform(2.5, 6), 2)
            on = [rng.randint(30, 90) for _ in range(cycles)]
            off = [rng.randint(60, 240) for _ in range(cycles)]
            faults, end = flapping(f"i{n}-{service}-flapping-slow", slowdown(service, factor), t, on, off)
            out += faults
            dur = end - t
        elif kind == "outage":
            region = rng.choice(OUTAGE_REGIONS)
            dur = rng.randint(2, 8) * 60
            out.append(fault(f"i{n}-{region}-outage", outage(region), t, dur))
        else:
            dur = rng.randint(5, 20) * 60
            if rng.random() < 0.6:
                out.append(fault(f"i{n}-{service}-blip", slowdown(service, round(rng.uniform(1.1, 1.4), 2)),
                                 t, dur))
            else:
                out.append(fault(f"i{n}-{service}-blip", errors(service, round(rng.uniform(0.002, 0.01), 4)),
                                 t, dur))
        t += dur + rng.randint(8, 30) * 60
    return out


def scenario(name: str, description: str, header: str, seed: int, start: str, hours: int,
             crowds, peak_hour: int, faults: list[str]) -> str:
    return f"""# GENERATED by make_routing_scenarios.py; edit the script, not this file.
#
{header}
apiVersion: conclave/v1
kind: Scenario
metadata:
  name: {name}
  description: {description}
spec:
  seed: {seed}
  start: "{start}"
  duration: {hours}h
  step: 5s
  policy: {POLICY}
  key_services: [{", ".join(KEY)}]
{fleet_yaml()}
{load_yaml(crowds, peak_hour)}
  faults:
{chr(10).join(faults)}
"""


def random_scenario(seed: int, name: str, role: str) -> str:
    rng = random.Random(seed)
    hours = 12
    start_hour = rng.randint(0, 11)
    crowds = []
    for _ in range(2):
        at = rng.randint(1, hours - 2) * 3600 + rng.randint(0, 59) * 60
        dur = rng.randint(10, 30) * 60
        crowds.append((at, dur, round(rng.uniform(1.15, 1.45), 2), rng.randint(2, dur // 120) * 60))
    crowds.sort()
    header = (f"# {role} for the router latency model (agents/training/train_router.py): the\n"
              f"# multi-region topology for {hours} h with a random stream of incidents (seed {seed}).\n"
              f"#   conclave simulate simulations/scenarios/{name}.yaml --compare none --record DIR")
    return scenario(name, f"Multi-region routes, random incidents, seed {seed} ({role.lower()}).",
                    header, seed, f"2026-04-{seed + 1:02d}T{start_hour:02d}:00:00Z", hours, crowds,
                    rng.randint(10, 20), random_incidents(rng, hours))


def degrade_scenario() -> str:
    f = []
    # 00:30 db-euc degrades in eight stages (x1.25 each, 45 s apart: x6 at 00:35:15) until
    # 00:55, so api-euc slows down gradually.
    f += staged("db-euc-degrading", slowdown, "db-euc", 1800, 3300, [1.25] * 8, [45] * 7)
    # 01:15 api-use flaps: 35 % of its requests fail for a minute, every three minutes, 8 times.
    faults, _ = flapping("api-use-flapping-errors", errors("api-use", 0.35), 4500, [60] * 8, [120] * 8)
    f += faults
    # 01:50 search-euw slows down in six stages (x1.3 each, a minute apart) for 20 minutes.
    f += staged("search-euw-slowing", slowdown, "search-euw", 6600, 7800, [1.3] * 6, [60] * 5)
    # 02:30 eu-central (api-euc, db-euc) is down for 5 minutes.
    f.append(fault("eu-central-outage", outage("eu-central"), 9000, 300))
    # 03:00 api-euw flaps slow: x5 for 45 s every 150 s, 6 times.
    faults, _ = flapping("api-euw-flapping-slow", slowdown("api-euw", 5.0), 10800, [45] * 6, [105] * 6)
    f += faults
    # 03:30 a benign blip on api-use (x1.2 for 15 min): nothing should move much.
    f.append(fault("api-use-blip", slowdown("api-use", 1.2), 12600, 900))
    header = ("# The learned router vs the rule router (agents/models/router-latency.md): the\n"
              "# multi-region topology for 4 h with six incidents at fixed times. Not in the\n"
              "# router model's training data.\n"
              "#   conclave simulate simulations/scenarios/routing-degrade.yaml --compare none,rules")
    return scenario("routing-degrade",
                    "A regional database degrading in stages, a backend flapping errors, a search "
                    "backend slowing, an eu-central outage, a backend flapping slowness, a benign blip.",
                    header, 20261212, "2026-12-12T09:00:00Z", 4, [(4800, 1800, 1.3, 300)], 13, f)


def scenarios() -> dict[str, str]:
    """File name -> text of every scenario this script writes."""
    files = {f"routing-train-{s}.yaml": random_scenario(s, f"routing-train-{s}", "Training data")
             for s in (1, 2, 3)}
    files["routing-heldout.yaml"] = random_scenario(4, "routing-heldout", "Held-out evaluation data")
    files["routing-degrade.yaml"] = degrade_scenario()
    return files


def main() -> None:
    for name, text in scenarios().items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {os.path.join(HERE, name)}")


if __name__ == "__main__":
    main()
