#!/usr/bin/env bash
# distill without extras, as `pip install distill` gives it: a throwaway venv with the core dependencies
# only, then the three commands that must work there (help, taxonomy validate, curate a small file) and
# two that must name their extra instead of failing with ModuleNotFoundError.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"${PYTHON:-python3}" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
# Built from a copy: setuptools writes build/ and distill.egg-info into the folder it builds, and an egg-info in
# the checkout would become the package metadata that tests running with PYTHONPATH=checkout read.
mkdir "$WORK/src"
tar -C "$ROOT" --exclude=./.venv --exclude=./.venv-vllm --exclude=./.git --exclude=./runs -cf - . | tar -C "$WORK/src" -xf -
"$WORK/venv/bin/python" -m pip install -q "$WORK/src"
D="$WORK/venv/bin/distill"
cp -r tests/fixtures/tiny "$WORK/tiny"
cd "$WORK/tiny"
"$D" --help >/dev/null
"$D" taxonomy validate qa.yaml
"$WORK/venv/bin/python" - <<'PY'
import json
rows = [{"id": f"x{i}", "messages": [
    {"role": "user", "content": f"What is the usual first treatment number {i} for asthma in adults?"},
    {"role": "assistant", "content": f"Option {i}: an inhaled corticosteroid with a spacer, reviewed by a "
                                     "clinician every few months, and a written action plan."}]} for i in range(20)]
open("data.jsonl", "w").write("".join(json.dumps(row) + "\n" for row in rows))
PY
"$D" curate data.jsonl --out curated >/dev/null
test "$(wc -l < curated/dataset.jsonl)" -eq 20
set +e
out=$("$D" generate -t qa.yaml 2>&1); code=$?
set -e
if [ "$code" -ne 2 ] || ! grep -q "pip install 'distill\[local\]'" <<<"$out" || grep -q Traceback <<<"$out"; then
  echo "core install: \`distill generate\` without the local extra should name it (exit 2), got $code: $out" >&2
  exit 1
fi
set +e
out=$("$D" documents chunks "$ROOT/documents/clinic-protocols" 2>&1); code=$?
set -e
if [ "$code" -ne 2 ] || ! grep -q "pip install 'distill\[documents\]'" <<<"$out" || grep -q Traceback <<<"$out"; then
  echo "core install: reading documents without the documents extra should name it (exit 2), got $code: $out" >&2
  exit 1
fi
echo "core install: distill --help, taxonomy validate, curate ok; generate and documents name their extras"
