#!/usr/bin/env python3
"""Breaker figures of a `conclave simulate` comparison (BENCHMARKS.md, "Learned breaker vs
rules"): trips and false trips per run, next to the report's SLO minutes and failures.

    conclave simulate simulations/scenarios/breaker-cascade.yaml --compare none,rules \\
        --out OUT --record REC --quiet
    .venv/bin/python agents/training/compare_breaker.py OUT REC

A trip is an enacted (or modified) `open` of a breaker; it came from the model when its
proposal names one. A trip is false when, in the `none` run (nothing intervenes), neither
the service nor any service that calls it breached its SLO from 15 s before the trip to
2 min after it: the breaker protected nothing that needed protecting.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conclave_training import breaker_features as bf  # noqa: E402

BEFORE_MS = 15_000
AFTER_MS = 120_000


def callers_of(telemetry: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with open(telemetry, "rb") as f:
        for line in f:
            if b'"dependencies"' not in line:
                continue
            m = json.loads(line)
            for d in m.get("dependencies", ()):
                if d["service"] != m["service"]:
                    out.setdefault(d["service"], set()).add(m["service"])
    return out


def trips(audit: str) -> list[dict]:
    out = []
    with open(audit, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line).get("record", {})
            if r.get("type") != "decision" or r.get("agent") != "breaker":
                continue
            if r.get("action") != {"breaker": {"state": "open"}}:
                continue
            if r.get("outcome", {}).get("kind") not in ("enacted", "modified"):
                continue
            by_model = any(p.get("model") for p in r.get("proposals", ()))
            out.append({"target": r["target"], "at_ms": bf.parse_ts_ms(r["at"]), "model": by_model})
    return out


def is_false(trip: dict, breaches: dict[str, dict[int, bool]], callers: dict[str, set[str]]) -> bool:
    lo, hi = trip["at_ms"] - BEFORE_MS, trip["at_ms"] + AFTER_MS
    for service in {trip["target"], *callers.get(trip["target"], ())}:
        if any(b and lo <= t <= hi for t, b in breaches.get(service, {}).items()):
            return False
    return True


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, rec_dir = sys.argv[1], sys.argv[2]
    breaches = bf.read_breaches(os.path.join(rec_dir, "none", "fleet.jsonl"))
    callers = callers_of(os.path.join(rec_dir, "none", "telemetry.jsonl"))
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as f:
        report = {r["name"]: r for r in json.load(f)["runs"]}
    print("| run | SLO-violation minutes | requests failed | requests dropped | breaker trips "
          "(by the model) | false trips (by the model) |")
    print("|---|--:|--:|--:|--:|--:|")
    for name in ("none", "policy", "rules"):
        r = report.get(name)
        if r is None:
            continue
        t = r["totals"]
        audit = os.path.join(out_dir, f"{name}-audit.jsonl")
        got = trips(audit) if os.path.exists(audit) else []
        false = [x for x in got if is_false(x, breaches, callers)]
        model = sum(x["model"] for x in got)
        false_model = sum(x["model"] for x in false)
        label = {"policy": "learned (policy)", "rules": "rules"}.get(name, name)
        print(f"| {label} | {t['slo_violation_minutes']:,.1f} | {t['failed']:,.0f} | {t['dropped']:,.0f} | "
              f"{len(got)} ({model}) | {len(false)} ({false_model}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
