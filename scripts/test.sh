#!/usr/bin/env bash
# Every check: set up (with test services), lint, types, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy issuemine
exec .venv/bin/python -m pytest "$@"
