#!/usr/bin/env python3
"""Compliance figures of a `conclave simulate` comparison (BENCHMARKS.md, "Learned compliance
vs rules vs regex-only"): per producer, as the simulator scores compliance, the runs of the
report next to the regex-only baseline on the same events.

    conclave simulate simulations/scenarios/compliance-fraud.yaml --compare none,rules \\
        --out OUT --record REC --quiet
    .venv/bin/python agents/training/compare_compliance.py OUT REC

The simulator does not run the regex-only baseline (simulations/src/events/naive.rs) as an
agent; it is scored here the way the report scores a run: a producer is quarantined at its
first event the baseline flags (which stops nothing the score counts: violators are the
producers that sent any violation, `truth.jsonl`, whether or not it reached anyone), on the
events of the `none` recording, where every event was sent.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conclave_training import compliance_features as cf  # noqa: E402
from train_compliance import regex_only_flags  # noqa: E402


def regex_only(record: str) -> dict:
    """The regex-only baseline's per-producer score on the `none` recording in `record`."""
    none = os.path.join(record, "none")
    violators, producers = set(), set()
    with open(os.path.join(none, "truth.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            producers.add(r["producer"])
            if r["violation"]:
                violators.add(r["producer"])
    flagged = {e["producer"] for e in cf.read_events(os.path.join(none, "telemetry.jsonl"))
               if regex_only_flags(e["fields"])}
    caught = len(flagged & violators)
    return {"violations": len(violators), "caught": caught,
            "false_positives": len(flagged - violators),
            "recall": caught / len(violators) if violators else 1.0,
            "precision": caught / len(flagged) if flagged else 1.0,
            "producers": len(producers)}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, record = sys.argv[1], sys.argv[2]
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    rows = [("regex-only", regex_only(record))]
    rows += [(run["name"], run["totals"]["compliance"]) for run in report["runs"]
             if run["name"] != "none" and run["totals"].get("compliance")]
    base = rows[0][1]["false_positives"]
    print(f"scenario `{report['scenario']}`, {rows[0][1]['producers']} producers, "
          f"{rows[0][1]['violations']} of them violators")
    print(f"{'run':<12} {'caught':>7} {'recall':>8} {'false pos.':>10} {'vs regex-only':>14} {'precision':>10}")
    for name, c in rows:
        vs = "-" if name == "regex-only" or base == 0 else f"{(c['false_positives'] - base) / base:+.0%}"
        print(f"{name:<12} {c['caught']:>7} {c['recall']:>8.1%} {c['false_positives']:>10} {vs:>14} "
              f"{c['precision']:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
