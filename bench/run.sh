#!/usr/bin/env bash
# Runs the reachability bench (bench/scale.py): as root, with nmap, nftables and iproute2 from Debian.
# Usage: bash bench/run.sh [--hosts 1000 10000] [--connect] [--no-nmap] [--only tcp]
# It times preflight against nmap -sT -T4, nmap -sT -T5 --max-retries 0 and nmap -sS -T4, wall and CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nmap >/dev/null 2>&1 || missing+=(nmap)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e . >/dev/null
exec .venv/bin/python -m bench.scale "$@"
