#!/usr/bin/env bash
# The project's one test command: installs Docker and the lab if missing, installs preflight with its test
# extras into .venv, lints, and runs the whole test suite against real sshd and nginx containers.
set -euo pipefail
cd "$(dirname "$0")/.."

source lab/engine.sh
lab_ready

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
