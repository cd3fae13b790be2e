#!/usr/bin/env bash
# Create (or reuse) the project-local Python venv at <project root>/.venv and install
# the pinned training requirements into it. Idempotent: pip runs only when the
# requirements file changed since the last successful install (stamp file holds its
# sha256). Prints the path of ONNX Runtime's shared library from the onnxruntime
# wheel as the last line on stdout (all other messages go to stderr), so
#   export ORT_DYLIB_PATH="$(agents/training/setup.sh)"
# works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"
req="$here/requirements.txt"
stamp="$venv/.conclave-requirements.sha256"
python="${PYTHON:-python3.11}"

log() { printf '%s\n' "$*" >&2; }

want_hash="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    :
else
    if ! command -v "$python" >/dev/null 2>&1; then
        log "setup.sh: $python not found; install Python 3.11 (or set PYTHON=/path/to/python3.11)"
        exit 1
    fi
    if [[ -e "$venv" ]]; then
        log "setup.sh: $venv exists but is not a Python 3.11 venv; recreating it"
        rm -rf "$venv"
    fi
    log "setup.sh: creating $venv with $python"
    "$python" -m venv "$venv"
fi

have_hash=""
[[ -f "$stamp" ]] && have_hash="$(cat "$stamp")"
if [[ "$have_hash" == "$want_hash" ]]; then
    log "setup.sh: requirements unchanged (sha256 $want_hash), skipping pip install"
else
    log "setup.sh: installing pinned requirements from $req"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    printf '%s\n' "$want_hash" > "$stamp"
fi

capi="$("$venv/bin/python" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
lib=""
for f in "$capi"/libonnxruntime.so*; do
    [[ -e "$f" ]] || continue
    lib="$f"
done
if [[ -z "$lib" ]]; then
    log "setup.sh: no libonnxruntime.so* in $capi"
    exit 1
fi
log "setup.sh: ONNX Runtime shared library (use as ORT_DYLIB_PATH):"
printf '%s\n' "$lib"
