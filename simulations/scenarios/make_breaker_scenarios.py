#!/usr/bin/env python3
"""Writes the breaker scenarios (issue #6): training data for the breaker risk model and
the learned-vs-rules comparison.

    python3 simulations/scenarios/make_breaker_scenarios.py

writes, next to this script, five scenarios on one shop topology (9 services in two
regions: storefront -> catalog, search, recommend, cart; cart -> checkout -> payments,
inventory, fraud; search, recommend and fraud run in eu-central, the rest in eu-west):

* `breaker-train-1.yaml` .. `breaker-train-3.yaml` — 12 h each, seeds 1..3: diurnal load
  with flash crowds and a random stream of incidents (dependency slowdowns that ramp up in
  stages or arrive at once, error bursts that grow, eu-central outages) among benign
  blips (small slowdowns and error rates that breach nothing). The model trains on their
  `none` runs.
* `breaker-heldout.yaml` — the same generator with seed 4: kept out of training, the
  model card's held-out split.
* `breaker-cascade.yaml` — 4 h, a fixed story (payments degrading into a retry storm, an
  inventory error burst, a fraud-scoring stall, an eu-central outage, a benign catalog
  slowdown): the learned-vs-rules comparison in BENCHMARKS.md. Also not trained on.

Every scenario names `policies/ecommerce-learned-breaker.yaml`. Deterministic and
standard-library only (`random.Random(seed)`): the output is byte-identical on every run.
The files are committed; rerun this script after changing it and commit them all.
"""

import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = "../../policies/ecommerce-learned-breaker.yaml"

# name: (region, capacity/replica, base ms, replicas, cold start s, slo p99 ms, max queue,
#        retries, max in flight per replica, dependencies [(service, calls/request, timeout ms)])
SERVICES = [
    ("storefront", "eu-west", 60, 25, 8, 45, 600, 5000, 1, None,
     [("catalog", 1.0, 800), ("cart", 0.5, 3000), ("search", 0.4, 800), ("recommend", 0.5, 300)]),
    ("catalog", "eu-west", 120, 15, 6, 30, 250, 5000, 2, None, [("inventory", 0.5, 500)]),
    ("search", "eu-central", 80, 30, 3, 60, 400, 3000, 1, None, []),
    ("recommend", "eu-central", 100, 20, 3, 30, 300, 3000, 1, None, [("catalog", 0.2, 300)]),
    ("cart", "eu-west", 80, 12, 3, 30, 2500, 3000, 2, None, [("checkout", 0.5, 2500)]),
    ("checkout", "eu-west", 40, 40, 4, 60, 1500, 2000, 3, 64,
     [("payments", 1.0, 1500), ("inventory", 1.0, 500), ("fraud", 1.0, 400)]),
    ("payments", "eu-west", 50, 120, 4, 90, 1000, 2000, 1, None, []),
    ("inventory", "eu-west", 200, 8, 3, 30, 150, 5000, 1, None, []),
    ("fraud", "eu-central", 100, 30, 2, 45, 300, 2000, 1, None, []),
]
SLO_ERROR_RATE = 0.05
COST = {"storefront": 0.12, "catalog": 0.10, "search": 0.15, "recommend": 0.10, "cart": 0.08,
        "checkout": 0.20, "payments": 0.25, "inventory": 0.08, "fraud": 0.15}
# Services an incident may hit: everything that has callers.
CALLEES = ["catalog", "search", "recommend", "cart", "checkout", "payments", "inventory", "fraud"]
KEY = ["storefront", "checkout", "payments", "inventory"]


def fleet_yaml() -> str:
    lines = ["  fleet:", "    services:"]
    for (name, region, cap, base, reps, cold, slo, queue, retries, inflight, deps) in SERVICES:
        parts = [f"name: {name}", f"region: {region}", f"capacity_per_replica: {cap}",
                 f"base_latency_ms: {base}", f"initial_replicas: {reps}", f"cold_start_s: {cold}",
                 f"cost_per_replica_hour: {COST[name]}", f"slo_p99_ms: {slo}",
                 f"slo_error_rate: {SLO_ERROR_RATE}", f"max_queue: {queue}"]
        if retries > 1:
            parts.append(f"retry_attempts: {retries}")
        if inflight:
            parts.append(f"max_in_flight_per_replica: {inflight}")
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
    storefront:
      synthetic:
        base_rate_per_s: 240
        diurnal_amplitude: 0.3
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


OUTAGE = "{region_outage: {region: eu-central}}"


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


def random_incidents(rng: random.Random, hours: int) -> list[str]:
    out = []
    t = rng.randint(15, 30) * 60
    n = 0
    horizon = hours * 3600 - 20 * 60
    while t < horizon:
        n += 1
        kind = rng.choices(["slow_ramp", "slow_step", "error_ramp", "outage", "benign"],
                           weights=[35, 15, 20, 8, 22])[0]
        service = rng.choice(CALLEES)
        if kind == "slow_ramp":
            stages = rng.randint(3, 8)
            values = [round(rng.uniform(1.1, 1.5), 2) for _ in range(stages)]
            spacing = [rng.randint(20, 90) for _ in range(stages - 1)]
            dur = max(sum(spacing) + 120, rng.randint(6, 20) * 60)
            out += staged(f"i{n}-{service}-slowing", slowdown, service, t, t + dur, values, spacing)
        elif kind == "slow_step":
            dur = rng.randint(3, 12) * 60
            out.append(fault(f"i{n}-{service}-stall", slowdown(service, round(rng.uniform(2.5, 10), 2)),
                             t, dur))
        elif kind == "error_ramp":
            stages = rng.randint(1, 3)
            values = [round(rng.uniform(0.03, 0.25), 3) for _ in range(stages)]
            spacing = [rng.randint(30, 120) for _ in range(stages - 1)]
            dur = max(sum(spacing) + 120, rng.randint(4, 12) * 60)
            out += staged(f"i{n}-{service}-errors", errors, service, t, t + dur, values, spacing)
        elif kind == "outage":
            dur = rng.randint(2, 8) * 60
            out.append(fault(f"i{n}-eu-central-outage", OUTAGE, t, dur))
        else:
            dur = rng.randint(5, 20) * 60
            if rng.random() < 0.6:
                out.append(fault(f"i{n}-{service}-blip", slowdown(service, round(rng.uniform(1.1, 1.6), 2)),
                                 t, dur))
            else:
                out.append(fault(f"i{n}-{service}-blip", errors(service, round(rng.uniform(0.003, 0.02), 4)),
                                 t, dur))
        t += dur + rng.randint(10, 35) * 60
    return out


def scenario(name: str, description: str, header: str, seed: int, start: str, hours: int,
             crowds, peak_hour: int, faults: list[str]) -> str:
    return f"""# GENERATED by make_breaker_scenarios.py; edit the script, not this file.
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
        crowds.append((at, dur, round(rng.uniform(1.5, 2.5), 2), rng.randint(2, dur // 120) * 60))
    crowds.sort()
    header = (f"# {role} for the breaker risk model (agents/training/train_breaker.py): the shop\n"
              f"# topology for {hours} h with a random stream of incidents (seed {seed}).\n"
              f"#   conclave simulate simulations/scenarios/{name}.yaml --compare none --record DIR")
    return scenario(name, f"Shop topology, random incidents, seed {seed} ({role.lower()}).", header,
                    seed, f"2026-03-{seed + 1:02d}T{start_hour:02d}:00:00Z", hours, crowds,
                    rng.randint(10, 20), random_incidents(rng, hours))


def cascade_scenario() -> str:
    f = []
    # 00:40 payments degrades in eight stages (x1.25 each, 45 s apart: x6 at 00:45:15)
    # until 01:05; checkout retries three times, so timeouts triple payments' load.
    f += staged("payments-degrading", slowdown, "payments", 2400, 3900, [1.25] * 8, [45] * 7)
    # 01:30 inventory starts failing requests, worse after a minute and again after two.
    f += staged("inventory-errors", errors, "inventory", 5400, 6000, [0.05, 0.1, 0.3], [60, 60])
    # 02:00 fraud scoring stalls: x8 at once for 8 minutes.
    f.append(fault("fraud-stall", slowdown("fraud", 8.0), 7200, 480))
    # 02:30 a benign catalog slowdown (x1.4, 15 min): nothing should trip.
    f.append(fault("catalog-blip", slowdown("catalog", 1.4), 9000, 900))
    # 03:00 eu-central (search, recommend, fraud) is down for 5 minutes.
    f.append(fault("eu-central-outage", OUTAGE, 10800, 300))
    # 03:20 search degrades in three stages (x1.8, x2.2, x2.5; 2 min apart) for 15 min.
    f += staged("search-degrading", slowdown, "search", 12000, 12900, [1.8, 2.2, 2.5], [120, 120])
    header = ("# The learned breaker vs the rule breaker (BENCHMARKS.md, \"Learned breaker vs rules\"):\n"
              "# the shop topology for 4 h with five incidents at fixed times. Not in the breaker\n"
              "# model's training data.\n"
              "#   conclave simulate simulations/scenarios/breaker-cascade.yaml --compare none,rules")
    return scenario("breaker-cascade",
                    "Payments degrading into a retry storm, inventory errors, a fraud stall, an "
                    "eu-central outage, a benign catalog slowdown, a search slowdown.",
                    header, 20261205, "2026-12-05T10:00:00Z", 4, [(4800, 1800, 1.8, 300)], 13, f)


def scenarios() -> dict[str, str]:
    """File name -> text of every scenario this script writes."""
    files = {f"breaker-train-{s}.yaml": random_scenario(s, f"breaker-train-{s}", "Training data")
             for s in (1, 2, 3)}
    files["breaker-heldout.yaml"] = random_scenario(4, "breaker-heldout", "Held-out evaluation data")
    files["breaker-cascade.yaml"] = cascade_scenario()
    return files


def main() -> None:
    for name, text in scenarios().items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {os.path.join(HERE, name)}")


if __name__ == "__main__":
    main()
