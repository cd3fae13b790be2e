#!/bin/bash
# Docker HEALTHCHECK for the Conclave image: GET http://127.0.0.1:PORT/PATH and succeed
# only on a 200 status line. Bash's /dev/tcp instead of curl keeps the image free of
# extra packages; Kubernetes uses its own httpGet probes instead (deploy/k8s/).
#
# Usage: healthcheck.sh [PORT] [PATH]   (defaults: 7070 /healthz)
set -euo pipefail

port="${1:-7070}"
path="${2:-/healthz}"

# Docker's --timeout kills a hung check; `read -t` bounds it here too when run by hand.
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
IFS= read -r -t 3 status <&3
# Read the rest (the server closes: `Connection: close`) so the server sees no reset.
while IFS= read -r -t 3 _ <&3; do :; done || true
exec 3<&- 3>&-

case "$status" in
  "HTTP/1."[01]" 200"*) exit 0 ;;
  *)
    echo "healthcheck: GET ${path} on port ${port}: expected HTTP 200, found \`${status%$'\r'}\`" >&2
    exit 1
    ;;
esac
