#!/usr/bin/env bash
# Regenerate the project's own golden counts in tests/goldens/ (checked by
# tests/test_goldens.py::test_golden): the zoo's hard cases plus resnet18,
# counted with every backend that loads here.
#
#   scripts/update-goldens.sh                 # all backends: rewrites every golden
#   scripts/update-goldens.sh fvcore thop     # only these backends' goldens
#
# Review the result with 'git diff tests/goldens' before committing: each
# changed line is a count that changed.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOPAUDIT=${FLOPAUDIT:-.venv/bin/flopaudit}
OUT=tests/goldens
MODELS=(resnet18)
TAGS=(hard)

backend_args=()
if [ "$#" -gt 0 ]; then
    backend_args=(--backends "$@")
    for b in "$@"; do
        rm -f "$OUT"/*--"$b".json
    done
else
    rm -f "$OUT"/*--*.json
fi

"$FLOPAUDIT" snapshot --models "${MODELS[@]}" ${backend_args[@]+"${backend_args[@]}"} --out "$OUT"
"$FLOPAUDIT" snapshot --tags "${TAGS[@]}" ${backend_args[@]+"${backend_args[@]}"} --out "$OUT"
echo "goldens in $OUT: $(ls "$OUT"/*--*.json | wc -l) files; review with: git diff --stat $OUT"
