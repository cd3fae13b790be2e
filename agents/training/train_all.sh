#!/usr/bin/env bash
# Retrain every Conclave model from scratch: set up the pinned venv, then run the
# trainers, then the training tests. Run from anywhere:
#   agents/training/train_all.sh
# Models trained here: scaler-forecast (agents/models/scaler-forecast.onnx),
# breaker-risk (agents/models/breaker-risk.onnx), compliance-fraud
# (agents/models/compliance-fraud.onnx) and router-latency (agents/models/router-latency.onnx);
# the last three train on simulator recordings, so they need the conclave binary: built here
# unless CONCLAVE_BIN names one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$here/setup.sh" >/dev/null
py="$root/.venv/bin/python"
cd "$root"
"$py" "$here/train_scaler.py"
if [[ -z "${CONCLAVE_BIN:-}" ]]; then
    cargo build --quiet --bin conclave
fi
"$py" "$here/train_breaker.py"
"$py" "$here/train_compliance.py"
"$py" "$here/train_router.py"
"$py" -m pytest "$here" -q
