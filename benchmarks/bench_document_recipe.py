"""The measured document recipe (issue 22): `bench_recipe.py` on the clinic documents config, with the loopback
extractive teacher of the tests (tests/fakeapi/documents.py: an OpenAI-compatible server that writes questions a
passage answers and answers them from it, from the answer key of facts scripts/make_documents.py wrote into the
shipped documents; deterministic, no API key).

    HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/bench_document_recipe.py configs/clinic-protocols-cpu.yaml

It sets OPENAI_BASE_URL to the loopback server for the run, so the config's `openai:` teacher talks to it; every
other option is bench_recipe.py's (--per-leaf, --limit, --out). The config's review gate stops the first run
after generation (exit code 4); review the queue (`distill review RUN --serve`) and run it again. Prints base vs
student on the held-out questions (token-F1, ROUGE-L, and the share of answers faithful to their passage) with
95% intervals, and each stage's time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

import bench_recipe  # noqa: E402

from distill.errors import ReviewPending  # noqa: E402
from fakeapi import FakeAPI, Faults  # noqa: E402
from fakeapi.documents import ExtractiveTeacher  # noqa: E402


def main() -> None:
    with FakeAPI(Faults(teacher=ExtractiveTeacher())) as api:
        os.environ["OPENAI_BASE_URL"] = api.url + "/v1"
        os.environ.setdefault("OPENAI_API_KEY", "sk-loopback")
        try:
            bench_recipe.main()
        except ReviewPending as pending:
            print(f"review pending: {pending}")
            sys.exit(4)
        finally:
            print(f"teacher requests answered by the loopback extractive teacher: {api.total_paid()}")


if __name__ == "__main__":
    main()
