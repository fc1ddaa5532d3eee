#!/usr/bin/env bash
# Installs everything the simulator and its tests need, into ./.venv:
#   - the package with its test and dev extras (llama-cpp-python compiles from source the first
#     time: about 6 minutes on 2 cores; pip caches the wheel afterwards);
#   - Debian's Chromium, used by one test to open the HTML transcript export (skipped with a
#     message when apt-get is not available; that test then fails and says why).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# GGML_NATIVE=OFF: a portable llama.cpp build (no -march=native), so a cached wheel works on any CPU.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install --quiet -e ".[dev]"

if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing Debian's chromium for the HTML export test..."
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "note: chromium is not installed and apt-get is unavailable; the HTML screenshot test will fail" >&2
    fi
fi
echo "installed: $(.venv/bin/python -c 'import simulator; print("simulator", simulator.__version__)')"
