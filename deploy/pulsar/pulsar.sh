#!/usr/bin/env bash
# Conclave: run a real Apache Pulsar standalone broker on this machine, without
# Docker and without a Pulsar tarball: the broker's jars are resolved from the
# Maven package registry (deploy/pulsar/pom.xml) and started with plain `java`.
#
# Usage: deploy/pulsar/pulsar.sh COMMAND
#   install       resolve the broker jars with Maven into the cache (once)
#   start         install if needed, start in the background, wait until healthy
#   stop          graceful stop (admin API, then SIGTERM, SIGKILL after a timeout)
#   restart       stop then start; data (topics, backlogs, cursors) is kept
#   status        exit 0 running+healthy, 1 running but unhealthy, 3 not running
#   setup-topics  create tenant conclave, namespaces and the Conclave topics
#   smoke [TOPIC] produce+consume 10 keyed messages (Key_Shared) over port 6650
#   logs          print the log directory and files
#   wipe          delete all broker data (only when stopped)
#
# Environment (all optional):
#   CONCLAVE_CACHE                 jar cache root        (default: $HOME/.cache/conclave)
#   CONCLAVE_STATE                 pid, logs, data       (default: <repo>/target/pulsar)
#   CONCLAVE_PULSAR_JAVA           java binary, >= 17    (default: $JAVA_HOME/bin/java, else `java`)
#   CONCLAVE_PULSAR_PORT           binary protocol port  (default: 6650)
#   CONCLAVE_PULSAR_HTTP_PORT      HTTP/admin port       (default: 8080)
#   CONCLAVE_PULSAR_BOOKIE_PORT    embedded bookie port  (default: 3181)
#   CONCLAVE_PULSAR_START_TIMEOUT  seconds to healthy    (default: 180)
#   CONCLAVE_PULSAR_STOP_TIMEOUT   seconds before KILL   (default: 60)
#   CONCLAVE_PULSAR_HEAP           -Xmx                  (default: 1g)
#   CONCLAVE_PULSAR_DIRECT_MEMORY  -XX:MaxDirectMemorySize (default: 1g)
#   CONCLAVE_PULSAR_JAVA_OPTS      extra JVM options
#   CONCLAVE_MAVEN_REPO            Maven local repository (default: Maven's own, ~/.m2/repository)
#   CONCLAVE_PULSAR_LOG_LEVEL      broker root log level (default: info)
#   CONCLAVE_PULSAR_AUTH           `token`: a second, token-authenticated instance with TLS
#                                  (own state and ports, see below); unset: no authentication
#   CONCLAVE_PULSAR_TLS_PORT       TLS binary protocol port, token mode only (default: 6653)
#
# Token mode (CONCLAVE_PULSAR_AUTH=token) changes the defaults to CONCLAVE_STATE
# <repo>/target/pulsar-auth and ports 6652 (pulsar://), 6653 (pulsar+ssl://), 8082 (HTTP)
# and 3182 (bookie), so it runs beside the default broker. On first start it creates, in
# <state>/auth/ (mode 700): an HS256 secret key and tokens signed by the broker's own
# TokensCliUtils (superuser.token, conclave.token, stranger.token: a role without
# permissions, wrong.token: signed with another key), and a self-signed CA with a broker
# certificate for 127.0.0.1 (tls/ca.pem). They are kept across restarts and `wipe`.
#
# Requires: bash, a JDK >= 17 (java and javac), mvn (install only), curl,
# coreutils, util-linux (setsid), openssl (token mode only).
# Debian: openjdk-17-jdk-headless maven curl openssl.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

POM="$SCRIPT_DIR/pom.xml"
CONF_TEMPLATE="$SCRIPT_DIR/standalone.conf"
LOG4J_CONF="$SCRIPT_DIR/log4j2.xml"
# Small Java helpers compiled (javac) against the broker's jars into the cache.
TOOL_SOURCES=("$SCRIPT_DIR/PulsarMetadataCleanup.java" "$SCRIPT_DIR/PulsarSmoke.java")

PULSAR_VERSION="$(sed -n 's:.*<pulsar.version>\(.*\)</pulsar.version>.*:\1:p' "$POM" | head -n1)"
if [[ -z "$PULSAR_VERSION" ]]; then
  echo "pulsar.sh: cannot read <pulsar.version> from $POM" >&2
  exit 1
fi

CACHE_ROOT="${CONCLAVE_CACHE:-$HOME/.cache/conclave}"
PULSAR_HOME="$CACHE_ROOT/pulsar/$PULSAR_VERSION"
LIB_DIR="$PULSAR_HOME/lib"
STAMP_FILE="$PULSAR_HOME/.installed"
TOOLS_DIR="$PULSAR_HOME/tools"

AUTH_MODE="${CONCLAVE_PULSAR_AUTH:-}"
case "$AUTH_MODE" in
  ""|none) AUTH_MODE="" ;;
  token) ;;
  *) echo "pulsar.sh: error: CONCLAVE_PULSAR_AUTH must be \`token\` or unset, found \`$AUTH_MODE\`" >&2; exit 1 ;;
esac

if [[ -n "$AUTH_MODE" ]]; then
  STATE_DIR="${CONCLAVE_STATE:-$REPO_ROOT/target/pulsar-auth}"
  DEFAULT_BROKER_PORT=6652 DEFAULT_HTTP_PORT=8082 DEFAULT_BOOKIE_PORT=3182
else
  STATE_DIR="${CONCLAVE_STATE:-$REPO_ROOT/target/pulsar}"
  DEFAULT_BROKER_PORT=6650 DEFAULT_HTTP_PORT=8080 DEFAULT_BOOKIE_PORT=3181
fi
LOG_DIR="$STATE_DIR/logs"
DATA_DIR="$STATE_DIR/data"
CONF_DIR="$STATE_DIR/conf"
PID_FILE="$STATE_DIR/pulsar.pid"
OUT_FILE="$LOG_DIR/pulsar-standalone.out"
LOG_FILE="$LOG_DIR/pulsar-standalone.log"

BROKER_PORT="${CONCLAVE_PULSAR_PORT:-$DEFAULT_BROKER_PORT}"
HTTP_PORT="${CONCLAVE_PULSAR_HTTP_PORT:-$DEFAULT_HTTP_PORT}"
BOOKIE_PORT="${CONCLAVE_PULSAR_BOOKIE_PORT:-$DEFAULT_BOOKIE_PORT}"
TLS_PORT="${CONCLAVE_PULSAR_TLS_PORT:-6653}"
AUTH_DIR="$STATE_DIR/auth"
# curl reads the superuser's Authorization header from this file (-H @file), so the
# token never appears on a command line.
ADMIN_HEADER="$AUTH_DIR/superuser.header"
START_TIMEOUT="${CONCLAVE_PULSAR_START_TIMEOUT:-180}"
STOP_TIMEOUT="${CONCLAVE_PULSAR_STOP_TIMEOUT:-60}"
HEAP="${CONCLAVE_PULSAR_HEAP:-1g}"
DIRECT_MEMORY="${CONCLAVE_PULSAR_DIRECT_MEMORY:-1g}"

HTTP_URL="http://127.0.0.1:$HTTP_PORT"
ADMIN_URL="$HTTP_URL/admin/v2"
SERVICE_URL="pulsar://127.0.0.1:$BROKER_PORT"
TLS_SERVICE_URL="pulsar+ssl://127.0.0.1:$TLS_PORT"

log() { echo "pulsar.sh: $*"; }
die() { echo "pulsar.sh: error: $*" >&2; exit 1; }

# --------------------------------------------------------------------------- helpers

pom_hash() {
  sha256sum "$POM" | cut -d' ' -f1
}

is_installed() {
  [[ -f "$STAMP_FILE" && -d "$LIB_DIR" ]] && [[ "$(cat "$STAMP_FILE")" == "$(pom_hash)" ]]
}

java_bin() {
  if [[ -n "${CONCLAVE_PULSAR_JAVA:-}" ]]; then
    echo "$CONCLAVE_PULSAR_JAVA"
  elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    echo "${JAVA_HOME}/bin/java"
  else
    command -v java || die "java not found (need a JDK/JRE >= 17; apt-get install -y openjdk-17-jdk-headless)"
  fi
}

check_java() {
  local java major
  java="$(java_bin)"
  major="$("$java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1)"
  [[ -n "$major" ]] || die "cannot run $java"
  (( major >= 17 )) || die "$java is Java $major; Pulsar $PULSAR_VERSION needs Java 17 or newer"
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required (apt-get install -y $2)"
}

pid_alive() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
    && grep -q 'PulsarStandaloneStarter' "/proc/$pid/cmdline" 2>/dev/null
}

# Prints the pid of the broker this script started, if it is still running.
running_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if pid_alive "$pid"; then
    echo "$pid"
    return 0
  fi
  return 1
}

# The admin API needs the superuser's token in token mode.
admin_auth() {
  if [[ -n "$AUTH_MODE" && -f "$ADMIN_HEADER" ]]; then
    printf '%s\n' -H "@$ADMIN_HEADER"
  fi
}

healthy() {
  local body auth=()
  mapfile -t auth < <(admin_auth)
  body="$(curl -fsS --max-time 5 "${auth[@]}" "$ADMIN_URL/brokers/health" 2>/dev/null || true)"
  [[ "$body" == "ok" ]]
}

port_busy() {
  (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1
}

show_log_tail() {
  local n="${1:-60}"
  if [[ -f "$LOG_FILE" ]]; then
    echo "----- last $n lines of $LOG_FILE -----" >&2
    tail -n "$n" "$LOG_FILE" >&2 || true
  fi
  if [[ -s "$OUT_FILE" ]]; then
    echo "----- last 30 lines of $OUT_FILE -----" >&2
    tail -n 30 "$OUT_FILE" >&2 || true
  fi
}

# Effective config: the template plus port overrides (java.util.Properties: last key wins).
write_conf() {
  mkdir -p "$CONF_DIR"
  {
    cat "$CONF_TEMPLATE"
    echo
    echo "### --- written by pulsar.sh --- ###"
    echo "brokerServicePort=$BROKER_PORT"
    echo "webServicePort=$HTTP_PORT"
    if [[ -n "$AUTH_MODE" ]]; then
      echo "### --- token authentication and TLS (CONCLAVE_PULSAR_AUTH=token) --- ###"
      echo "authenticationEnabled=true"
      echo "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
      echo "tokenSecretKey=file://$AUTH_DIR/secret.key"
      echo "authorizationEnabled=true"
      echo "superUserRoles=superuser"
      # The broker's own clients (system topics, namespace set-up) authenticate too.
      echo "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken"
      echo "brokerClientAuthenticationParameters=file://$AUTH_DIR/superuser.token"
      echo "brokerServicePortTls=$TLS_PORT"
      echo "tlsCertificateFilePath=$AUTH_DIR/tls/broker.pem"
      echo "tlsKeyFilePath=$AUTH_DIR/tls/broker.key"
      echo "tlsTrustCertsFilePath=$AUTH_DIR/tls/ca.pem"
    fi
  } >"$CONF_DIR/standalone.conf"
}

# Runs the broker's token tool (create-secret-key, create) with the broker's classpath.
tokens_tool() {
  mkdir -p "$LOG_DIR" "$STATE_DIR/tmp"
  "$(java_bin)" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    "-Djava.io.tmpdir=$STATE_DIR/tmp" \
    "-Dlog4j.configurationFile=$LOG4J_CONF" "-Dpulsar.log.dir=$LOG_DIR" \
    "-Dpulsar.log.file=pulsar-tools.log" \
    -cp "$LIB_DIR/*" org.apache.pulsar.utils.auth.tokens.TokensCliUtils "$@"
}

# Writes the token-mode credentials into folder $1 (a subshell: umask and cd stay here).
# Every step checks its own status: `set -e` does not apply inside `f || ...`.
write_credentials() (
  local dir="$1" role
  umask 077
  tokens_tool create-secret-key --output "$dir/secret.key" || return 1
  tokens_tool create-secret-key --output "$dir/other-secret.key" || return 1
  for role in superuser conclave stranger; do
    tokens_tool create --secret-key "file://$dir/secret.key" --subject "$role" >"$dir/$role.token" || return 1
  done
  # A well-formed token for `conclave` that this broker did not sign.
  tokens_tool create --secret-key "file://$dir/other-secret.key" --subject conclave >"$dir/wrong.token" || return 1
  for role in superuser conclave stranger wrong; do
    [[ -s "$dir/$role.token" ]] || return 1
  done
  printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$dir/superuser.token")" >"$dir/superuser.header" || return 1
  cd "$dir/tls" || return 1
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Conclave test CA" \
    -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
  # OpenSSL 3 writes PKCS#8 keys, which the broker requires.
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr \
    2>/dev/null || return 1
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >broker.ext || return 1
  openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
    -days 3650 -extfile broker.ext -out broker.pem 2>/dev/null || return 1
  rm -f broker.csr broker.ext
  chmod 644 ca.pem
)

# Token mode: the secret key, tokens and TLS files, made once into a temporary folder
# and renamed, so a half-made set is never used.
make_credentials() {
  [[ -f "$AUTH_DIR/.complete" ]] && return 0
  need openssl openssl
  local tmp="$AUTH_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/tls"
  chmod 700 "$tmp"
  log "creating a token secret key, tokens and a test CA in $AUTH_DIR (once)"
  if ! write_credentials "$tmp"; then
    rm -rf "$tmp"
    die "could not create the credentials (see $LOG_DIR/pulsar-tools.log)"
  fi
  touch "$tmp/.complete"
  rm -rf "$AUTH_DIR"
  mv "$tmp" "$AUTH_DIR"
}

# --------------------------------------------------------------------------- install

cmd_install() {
  if is_installed; then
    log "Pulsar $PULSAR_VERSION already installed in $LIB_DIR ($(find "$LIB_DIR" -name "*.jar" | wc -l) jars); nothing to download"
    return 0
  fi
  need mvn maven
  check_java
  log "resolving Apache Pulsar $PULSAR_VERSION with Maven into $LIB_DIR"
  mkdir -p "$PULSAR_HOME"
  local tmp="$PULSAR_HOME/lib.tmp.$$"
  rm -rf "$tmp"
  local mvn_args=(-B -ntp -f "$POM" "-Dpulsar.lib.dir=$tmp")
  if [[ -n "${CONCLAVE_MAVEN_REPO:-}" ]]; then
    mvn_args+=("-Dmaven.repo.local=$CONCLAVE_MAVEN_REPO")
  fi
  if ! mvn "${mvn_args[@]}" dependency:copy-dependencies >"$PULSAR_HOME/mvn-install.log" 2>&1; then
    grep -E 'ERROR|Could not' "$PULSAR_HOME/mvn-install.log" | head -n 20 >&2 || true
    rm -rf "$tmp"
    die "Maven could not resolve Pulsar $PULSAR_VERSION (full log: $PULSAR_HOME/mvn-install.log)"
  fi
  [[ -f "$tmp/pulsar-broker-$PULSAR_VERSION.jar" ]] || die "pulsar-broker-$PULSAR_VERSION.jar missing after resolution"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  pom_hash >"$STAMP_FILE"
  log "installed $(find "$LIB_DIR" -name "*.jar" | wc -l) jars ($(du -sh "$LIB_DIR" | cut -f1)) in $LIB_DIR"
}

# Compiles the helper programs once per change of their sources.
build_tools() {
  local hash javac
  hash="$(cat "${TOOL_SOURCES[@]}" | sha256sum | cut -d' ' -f1)"
  if [[ -f "$TOOLS_DIR/.stamp" && "$(cat "$TOOLS_DIR/.stamp")" == "$hash" ]]; then
    return 0
  fi
  javac="$(dirname "$(readlink -f "$(java_bin)")")/javac"
  [[ -x "$javac" ]] || javac="$(command -v javac || true)"
  [[ -n "$javac" ]] || die "javac not found: a JDK is needed (apt-get install -y openjdk-17-jdk-headless)"
  rm -rf "$TOOLS_DIR"
  mkdir -p "$TOOLS_DIR/classes"
  "$javac" -nowarn -d "$TOOLS_DIR/classes" -cp "$LIB_DIR/*" "${TOOL_SOURCES[@]}" \
    || die "could not compile ${TOOL_SOURCES[*]}"
  echo "$hash" >"$TOOLS_DIR/.stamp"
}

# Runs a helper class with the broker's classpath (logging to LOG_DIR/pulsar-tools.log).
run_tool() {
  local class="$1"
  shift
  mkdir -p "$LOG_DIR" "$STATE_DIR/tmp"
  "$(java_bin)" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    "-Djava.io.tmpdir=$STATE_DIR/tmp" \
    "-Dlog4j.configurationFile=$LOG4J_CONF" "-Dpulsar.log.dir=$LOG_DIR" \
    "-Dpulsar.log.file=pulsar-tools.log" \
    -Dotel.java.global-autoconfigure.enabled=false \
    -Djava.util.logging.config.file=/dev/null \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
    -cp "$TOOLS_DIR/classes:$LIB_DIR/*" "$class" "$@"
}

# --------------------------------------------------------------------------- start

wait_healthy() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if healthy; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "pulsar.sh: error: broker process $pid exited during startup" >&2
      show_log_tail 80
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 1
  done
  echo "pulsar.sh: error: broker not healthy after ${START_TIMEOUT}s ($ADMIN_URL/brokers/health)" >&2
  show_log_tail 80
  return 1
}

cmd_start() {
  need curl curl
  local pid
  if pid="$(running_pid)"; then
    if healthy; then
      log "already running and healthy (pid $pid, $SERVICE_URL, $HTTP_URL)"
      return 0
    fi
    log "already running (pid $pid) but not healthy yet; waiting up to ${START_TIMEOUT}s"
    local t0=$SECONDS
    wait_healthy "$pid" || exit 1
    log "healthy after $((SECONDS - t0))s (pid $pid)"
    return 0
  fi
  rm -f "$PID_FILE"

  if healthy; then
    log "a Pulsar broker not started by this script already answers on $HTTP_URL; leaving it alone"
    return 0
  fi
  local p ports=("$BROKER_PORT" "$HTTP_PORT" "$BOOKIE_PORT")
  [[ -n "$AUTH_MODE" ]] && ports+=("$TLS_PORT")
  for p in "${ports[@]}"; do
    if port_busy "$p"; then
      die "port $p on 127.0.0.1 is already in use by another process; stop it or set CONCLAVE_PULSAR_*PORT"
    fi
  done

  is_installed || cmd_install
  check_java
  need setsid util-linux
  build_tools

  mkdir -p "$LOG_DIR" "$DATA_DIR/metadata" "$DATA_DIR/bookkeeper" "$STATE_DIR/tmp"
  [[ -n "$AUTH_MODE" ]] && make_credentials
  write_conf
  # Drop ephemeral metadata left by a broker that did not stop cleanly (see
  # PulsarMetadataCleanup.java); without it a restart after a kill can spin.
  run_tool PulsarMetadataCleanup "$DATA_DIR/metadata" \
    || die "metadata cleanup failed (is another broker using $DATA_DIR/metadata?)"

  local java
  java="$(java_bin)"
  local jvm_opts=(
    -Xms256m "-Xmx$HEAP" "-XX:MaxDirectMemorySize=$DIRECT_MEMORY"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=50 -XX:+PerfDisableSharedMem
    -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    "-Djava.io.tmpdir=$STATE_DIR/tmp"
    # Flags from Pulsar's bin/pulsar for Netty on Java 17.
    -Dio.netty.tryReflectionSetAccessible=true
    -Dorg.apache.pulsar.shade.io.netty.tryReflectionSetAccessible=true
    -Dio.netty.recycler.maxCapacityPerThread=4096
    --add-opens java.base/java.util.zip=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
    --add-opens java.base/sun.net=ALL-UNNAMED
    --add-opens java.management/sun.management=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    -Djute.maxbuffer=10485760
    -Dzookeeper.clientTcpKeepAlive=true
    "-Dlog4j.configurationFile=$LOG4J_CONF"
    "-Dpulsar.log.dir=$LOG_DIR"
    "-Dpulsar.log.file=pulsar-standalone.log"
    "-Dpulsar.log.level=${CONCLAVE_PULSAR_LOG_LEVEL:-info}"
    -Dpulsar.allocator.exit_on_oom=true
  )
  if [[ -n "${CONCLAVE_PULSAR_JAVA_OPTS:-}" ]]; then
    # shellcheck disable=SC2206  # word splitting wanted for user options
    jvm_opts+=(${CONCLAVE_PULSAR_JAVA_OPTS})
  fi
  local args=(
    --config "$CONF_DIR/standalone.conf"
    --advertised-address 127.0.0.1
    --metadata-dir "$DATA_DIR/metadata"
    --bookkeeper-dir "$DATA_DIR/bookkeeper"
    --bookkeeper-port "$BOOKIE_PORT"
    --num-bookies 1
    --no-functions-worker
    --no-stream-storage
  )

  if [[ -n "$AUTH_MODE" ]]; then
    log "starting Pulsar $PULSAR_VERSION standalone with token authentication ($SERVICE_URL, $TLS_SERVICE_URL, $HTTP_URL; tokens and CA in $AUTH_DIR); logs in $LOG_DIR"
  else
    log "starting Pulsar $PULSAR_VERSION standalone ($SERVICE_URL, $HTTP_URL); logs in $LOG_DIR"
  fi
  local t0=$SECONDS
  {
    echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting Pulsar $PULSAR_VERSION standalone ==="
  } >>"$OUT_FILE"
  # Run from the state dir: Pulsar resolves a few relative paths (data/, conf/) against it.
  (
    cd "$STATE_DIR"
    exec setsid "$java" "${jvm_opts[@]}" -cp "$LIB_DIR/*" \
      org.apache.pulsar.PulsarStandaloneStarter "${args[@]}" \
      </dev/null >>"$OUT_FILE" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if ! wait_healthy "$pid"; then
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping the unhealthy broker (pid $pid)"
      stop_pid "$pid"
    fi
    rm -f "$PID_FILE"
    exit 1
  fi
  log "healthy after $((SECONDS - t0))s (pid $pid)"
}

# --------------------------------------------------------------------------- stop

# Standalone mode runs the broker and its bookie in one JVM, each with its own
# shutdown hook; on SIGTERM both run at once, so the broker may find the bookie
# already gone while it closes topics. So first ask the broker itself to shut
# down gracefully over the admin API (unloads topics, closes ledgers and cursors
# while the bookie is still up), then SIGTERM stops the bookie and the metadata
# store, and SIGKILL is the last resort.
stop_pid() {
  local pid="$1" deadline auth=()
  mapfile -t auth < <(admin_auth)
  if curl -fsS -o /dev/null --max-time 30 -X POST "${auth[@]}" \
      "$ADMIN_URL/brokers/shutdown?maxConcurrentUnloadPerSec=0&forcedTerminateTopic=true" 2>/dev/null; then
    # The web service closes last; wait (briefly) for the binary port to close.
    deadline=$((SECONDS + 15))
    while port_busy "$BROKER_PORT" && kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
      sleep 0.5
    done
  fi
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping Pulsar standalone (pid $pid)"
  local t0=$SECONDS
  stop_pid "$pid"
  rm -f "$PID_FILE"
  log "stopped after $((SECONDS - t0))s"
}

# --------------------------------------------------------------------------- status

# Exit codes: 0 running and healthy; 1 running but not healthy; 3 not running.
cmd_status() {
  need curl curl
  local pid
  if pid="$(running_pid)"; then
    local rss
    rss="$(awk '/^VmRSS:/ {printf "%d MiB", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo '?')"
    if healthy; then
      log "running and healthy (pid $pid, RSS $rss, $SERVICE_URL, $HTTP_URL)"
      return 0
    fi
    log "running (pid $pid, RSS $rss) but NOT healthy"
    return 1
  fi
  if healthy; then
    log "not started by this script, but a broker answers healthy on $HTTP_URL"
    return 0
  fi
  log "not running"
  return 3
}

# --------------------------------------------------------------------------- setup-topics

# admin METHOD PATH [BODY]: prints the HTTP status; 2xx and 409 (exists) are fine.
admin() {
  local method="$1" path="$2" body="${3:-}" code auth=()
  mapfile -t auth < <(admin_auth)
  local curl_args=(-sS -o "$STATE_DIR/admin-response.txt" -w '%{http_code}' --max-time 30
    -X "$method" -H 'Content-Type: application/json' "${auth[@]}")
  if [[ -n "$body" ]]; then
    curl_args+=(--data "$body")
  fi
  code="$(curl "${curl_args[@]}" "$ADMIN_URL$path" || echo 000)"
  case "$code" in
    2??) log "  $method $path -> $code created" ;;
    409) log "  $method $path -> 409 already exists" ;;
    *)
      echo "pulsar.sh: error: $method $path -> HTTP $code: $(cat "$STATE_DIR/admin-response.txt" 2>/dev/null)" >&2
      return 1
      ;;
  esac
}

cmd_setup_topics() {
  need curl curl
  mkdir -p "$STATE_DIR"
  healthy || die "broker not healthy on $HTTP_URL; run '$0 start' first"
  log "creating Conclave tenant, namespaces and topics (idempotent)"
  admin PUT /tenants/conclave '{"allowedClusters":["standalone"],"adminRoles":[]}'
  admin PUT /namespaces/conclave/ops
  admin PUT /namespaces/conclave/test
  # Topics are created on purpose in conclave/ops (a typo is an error, not a new topic);
  # tests make throwaway topics in conclave/test, where first use creates them.
  admin POST /namespaces/conclave/test/autoTopicCreation '{"allowAutoTopicCreation":true,"topicType":"non-partitioned"}'
  admin PUT /persistent/conclave/ops/telemetry/partitions 4
  admin PUT /persistent/conclave/ops/actions
  admin PUT /persistent/conclave/ops/control
  admin PUT /persistent/conclave/ops/telemetry-dlq
  # The fleet budget: instances report on one, the elected holder grants on the other.
  admin PUT /persistent/conclave/ops/budget-reports
  admin PUT /persistent/conclave/ops/budget-grants
  if [[ -n "$AUTH_MODE" ]]; then
    # Role `conclave` (conclave.token) may produce and consume in both namespaces;
    # `stranger` may nothing.
    admin POST /namespaces/conclave/ops/permissions/conclave '["produce","consume"]'
    admin POST /namespaces/conclave/test/permissions/conclave '["produce","consume"]'
  fi

  local parts
  local auth=()
  mapfile -t auth < <(admin_auth)
  parts="$(curl -fsS --max-time 10 "${auth[@]}" "$ADMIN_URL/persistent/conclave/ops/telemetry/partitions" \
    | sed -n 's/.*"partitions":\([0-9]*\).*/\1/p')"
  [[ "$parts" == "4" ]] || die "persistent://conclave/ops/telemetry has '$parts' partitions, expected 4"
  log "topics in conclave/ops:"
  curl -fsS --max-time 10 "${auth[@]}" "$ADMIN_URL/persistent/conclave/ops/partitioned"; echo
  curl -fsS --max-time 10 "${auth[@]}" "$ADMIN_URL/persistent/conclave/ops"; echo
}

# --------------------------------------------------------------------------- smoke

# A produce/consume round trip over the binary protocol (port 6650) with the
# Java client that ships inside the broker's classpath (Key_Shared subscription).
cmd_smoke() {
  [[ -z "$AUTH_MODE" ]] || die "smoke connects without credentials; in token mode the Rust tests (tests/pulsar_auth.rs) exercise the broker"
  healthy || die "broker not healthy on $HTTP_URL; run '$0 start' first"
  is_installed || cmd_install
  build_tools
  run_tool PulsarSmoke "$SERVICE_URL" "${1:-persistent://conclave/ops/actions}"
}

# --------------------------------------------------------------------------- wipe

cmd_wipe() {
  if running_pid >/dev/null; then
    die "broker is running; run '$0 stop' first"
  fi
  rm -rf "$DATA_DIR" "$CONF_DIR" "$STATE_DIR/tmp"
  log "deleted broker data in $DATA_DIR (logs kept in $LOG_DIR)"
}

# --------------------------------------------------------------------------- main

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
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
    setup-topics) cmd_setup_topics ;;
    smoke) cmd_smoke "$@" ;;
    logs) echo "$LOG_DIR"; echo "$LOG_FILE"; echo "$OUT_FILE" ;;
    wipe) cmd_wipe ;;
    -h|--help|help) usage 0 ;;
    *) usage 2 >&2 ;;
  esac
}

main "$@"
