#!/usr/bin/env bash
# Test harness: the tools tests/openapi.rs and tests/install.rs run.
#
#   install.sh           install what is missing (apt as root, pip)
#   install.sh validator print the command that validates an OpenAPI file
#
# - openapi-spec-validator (PyPI), the reference validator of OpenAPI 3.1
#   documents, into a virtualenv under target/tools so the system Python
#   stays as it is;
# - systemd-analyze, from Debian's systemd package.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="$PWD/target/tools/venv"
VALIDATOR_VERSION="0.9.0"

validator_cmd() { echo "$VENV/bin/openapi-spec-validator"; }

install_validator() {
    if [ -x "$(validator_cmd)" ]; then
        return 0
    fi
    echo "install.sh: installing openapi-spec-validator $VALIDATOR_VERSION into $VENV" >&2
    python3 -m venv "$VENV" 2>/dev/null || {
        if [ "$(id -u)" = 0 ]; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq python3-venv
            python3 -m venv "$VENV"
        else
            echo "install.sh: python3 -m venv failed; install python3-venv" >&2
            exit 1
        fi
    }
    "$VENV/bin/pip" install -q "openapi-spec-validator==$VALIDATOR_VERSION"
    [ -x "$(validator_cmd)" ] || { echo "install.sh: validator missing after pip install" >&2; exit 1; }
}

install_systemd() {
    if command -v systemd-analyze >/dev/null 2>&1 && command -v man >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "install.sh: systemd-analyze or man is missing; run as root: apt-get install systemd man-db" >&2
        exit 1
    fi
    echo "install.sh: installing systemd and man-db" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq systemd man-db
}

case "${1:-install}" in
    install) install_validator; install_systemd ;;
    validator) install_validator; validator_cmd ;;
    *) echo "usage: install.sh [install|validator]" >&2; exit 2 ;;
esac
