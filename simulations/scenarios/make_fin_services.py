#!/usr/bin/env python3
"""Writes the fin-services scenario and its policy (issue #5).

    python3 simulations/scenarios/make_fin_services.py

writes, next to this script:

* `fin-services.yaml` — 200 services in three regions (a stack of 66 per region plus two
  global reference-data services), layered edge gateways -> domain services -> shared data
  services; diurnal load on the gateways adding up to about 2 billion requests a day; an
  event mix with EU residency rules and fraud bursts; card-testing attacks (fraud bursts
  on the card gateways); a 30-minute outage of eu-west-1.
* `fin-services-policy.yaml` — `policies/fin-services.yaml` carried over to the generated
  names (the regional instances of ledger, fraud-scoring and notifications and the six
  topics declared with labels), with a replica budget that fits the generated fleet.

`--summary` prints each service's sizing instead of writing anything.

Deterministic and standard-library only: nothing is random, every per-service variation
comes from a hash of the service name, and the output is byte-identical on every run.
Both files are committed; rerun this script after changing it and commit all three.

What "2B events/day" means here: requests arriving at services, every hop counted (an
external request to a gateway and each call it causes downstream), which is what the
simulator's "requests arrived" row adds up. External load on the gateways is about a
twentieth of that (the mean fan-out per external request is printed in the file header).
"""

import hashlib
import math
import os
import sys
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))

SEED = 20260630
START = "2026-06-30T00:00:00Z"  # a Tuesday: quarter end, no weekend dip
DAY_S = 86_400
TARGET_PER_DAY = 2.0e9

REGIONS = OrderedDict(
    [
        # region -> (suffix, the traffic it serves)
        ("eu-west-1", ("euw1", "eu")),
        ("eu-central-1", ("euc1", "eu")),
        ("us-east-1", ("use1", "us")),
    ]
)
GLOBAL_REGION = "eu-central-1"
OUTAGE_REGION = "eu-west-1"

# Diurnal shape of each market: peak hour (UTC) and swing.
MARKETS = {
    "eu": {"peak_hour": 12.0, "amplitude": 0.55, "share": 0.6},
    "us": {"peak_hour": 17.0, "amplitude": 0.6, "share": 0.4},
}

# Gateways: share of a market's external requests, and what one request calls.
GATEWAYS = OrderedDict(
    [
        ("api-gw", (0.25, [("auth-identity", 1.0), ("accounts", 0.4), ("payments", 0.25),
                           ("transfers", 0.15), ("statements", 0.05), ("customer-profile", 0.2),
                           ("loans", 0.05)])),
        ("mobile-gw", (0.35, [("auth-identity", 1.0), ("session", 1.0), ("balances", 0.6),
                              ("payments", 0.15), ("card-management", 0.1), ("rewards", 0.1),
                              ("savings", 0.05), ("instant-payments", 0.1),
                              ("investments", 0.05)])),
        ("cards-gw", (0.25, [("card-auth", 1.0)])),
        ("partner-gw", (0.08, [("auth-identity", 1.0), ("merchant-acquiring", 0.6),
                               ("payments", 0.2), ("disputes", 0.05), ("onboarding", 0.05)])),
        ("openbanking-gw", (0.07, [("auth-identity", 1.0), ("consent", 1.0), ("accounts", 0.5),
                                   ("balances", 0.5), ("payments", 0.1)])),
    ]
)

# Domain services and what one request calls (domain or data services). The graph must
# be acyclic; `main` checks it.
DOMAIN = OrderedDict(
    [
        ("auth-identity", [("session-store", 1.0), ("customer-store", 0.2), ("hsm", 0.05),
                           ("audit-trail", 0.1)]),
        ("session", [("session-store", 1.0)]),
        ("consent", [("consent-store", 1.0), ("customer-profile", 0.2), ("audit-trail", 0.5)]),
        ("onboarding", [("kyc", 1.0), ("customer-profile", 1.0), ("accounts", 0.5),
                        ("document-service", 0.5)]),
        ("loans", [("credit-decisioning", 0.3), ("accounts", 0.5), ("pricing", 0.5),
                   ("document-service", 0.2)]),
        ("investments", [("accounts", 0.5), ("fx-quotes", 0.2), ("reference-data", 1.0),
                         ("ledger-posting", 0.2)]),
        ("card-management", [("card-issuing", 0.3), ("customer-profile", 0.5),
                             ("card-vault", 0.5), ("limits", 0.3)]),
        ("savings", [("accounts", 0.5), ("pricing", 0.3), ("balances", 0.5)]),
        ("rewards", [("customer-profile", 0.5), ("customer-store", 1.0)]),
        ("statements", [("document-service", 0.5), ("account-store", 1.0), ("ledger", 0.3)]),
        ("disputes", [("chargebacks", 0.5), ("document-service", 0.5),
                      ("payments-history", 1.0), ("notifications", 0.5)]),
        ("merchant-acquiring", [("card-auth", 0.7), ("settlement", 0.1), ("account-store", 1.0),
                                ("pricing", 0.5)]),
        ("card-auth", [("card-tokenization", 1.0), ("fraud-scoring", 1.0), ("limits", 1.0),
                       ("balances", 1.0), ("ledger-posting", 0.8), ("card-vault", 1.0),
                       ("hsm", 1.0), ("notifications", 0.3)]),
        ("transfers", [("payment-orchestrator", 1.0), ("beneficiaries", 0.5)]),
        ("instant-payments", [("payment-orchestrator", 1.0), ("beneficiaries", 0.3)]),
        ("payments", [("payment-orchestrator", 1.0), ("payments-history", 0.3)]),
        ("payment-orchestrator", [("limits", 1.0), ("fraud-scoring", 1.0), ("aml-screening", 0.5),
                                  ("sanctions-screening", 0.5), ("fx-quotes", 0.1),
                                  ("ledger-posting", 1.0), ("clearing", 0.5),
                                  ("notifications", 0.5), ("idempotency-store", 1.0),
                                  ("outbox", 1.0)]),
        ("clearing", [("settlement", 0.5), ("reconciliation", 0.2), ("outbox", 1.0)]),
        ("settlement", [("ledger-posting", 0.5), ("reconciliation", 0.5),
                        ("regulatory-reporting", 0.05), ("ledger", 0.5)]),
        ("chargebacks", [("ledger-posting", 0.5), ("payments-history", 0.5)]),
        ("credit-decisioning", [("credit-bureau-proxy", 1.0), ("fraud-scoring", 0.5),
                                ("risk-models", 1.0), ("customer-profile", 0.5)]),
        ("kyc", [("sanctions-screening", 1.0), ("document-service", 1.0),
                 ("credit-bureau-proxy", 0.3), ("customer-store", 1.0)]),
        ("card-issuing", [("card-tokenization", 1.0), ("card-vault", 1.0), ("hsm", 1.0)]),
        ("card-tokenization", [("token-vault", 1.0), ("hsm", 1.0)]),
        ("fraud-scoring", [("fraud-rules", 1.0), ("risk-models", 1.0),
                           ("fraud-feature-store", 2.0)]),
        ("fraud-rules", [("fraud-feature-store", 1.0), ("reference-data", 0.2)]),
        ("risk-models", [("fraud-feature-store", 1.0)]),
        ("aml-screening", [("sanctions-screening", 0.5), ("event-log", 0.05),
                           ("fraud-feature-store", 0.5)]),
        ("sanctions-screening", [("sanctions-list", 1.0), ("reference-data", 0.5)]),
        ("fx-quotes", [("fx-rates-feed", 0.2), ("reference-data", 1.0)]),
        ("pricing", [("reference-data", 1.0), ("fx-quotes", 0.1)]),
        ("limits", [("account-store", 1.0), ("balances-cache", 0.5)]),
        ("balances", [("balances-cache", 1.0), ("ledger", 0.3)]),
        ("beneficiaries", [("customer-store", 1.0), ("sanctions-screening", 0.3)]),
        ("payments-history", [("ledger", 1.0), ("search-index", 0.5)]),
        ("ledger-posting", [("ledger", 1.0), ("idempotency-store", 1.0), ("audit-trail", 1.0),
                            ("outbox", 1.0)]),
        ("reconciliation", [("ledger", 1.0), ("event-log", 0.5)]),
        ("regulatory-reporting", [("ledger", 0.5), ("event-log", 1.0), ("reference-data", 0.5)]),
        ("notifications", [("customer-store", 0.5), ("outbox", 1.0), ("reference-data", 0.5)]),
        ("document-service", [("document-store", 1.0), ("search-index", 0.2)]),
        ("audit-trail", [("audit-store", 1.0), ("event-log", 1.0)]),
        ("customer-profile", [("customer-store", 1.0), ("consent-store", 0.3)]),
        ("accounts", [("account-store", 1.0), ("balances", 0.5), ("limits", 0.2)]),
        ("credit-bureau-proxy", []),
    ]
)

# Shared data services, one per region, no dependencies.
DATA = [
    "session-store", "customer-store", "consent-store", "account-store", "card-vault",
    "token-vault", "hsm", "fraud-feature-store", "ledger", "idempotency-store", "outbox",
    "event-log", "audit-store", "document-store", "search-index", "balances-cache",
    "reference-data",
]

# Global reference services, one instance in GLOBAL_REGION called from every region.
GLOBAL = ["sanctions-list", "fx-rates-feed"]

# Per-layer defaults: capacity per replica (req/s), own median latency (ms), cold start
# (s), cost per replica-hour, max queue, retry attempts on the service's own calls.
# Retries only where the call is idempotent (the payment orchestrator and ledger posting,
# which use the idempotency store): with two attempts at every domain hop, nested retries
# multiply a callee's load by 2-4x once it fails, and the model's fraud path then stays
# saturated from the first attack until the night's low (metastable, as the fleet docs
# describe), which no scenario event explains.
LAYER = {
    "gateway": dict(cap=150.0, lat=4.0, cold=30, cost=0.10, queue=20000, retry=1),
    "domain": dict(cap=45.0, lat=12.0, cold=60, cost=0.08, queue=10000, retry=1),
    "data": dict(cap=300.0, lat=3.0, cold=180, cost=0.25, queue=20000, retry=1),
    "global": dict(cap=250.0, lat=5.0, cold=120, cost=0.25, queue=20000, retry=1),
}
# Per-service overrides of the layer defaults.
OVERRIDES = {
    "card-auth": dict(cap=60.0, lat=8.0, inflight=32),
    "payment-orchestrator": dict(cap=40.0, lat=10.0, retry=2, inflight=32),
    "fraud-scoring": dict(cap=30.0, lat=20.0, inflight=16),
    "risk-models": dict(cap=25.0, lat=30.0, cold=120, cost=0.40),
    "credit-bureau-proxy": dict(cap=15.0, lat=150.0),
    "credit-decisioning": dict(lat=40.0),
    "kyc": dict(lat=60.0),
    "document-service": dict(lat=25.0),
    "hsm": dict(cap=150.0, lat=6.0, cold=900, cost=1.20),
    "ledger": dict(cap=200.0, lat=4.0, cold=300, cost=0.50),
    "ledger-posting": dict(cap=50.0, lat=8.0, retry=2, inflight=32),
    "fraud-feature-store": dict(cap=500.0, lat=2.0),
    "session-store": dict(cap=800.0, lat=1.0),
    "balances-cache": dict(cap=800.0, lat=1.0),
    "search-index": dict(lat=12.0, cap=120.0),
    "document-store": dict(lat=10.0, cap=160.0),
    "sanctions-list": dict(cap=300.0, lat=6.0),
    "fx-rates-feed": dict(cap=300.0, lat=4.0),
}
# Edge-of-network extra latency for a call that leaves its region (ms, one way and back).
CROSS_REGION_MS = 80.0

# Peak utilization the static fleet is sized for, at the diurnal peak.
SIZING_UTILIZATION = 0.6
# The card path is provisioned for card-network peaks (about 4x its diurnal peak), except
# fraud scoring and its model serving, which are expensive and sized like the rest: the
# card-testing attacks land on them.
CARD_PATH = {"cards-gw", "card-auth", "card-tokenization", "token-vault", "card-vault", "hsm",
             "limits", "balances", "balances-cache", "ledger-posting", "ledger", "notifications",
             "account-store", "idempotency-store", "outbox", "audit-trail", "audit-store",
             "event-log"}
CARD_PATH_UTILIZATION = 0.25
# Fewest replicas of any service (the policy's min_replicas is 3).
MIN_REPLICAS = 3

# Card-testing attacks: (market or region, start s, duration s, multiplier, ramp s).
CARD_ATTACKS = [
    ("eu", 9 * 3600 + 40 * 60, 15 * 60, 3.0, 60),
    ("us", 16 * 3600 + 20 * 60, 10 * 60, 4.0, 60),
    ("eu", 13 * 3600 + 45 * 60, 20 * 60, 2.5, 120),  # straight after the outage
    ("us", 21 * 3600 + 5 * 60, 25 * 60, 3.0, 120),
]
OUTAGE_START_S = 13 * 3600 + 10 * 60  # 13:10 UTC: EU afternoon, US morning
OUTAGE_S = 30 * 60


def jitter(name, salt, spread):
    """A factor in [1 - spread, 1 + spread] fixed by the name (sha256, no RNG)."""
    h = hashlib.sha256(f"{SEED}:{salt}:{name}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return 1.0 - spread + 2.0 * spread * u


def round_to(x, step):
    return math.ceil(x / step) * step


def fmt(x):
    """Numbers as YAML writes them: integers without a fraction, others short."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


class Service:
    def __init__(self, family, layer, region, suffix):
        self.family = family
        self.layer = layer
        self.region = region
        self.name = family if layer == "global" else f"{family}-{suffix}"
        p = dict(LAYER[layer])
        p.update(OVERRIDES.get(family, {}))
        varied = family not in OVERRIDES
        self.cap = p["cap"] * (jitter(family, "cap", 0.2) if varied else 1.0)
        self.lat = p["lat"] * (jitter(family, "lat", 0.25) if varied else 1.0)
        self.cold = p["cold"]
        self.cost = p["cost"]
        self.queue = p["queue"]
        self.retry = p["retry"]
        self.inflight = p.get("inflight")
        self.deps = []  # (callee Service, calls per request)
        self.rate = {"eu": 0.0, "us": 0.0}  # mean arrivals per 1 req/s of market load


def build():
    services = OrderedDict()
    for g in GLOBAL:
        services[g] = Service(g, "global", GLOBAL_REGION, None)
    stacks = {}
    for region, (suffix, _market) in REGIONS.items():
        stack = OrderedDict()
        for g in GATEWAYS:
            stack[g] = Service(g, "gateway", region, suffix)
        for d in DOMAIN:
            stack[d] = Service(d, "domain", region, suffix)
        for d in DATA:
            stack[d] = Service(d, "data", region, suffix)
        for fam, svc in stack.items():
            deps = GATEWAYS[fam][1] if fam in GATEWAYS else DOMAIN.get(fam, [])
            for callee, calls in deps:
                target = services[callee] if callee in GLOBAL else stack[callee]
                svc.deps.append((target, calls))
        for svc in stack.values():
            services[svc.name] = svc
        stacks[region] = stack
    return services, stacks


def topo_order(services):
    """Callers before callees; raises on a cycle."""
    indeg = {n: 0 for n in services}
    for s in services.values():
        for c, _ in s.deps:
            indeg[c.name] += 1
    ready = sorted(n for n, d in indeg.items() if d == 0)
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c, _ in services[n].deps:
            indeg[c.name] -= 1
            if indeg[c.name] == 0:
                ready.append(c.name)
                ready.sort()
    if len(order) != len(services):
        raise SystemExit("the dependency graph has a cycle")
    return order


def propagate(services, order, stacks):
    """Mean arrivals per service per 1 req/s of each market's external load."""
    for market in ("eu", "us"):
        regions = [r for r, (_, m) in REGIONS.items() if m == market]
        for region in regions:
            for fam, (share, _) in GATEWAYS.items():
                # A market's load is split evenly over its regions' gateways.
                stacks[region][fam].rate[market] += share / len(regions)
        for n in order:
            s = services[n]
            for c, calls in s.deps:
                c.rate[market] += s.rate[market] * calls


def latencies(services, order):
    """Unloaded p50 and p99 per service, as the fleet model computes them."""
    p50, p99 = {}, {}
    for n in reversed(order):
        s = services[n]
        mean = sum(calls * (p50[c.name] + hop(s, c)) for c, calls in s.deps)
        tail = max([calls * (p99[c.name] - p50[c.name]) for c, calls in s.deps] + [0.0])
        p50[n] = s.lat + mean
        p99[n] = 1.5 * s.lat + mean + tail
    return p50, p99


def hop(caller, callee):
    return CROSS_REGION_MS if caller.region != callee.region else 0.0


def market_peak(market):
    m = MARKETS[market]
    return 1.0 + m["amplitude"]


def main():
    services, stacks = build()
    assert len(services) == 200, len(services)
    order = topo_order(services)
    propagate(services, order, stacks)
    unreached = [n for n, s in services.items() if s.rate["eu"] + s.rate["us"] == 0]
    assert not unreached, unreached

    # Market base rates: the mean of a diurnal cosine over a day is the base, so the day's
    # requests are 86,400 x sum over services of (base_eu x rate_eu + base_us x rate_us).
    fan = {m: sum(s.rate[m] for s in services.values()) for m in MARKETS}
    per_unit = sum(MARKETS[m]["share"] * fan[m] for m in MARKETS)
    external = TARGET_PER_DAY / DAY_S / per_unit
    base = {m: external * MARKETS[m]["share"] for m in MARKETS}

    p50, p99 = latencies(services, order)
    total_replicas = 0
    for s in services.values():
        peak = sum(base[m] * market_peak(m) * s.rate[m] for m in MARKETS)
        s.peak = peak
        util = CARD_PATH_UTILIZATION if s.family in CARD_PATH else SIZING_UTILIZATION
        s.replicas = max(MIN_REPLICAS, math.ceil(peak / (s.cap * util)))
        total_replicas += s.replicas
        # Objectives: room for queueing at peak and a retry on top of the unloaded p99.
        s.slo = round_to(max(2.0 * p99[s.name] + 60.0, 100.0), 50)
    if "--summary" in sys.argv:
        summary(services, base, p99)
        return
    write_scenario(services, order, base, fan, external, p99, total_replicas)
    write_policy(services, total_replicas)


def summary(services, base, p99):
    """Prints each service's sizing (for tuning this script; nothing is written)."""
    print(f"{'service':32} {'peak/s':>8} {'cap':>6} {'repl':>4} {'util':>5} {'p99':>6} {'slo':>6}")
    for s in sorted(services.values(), key=lambda s: -s.peak):
        util = s.peak / (s.cap * s.replicas)
        print(f"{s.name:32} {s.peak:8.1f} {s.cap:6.0f} {s.replicas:4d} {util:5.2f} "
              f"{p99[s.name]:6.0f} {s.slo:6.0f}")
    print("replicas:", sum(s.replicas for s in services.values()))


def timeout_for(caller, callee, p99):
    return round_to(max(4.0 * p99[callee.name] + 2 * hop(caller, callee), 100.0), 50)


def write_scenario(services, order, base, fan, external, p99, total_replicas):
    per_day = DAY_S * sum(base[m] * fan[m] for m in MARKETS)
    out = []
    w = out.append
    w("# GENERATED by make_fin_services.py; edit the script, not this file.")
    w("#")
    w("# A financial-services event platform (issue #5): 200 services in three regions,")
    w("# strict EU data residency, card-testing fraud bursts and a 30-minute outage of")
    w(f"# {OUTAGE_REGION}. Each region runs the same stack: 5 edge gateways -> {len(DOMAIN)} domain")
    w(f"# services -> {len(DATA)} shared data services; {len(GLOBAL)} global reference services live in")
    w(f"# {GLOBAL_REGION} and are called from every region (+{fmt(CROSS_REGION_MS)} ms on the timeout).")
    w("# EU traffic enters through routes split evenly over the eu-west-1 and eu-central-1")
    w("# gateways (the router may move it); US traffic goes straight to the us-east-1 gateways.")
    w("#")
    w("# Volume: '2B events/day' is read as requests arriving at services, every hop counted")
    w("# (what the report's `requests arrived` adds up). External load, diurnal:")
    w(f"#   EU {fmt(round(base['eu']))} req/s mean (peak {MARKETS['eu']['peak_hour']:g}:00 UTC, "
      f"x{market_peak('eu'):g}), US {fmt(round(base['us']))} req/s mean "
      f"(peak {MARKETS['us']['peak_hour']:g}:00 UTC, x{market_peak('us'):g});")
    w(f"#   {fmt(round(external))} req/s in all, each causing {fmt(round(per_day / DAY_S / external, 2))} "
      f"service requests on average:")
    w(f"#   about {per_day / DAY_S:,.0f} req/s summed over services, {per_day / 1e9:.2f}B requests a day "
      "before the outage and the attacks.")
    w(f"# Static fleet: {total_replicas} replicas, each service sized for its diurnal peak at "
      f"{SIZING_UTILIZATION:.0%} utilization, the card path")
    w(f"# at {CARD_PATH_UTILIZATION:.0%} except fraud scoring and its models (at least {MIN_REPLICAS} "
      "each); the attacks")
    w("# overload fraud scoring, and nothing is sized to absorb a region.")
    w("#")
    w("#   conclave simulate simulations/scenarios/fin-services.yaml --out /tmp/fin-services")
    w("apiVersion: conclave/v1")
    w("kind: Scenario")
    w("metadata:")
    w("  name: fin-services")
    w("  description: 200 services, ~2B requests/day, strict EU residency, card-testing bursts, "
      f"{OUTAGE_REGION} down for 30 min.")
    w("spec:")
    w(f"  seed: {SEED}")
    w(f'  start: "{START}"')
    w("  duration: 24h")
    w("  step: 5s")
    w("  policy: fin-services-policy.yaml")
    key = ["cards-gw-euc1", "card-auth-euw1", "fraud-scoring-euc1", "fraud-scoring-use1",
           "payment-orchestrator-euc1", "ledger-euw1", "sanctions-list"]
    w(f"  key_services: [{', '.join(key)}]")
    w("  fleet:")
    w("    routes:")
    for fam in GATEWAYS:
        backends = [f"{fam}-{sfx}" for r, (sfx, m) in REGIONS.items() if m == "eu"]
        w(f"      edge-{fam.removesuffix('-gw')}-eu: [{', '.join(sorted(backends))}]")
    w("    services:")
    layer_titles = {"global": "global reference data", "gateway": "edge gateways",
                    "domain": "domain services", "data": "shared data services"}
    current = None
    for s in sorted(services.values(), key=lambda s: (layer_rank(s), s.region, s.name)):
        if (s.layer, s.region) != current:
            current = (s.layer, s.region)
            w(f"      # {layer_titles[s.layer]}, {s.region}")
        fields = [
            f"name: {s.name}",
            f"region: {s.region}",
            f"capacity_per_replica: {fmt(round(s.cap))}",
            f"base_latency_ms: {fmt(round(s.lat, 1))}",
            f"initial_replicas: {s.replicas}",
            f"min_replicas: {MIN_REPLICAS}",
            f"cold_start_s: {s.cold}",
            f"cost_per_replica_hour: {fmt(s.cost)}",
            f"slo_p99_ms: {fmt(s.slo)}",
        ]
        if s.layer == "gateway":
            fields.append("slo_error_rate: 0.01")
        fields.append(f"max_queue: {s.queue}")
        if s.retry != 1:
            fields.append(f"retry_attempts: {s.retry}")
        if s.inflight:
            fields.append(f"max_in_flight_per_replica: {s.inflight}")
        line = "      - {" + ", ".join(fields)
        if s.deps:
            deps = ", ".join(
                f"{{service: {c.name}, calls_per_request: {fmt(calls)}, "
                f"timeout_ms: {fmt(timeout_for(s, c, p99))}}}"
                for c, calls in s.deps
            )
            w(line + ",")
            w(f"         dependencies: [{deps}]}}")
        else:
            w(line + "}")
    w("  load:")
    for market in ("eu", "us"):
        m = MARKETS[market]
        for fam, (share, _) in GATEWAYS.items():
            if market == "eu":
                name = f"edge-{fam.removesuffix('-gw')}-eu"
            else:
                name = f"{fam}-use1"
            crowds = [a for a in CARD_ATTACKS if a[0] == market] if fam == "cards-gw" else []
            w(f"    {name}:")
            w("      synthetic:")
            w(f"        base_rate_per_s: {fmt(round(base[market] * share, 1))}")
            w(f"        diurnal_amplitude: {fmt(m['amplitude'])}")
            w(f"        peak_hour: {fmt(m['peak_hour'])}")
            w("        noise_sd: 0.04")
            if crowds:
                w("        flash_crowds:   # card-testing attacks")
                for _, at, dur, mult, ramp in crowds:
                    w(f"          - {{at_s: {at}, duration_s: {dur}, multiplier: {fmt(mult)}, "
                      f"ramp_s: {ramp}}}")
    w("  events:")
    w("    # One sampled event per 0.2 s of the ~23,000 req/s: what a compliance tap inspects,")
    w("    # not the whole stream. Violations are rare, as in production.")
    w("    rate_per_s: 5")
    w("    mix:")
    w(f"      regions: [{', '.join(REGIONS)}]")
    w("      topics:")
    eu = [r for r, (_, m) in REGIONS.items() if m == "eu"]
    for topic, producers, rule in TOPICS:
        allowed = f", allowed_regions: [{', '.join(eu)}]" if rule else ""
        w(f"        - {{name: {topic}, producers: [{', '.join(producers)}]{allowed}}}")
    w("      shares: {pii: 0.00005, residency: 0.00005, fraud: 0.0002, decoy: 0.01}")
    w("      fraud: {burst_size: 8, max_span_s: 90}")
    w("  faults:")
    w(f"    - name: {OUTAGE_REGION}-outage")
    w(f"      fault: {{region_outage: {{region: {OUTAGE_REGION}}}}}")
    w(f"      when: {{at: {{start_s: {OUTAGE_START_S}, duration_s: {OUTAGE_S}}}}}")
    with open(os.path.join(HERE, "fin-services.yaml"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


# Event topics: name, producers, whether EU residency applies.
TOPICS = [
    ("payments-eu", ["payment-orchestrator", "sepa-connector", "instant-payments",
                     "partner-feed-eu", "merchant-batch-eu", "treasury-ops"], True),
    ("cards-eu", ["card-auth", "card-issuing", "pos-acquirer-eu", "ecom-acquirer-eu",
                  "chargebacks"], True),
    ("transfers-eu", ["transfers", "standing-orders", "branch-teller-eu", "sepa-connector"], True),
    ("kyc-eu", ["onboarding", "kyc", "document-service", "branch-onboarding-eu"], True),
    ("payments-us", ["payment-orchestrator-us", "ach-connector", "fedwire-connector",
                     "partner-feed-us", "merchant-batch-us"], False),
    ("cards-us", ["card-auth-us", "card-issuing-us", "pos-acquirer-us", "ecom-acquirer-us"],
     False),
]


def regional(*families):
    """`a-euw1, a-euc1, a-use1, b-euw1, ...`: each family's instance in every region."""
    return ", ".join(f"{f}-{sfx}" for f in families for sfx, _ in REGIONS.values())


def layer_rank(s):
    return {"global": 0, "gateway": 1, "domain": 2, "data": 3}[s.layer]


def write_policy(services, total_replicas):
    budget = round_to(total_replicas * 1.5, 50)
    eu = [r for r, (_, m) in REGIONS.items() if m == "eu"]
    out = []
    w = out.append
    w("# GENERATED by make_fin_services.py; edit the script, not this file.")
    w("#")
    w("# policies/fin-services.yaml carried over to the 200 generated services of")
    w("# fin-services.yaml: the same modes, guardrails, arbiter and approvals, with selectors")
    w("# that reach the per-region names (`ledger-euw1`, `fraud-scoring-use1`, ...):")
    w("# - each declared service becomes its three regional instances, with the same labels")
    w("#   (`ledger` -> ledger-euw1, ledger-euc1, ledger-use1; a glob `ledger-*` would also")
    w("#   catch ledger-posting-*); `fraud-*` stays a glob;")
    w("# - the scenario's six topics are declared with labels; compliance covers all of them")
    w("#   (the shipped policy covers only `data: card` topics, which would leave kyc-eu and")
    w("#   transfers-eu unwatched) and knows their residency rules;")
    w(f"# - fleet_replica_budget is {budget} instead of 120: the arbiter counts every replica it")
    w(f"#   sees, and the static fleet alone runs {total_replicas}, so 120 would refuse every scale-up.")
    w("apiVersion: conclave/v1")
    w("kind: Policy")
    w("metadata:")
    w("  name: fin-services-sim")
    w('  revision: "2026-11-29.1"')
    w("  description: fin-services policy over the generated 200-service fleet.")
    w('  labels: {team: payments-platform, regulated: "true"}')
    w("spec:")
    w("  targets:")
    for family, tier in (("ledger", "critical"), ("fraud-scoring", "critical"),
                         ("notifications", "standard")):
        for sfx, market in REGIONS.values():
            w(f"    - {{name: {family}-{sfx}, kind: service, labels: {{tier: {tier}, region: {market}}}}}")
    for topic, _, rule in TOPICS:
        region = "eu" if topic.endswith("-eu") else "us"
        data = "pii" if topic.startswith("kyc") else "card" if "cards" in topic or "payments" in topic else "account"
        w(f"    - {{name: {topic}, kind: topic, labels: {{region: {region}, data: {data}, regulated: \"true\"}}}}")
    w("  agents:")
    w("    compliance:")
    w("      mode: enforce")
    w('      targets: {labels: {regulated: "true"}}')
    w("      settings:")
    w("        residency:")
    for topic, _, rule in TOPICS:
        if rule:
            w(f"          {topic}: [{', '.join(eu)}]")
    w("    breaker:")
    w("      mode: enforce")
    w("      targets: {labels: {tier: critical}}")
    w("    scaler:")
    w("      mode: advise")
    w(f"      targets: {{names: [{regional('ledger', 'notifications')}], globs: [\"fraud-*\"]}}")
    w('      when: "proposal.confidence >= 0.6"')
    w("    router:")
    w("      mode: off")
    w("  guardrails:")
    w("    defaults:")
    w("      min_replicas: 3")
    w("      max_replicas: 30")
    w("      max_step: 4")
    w("      cooldown: 120s")
    w("      scale_down_stabilization: 600s")
    w("      max_shed_fraction: 0.05")
    w("      on_violation: reject")
    w(f"    fleet_replica_budget: {budget}")
    w("    max_actions_per_hour: 20")
    w("  arbiter:")
    w("    window: 10s")
    w("    priorities: [compliance, breaker, scaler, router]")
    w("    conflicts:")
    w("      strategy: priority")
    w("  approvals:")
    w("    - name: topic-quarantine")
    w("      agents: [compliance]")
    w("      actions: [quarantine]")
    w('      when: "proposal.confidence < 0.99"')
    w("      approvers: {roles: [admin], users: [compliance-officer]}")
    w("      timeout: 15m")
    w("      on_timeout: reject")
    w("    - name: ledger-breaker")
    w("      agents: [breaker]")
    w("      actions: [breaker]")
    w(f"      select: {{names: [{regional('ledger')}]}}")
    w("      approvers: {roles: [operator]}")
    w("      timeout: 2m")
    w("      on_timeout: enact")
    with open(os.path.join(HERE, "fin-services-policy.yaml"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
