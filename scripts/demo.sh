#!/usr/bin/env bash
# The end-to-end job on bundled real data, no network: set up, then `issuemine demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/issuemine demo --out "${1:-issuemine-demo}"
