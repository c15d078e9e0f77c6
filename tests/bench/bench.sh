#!/usr/bin/env bash
# `make bench`: figures, not assertions. Runs the release binary against a
# private Podman service with the fake ImageBuilder image and a static
# upstream on loopback, and prints:
#   - start to first 200 on /api/v1/stats, idle RSS with 4 workers
#   - POST to container start with an idle worker, per-build overhead
#     outside `make`
#   - p50/p99 of a cache-hit POST and a status GET with 50 connections (wrk),
#     RSS under that load
#   - peak RSS above idle while a 256 MiB image streams into the store
# Everything stays on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN=$ROOT/target/release/asu-builder
WORK=$(mktemp -d /tmp/asu-bench.XXXXXX)
DURATION=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
IMAGE=ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need curl || ! need python3; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl python3
    else
        echo "bench needs: wrk curl python3 (apt-get install wrk curl python3)" >&2
        exit 1
    fi
fi
cargo build --release -q
bash tests/podman/service.sh install >/dev/null
bash tests/podman/service.sh start "$WORK/podman" --owner $$ >/dev/null
bash tests/podman/service.sh image "$WORK/podman" "$IMAGE" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
PORT=$(free_port)
python3 -m http.server "$UP_PORT" --bind 127.0.0.1 --directory tests/fixtures/upstream \
    >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
DAEMON_PID=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    kill "$UP_PID" 2>/dev/null || true
    bash tests/podman/service.sh stop "$WORK/podman" >/dev/null 2>&1 || true
}
trap cleanup EXIT

cat >"$WORK/config.yaml" <<EOF
server_host: 127.0.0.1
server_port: $PORT
database_path: $WORK/data/builder.db
public_path: $WORK/public
upstream_url: http://127.0.0.1:$UP_PORT
container_socket_path: $WORK/podman/podman.sock
container_network: asu-bench
worker_id: bench
worker_concurrent: 4
log_level: info
branches:
  "1.2":
    path: "releases/{version}"
    enabled: true
    snapshot: false
EOF
BASE=http://127.0.0.1:$PORT
now_ms() { date +%s%3N; }
rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

start_daemon() {
    "$BIN" --config "$WORK/config.yaml" 2>>"$WORK/daemon.log" &
    DAEMON_PID=$!
}
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=
}

# ---- start-up ---------------------------------------------------------------
starts=()
for _ in 1 2 3 4 5; do
    t0=$(now_ms)
    start_daemon
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/v1/stats")" = 200 ]; do :; done
    starts+=($(($(now_ms) - t0)))
    stop_daemon
done
start_daemon
until curl -sf -o /dev/null "$BASE/api/v1/stats"; do sleep 0.01; done
sleep 2
IDLE_RSS=$(rss_kib "$DAEMON_PID" VmRSS)

# ---- one build with an idle worker -------------------------------------------
post() { curl -s -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/api/v1/build"; }
hash_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["request_hash"])'; }
wait_done() {
    local code
    for _ in $(seq 1 1200); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/v1/build/$1")
        [ "$code" = 202 ] || { echo "$code"; return; }
        sleep 0.1
    done
    echo timeout
}
REQ='{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["vim"]}'
HASH=$(post "$REQ" | hash_of)
[ "$(wait_done "$HASH")" = 200 ] || { echo "bench build failed" >&2; tail -20 "$WORK/daemon.log" >&2; exit 1; }
read -r POST_TO_START TIMINGS < <(python3 - "$WORK/daemon.log" "$HASH" <<'PY'
import re, sys
from datetime import datetime
log, h = open(sys.argv[1]).read().splitlines(), sys.argv[2]
def ts(pattern):
    for line in log:
        if pattern in line:
            return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")[:26] + "+00:00")
queued, started = ts(f"queued {h}"), ts(f"job {h}: container started")
timing = next(l for l in log if f"job {h}: timings" in l)
print(f"{(started - queued).total_seconds() * 1000:.1f}", timing.split("timings ", 1)[1])
PY
)

# ---- HTTP latency under load ---------------------------------------------------
cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$REQ'
EOF
latency() { awk '$1 == "50%" {p50=$2} $1 == "99%" {p99=$2} /Requests\/sec/ {rps=$2} END {print p50, p99, rps}'; }
read -r POST_P50 POST_P99 POST_RPS < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$BASE/api/v1/build" | latency)
read -r GET_P50 GET_P99 GET_RPS < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$BASE/api/v1/build/$HASH" | latency)
LOAD_RSS=$(rss_kib "$DAEMON_PID" VmHWM)

# ---- a 256 MiB image streaming into the store -----------------------------------
echo 5 >"/proc/$DAEMON_PID/clear_refs" 2>/dev/null || true # reset the peak
BEFORE=$(rss_kib "$DAEMON_PID" VmRSS)
BIG=$(post '{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["big-image-pkg"]}' | hash_of)
[ "$(wait_done "$BIG")" = 200 ] || { echo "big build failed" >&2; exit 1; }
PEAK=$(rss_kib "$DAEMON_PID" VmHWM)
BIG_TIMINGS=$(grep "job $BIG: timings" "$WORK/daemon.log" | sed 's/.*timings //')
STORED=$(du -sm "$WORK/public/store" | cut -f1)

sorted=$(printf '%s\n' "${starts[@]}" | sort -n | tr '\n' ' ')
cat <<EOF

asu-builder bench ($(nproc) cores, release build, fake ImageBuilder on a private Podman)
  start to first 200 (ms, 5 runs)     : $sorted
  idle RSS, 4 workers                  : $((IDLE_RSS / 1024)) MiB ($IDLE_RSS KiB)
  POST to container start, idle worker : $POST_TO_START ms
  build timings                        : $TIMINGS
  cache-hit POST, $CONNECTIONS conns, ${DURATION}s   : p50 $POST_P50  p99 $POST_P99  ($POST_RPS req/s)
  status GET, $CONNECTIONS conns, ${DURATION}s       : p50 $GET_P50  p99 $GET_P99  ($GET_RPS req/s)
  peak RSS during the HTTP load        : $((LOAD_RSS / 1024)) MiB
  256 MiB image: RSS before / peak     : $((BEFORE / 1024)) MiB / $((PEAK / 1024)) MiB (+$(((PEAK - BEFORE) / 1024)) MiB), store now ${STORED} MiB
  256 MiB build timings                : $BIG_TIMINGS
EOF
