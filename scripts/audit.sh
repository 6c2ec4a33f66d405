#!/usr/bin/env bash
# The main job: audit the default zoo on every backend and write the reports.
# Extra arguments go to 'flopaudit run' (e.g. --full, --models 'resnet*').
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/flopaudit run --out flopaudit-report "$@"
