# Conclave: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Honour CARGO_TARGET_DIR, so a build elsewhere is found.
BIN := $(or $(CARGO_TARGET_DIR),target)/debug/conclave

.PHONY: demo test build lint test-rust test-policies test-pulsar fuzz schema bench clean

build:
	$(CARGO) build --workspace --all-targets

## The main job: validate and test the shipped policies, the scripted arbiter demo, the
## runtime (four agents on the embedded bus) replaying three minutes of telemetry, then the
## flash-sale simulation: the policy against doing nothing, with an HTML report.
demo: build
	$(BIN) policy validate policies/*.yaml
	$(BIN) policy test policies/tests
	$(BIN) demo --policy policies/ecommerce.yaml --audit target/demo/audit.jsonl
	rm -f target/demo/run-audit.jsonl
	$(BIN) run --policy tests/fixtures/runtime/policy.yaml --telemetry tests/fixtures/runtime/e2e.jsonl \
		--audit target/demo/run-audit.jsonl --dead-letters target/demo/dead-letters.jsonl \
		--actions target/demo/actions.log
	$(BIN) simulate simulations/scenarios/ecommerce-flash-sale.yaml

## Every test: Rust unit, property and system tests, policy tests, lints, the Pulsar smoke.
test: lint test-rust test-policies test-pulsar

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

test-policies: build
	$(BIN) policy validate policies/*.yaml
	$(BIN) policy test policies/tests

## A real Apache Pulsar standalone from Maven Central: start, create topics, round-trip a
## message, restart, stop. Skipped only when CONCLAVE_SKIP_PULSAR=1.
test-pulsar:
	@if [ "$${CONCLAVE_SKIP_PULSAR:-0}" = 1 ]; then echo "pulsar smoke skipped (CONCLAVE_SKIP_PULSAR=1)"; exit 0; fi; \
	trap 'deploy/pulsar/pulsar.sh stop' EXIT; \
	deploy/pulsar/pulsar.sh start && deploy/pulsar/pulsar.sh setup-topics && \
	deploy/pulsar/pulsar.sh smoke && deploy/pulsar/pulsar.sh restart && deploy/pulsar/pulsar.sh smoke

## Pipeline throughput and latency (figures recorded in BENCHMARKS.md).
bench:
	$(CARGO) bench -p conclave-agents --bench pipeline

## Regenerate the committed JSON Schema of policies.
schema: build
	$(BIN) policy schema > policies/schema.json

## Fuzz the policy parser for FUZZ_SECONDS (needs nightly and cargo-fuzz).
fuzz:
	cd fuzz && cargo +nightly fuzz run policy_parser -- -max_total_time=$${FUZZ_SECONDS:-60}

clean:
	$(CARGO) clean
