#!/usr/bin/env bash
# Test harness for the browser test: Debian's chromium, headless.
#
#   chromium.sh install   install chromium when missing (apt, as root)
#   chromium.sh path      print the chromium binary to run
#
# Idempotent. Nothing else is changed on the machine.
set -euo pipefail

find_chromium() {
    local c
    for c in chromium chromium-browser; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

cmd_install() {
    if find_chromium >/dev/null; then
        echo "chromium.sh: $(find_chromium) is installed" >&2
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "chromium.sh: chromium is missing; run as root: apt-get update && apt-get install -y chromium" >&2
        exit 1
    fi
    echo "chromium.sh: installing chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium
    find_chromium >/dev/null || { echo "chromium.sh: still missing after apt-get install" >&2; exit 1; }
}

case "${1:-}" in
    install) cmd_install ;;
    path) find_chromium || { echo "chromium.sh: chromium is not installed" >&2; exit 1; } ;;
    *) echo "usage: chromium.sh install|path" >&2; exit 2 ;;
esac
