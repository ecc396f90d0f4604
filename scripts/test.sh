#!/usr/bin/env bash
# Every check: set up (with test services), lint, types, the whole test suite (Python 3.11), then
# the package installed on Python 3.12 and 3.13 with a smoke subset of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy issuemine
.venv/bin/python -m pytest "$@"
# The package on the other supported Pythons: installs from a wheel, smoke subset passes.
bash scripts/other-pythons.sh
