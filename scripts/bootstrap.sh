#!/usr/bin/env bash
# Create ./.venv (once) and install flopaudit with its test and report extras and
# every counter that installs alongside the others (all-counters).
# Re-installs only when pyproject.toml, ci/constraints.txt or ci/counters.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.flopaudit-installed
want=$(cat pyproject.toml ci/constraints.txt ci/counters.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c ci/constraints.txt -c ci/counters.txt -e ".[test,report,all-counters]"
    echo "$want" > "$stamp"
fi
