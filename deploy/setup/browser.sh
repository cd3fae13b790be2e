#!/usr/bin/env bash
# The operator console's browser test needs Debian's Chromium and playwright-core (pinned
# in tests/browser/package-lock.json). Installs what is missing; does nothing otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x "${CONCLAVE_CHROMIUM:-/usr/bin/chromium}" ]]; then
  echo "browser.sh: installing chromium with apt-get" >&2
  sudo_cmd=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "browser.sh: error: need root or sudo (apt-get install chromium)" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends chromium >/dev/null; then
    "${sudo_cmd[@]}" apt-get update >/dev/null
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends chromium >/dev/null
  fi
fi
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
fi
