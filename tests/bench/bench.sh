#!/usr/bin/env bash
# `make bench`: asu-builder, the bare stack of its own building blocks and the
# Python reference server (asu 0.7.x from PyPI, with redis-server and an rq
# worker), measured side by side in one run on 127.0.0.1, written to
# BENCHMARKS.md. Figures, not assertions. See tests/bench/README.md.
#
# Knobs (environment):
#   BENCH_SECONDS=5          measured seconds per load cell (after the warm-up)
#   BENCH_WARMUP=1           warm-up seconds per load cell, not counted
#   BENCH_CONNECTIONS="50 200"   connection counts for every server
#   BENCH_BIG_CONNECTIONS=1000   extra counts for asu-builder and the bare stack ("" = none)
#   BENCH_PEER=1             0: leave the peer out (BENCHMARKS.md says so)
#   BENCH_PEER_CONNECTIONS   counts for the peer (default: BENCH_CONNECTIONS)
#   BENCH_PEER_SPEC="asu>=0.7,<0.8"   what pip installs (newest 0.7.x)
#   BENCH_PEER_WORKERS       gunicorn sync workers (default 2 x cores + 1)
#   BENCH_STARTS=5           cold starts per server
#   BENCH_OUT=BENCHMARKS.md  the report; BENCH_KEEP=1 keeps the work dir
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=$ROOT/tests/bench
DURATION=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNECTIONS:-50 200}
BIG_CONNS=${BENCH_BIG_CONNECTIONS-1000}
PEER=${BENCH_PEER:-1}
PEER_CONNS=${BENCH_PEER_CONNECTIONS:-$CONNS}
PEER_SPEC=${BENCH_PEER_SPEC:-asu>=0.7,<0.8}
PEER_WORKERS=${BENCH_PEER_WORKERS:-$((2 * $(nproc) + 1))}
STARTS=${BENCH_STARTS:-5}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
VENV=$ROOT/target/bench/peer-venv
IMAGE=ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3
REQ1='{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["vim"]}'
REQ2='{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["vim","dropbear"]}'
BIG='{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["big-image-pkg"]}'
BAD='{"version":"9.9.9","target":"testtarget/testsubtarget","profile":"testprofile","packages":["vim"]}'

# Run from `make bench`, we inherit MAKELEVEL and MAKEFLAGS: the peer's
# `make` would then act as a sub-make and print "Entering directory" lines
# into the output it parses.
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1; }

# ---- tools --------------------------------------------------------------------
# Debian packages: curl, python3 and its venv for the helpers and the peer;
# make and xz-utils because the peer unpacks and runs its ImageBuilder on the
# host; redis-server and redis-tools for the peer's queue.
missing=()
need curl || missing+=(curl)
need python3 || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
need make || missing+=(make)
need xz || missing+=(xz-utils)
if [ "$PEER" = 1 ]; then
    need redis-server || missing+=(redis-server)
    need redis-cli || missing+=(redis-tools)
fi
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "needs: ${missing[*]} (apt-get install ${missing[*]})"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash tests/podman/service.sh install >/dev/null

# 1000 connections take 1000 sockets on each side: lift the soft fd limit.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
[ "$hard" -le 65536 ] || hard=65536
ulimit -n "$hard" 2>/dev/null || true

WORK=$(mktemp -d /tmp/asu-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
say "work dir $WORK"

# Every process this script starts, by pid, for the trap.
PIDS=()
DAEMON_PID=
GUNICORN_PID=
cleanup() {
    local pid
    [ -z "$DAEMON_PID" ] || PIDS+=("$DAEMON_PID")
    [ -z "$GUNICORN_PID" ] || PIDS+=("$GUNICORN_PID")
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    bash tests/podman/service.sh stop "$WORK/podman" >/dev/null 2>&1 || true
    # Each `podman exec` leaves a conmon that lingers 300 s (--exit-delay)
    # after its container is gone. Ours name our private dir: end them, so
    # nothing outlives the run and the purge below does not wait on them.
    local f comm
    for f in /proc/[0-9]*/cmdline; do
        grep -qsF -- "$WORK/podman/" "$f" || continue
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        [ "$comm" != conmon ] || kill -TERM "$pid" 2>/dev/null || true
    done
    bash tests/podman/service.sh purge "$WORK/podman" >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept $WORK"
    else
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One JSON line per fact / measurement; report.py turns them into BENCHMARKS.md.
fact() { python3 -c 'import json,sys; print(json.dumps({"type":"fact","key":sys.argv[1],"value":sys.argv[2]}))' "$1" "$2" >>"$RESULTS"; }
record() { # TYPE JSON-FIELDS…: appends {"type": TYPE, …}
    local type=$1
    shift
    printf '{"type":"%s",%s}\n' "$type" "$*" >>"$RESULTS"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms_since() { python3 -c 'import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000, 1))' "$1" "$EPOCHREALTIME"; }
snapshot() { python3 "$HERE/procs.py" snapshot "$@"; }

# ---- build ------------------------------------------------------------------------
say "building (release)"
cargo build --release -q
# Bench targets: the load generator and the bare stack, with the same crates.
mapfile -t EXES < <(cargo bench --no-run -q --bench loadgen --bench bare_stack --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("loadgen", "bare_stack"):
        print(m["target"]["name"] + "=" + m["executable"])')
for e in "${EXES[@]}"; do
    case $e in loadgen=*) LOADGEN=${e#*=} ;; bare_stack=*) BARE=${e#*=} ;; esac
done
[ -x "${LOADGEN:-}" ] && [ -x "${BARE:-}" ] || die "could not build the bench targets"
BIN=$ROOT/target/release/asu-builder

# ---- machine and versions ------------------------------------------------------------
fact date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fact cores "$(nproc)"
fact cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
fact kernel "$(uname -sr)"
fact os "$(. /etc/os-release && echo "$PRETTY_NAME")"
fact memory "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
fact loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
fact rustc "$(rustc --version)"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- . ':!BENCHMARKS.md' 2>/dev/null || commit="$commit + uncommitted changes"
fact commit "$commit"
fact tiny_http "$(python3 -c '
import re, sys
lock = open("Cargo.lock").read()
m = re.search(r"name = \"tiny_http\"\nversion = \"([^\"]+)\"(?:\nsource = \"([^\"]+)\")?", lock)
src = m and m.group(2) or ""
where = "crates.io" if "crates.io-index" in src else (src or "a path: [patch]")
print(f"{m.group(1)} ({where})" if m else "?")')"
fact podman "$(podman --version)"
fact settings "warm-up ${WARMUP} s + ${DURATION} s measured per cell; connections: ${CONNS// /, }${BIG_CONNS:+, ${BIG_CONNS// /, } (asu-builder and bare stack only)}; peer: ${PEER_CONNS// /, }"
fact connections "$PEER_CONNS"

# ---- Podman, upstream --------------------------------------------------------------
say "starting a private Podman service and the fake ImageBuilder image"
bash tests/podman/service.sh start "$WORK/podman" --owner $$ >/dev/null
bash tests/podman/service.sh image "$WORK/podman" "$IMAGE" >/dev/null
PODMAN_PID=$(cat "$WORK/podman/pid")

# The upstream copy the peer also needs (its fake ImageBuilder archive and
# Packages.manifest indexes are added below); asu-builder ignores the extras.
cp -r tests/fixtures/upstream "$WORK/upstream"
UP_PORT=$(free_port)
python3 "$HERE/upstream.py" "$WORK/upstream" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# ---- the peer: install ------------------------------------------------------------------
PEER_ERROR=
peer_fail() {
    PEER_ERROR=$1
    say "peer left out: $PEER_ERROR"
}
if [ "$PEER" = 1 ]; then
    say "installing the peer ($PEER_SPEC) in $VENV"
    mkdir -p "$(dirname "$VENV")"
    if { [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"; } >"$WORK/pip.log" 2>&1 &&
        "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade "$PEER_SPEC" >>"$WORK/pip.log" 2>&1 &&
        # asu 0.7.x imports pkg_resources without declaring setuptools, which
        # virtualenvs of Python 3.12+ no longer carry.
        { "$VENV/bin/python" -c 'import pkg_resources' 2>/dev/null ||
            "$VENV/bin/pip" install -q --disable-pip-version-check 'setuptools<81' >>"$WORK/pip.log" 2>&1; }; then
        PUBKEY=$("$VENV/bin/python" "$HERE/peer/fixture.py" "$WORK/upstream" tests/podman/fakeib \
            tests/fixtures/imagebuilder "$HERE/peer/imagebuilder.mk" 2>"$WORK/fixture.log") ||
            peer_fail "the peer's fake ImageBuilder archive could not be made: $(tail -3 "$WORK/fixture.log")"
        fact peer_packages "$("$VENV/bin/pip" list --format=freeze 2>/dev/null |
            grep -iE '^(asu|flask|werkzeug|connexion|gunicorn|rq|redis|requests|pynacl)==' | tr '\n' ' ')"
        fact peer_python "$("$VENV/bin/python" --version)"
        fact redis_server "$(redis-server --version | awk '{print $3}' | sed 's/v=//')"
        fact peer_workers "$PEER_WORKERS"
    else
        peer_fail "pip install '$PEER_SPEC' failed: $(tail -3 "$WORK/pip.log" | tr '\n' ' ')"
    fi
else
    peer_fail "left out by BENCH_PEER=0"
fi

# ---- asu-builder -----------------------------------------------------------------------
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
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
start_daemon() {
    "$BIN" --config "$WORK/config.yaml" 2>>"$WORK/daemon.log" &
    DAEMON_PID=$!
}
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=
}
# wait_for URL [loadgen wait options]: until URL answers 200.
wait_for() {
    local url=$1
    shift
    "$LOADGEN" wait --url "$url" --expect 200 "$@"
}

say "asu-builder: $STARTS cold starts"
for _ in $(seq 1 "$STARTS"); do
    t0=$EPOCHREALTIME
    start_daemon
    wait_for "$BASE/api/v1/stats" --interval-ms 1 --timeout 30 >/dev/null || die "asu-builder did not answer (log: $WORK/daemon.log)"
    record start '"server":"asu-builder","path":"/api/v1/stats","ms":'"$(ms_since "$t0")"
    stop_daemon
done
start_daemon
wait_for "$BASE/api/v1/stats" --timeout 30 >/dev/null

# ---- the peer: start ------------------------------------------------------------------
PEER_DIR=$WORK/peer
REDIS_PID=
RQ_PID=
if [ -z "$PEER_ERROR" ]; then
    mkdir -p "$PEER_DIR/bin"
    REDIS_PORT=$(free_port)
    PEER_PORT=$(free_port)
    PEER_BASE=http://127.0.0.1:$PEER_PORT
    # asu 0.7.x reads ./config.py (a Flask config file) from its working dir.
    cat >"$PEER_DIR/config.py" <<EOF
from pathlib import Path
UPSTREAM_URL = "http://127.0.0.1:$UP_PORT"
STORE_PATH = Path("$PEER_DIR/public/store")
JSON_PATH = Path("$PEER_DIR/public/json/v1")
CACHE_PATH = Path("$PEER_DIR")
BRANCHES = {
    "1.2": {
        "name": "1.2", "enabled": True, "snapshot": False,
        "path": "releases/{version}", "path_packages": "releases/packages-{branch}",
        "pubkey": "$PUBKEY", "repos": ["base"], "versions": ["1.2.3"],
        "extra_keys": [], "extra_repos": {}, "updates": "features",
        "release_date": "2023-01-01", "git_branch": "openwrt-1.2", "branch_off_rev": 1,
    },
}
EOF
    ln -sf "$HERE/peer/make-timer.sh" "$PEER_DIR/bin/make"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$PEER_DIR" >"$PEER_DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    peer_env=(env REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT")
    say "peer: metadata refresh (flask janitor update)"
    if ! (cd "$PEER_DIR" && "${peer_env[@]}" FLASK_APP='asu.asu:create_app()' \
        "$VENV/bin/flask" janitor update --interval 0) >"$PEER_DIR/janitor.log" 2>&1; then
        peer_fail "the metadata refresh failed: $(tail -3 "$PEER_DIR/janitor.log" | tr '\n' ' ')"
    fi
fi
if [ -z "$PEER_ERROR" ]; then
    (cd "$PEER_DIR" && exec "${peer_env[@]}" PATH="$PEER_DIR/bin:$PATH" REAL_MAKE="$(command -v make)" \
        MAKE_TIMER_LOG="$PEER_DIR/make-times.log" \
        "$VENV/bin/rq" worker --url "redis://127.0.0.1:$REDIS_PORT") >"$PEER_DIR/rq.log" 2>&1 &
    RQ_PID=$!
    PIDS+=("$RQ_PID")
    start_gunicorn() {
        (cd "$PEER_DIR" && exec "${peer_env[@]}" "$VENV/bin/gunicorn" 'asu.asu:create_app()' \
            --bind "127.0.0.1:$PEER_PORT" --workers "$PEER_WORKERS") >>"$PEER_DIR/gunicorn.log" 2>&1 &
        GUNICORN_PID=$!
    }
    stop_gunicorn() {
        kill -TERM "$GUNICORN_PID" 2>/dev/null || true
        wait "$GUNICORN_PID" 2>/dev/null || true
        GUNICORN_PID=
    }
    say "peer: $STARTS cold starts (gunicorn, $PEER_WORKERS workers)"
    for _ in $(seq 1 "$STARTS"); do
        t0=$EPOCHREALTIME
        start_gunicorn
        if ! wait_for "$PEER_BASE/json/v1/overview.json" --interval-ms 1 --timeout 60 >/dev/null; then
            peer_fail "gunicorn did not answer 200 on /json/v1/overview.json: $(tail -5 "$PEER_DIR/gunicorn.log" | tr '\n' ' ')"
            stop_gunicorn
            break
        fi
        record start '"server":"peer","path":"/json/v1/overview.json","ms":'"$(ms_since "$t0")"
        stop_gunicorn
    done
fi
if [ -z "$PEER_ERROR" ]; then
    start_gunicorn
    wait_for "$PEER_BASE/json/v1/overview.json" --timeout 60 >/dev/null || peer_fail "gunicorn did not come back"
fi

# ---- bare stack ---------------------------------------------------------------------------
BARE_PORT=$(free_port)
"$BARE" run --db "$WORK/bare.db" --port "$BARE_PORT" >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_for "http://127.0.0.1:$BARE_PORT/api/v1/stats" --timeout 30 >/dev/null || die "the bare stack did not start"

# ---- idle memory ------------------------------------------------------------------------------
sleep 2
record rss '"phase":"idle","server":"asu-builder",'"$(snapshot asu-builder="$DAEMON_PID" | sed 's/^{//; s/}$//')"
record rss '"phase":"idle","server":"podman",'"$(snapshot "podman system service"="$PODMAN_PID" | sed 's/^{//; s/}$//')"
record rss '"phase":"idle","server":"bare",'"$(snapshot bare_stack="$BARE_PID" | sed 's/^{//; s/}$//')"
if [ -z "$PEER_ERROR" ]; then
    record rss '"phase":"idle","server":"peer",'"$(snapshot "gunicorn master/gunicorn worker"="$GUNICORN_PID" "rq worker/rq work horse"="$RQ_PID" redis-server="$REDIS_PID" | sed 's/^{//; s/}$//')"
fi

# ---- builds ---------------------------------------------------------------------------------------
# build SERVER BASE BODY LABEL: POST, wait for 200, record the wall time and hash.
build() {
    local server=$1 base=$2 body=$3 label=$4 t0 hash
    t0=$EPOCHREALTIME
    hash=$(curl -sS -X POST -H 'Content-Type: application/json' -H 'User-Agent: asu-bench' \
        -d "$body" "$base/api/v1/build" | python3 -c 'import json,sys; print(json.load(sys.stdin)["request_hash"])') ||
        return 1
    wait_for "$base/api/v1/build/$hash" --pending 202 --interval-ms 20 --timeout 600 >"$WORK/wait-$label.json" ||
        { say "$server build $label did not finish: $(cat "$WORK/wait-$label.json")"; return 1; }
    record build '"server":"'"$server"'","label":"'"$label"'","hash":"'"$hash"'","post_to_200_ms":'"$(ms_since "$t0")"
    echo "$hash"
}
say "asu-builder: builds"
HASH=$(build asu-builder "$BASE" "$REQ1" first) || die "asu-builder build failed (log: $WORK/daemon.log)"
HASH2=$(build asu-builder "$BASE" "$REQ2" second) || die "asu-builder build failed (log: $WORK/daemon.log)"
for h in "$HASH" "$HASH2"; do
    python3 - "$WORK/daemon.log" "$h" >>"$RESULTS" <<'PY'
import json, re, sys
from datetime import datetime
log, h = open(sys.argv[1]).read().splitlines(), sys.argv[2]
def ts(pattern):
    for line in log:
        if pattern in line:
            return datetime.fromisoformat(line.split()[0].replace("Z", "")[:26])
queued, started = ts(f"queued {h}"), ts(f"job {h}: container started")
timing = next(l for l in log if f"job {h}: timings" in l).split("timings ", 1)[1]
nums = dict(re.findall(r"(total|make|outside-make)=([0-9.]+)ms", timing))
print(json.dumps({"type": "build_detail", "server": "asu-builder", "hash": h,
    "enqueue_to_start_ms": round((started - queued).total_seconds() * 1000, 1),
    "total_ms": float(nums["total"]), "make_ms": float(nums["make"]),
    "overhead_ms": float(nums["outside-make"]), "steps": timing}))
PY
done

if [ -z "$PEER_ERROR" ]; then
    say "peer: builds"
    python3 "$HERE/procs.py" watch "$WORK/peer-build-rss.json" "rq worker/rq work horse"="$RQ_PID" &
    WATCH_PID=$!
    PIDS+=("$WATCH_PID")
    PEER_HASH=$(build peer "$PEER_BASE" "$REQ1" first) &&
        PEER_HASH2=$(build peer "$PEER_BASE" "$REQ2" second) ||
        peer_fail "a build through the peer did not finish: $(tail -5 "$PEER_DIR/rq.log" | tr '\n' ' ')"
    kill -TERM "$WATCH_PID"
    wait "$WATCH_PID" || true
    if [ -z "$PEER_ERROR" ]; then
        record peer_build_rss '"watch":'"$(cat "$WORK/peer-build-rss.json")"
        for h in "$PEER_HASH" "$PEER_HASH2"; do
            python3 - "$PEER_DIR/make-times.log" "$h" \
                "$(redis-cli -p "$REDIS_PORT" hget "rq:job:$h" enqueued_at)" \
                "$(redis-cli -p "$REDIS_PORT" hget "rq:job:$h" started_at)" \
                "$(redis-cli -p "$REDIS_PORT" hget "rq:job:$h" ended_at)" >>"$RESULTS" <<'PY'
import json, sys
from datetime import datetime, timezone
times, h, enq, start, end = sys.argv[1:6]
def t(s):
    return datetime.fromisoformat(s.replace("Z", "")).replace(tzinfo=timezone.utc).timestamp()
enq, start, end = t(enq), t(start), t(end)
make = 0.0
steps = []
for line in open(times):
    s, e, rc, goal = (line.split() + [""])[:4]
    s, e = int(s) / 1e9, int(e) / 1e9
    if start <= s <= end:
        make += e - s
        steps.append(f"make {goal}={(e - s) * 1000:.1f}ms")
total = end - start
print(json.dumps({"type": "build_detail", "server": "peer", "hash": h,
    "enqueue_to_start_ms": round((start - enq) * 1000, 1), "total_ms": round(total * 1000, 1),
    "make_ms": round(make * 1000, 1), "overhead_ms": round((total - make) * 1000, 1),
    "steps": " ".join(steps)}))
PY
        done
        # The peer has no /api/v1/stats: record what it answers.
        fact peer_stats_status "$(curl -s -o /dev/null -w '%{http_code}' "$PEER_BASE/api/v1/stats")"
    fi
fi

# ---- HTTP load -----------------------------------------------------------------------------------
printf '%s' "$REQ1" >"$WORK/req1.json"
printf '%s' "$BAD" >"$WORK/bad.json"
# load SERVER BASE CASE CONNECTIONS
load() {
    local server=$1 base=$2 case=$3 conns=$4 path method=GET body=() expect=200 hash out
    case $server in asu-builder) hash=$HASH ;; peer) hash=${PEER_HASH:-} ;; *) hash= ;; esac
    case $case in
    stats) path=/api/v1/stats ;;
    build_get) path=/api/v1/build/$hash ;;
    cache_hit_post) path=/api/v1/build method=POST body=(--body-file "$WORK/req1.json") ;;
    bad_post) path=/api/v1/build method=POST body=(--body-file "$WORK/bad.json") expect=400 ;;
    overview) path=/json/v1/overview.json ;;
    esac
    out=$("$LOADGEN" run --url "$base$path" --method "$method" "${body[@]}" --expect "$expect" \
        --connections "$conns" --duration "$DURATION" --warmup "$WARMUP") ||
        die "loadgen failed on $server $case"
    record load '"server":"'"$server"'","case":"'"$case"'","path":"'"$method $path"'","conns":'"$conns"',"result":'"$out"
    say "$(printf '%-11s %-15s %4s conns: ' "$server" "$case" "$conns")$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print("{:9.0f} ok/s  p99 {} ms  other {}  errors {}".format(
    r["ok_per_s"], r["latency_ms"]["p99"], r["other_statuses"], r["socket_errors"]))' "$out")"
}
CASES="stats build_get cache_hit_post bad_post overview"
matrix() {
    local conns case
    for conns in "$@"; do
        for case in $CASES; do
            [ "$case" != stats ] || load bare "http://127.0.0.1:$BARE_PORT" stats "$conns"
            load asu-builder "$BASE" "$case" "$conns"
            if [ -z "$PEER_ERROR" ] && [ "$case" != stats ] && [[ " $PEER_CONNS " == *" $conns "* ]]; then
                load peer "$PEER_BASE" "$case" "$conns"
            fi
        done
    done
}
# peaks PHASE: VmHWM of every process so far.
peaks() {
    record rss '"phase":"'"$1"'","server":"asu-builder",'"$(snapshot asu-builder="$DAEMON_PID" | sed 's/^{//; s/}$//')"
    record rss '"phase":"'"$1"'","server":"podman",'"$(snapshot "podman system service"="$PODMAN_PID" | sed 's/^{//; s/}$//')"
    record rss '"phase":"'"$1"'","server":"bare",'"$(snapshot bare_stack="$BARE_PID" | sed 's/^{//; s/}$//')"
    if [ -z "$PEER_ERROR" ]; then
        record rss '"phase":"'"$1"'","server":"peer",'"$(snapshot "gunicorn master/gunicorn worker"="$GUNICORN_PID" "rq worker/rq work horse"="$RQ_PID" redis-server="$REDIS_PID" | sed 's/^{//; s/}$//')"
    fi
}
# The connection counts every server gets, then the peaks; then the big
# counts (one tiny_http thread per connection raises asu-builder's and the
# bare stack's peaks, which the peer does not get to match).
# shellcheck disable=SC2086 # lists of counts, split on purpose
matrix $CONNS
peaks peak
if [ -n "$BIG_CONNS" ]; then
    # shellcheck disable=SC2086
    matrix $BIG_CONNS
    peaks peak_big
fi

# ---- a 256 MiB image streaming into asu-builder's store -------------------------------------------------
say "asu-builder: 256 MiB image"
echo 5 >"/proc/$DAEMON_PID/clear_refs" 2>/dev/null || true # reset the peak (VmHWM)
before=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$DAEMON_PID/status")
BIG_HASH=$(build asu-builder "$BASE" "$BIG" big) || die "the 256 MiB build failed (log: $WORK/daemon.log)"
peak=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$DAEMON_PID/status")
image=$(find "$WORK/public/store/" -name '*sysupgrade.bin' -size +200M | head -1)
record big '"before_kib":'"$before"',"peak_kib":'"$peak"',"image_bytes":'"$(stat -c %s "$image")"',"timings":"'"$(grep "job $BIG_HASH: timings" "$WORK/daemon.log" | sed 's/.*timings //')"'"'

fact peer_error "$PEER_ERROR"
python3 "$HERE/report.py" "$RESULTS" "$OUT"
say "wrote $OUT"
