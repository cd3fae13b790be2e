#!/usr/bin/env bash
# Build-time system packages Conclave needs beyond Rust: `protoc` (the Pulsar client
# compiles Pulsar's protocol definition). Installs them with Debian's apt when missing;
# does nothing when they are there.
set -euo pipefail

need_apt=()
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)

if [[ ${#need_apt[@]} -eq 0 ]]; then
  exit 0
fi
echo "deps.sh: installing ${need_apt[*]} with apt-get" >&2
sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "deps.sh: error: need root or sudo to install ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
    exit 1
  }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null; then
  "${sudo_cmd[@]}" apt-get update >/dev/null
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v protoc >/dev/null 2>&1 || { echo "deps.sh: error: protoc still missing" >&2; exit 1; }
