#!/usr/bin/env bash
# The package installs (from a wheel, not editable) and a smoke subset of the tests passes on the
# other supported Pythons: 3.12 and 3.13 (the full suite runs on 3.11, where the converters are).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # an interpreter that runs (a pyenv shim of an unselected version does not)
  local candidate
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V -r) \
                   "$(command -v "python$1" 2>/dev/null)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
}

SMOKE=(tests/domain tests/labeling/test_ratings.py tests/labeling/test_assignments.py tests/analysis/test_tables.py
       tests/corpus/test_store.py tests/corpus/test_sampling.py tests/db/test_engine.py tests/github)

for version in 3.12 3.13; do
  python="$(find_python "$version" || true)"
  if [ -z "$python" ]; then
    echo "other-pythons: no python$version on this machine, skipped"
    continue
  fi
  venv=".venv-$version"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps . && "$venv/bin/python" -m pip install -q ".[smoke]"
  # The installed command works from anywhere.
  (cd /tmp && "$OLDPWD/$venv/bin/issuemine" --version && "$OLDPWD/$venv/bin/issuemine" taxonomy check >/dev/null)
  echo "other-pythons: $("$venv/bin/python" --version), smoke subset:"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${SMOKE[@]}"
done
