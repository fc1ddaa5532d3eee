#!/usr/bin/env bash
# Installs the simulator into ./.venv.
#
#   bash scripts/install.sh          the development install (what .ci/run uses): the package with
#                                    its test and dev extras (llama-cpp-python compiles from source
#                                    the first time: about 6 minutes on 2 cores; pip caches the
#                                    wheel afterwards) and Debian's Chromium, used by one test to
#                                    open the HTML transcript export (skipped with a message when
#                                    apt-get is not available; that test then fails and says why).
#   bash scripts/install.sh --app    the app only: the package and its runtime dependencies (all
#                                    prebuilt wheels: no compiler, no test extras, no Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

APP_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --app) APP_ONLY=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $arg (use --app for the app only, or nothing)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip

if [ "$APP_ONLY" = 1 ]; then
    .venv/bin/python -m pip install --quiet -e .
    echo "installed (app only): $(.venv/bin/python -c 'import simulator; print("simulator", simulator.__version__)')"
    echo "start it with: .venv/bin/python main.py"
    exit 0
fi

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
