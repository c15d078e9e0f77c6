#!/usr/bin/env bash
# Test harness for a private Podman API service (libpod REST on a Unix socket).
#
#   service.sh install          install podman & friends (Debian 12, root)
#   service.sh start DIR [--owner PID]
#                               start a service with storage, config and socket under DIR;
#                               with --owner, purge DIR when process PID exits
#   service.sh purge DIR        stop, wait for lingering conmons, unmount, delete DIR
#   service.sh stop DIR         remove our containers, stop that service
#   service.sh halt DIR         stop the service only (SIGTERM, like systemctl stop):
#                               running containers stay, as in production
#   service.sh freeze DIR       SIGSTOP the service: it accepts and never answers
#   service.sh thaw DIR         SIGCONT it
#   service.sh image DIR [TAG…] build the fake ImageBuilder image into DIR's storage
#   service.sh status DIR       exit 0 when the service in DIR answers
#
# Everything lives under DIR (storage root, runroot, tmpdir, network configs,
# containers.conf, podman.sock, pid, service.log): nothing global is changed.
# All subcommands are idempotent.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAKEIB_SRC="$HERE/fakeib"
# Fixtures written by the pipeline's parser tests; baked into the image when present.
FIXTURES_SRC="$HERE/../fixtures/imagebuilder"

DEFAULT_TAGS=(
    "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3"
    "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-master"
)
# Label on every container our tests and the server create; `stop` removes them.
LABEL=asu.builder
# Debian package names. Recommends stay on: without them apt picks CNI instead
# of netavark and leaves out aardvark-dns.
PACKAGES=(podman runc busybox-static catatonit curl)

die() { echo "service.sh: $*" >&2; exit 1; }
log() { echo "service.sh: $*" >&2; }

abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

# A static busybox is what the fake image is made of (a dynamic one would need
# its libraries copied too).
static_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

missing_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v curl >/dev/null || missing+=(curl)
    static_busybox >/dev/null || missing+=(busybox-static)
    [ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
    echo "${missing[@]}"
}

cmd_install() {
    local missing
    missing=$(missing_tools)
    if [ -z "$missing" ]; then
        log "podman and helpers are installed ($(podman --version 2>/dev/null || echo podman))"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "missing: $missing" >&2
        echo "run as root: apt-get update && apt-get install -y ${PACKAGES[*]}" >&2
        exit 1
    fi
    log "installing ${PACKAGES[*]} (missing: $missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PACKAGES[@]}"
    missing=$(missing_tools)
    [ -z "$missing" ] || die "still missing after apt-get install: $missing"
}

require_podman() {
    local missing
    missing=$(missing_tools)
    if [ -n "$missing" ]; then
        die "missing: $missing — run 'tests/podman/service.sh install' as root (apt-get install -y ${PACKAGES[*]})"
    fi
    [ "$(id -u)" = 0 ] || die "the test service runs rootful podman: run as root"
}

sock_of() { echo "$1/podman.sock"; }

ping_dir() {
    curl -fsS --max-time 2 --unix-socket "$(sock_of "$1")" http://d/v4.0.0/libpod/_ping >/dev/null 2>&1
}

# The pid in DIR/pid, if that process is alive and is a podman service.
service_pid() {
    local pid
    [ -f "$1/pid" ] || return 1
    pid=$(cat "$1/pid")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "system service" || return 1
    echo "$pid"
}

# min(want, hard limit); "unlimited" counts as large.
limit_min() {
    local want=$1 hard=$2
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then echo "$want"; else echo "$hard"; fi
}

write_conf() {
    local dir=$1 nofile nproc backend
    # Podman's rootful default ulimits (1048576) exceed the hard limits of
    # sandboxes without CAP_SYS_RESOURCE, and the OCI runtime then fails to
    # start any container. Stay at or below what we may set.
    nofile=$(limit_min 1024 "$(ulimit -Hn)")
    nproc=$(limit_min 1000 "$(ulimit -Hu)")
    if [ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] || command -v netavark >/dev/null; then
        backend=netavark
    else
        backend=cni
    fi
    {
        echo "# written by tests/podman/service.sh"
        echo "[containers]"
        echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
        echo ""
        echo "[engine]"
        # No systemd here (and none needed): cgroupfs + file events always work rootful.
        echo "cgroup_manager = \"cgroupfs\""
        echo "events_logger = \"file\""
        # crun 1.8 refuses hybrid cgroup v1/v2 hosts; runc copes.
        if command -v runc >/dev/null; then echo "runtime = \"runc\""; fi
        echo ""
        echo "[network]"
        echo "network_backend = \"$backend\""
        # Private network configs, so the test never edits /etc/containers/networks
        # or /etc/cni/net.d.
        echo "network_config_dir = \"$dir/networks\""
    } >"$dir/containers.conf.new"
    mv "$dir/containers.conf.new" "$dir/containers.conf"
}

podman_in() {
    local dir=$1
    shift
    CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/root" --runroot "$dir/runroot" \
        --tmpdir "$dir/tmp" "$@"
}

# Purges DIR once process OWNER is gone (a test binary has no teardown hook).
start_watchdog() {
    local dir=$1 owner=$2
    setsid bash -c '
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        exec "$3" purge "$2"
    ' asu-podman-watchdog "$owner" "$dir" "$HERE/service.sh" >/dev/null 2>&1 </dev/null &
}

# Is any process (a conmon, typically) still referring to DIR?
dir_in_use() {
    local dir=$1 f
    for f in /proc/[0-9]*/cmdline; do
        grep -qsF -- "$dir/" "$f" && return 0
    done
    return 1
}

cmd_purge() {
    [ $# -ge 1 ] || die "usage: service.sh purge DIR"
    local dir i mnt
    [ -d "$1" ] || return 0
    dir=$(cd "$1" && pwd)
    [ -f "$dir/containers.conf" ] || [ -d "$dir/root" ] || die "$dir does not look like a service dir"
    cmd_stop "$dir"
    # Each exec leaves a conmon that later runs `podman --root DIR ...
    # cleanup`; deleting DIR under it would only make it recreate parts.
    for i in $(seq 1 330); do
        dir_in_use "$dir" || break
        sleep 1
    done
    # Podman's overlay driver bind-mounts its storage dir onto itself.
    awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$dir"
}

cmd_start() {
    [ $# -ge 1 ] || die "usage: service.sh start DIR [--owner PID]"
    require_podman
    local dir pid sock i owner=
    dir=$(abspath "$1")
    if [ "${2:-}" = --owner ]; then
        owner=${3:?--owner needs a pid}
        start_watchdog "$dir" "$owner"
    fi
    sock=$(sock_of "$dir")
    [ ${#sock} -lt 100 ] || die "socket path too long for a Unix socket: $sock"
    if pid=$(service_pid "$dir") && ping_dir "$dir"; then
        log "already running (pid $pid) on $sock"
        echo "$sock"
        return 0
    fi
    if [ -n "${pid:-}" ]; then
        # Alive but not answering: restart it.
        kill "$pid" 2>/dev/null || true
        sleep 1
        kill -9 "$pid" 2>/dev/null || true
    fi
    mkdir -p "$dir/root" "$dir/runroot" "$dir/tmp" "$dir/networks"
    write_conf "$dir"
    rm -f "$sock" "$dir/pid"
    # --time=0: never exit when idle (the default 5 s would remove the socket).
    # setsid + redirected fds: the service must not hold the caller's pipes or
    # terminal, so `cargo test` does not wait on it.
    CONTAINERS_CONF="$dir/containers.conf" setsid podman \
        --root "$dir/root" --runroot "$dir/runroot" --tmpdir "$dir/tmp" \
        system service --time=0 "unix://$sock" >>"$dir/service.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    for i in $(seq 1 150); do
        if ping_dir "$dir"; then
            log "started (pid $(cat "$dir/pid")) on $sock"
            echo "$sock"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            tail -n 20 "$dir/service.log" >&2 || true
            die "podman system service exited during start-up (log: $dir/service.log)"
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/service.log" >&2 || true
    die "podman service did not answer on $sock within 15 s"
}

cmd_stop() {
    [ $# -ge 1 ] || die "usage: service.sh stop DIR"
    local dir pid sock ids id i
    [ -d "$1" ] || return 0
    dir=$(cd "$1" && pwd)
    sock=$(sock_of "$dir")
    if ping_dir "$dir"; then
        # The service is not the containers' parent (conmon is): remove them
        # through the API first, or they outlive the service.
        ids=$(curl -fsS --max-time 10 --unix-socket "$sock" -G \
            --data-urlencode "filters={\"label\":[\"$LABEL\"]}" --data all=true \
            http://d/v4.0.0/libpod/containers/json | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 || true)
        for id in $ids; do
            curl -fsS --max-time 30 --unix-socket "$sock" -X DELETE \
                "http://d/v4.0.0/libpod/containers/$id?force=true&volumes=true&timeout=0" >/dev/null || true
        done
    fi
    if pid=$(service_pid "$dir"); then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped (pid $pid)"
    fi
    rm -f "$sock" "$dir/pid"
}

# The service process alone: its containers (children of conmon) keep running.
cmd_halt() {
    [ $# -ge 1 ] || die "usage: service.sh halt DIR"
    local dir pid i
    [ -d "$1" ] || return 0
    dir=$(cd "$1" && pwd)
    if pid=$(service_pid "$dir"); then
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        log "halted (pid $pid); containers left running"
    fi
    rm -f "$(sock_of "$dir")" "$dir/pid"
}

cmd_signal() {
    local sig=$1 dir pid
    [ $# -ge 2 ] || die "usage: service.sh freeze|thaw DIR"
    dir=$(cd "$2" && pwd)
    pid=$(service_pid "$dir") || die "no service running in $dir"
    kill "-$sig" "$pid"
}

cmd_status() {
    [ $# -ge 1 ] || die "usage: service.sh status DIR"
    ping_dir "$1"
}

# Tag → version fields, the way the server names images:
#   <target>-<subtarget>-v<x.y.z>     release
#   <target>-<subtarget>-master       SNAPSHOT
#   <target>-<subtarget>-openwrt-<b>  <b>-SNAPSHOT
parse_tag() {
    local tag=$1 t board version
    t=${tag##*/}
    case "$t" in *:*) t=${t#*:} ;; *) t=latest ;; esac
    case "$t" in
    *-master) board=${t%-master}; version=SNAPSHOT ;;
    *-openwrt-*) board=${t%%-openwrt-*}; version="${t##*-openwrt-}-SNAPSHOT" ;;
    *-v[0-9]*) board=${t%-v[0-9]*}; version=${t##*-v} ;;
    *) board=testtarget-testsubtarget; version=SNAPSHOT ;;
    esac
    case "$board" in *-*) ;; *) board="$board-generic" ;; esac
    echo "FAKEIB_TARGET='${board%%-*}/${board#*-}'"
    echo "FAKEIB_VERSION='$version'"
}

build_rootfs() {
    local rootfs=$1 tag=$2 busybox applet flavour
    busybox=$(static_busybox) || die "no static busybox (apt-get install busybox-static)"
    flavour=${FAKEIB_FLAVOUR:-opkg}
    case "$flavour" in opkg | apk) ;; *) die "FAKEIB_FLAVOUR must be opkg or apk" ;; esac
    rm -rf "$rootfs"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,run,var,tmp}
    mkdir -p "$rootfs/builder/.fakeib"
    chmod 1777 "$rootfs/tmp"
    cp "$busybox" "$rootfs/bin/busybox"
    for applet in $("$busybox" --list-full); do
        [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done
    # busybox has no make applet: ours is a script.
    install -m 0755 "$FAKEIB_SRC/make" "$rootfs/usr/bin/make"
    printf 'root:x:0:0:root:/root:/bin/sh\nbuildbot:x:1000:1000:buildbot:/builder:/bin/sh\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nbuildbot:x:1000:\n' >"$rootfs/etc/group"
    install -m 0755 "$FAKEIB_SRC/setup.sh" "$rootfs/builder/setup.sh"
    if [ "$flavour" = apk ]; then
        install -m 0644 "$FAKEIB_SRC/repositories" "$rootfs/builder/repositories"
    else
        install -m 0644 "$FAKEIB_SRC/repositories.conf" "$rootfs/builder/repositories.conf"
    fi
    install -m 0644 "$FAKEIB_SRC/Makefile" "$rootfs/builder/Makefile"
    install -m 0644 "$FAKEIB_SRC/profiles" "$rootfs/builder/.fakeib/profiles"
    install -m 0644 "$FAKEIB_SRC/default-packages.$flavour" "$rootfs/builder/.fakeib/default-packages"
    install -m 0644 "$FAKEIB_SRC/versions" "$rootfs/builder/.fakeib/versions"
    if [ -d "$FIXTURES_SRC" ]; then
        mkdir -p "$rootfs/builder/.fakeib/fixtures"
        cp "$FIXTURES_SRC"/* "$rootfs/builder/.fakeib/fixtures/" 2>/dev/null || true
    fi
    {
        parse_tag "$tag"
        echo "FAKEIB_ARCH='${FAKEIB_ARCH:-testarch}'"
        echo "FAKEIB_REVISION='${FAKEIB_REVISION:-r12345-abcdef}'"
        echo "FAKEIB_FLAVOUR='$flavour'"
    } >"$rootfs/builder/.fakeib/config"
}

# Hash of everything that goes into an image, so `image` can skip unchanged ones.
inputs_hash() {
    local tag=$1
    {
        echo "$tag ${FAKEIB_FLAVOUR:-} ${FAKEIB_ARCH:-} ${FAKEIB_REVISION:-}"
        find "$FAKEIB_SRC" -type f | LC_ALL=C sort | xargs sha256sum
        if [ -d "$FIXTURES_SRC" ]; then find "$FIXTURES_SRC" -type f | LC_ALL=C sort | xargs sha256sum; fi
        sha256sum "$(static_busybox)"
    } | sha256sum | cut -c1-16
}

cmd_image() {
    [ $# -ge 1 ] || die "usage: service.sh image DIR [TAG...]"
    require_podman
    local dir tags tag hash have work
    dir=$(abspath "$1")
    shift
    if [ $# -gt 0 ]; then tags=("$@"); else tags=("${DEFAULT_TAGS[@]}"); fi
    mkdir -p "$dir/root" "$dir/runroot" "$dir/tmp" "$dir/networks"
    [ -f "$dir/containers.conf" ] || write_conf "$dir"
    work=$(mktemp -d "$dir/tmp/fakeib.XXXXXX")
    for tag in "${tags[@]}"; do
        hash=$(inputs_hash "$tag")
        have=$(podman_in "$dir" image inspect --format '{{index .Config.Labels "fakeib.hash"}}' "$tag" 2>/dev/null || true)
        if [ "$have" = "$hash" ]; then
            log "image $tag is up to date"
            continue
        fi
        build_rootfs "$work/rootfs" "$tag"
        # Numeric owners: root everywhere, buildbot (1000) for /builder.
        tar -C "$work/rootfs" --numeric-owner --owner=0 --group=0 --exclude=./builder -cf "$work/rootfs.tar" .
        tar -C "$work/rootfs" --numeric-owner --owner=1000 --group=1000 -rf "$work/rootfs.tar" ./builder
        podman_in "$dir" import --quiet \
            --change 'USER=buildbot' --change 'WORKDIR=/builder' \
            --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV=HOME=/builder' --change 'CMD=["/bin/sh"]' \
            --change "LABEL=fakeib.hash=$hash" \
            "$work/rootfs.tar" "$tag" >/dev/null
        log "built image $tag"
    done
    rm -rf "$work"
}

main() {
    [ $# -ge 1 ] || die "usage: service.sh install|start DIR [--owner PID]|stop DIR|halt DIR|freeze DIR|thaw DIR|image DIR [TAG...]|status DIR|purge DIR"
    local cmd=$1
    shift
    case "$cmd" in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    halt) cmd_halt "$@" ;;
    freeze) cmd_signal STOP "$@" ;;
    thaw) cmd_signal CONT "$@" ;;
    image) cmd_image "$@" ;;
    status) cmd_status "$@" ;;
    purge) cmd_purge "$@" ;;
    *) die "unknown subcommand '$cmd'" ;;
    esac
}

main "$@"
