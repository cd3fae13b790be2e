# Conclave: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Honour CARGO_TARGET_DIR, so a build elsewhere is found.
BIN := $(or $(CARGO_TARGET_DIR),target)/debug/conclave

.PHONY: demo test deps venv browser build lint test-rust test-policies test-pulsar test-training test-keda test-deploy fuzz schema bench bench-pulsar clean

## System packages the build needs (protoc for the Pulsar client), via apt when missing.
deps:
	deploy/setup/deps.sh

## The project's Python venv (.venv): ONNX Runtime's library for the models, and the
## pinned training stack (agents/training/requirements.txt). Does nothing when current.
venv:
	agents/training/setup.sh >/dev/null

## Debian's Chromium and playwright-core for the operator console's browser test.
browser:
	deploy/setup/browser.sh

build: deps venv
	$(CARGO) build --workspace --all-targets

## The main job: validate and test the shipped policies, the scripted arbiter demo, the
## runtime (four agents on the embedded bus) replaying three minutes of telemetry, then the
## flash-sale simulation: the learned policy against its rules, doing nothing and the oracle,
## with an HTML report.
demo: build
	$(BIN) policy validate policies/*.yaml
	$(BIN) policy test policies/tests
	$(BIN) demo --policy policies/ecommerce.yaml --audit target/demo/audit.jsonl
	rm -f target/demo/run-audit.jsonl
	$(BIN) run --policy tests/fixtures/runtime/policy.yaml --telemetry tests/fixtures/runtime/e2e.jsonl \
		--audit target/demo/run-audit.jsonl --dead-letters target/demo/dead-letters.jsonl \
		--actions target/demo/actions.log
	$(BIN) simulate simulations/scenarios/ecommerce-flash-sale.yaml --compare none,rules,oracle

## Every test: lints; a real Pulsar broker started for the Rust unit, property and system
## tests (the Pulsar ones included) and the broker smoke test; policy tests.
test: lint test-policies test-deploy test-pulsar test-training test-keda

## The container and Kubernetes files, checked offline: hadolint on the Dockerfile,
## kubeconform on the manifests (Kubernetes and KEDA schemas), the cluster policy's tests.
test-deploy: build
	deploy/docker/lint.sh
	CONCLAVE_BIN=$(abspath $(BIN)) deploy/k8s/validate.sh

## KEDA's own generated client (Go, from the module proxy) against `conclave run --keda`.
test-keda: build
	cd tests/keda && CONCLAVE_BIN=$(abspath $(BIN)) go test -count=1 ./...

## The training pipeline's own tests (features, spec, held-out split) in the venv.
test-training: venv
	.venv/bin/python -m pytest agents/training -q

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Rust tests alone; the Pulsar system tests say they were skipped without a broker.
test-rust: deps venv
	$(CARGO) test --workspace

test-policies: build
	$(BIN) policy validate policies/*.yaml
	$(BIN) policy test policies/tests

## A real Apache Pulsar standalone from Maven Central (and a second one with token auth and
## TLS) and a real Jaeger (deploy/otel, OTLP traces): start them, create topics, run every
## Rust test against them (the console's browser test in Debian's Chromium too), round-trip
## a message with the Java client, restart, stop. Without the broker and Jaeger only when
## CONCLAVE_SKIP_PULSAR=1 (the Pulsar and OpenTelemetry system tests then say so).
test-pulsar: deps venv browser
	@if [ "$${CONCLAVE_SKIP_PULSAR:-0}" = 1 ]; then \
		echo "pulsar broker and jaeger skipped (CONCLAVE_SKIP_PULSAR=1)"; $(CARGO) test --workspace; exit $$?; fi; \
	trap 'deploy/pulsar/pulsar.sh stop; CONCLAVE_PULSAR_AUTH=token deploy/pulsar/pulsar.sh stop; deploy/otel/otel.sh stop' EXIT; \
	deploy/otel/otel.sh start && \
	deploy/pulsar/pulsar.sh start && deploy/pulsar/pulsar.sh setup-topics && \
	CONCLAVE_PULSAR_AUTH=token deploy/pulsar/pulsar.sh start && CONCLAVE_PULSAR_AUTH=token deploy/pulsar/pulsar.sh setup-topics && \
	CONCLAVE_PULSAR_URL=pulsar://127.0.0.1:6650 CONCLAVE_REQUIRE_PULSAR=1 \
	CONCLAVE_PULSAR_AUTH_URL=pulsar://127.0.0.1:6652 CONCLAVE_REQUIRE_PULSAR_AUTH=1 \
	CONCLAVE_JAEGER_URL=http://127.0.0.1:16686 CONCLAVE_REQUIRE_JAEGER=1 \
	CONCLAVE_REQUIRE_BROWSER=1 $(CARGO) test --workspace && \
	deploy/pulsar/pulsar.sh smoke && deploy/pulsar/pulsar.sh restart && deploy/pulsar/pulsar.sh smoke

## Pipeline throughput and latency (figures recorded in BENCHMARKS.md).
bench:
	$(CARGO) bench -p conclave-agents --bench pipeline

## Telemetry through a real broker: throughput with one and two instances, publish ->
## action latency (figures recorded in BENCHMARKS.md).
bench-pulsar: build
	@trap 'deploy/pulsar/pulsar.sh stop' EXIT; \
	deploy/pulsar/pulsar.sh start && deploy/pulsar/pulsar.sh setup-topics && \
	CONCLAVE_PULSAR_URL=pulsar://127.0.0.1:6650 $(CARGO) bench -p conclave-agents --bench pulsar

## Regenerate the committed JSON Schema of policies.
schema: build
	$(BIN) policy schema > policies/schema.json

## Fuzz the policy parser for FUZZ_SECONDS (needs nightly and cargo-fuzz).
fuzz:
	cd fuzz && cargo +nightly fuzz run policy_parser -- -max_total_time=$${FUZZ_SECONDS:-60}

clean:
	$(CARGO) clean
