#!/usr/bin/env bash
# Conclave: run a real OTLP trace backend (Jaeger v2, the all-in-one binary
# built on the OpenTelemetry Collector) on 127.0.0.1, without Docker and without
# a release tarball: the binary is built with `go build` from the Go module proxy
# (recipe: deploy/otel/build/go.mod + go.sum) and started with the config
# deploy/otel/jaeger.yaml (OTLP in, memory storage, query API out).
#
# Usage: deploy/otel/otel.sh COMMAND
#   install         build the jaeger binary into the cache (once; later runs do nothing)
#   start           install if needed, start in the background, wait until healthy
#   stop            SIGTERM, SIGKILL after a timeout; traces are lost (memory storage)
#   restart         stop then start
#   status          exit 0 running+healthy, 1 running but unhealthy, 3 not running
#   logs [N]        print the log path and its last N lines (default 50)
#   query SERVICE [LOOKBACK]  print the traces of SERVICE (Jaeger JSON, /api/traces)
#                   from the last LOOKBACK (default 1h; e.g. 30s, 5m, 2h, 1d)
#   trace TRACE_ID  print one trace (Jaeger JSON, /api/traces/TRACE_ID)
#   smoke           send one OTLP/HTTP JSON trace (2 spans) and check it comes back
#   version         print the module version, Jaeger v2 version and binary path
#
# Environment (all optional):
#   CONCLAVE_CACHE                   build cache root   (default: $HOME/.cache/conclave)
#   CONCLAVE_OTEL_STATE              pid, logs          (default: <repo>/target/otel)
#   CONCLAVE_OTEL_GRPC_PORT          OTLP/gRPC port     (default: 4317)
#   CONCLAVE_OTEL_HTTP_PORT          OTLP/HTTP port     (default: 4318)
#   CONCLAVE_OTEL_QUERY_PORT         query API + UI     (default: 16686)
#   CONCLAVE_OTEL_QUERY_GRPC_PORT    query gRPC         (default: 16685)
#   CONCLAVE_OTEL_HEALTH_PORT        health check       (default: 13133)
#   CONCLAVE_OTEL_MAX_TRACES         traces kept in memory (default: 100000)
#   CONCLAVE_OTEL_LOG_LEVEL          jaeger log level   (default: info)
#   CONCLAVE_OTEL_START_TIMEOUT      seconds to healthy (default: 60)
#   CONCLAVE_OTEL_STOP_TIMEOUT       seconds before KILL (default: 20)
#   CONCLAVE_OTEL_BUILD_JOBS         go build -p during install (default: 1)
#   CONCLAVE_OTEL_BUILD_MAXPROCS     GOMAXPROCS of the go command during install (default: 2)
#   CONCLAVE_OTEL_BUILD_NICE         nice level of the build (default: 10)
#
# Requires: bash, curl, coreutils, util-linux (setsid); go >= 1.24.6 for
# install only; jq for smoke. Debian: golang (or a Go toolchain) curl jq.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

RECIPE_DIR="$SCRIPT_DIR/build"
CONFIG="$SCRIPT_DIR/jaeger.yaml"
JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_PACKAGE="$JAEGER_MODULE/cmd/jaeger"
MIN_GO="1.24.6"

log() { echo "otel.sh: $*"; }
die() { echo "otel.sh: error: $*" >&2; exit 1; }

[[ -f "$RECIPE_DIR/go.mod" && -f "$RECIPE_DIR/go.sum" ]] \
  || die "build recipe missing: $RECIPE_DIR/go.mod and go.sum"
# The Jaeger module version pinned in the recipe is the single source of the version.
JAEGER_VERSION="$(awk -v m="$JAEGER_MODULE" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$RECIPE_DIR/go.mod")"
[[ -n "$JAEGER_VERSION" ]] || die "cannot read the $JAEGER_MODULE version from $RECIPE_DIR/go.mod"

CACHE_ROOT="${CONCLAVE_CACHE:-$HOME/.cache/conclave}"
JAEGER_HOME="$CACHE_ROOT/jaeger/$JAEGER_VERSION"
BIN="$JAEGER_HOME/bin/jaeger"
STAMP_FILE="$JAEGER_HOME/.installed"
BUILD_INFO="$JAEGER_HOME/build-info.txt"
BUILD_LOG="$JAEGER_HOME/go-build.log"

STATE_DIR="${CONCLAVE_OTEL_STATE:-$REPO_ROOT/target/otel}"
LOG_DIR="$STATE_DIR/logs"
PID_FILE="$STATE_DIR/jaeger.pid"
LOG_FILE="$LOG_DIR/jaeger.log"

GRPC_PORT="${CONCLAVE_OTEL_GRPC_PORT:-4317}"
HTTP_PORT="${CONCLAVE_OTEL_HTTP_PORT:-4318}"
QUERY_PORT="${CONCLAVE_OTEL_QUERY_PORT:-16686}"
QUERY_GRPC_PORT="${CONCLAVE_OTEL_QUERY_GRPC_PORT:-16685}"
HEALTH_PORT="${CONCLAVE_OTEL_HEALTH_PORT:-13133}"
START_TIMEOUT="${CONCLAVE_OTEL_START_TIMEOUT:-60}"
STOP_TIMEOUT="${CONCLAVE_OTEL_STOP_TIMEOUT:-20}"
BUILD_JOBS="${CONCLAVE_OTEL_BUILD_JOBS:-1}"
BUILD_MAXPROCS="${CONCLAVE_OTEL_BUILD_MAXPROCS:-2}"
BUILD_NICE="${CONCLAVE_OTEL_BUILD_NICE:-10}"

OTLP_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
OTLP_GRPC_ADDR="127.0.0.1:$GRPC_PORT"
QUERY_URL="http://127.0.0.1:$QUERY_PORT"
HEALTH_URL="http://127.0.0.1:$HEALTH_PORT/status"

# --------------------------------------------------------------------------- helpers

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required (apt-get install -y $2)"
}

now_s() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# How the binary is built, beyond go.mod/go.sum; part of the stamp, so that a
# change here rebuilds. Static and stripped, as Jaeger's own release builds
# (CGO_ENABLED=0, -trimpath); the version is stamped in with -X like its Makefile.
BUILD_RECIPE="CGO_ENABLED=0 go build -trimpath -ldflags=-s -w"

# Comment lines of go.mod do not count: editing them does not rebuild.
recipe_hash() {
  { grep -v '^[[:space:]]*//' "$RECIPE_DIR/go.mod"; cat "$RECIPE_DIR/go.sum"; echo "$BUILD_RECIPE"; } \
    | sha256sum | cut -d' ' -f1
}

is_installed() {
  [[ -f "$STAMP_FILE" && -x "$BIN" ]] && [[ "$(cat "$STAMP_FILE")" == "$(recipe_hash)" ]]
}

# version_ge A B: A >= B for dotted versions (1.26.8 >= 1.24.6).
version_ge() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

check_go() {
  command -v go >/dev/null 2>&1 \
    || die "'go' is required to build Jaeger (Go >= $MIN_GO; apt-get install -y golang-go, if recent enough)"
  local v
  v="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//')"
  [[ -n "$v" ]] || die "cannot run 'go env GOVERSION'"
  version_ge "${v%%[-+ ]*}" "$MIN_GO" || die "go $v is too old: Jaeger $JAEGER_VERSION needs Go >= $MIN_GO"
}

# kill -0 also succeeds on a zombie: the jaeger that `start` detached is
# reaped by PID 1, which can take a second or two after it has exited.
proc_running() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

pid_alive() {
  local pid="$1"
  [[ -n "$pid" ]] && proc_running "$pid" \
    && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == */jaeger ]]
}

# Prints the pid of the jaeger this script started, if it is still running.
running_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if pid_alive "$pid"; then
    echo "$pid"
    return 0
  fi
  return 1
}

# Healthy = the health check extension reports the collector as up (200 on
# /status; 503 while starting or after a component failed) AND the query API
# answers (the storage extension and query server are started).
healthy() {
  curl -fsS -o /dev/null --max-time 3 "$HEALTH_URL" 2>/dev/null \
    && curl -fsS -o /dev/null --max-time 3 "$QUERY_URL/api/services" 2>/dev/null
}

port_busy() {
  (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1
}

rss_of() {
  awk '/^VmRSS:/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || echo '?'
}

show_log_tail() {
  local n="${1:-60}"
  if [[ -s "$LOG_FILE" ]]; then
    echo "----- last $n lines of $LOG_FILE -----" >&2
    tail -n "$n" "$LOG_FILE" >&2 || true
  fi
}

# --------------------------------------------------------------------------- install

# Modules the proxy refused or that did not verify, from a failed build log.
refused_modules() {
  grep -E 'reading https?://[^ ]+: (4[0-9][0-9]|5[0-9][0-9])|verifying .*: |SECURITY ERROR|not found: |unknown revision|invalid version' \
    "$BUILD_LOG" 2>/dev/null | sort -u | head -n 20 || true
}

cmd_install() {
  local t0
  t0="$(now_s)"
  if is_installed; then
    log "Jaeger $(jaeger_v2_version) ($JAEGER_MODULE $JAEGER_VERSION) already built: $BIN" \
      "($(du -h "$BIN" | cut -f1)); nothing to download or build ($(elapsed "$t0")s)"
    return 0
  fi
  check_go
  log "building $JAEGER_PACKAGE@$JAEGER_VERSION from the Go module proxy into $JAEGER_HOME" \
    "(go build -p $BUILD_JOBS, GOMAXPROCS=$BUILD_MAXPROCS, nice $BUILD_NICE; log: $BUILD_LOG)"
  mkdir -p "$JAEGER_HOME/bin"
  local src="$JAEGER_HOME/src.tmp.$$"
  rm -rf "$src"
  mkdir -p "$src"
  cp "$RECIPE_DIR/go.mod" "$RECIPE_DIR/go.sum" "$src/"
  # GOTOOLCHAIN=local: never fetch another Go toolchain. GOFLAGS=-mod=mod: the
  # go command may fill in module requirements (it should not need to: go.sum is
  # complete; a change is reported below). GOWORK=off: ignore any go.work around.
  local go_env=(nice -n "$BUILD_NICE" env GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
    CGO_ENABLED=0 "GOMAXPROCS=$BUILD_MAXPROCS")
  : >"$BUILD_LOG"
  local mod_dir v2 mod_time
  if ! (cd "$src" && "${go_env[@]}" go mod download -x "$JAEGER_MODULE") >>"$BUILD_LOG" 2>&1 \
    || ! mod_dir="$(cd "$src" && "${go_env[@]}" go list -m -f '{{.Dir}}' "$JAEGER_MODULE" 2>>"$BUILD_LOG")"; then
    refused_modules >&2
    rm -rf "$src"
    die "the Go module proxy did not serve $JAEGER_MODULE@$JAEGER_VERSION (log: $BUILD_LOG)"
  fi
  # Jaeger publishes each release under two tags, v 1.x (the Go module) and v2.x
  # (the binary); its Makefile stamps the v2 tag into the binary, so do the same.
  v2="$(grep -m1 -oE "^${JAEGER_VERSION//./\\.} / v2\.[0-9]+\.[0-9]+" "$mod_dir/CHANGELOG.md" 2>/dev/null \
    | sed 's:.* / ::' || true)"
  mod_time="$(cd "$src" && "${go_env[@]}" go list -m \
    -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$JAEGER_MODULE" 2>/dev/null)" \
    || mod_time=""
  local vpkg="$JAEGER_MODULE/internal/version"
  local ldflags="-s -w -X $vpkg.latestVersion=${v2:-$JAEGER_VERSION} -X $vpkg.date=${mod_time} -X $vpkg.commitSHA=go-module-$JAEGER_VERSION"
  if ! (cd "$src" && "${go_env[@]}" go build -p "$BUILD_JOBS" -trimpath -ldflags "$ldflags" \
      -o "$JAEGER_HOME/bin/jaeger.tmp" "$JAEGER_PACKAGE") >>"$BUILD_LOG" 2>&1; then
    echo "----- last 30 lines of $BUILD_LOG -----" >&2
    tail -n 30 "$BUILD_LOG" >&2 || true
    local refused
    refused="$(refused_modules)"
    [[ -z "$refused" ]] || { echo "----- refused / unverified modules -----" >&2; echo "$refused" >&2; }
    rm -rf "$src" "$JAEGER_HOME/bin/jaeger.tmp"
    die "go build of $JAEGER_PACKAGE@$JAEGER_VERSION failed (full log: $BUILD_LOG)"
  fi
  if ! cmp -s "$src/go.mod" "$RECIPE_DIR/go.mod" || ! cmp -s "$src/go.sum" "$RECIPE_DIR/go.sum"; then
    log "warning: the go command changed go.mod/go.sum; the recipe in $RECIPE_DIR is incomplete" \
      "(diff $src/go.mod $RECIPE_DIR/go.mod)"
  else
    rm -rf "$src"
  fi
  mv -f "$JAEGER_HOME/bin/jaeger.tmp" "$BIN"
  local secs size
  secs="$(elapsed "$t0")"
  size="$(stat -c %s "$BIN")"
  {
    echo "module=$JAEGER_MODULE@$JAEGER_VERSION"
    echo "jaeger_v2=${v2:-unknown}"
    echo "module_time=$mod_time"
    echo "go=$(GOTOOLCHAIN=local go env GOVERSION)"
    echo "build_jobs=-p $BUILD_JOBS GOMAXPROCS=$BUILD_MAXPROCS"
    echo "build_seconds=$secs"
    echo "binary_bytes=$size"
    echo "built_at=$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  } >"$BUILD_INFO"
  recipe_hash >"$STAMP_FILE"
  log "built Jaeger ${v2:-?} ($JAEGER_MODULE $JAEGER_VERSION) in ${secs}s: $BIN" \
    "($(awk -v b="$size" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
}

jaeger_v2_version() {
  sed -n 's/^jaeger_v2=//p' "$BUILD_INFO" 2>/dev/null || true
}

# --------------------------------------------------------------------------- start

wait_healthy() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if healthy; then
      return 0
    fi
    if ! proc_running "$pid"; then
      echo "otel.sh: error: jaeger (pid $pid) exited during startup" >&2
      show_log_tail 60
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 0.1
  done
  echo "otel.sh: error: jaeger not healthy after ${START_TIMEOUT}s ($HEALTH_URL, $QUERY_URL/api/services)" >&2
  show_log_tail 60
  return 1
}

cmd_start() {
  need curl curl
  local pid
  if pid="$(running_pid)"; then
    if healthy; then
      log "already running and healthy (pid $pid, OTLP $OTLP_GRPC_ADDR + $OTLP_HTTP_URL, query $QUERY_URL)"
      return 0
    fi
    log "already running (pid $pid) but not healthy yet; waiting up to ${START_TIMEOUT}s"
    wait_healthy "$pid" || exit 1
    log "healthy (pid $pid)"
    return 0
  fi
  rm -f "$PID_FILE"

  if healthy; then
    log "a Jaeger not started by this script already answers on $QUERY_URL; leaving it alone"
    return 0
  fi
  local p
  for p in "$GRPC_PORT" "$HTTP_PORT" "$QUERY_PORT" "$QUERY_GRPC_PORT" "$HEALTH_PORT"; do
    if port_busy "$p"; then
      die "port $p on 127.0.0.1 is already in use by another process; stop it or set CONCLAVE_OTEL_*_PORT"
    fi
  done

  is_installed || cmd_install
  need setsid util-linux
  mkdir -p "$LOG_DIR"

  # The child gets no OTEL_* variables: a shell set up to trace Conclave must
  # not point Jaeger's own SDK anywhere. Ports reach jaeger.yaml through env.
  local unset_otel=() v
  while IFS= read -r v; do
    [[ "$v" == OTEL_* ]] && unset_otel+=(-u "$v")
  done < <(compgen -e)
  {
    echo
    echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting Jaeger $(jaeger_v2_version) ($JAEGER_VERSION): $BIN --config file:$CONFIG ==="
  } >>"$LOG_FILE"
  local t0
  t0="$(now_s)"
  (
    cd "$STATE_DIR"
    exec env "${unset_otel[@]}" \
      "CONCLAVE_OTEL_GRPC_PORT=$GRPC_PORT" "CONCLAVE_OTEL_HTTP_PORT=$HTTP_PORT" \
      "CONCLAVE_OTEL_QUERY_PORT=$QUERY_PORT" "CONCLAVE_OTEL_QUERY_GRPC_PORT=$QUERY_GRPC_PORT" \
      "CONCLAVE_OTEL_HEALTH_PORT=$HEALTH_PORT" \
      "CONCLAVE_OTEL_MAX_TRACES=${CONCLAVE_OTEL_MAX_TRACES:-100000}" \
      "CONCLAVE_OTEL_LOG_LEVEL=${CONCLAVE_OTEL_LOG_LEVEL:-info}" \
      GOMAXPROCS="${GOMAXPROCS:-2}" \
      setsid "$BIN" --config "file:$CONFIG" </dev/null >>"$LOG_FILE" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if ! wait_healthy "$pid"; then
    if proc_running "$pid"; then
      log "stopping the unhealthy jaeger (pid $pid)"
      stop_pid "$pid"
    fi
    rm -f "$PID_FILE"
    exit 1
  fi
  log "healthy after $(elapsed "$t0")s (pid $pid, RSS $(rss_of "$pid"));" \
    "OTLP gRPC $OTLP_GRPC_ADDR, OTLP HTTP $OTLP_HTTP_URL, query/UI $QUERY_URL"
}

# --------------------------------------------------------------------------- stop

stop_pid() {
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + STOP_TIMEOUT))
  while proc_running "$pid" && (( SECONDS < deadline )); do
    sleep 0.1
  done
  if proc_running "$pid"; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while proc_running "$pid"; do sleep 0.1; done
  fi
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping Jaeger (pid $pid)"
  local t0
  t0="$(now_s)"
  stop_pid "$pid"
  rm -f "$PID_FILE"
  log "stopped after $(elapsed "$t0")s"
}

# --------------------------------------------------------------------------- status

# Exit codes: 0 running and healthy; 1 running but not healthy; 3 not running.
cmd_status() {
  need curl curl
  local pid
  if pid="$(running_pid)"; then
    if healthy; then
      log "running and healthy (pid $pid, RSS $(rss_of "$pid"), OTLP $OTLP_GRPC_ADDR + $OTLP_HTTP_URL, query $QUERY_URL)"
      return 0
    fi
    log "running (pid $pid, RSS $(rss_of "$pid")) but NOT healthy ($HEALTH_URL)"
    return 1
  fi
  if healthy; then
    log "not started by this script, but a Jaeger answers healthy on $QUERY_URL"
    return 0
  fi
  log "not running"
  return 3
}

# --------------------------------------------------------------------------- query

# get_json URL: prints the body; fails with the HTTP status and body otherwise.
get_json() {
  local url="$1" body code
  body="$(mktemp)"
  code="$(curl -sS -o "$body" -w '%{http_code}' --max-time 10 "$url" 2>/dev/null || echo 000)"
  if [[ "$code" != 200 ]]; then
    echo "otel.sh: error: GET $url -> HTTP $code: $(head -c 500 "$body")" >&2
    rm -f "$body"
    return 1
  fi
  cat "$body"
  rm -f "$body"
}

urlencode() {
  local s="$1" out="" c i
  for (( i = 0; i < ${#s}; i++ )); do
    c="${s:i:1}"
    case "$c" in
      [a-zA-Z0-9.~_-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  echo "$out"
}

# Go duration (30s, 5m, 2h, 1h30m) -> microseconds.
duration_us() {
  local d="$1" total=0 n u
  [[ "$d" =~ ^([0-9]+[smhd])+$ ]] || die "bad LOOKBACK '$d' (use e.g. 30s, 5m, 2h, 1d)"
  while [[ "$d" =~ ^([0-9]+)([smhd])(.*)$ ]]; do
    n="${BASH_REMATCH[1]}" u="${BASH_REMATCH[2]}" d="${BASH_REMATCH[3]}"
    case "$u" in
      s) total=$((total + n)) ;;
      m) total=$((total + n * 60)) ;;
      h) total=$((total + n * 3600)) ;;
      d) total=$((total + n * 86400)) ;;
    esac
  done
  echo $((total * 1000000))
}

# query SERVICE [LOOKBACK]: the Jaeger HTTP API's JSON ({"data": [trace...]}) on
# stdout; a one-line summary on stderr. Exit 0 even when no trace is found.
cmd_query() {
  need curl curl
  local service="${1:-}" lookback="${2:-1h}"
  [[ -n "$service" ]] || die "usage: $0 query SERVICE [LOOKBACK]"
  healthy || die "jaeger not healthy on $QUERY_URL; run '$0 start' first"
  local end start json
  end="$(( $(date +%s%N) / 1000 ))"
  start="$(( end - $(duration_us "$lookback") ))"
  json="$(get_json "$QUERY_URL/api/traces?service=$(urlencode "$service")&start=$start&end=$end&limit=${CONCLAVE_OTEL_QUERY_LIMIT:-100}")" \
    || exit 1
  echo "$json"
  if command -v jq >/dev/null 2>&1; then
    echo "$json" | jq -r --arg s "$service" --arg l "$lookback" \
      '"otel.sh: \(.data | length) trace(s), \([.data[].spans | length] | add // 0) span(s) for service \($s) in the last \($l)"' >&2
  fi
}

cmd_trace() {
  need curl curl
  local id="${1:-}"
  [[ "$id" =~ ^[0-9a-fA-F]{1,32}$ ]] || die "usage: $0 trace TRACE_ID (hex)"
  healthy || die "jaeger not healthy on $QUERY_URL; run '$0 start' first"
  get_json "$QUERY_URL/api/traces/$id" || exit 1
}

# --------------------------------------------------------------------------- smoke

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Sends a root span and a child span with string/int/double/bool attributes as
# OTLP/HTTP JSON, then reads the trace back from the query API (by trace id and
# by service) and checks names, parent link, attributes and service name.
cmd_smoke() {
  need curl curl
  need jq jq
  healthy || die "jaeger not healthy on $QUERY_URL; run '$0 start' first"
  local trace_id root_id child_id service t_ns
  trace_id="$(hex 16)" root_id="$(hex 8)" child_id="$(hex 8)"
  service="conclave-otel-smoke"
  t_ns="$(date +%s%N)"
  local payload
  payload="$(jq -n \
    --arg tid "$trace_id" --arg rid "$root_id" --arg cid "$child_id" --arg svc "$service" \
    --arg t0 "$t_ns" --arg t1 "$((t_ns + 1000000))" --arg t2 "$((t_ns + 4000000))" --arg t3 "$((t_ns + 5000000))" '
    def s(k; v): {key: k, value: {stringValue: v}};
    {resourceSpans: [{
      resource: {attributes: [s("service.name"; $svc), s("service.version"; "0.0.0-smoke")]},
      scopeSpans: [{
        scope: {name: "conclave.otel.smoke", version: "1"},
        spans: [
          {traceId: $tid, spanId: $rid, name: "conclave.decision", kind: 1,
           startTimeUnixNano: $t0, endTimeUnixNano: $t3,
           attributes: [s("conclave.mode"; "shadow"), s("conclave.target"; "svc/checkout"),
                        {key: "conclave.policy.revision", value: {intValue: "42"}}],
           status: {code: 1}},
          {traceId: $tid, spanId: $cid, parentSpanId: $rid, name: "invoke_agent scaler", kind: 1,
           startTimeUnixNano: $t1, endTimeUnixNano: $t2,
           attributes: [s("gen_ai.operation.name"; "invoke_agent"), s("gen_ai.agent.name"; "scaler"),
                        {key: "conclave.batch_size", value: {intValue: "8"}},
                        {key: "conclave.score", value: {doubleValue: 0.75}},
                        {key: "conclave.fallback", value: {boolValue: false}}]}
        ]}]}]}')"

  local resp code
  resp="$(mktemp)"
  code="$(curl -sS -o "$resp" -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/json' --data "$payload" "$OTLP_HTTP_URL/v1/traces" || echo 000)"
  if [[ "$code" != 200 ]]; then
    echo "otel.sh: error: POST $OTLP_HTTP_URL/v1/traces -> HTTP $code: $(head -c 500 "$resp")" >&2
    rm -f "$resp"
    exit 1
  fi
  log "sent trace $trace_id (2 spans, service $service) to $OTLP_HTTP_URL/v1/traces: HTTP 200 $(head -c 200 "$resp")"
  rm -f "$resp"

  # The batch processor flushes within 200 ms; poll the query API for up to 10 s.
  local t0 json="" deadline=$((SECONDS + 10))
  t0="$(now_s)"
  while (( SECONDS < deadline )); do
    json="$(curl -fsS --max-time 5 "$QUERY_URL/api/traces/$trace_id" 2>/dev/null || true)"
    if [[ -n "$json" ]] && [[ "$(echo "$json" | jq '[.data[]?.spans[]?] | length')" == 2 ]]; then
      break
    fi
    json=""
    sleep 0.1
  done
  [[ -n "$json" ]] || die "trace $trace_id not found with 2 spans in $QUERY_URL/api/traces/$trace_id after 10s"
  log "trace visible in the query API after $(elapsed "$t0")s"

  # Checks on Jaeger's JSON model: spans[], references[] (CHILD_OF), tags[] with
  # typed values, processes{}.serviceName.
  local checks
  checks="$(echo "$json" | jq -r --arg rid "$root_id" --arg cid "$child_id" --arg svc "$service" '
    .data[0] as $t
    | ($t.spans | map({key: .spanID, value: .}) | from_entries) as $by
    | def tag(sp; k): (sp.tags[] | select(.key == k) | .value);
      [
        ["root span name", $by[$rid].operationName, "conclave.decision"],
        ["child span name", $by[$cid].operationName, "invoke_agent scaler"],
        ["child CHILD_OF root", ([$by[$cid].references[]? | select(.refType == "CHILD_OF") | .spanID] | first), $rid],
        ["root conclave.mode", tag($by[$rid]; "conclave.mode"), "shadow"],
        ["root conclave.target", tag($by[$rid]; "conclave.target"), "svc/checkout"],
        ["root conclave.policy.revision", (tag($by[$rid]; "conclave.policy.revision") | tostring), "42"],
        ["child gen_ai.agent.name", tag($by[$cid]; "gen_ai.agent.name"), "scaler"],
        ["child conclave.batch_size", (tag($by[$cid]; "conclave.batch_size") | tostring), "8"],
        ["child conclave.score", (tag($by[$cid]; "conclave.score") | tostring), "0.75"],
        ["child conclave.fallback", (tag($by[$cid]; "conclave.fallback") | tostring), "false"],
        ["service name", $t.processes[$by[$rid].processID].serviceName, $svc]
      ][]
    | "\(if .[1] == .[2] then "ok  " else "FAIL" end) \(.[0]) = \(.[1] | tostring) (want \(.[2]))"')" \
    || die "could not parse the query API answer: $(echo "$json" | head -c 500)"
  local line
  while IFS= read -r line; do echo "otel.sh:   $line"; done <<<"$checks"
  if grep -q '^FAIL' <<<"$checks"; then
    die "smoke: trace $trace_id came back different from what was sent"
  fi

  # Found by service too, the way a test looks for its traces.
  local by_service
  by_service="$(cmd_query "$service" 5m 2>/dev/null)" || die "query by service $service failed"
  echo "$by_service" | jq -e --arg tid "$trace_id" '[.data[].traceID] | index($tid) != null' >/dev/null \
    || die "trace $trace_id not listed by GET /api/traces?service=$service"
  log "trace listed by GET /api/traces?service=$service"
  log "smoke OK: OTLP/HTTP in, trace $trace_id out of $QUERY_URL/trace/$trace_id"
}

# --------------------------------------------------------------------------- main

usage() {
  sed -n '8,20p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    logs)
      echo "$LOG_FILE"
      if [[ -f "$LOG_FILE" ]]; then tail -n "${1:-50}" "$LOG_FILE"; else echo "(no log yet)"; fi
      ;;
    query) cmd_query "$@" ;;
    trace) cmd_trace "$@" ;;
    smoke) cmd_smoke ;;
    version)
      echo "module $JAEGER_MODULE $JAEGER_VERSION"
      echo "jaeger ${BIN}"
      if [[ -f "$BUILD_INFO" ]]; then cat "$BUILD_INFO"; else echo "(not built yet: $0 install)"; fi
      ;;
    -h|--help|help) usage 0 ;;
    *) usage 2 >&2 ;;
  esac
}

main "$@"
