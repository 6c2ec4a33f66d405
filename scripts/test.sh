#!/usr/bin/env bash
# The test suite (default tier). Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# The HTML report is checked in headless Chromium (Debian's package). In CI,
# as root, install it when missing; elsewhere that test is skipped without it.
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    && ! command -v chromium >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "note: could not install chromium; the browser test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
