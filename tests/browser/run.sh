#!/usr/bin/env bash
# The scene viewer in a real browser: headless Chromium (Debian's chromium package, installed here
# when missing; needs root then) renders a ScanNet-size scene page in its three modes
# (tests/browser/check_viewer.py). `make test-browser` runs this; PY is the venv's python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY="${PY:-.venv/bin/python}"
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: chromium is not installed; install it first: apt-get install -y --no-install-recommends chromium" >&2
        exit 1
    fi
    log="${TMPDIR:-/tmp}/chromium-apt.log"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >"$log" 2>&1; then
        echo "run.sh: apt-get install chromium failed; running apt-get update and retrying" >&2
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
            >>"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "run.sh: could not install chromium (log: $log)" >&2; exit 1; }
    fi
fi
"$PY" tests/browser/check_viewer.py --out "${OUT:-runs/browser}"
echo "test-browser: PASS (screenshots in ${OUT:-runs/browser})"
