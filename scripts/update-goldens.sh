#!/usr/bin/env bash
# Regenerate the project's own golden counts in tests/goldens/ (checked by
# tests/test_goldens.py::test_golden): the zoo's hard cases plus resnet18,
# counted with every backend that loads here, and a training step (AdamW)
# of a few of them with every backend that counts one (*.train.json).
#
#   scripts/update-goldens.sh                 # all backends; goldens of anything else are removed
#   scripts/update-goldens.sh fvcore thop     # only these backends' goldens
#
# Each file is reported as new, updated or unchanged. Review the result with
# 'git diff tests/goldens' before committing: each changed line is a count
# that changed.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOPAUDIT=${FLOPAUDIT:-.venv/bin/flopaudit}
OUT=tests/goldens
MODELS=(resnet18)
TAGS=(hard)
TRAIN_MODELS=(linear-3d conv-grouped convtranspose-s2 batchnorm-train layernorm embedding lstm-bidir-2layer
              mha-batch-first attention-sdpa tied-weights module-shared-two-parents)

backend_args=()
pattern="*--*.json"
if [ "$#" -gt 0 ]; then
    backend_args=(--backends "$@")
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$FLOPAUDIT" snapshot --models "${MODELS[@]}" ${backend_args[@]+"${backend_args[@]}"} --out "$OUT" | tee "$log"
"$FLOPAUDIT" snapshot --tags "${TAGS[@]}" ${backend_args[@]+"${backend_args[@]}"} --out "$OUT" | tee -a "$log"
"$FLOPAUDIT" snapshot --models "${TRAIN_MODELS[@]}" --pass train --optimizer adamw \
    ${backend_args[@]+"${backend_args[@]}"} --out "$OUT" | tee -a "$log"

# Remove goldens this run did not write (a case or backend that is gone), only
# among the backends regenerated.
shopt -s nullglob
for path in "$OUT"/$pattern; do
    backend=${path##*--}
    backend=${backend%.json}
    backend=${backend%.train}
    if [ "$#" -gt 0 ] && [[ ! " $* " == *" $backend "* ]]; then
        continue
    fi
    if ! grep -qF "  $path  " "$log"; then
        echo "removed    $path  (not produced by this run)"
        rm -f "$path"
    fi
done
echo "goldens in $OUT: $(ls "$OUT"/$pattern | wc -l) files; review with: git diff --stat $OUT"
