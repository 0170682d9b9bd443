"""Write tests/curate/parity/*.json: what a given tree's `distill curate` makes of the planted parity corpus.

The references are the output of the code as it was before a change meant to keep curation's result (the
speed work of issue 24), run from a copy of that tree, never written by hand:

    git archive main distill prompts | tar -x -C /tmp/ref-tree
    .venv/bin/python scripts/curate_parity_reference.py /tmp/ref-tree
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "curate")]

from parity_corpus import CASES, PARITY, outcome, write_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path, help="a folder holding the `distill` package to take as the reference")
    args = parser.parse_args()
    PARITY.mkdir(exist_ok=True)
    for case, (rows, options) in sorted(CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            source = write_rows(Path(tmp) / "in.jsonl", rows())
            env = {**os.environ, "PYTHONPATH": str(args.tree.resolve()), "DISTILL_CACHE_DIR": f"{tmp}/cache"}
            subprocess.run([sys.executable, "-m", "distill.cli", "curate", str(source), "--out", f"{tmp}/out",
                            "--workers", "1", *options], env=env, cwd=tmp, check=True, capture_output=True)
            (PARITY / f"{case}.json").write_text(json.dumps(outcome(Path(tmp) / "out"), indent=1, ensure_ascii=False)
                                                 + "\n", encoding="utf-8")
        print(f"{case}: {PARITY / f'{case}.json'}")


if __name__ == "__main__":
    main()
