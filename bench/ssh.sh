#!/usr/bin/env bash
# Runs the SSH login bench (bench/ssh.py): as root, with Docker and the lab image, and sshpass from Debian.
# Usage: bash bench/ssh.sh [--logins 150]
set -euo pipefail
cd "$(dirname "$0")/.."

source lab/engine.sh
lab_ready
command -v sshpass >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sshpass openssh-client >/dev/null
}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e . >/dev/null
exec .venv/bin/python -m bench.ssh "$@"
