"""Faster curation, same curation: on a planted corpus `distill curate` keeps, rejects (with the same reasons and
details), pairs duplicates and flags contamination exactly as the code before the speed work did, byte for byte
in every output file. The references in tests/curate/parity/ are that code's own output
(`scripts/curate_parity_reference.py`)."""

from __future__ import annotations

import json

import pytest
from curate_helpers import needs_data
from parity_corpus import CASES, PARITY, outcome, write_rows

from cli_helpers import cli_env, distill

pytestmark = [needs_data, pytest.mark.slow]


@pytest.mark.parametrize("case", sorted(CASES))
def test_curate_outputs_are_byte_identical_to_the_reference(tmp_path, case):
    rows, options = CASES[case]
    source = write_rows(tmp_path / "in.jsonl", rows())
    done = distill("curate", str(source), "--out", str(tmp_path / "out"), "--workers", "1", *options,
                   cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    expected = json.loads((PARITY / f"{case}.json").read_text(encoding="utf-8"))
    got = outcome(tmp_path / "out")
    # Piece by piece first, so a difference shows where it is; the hashes then hold every byte.
    for part in ("kept", "rejects", "duplicates", "contamination", "stats", "sha256"):
        assert got[part] == expected[part], part
