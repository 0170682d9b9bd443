"""Fuzzing what users hand `distill` (taxonomy YAML, seeds, datasets, API configs): no traceback ever reaches them.

Broken files are made by hypothesis from valid ones (lines dropped, doubled, cut, re-indented, random
text and bytes spliced in) and fed to the CLI's own entry point, `distill.cli.main`, in this process
(a subprocess an example would take minutes). Whatever the file, the command ends with exit 0, 1 or
2, and a failure is one line `error: ...` on stderr.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cli_helpers import TINY
from distill.cli import main

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run_main(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(args)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    else:
        code = 0
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line_or_success(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
    if code:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err


@st.composite
def mutated(draw, text: str) -> bytes:
    """A valid file broken in the ways hands and tools break files."""
    lines = text.encode().split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["drop", "double", "cut", "indent", "splice_text", "splice_bytes", "swap"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        if kind == "drop" and len(lines) > 1:
            del lines[at]
        elif kind == "double":
            lines.insert(at, lines[at])
        elif kind == "cut":
            lines = lines[: at + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
        elif kind == "indent":
            lines[at] = b" " * draw(st.integers(0, 9)) + lines[at].lstrip()
        elif kind == "splice_text":
            piece = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)).encode()
            position = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:position] + piece + lines[at][position:]
        elif kind == "splice_bytes":
            position = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:position] + draw(st.binary(min_size=1, max_size=4)) + lines[at][position:]
        elif kind == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
    return b"\n".join(lines)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    shutil.copytree(TINY, tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_broken_taxonomy_yaml_never_shows_a_traceback(tiny, capsys, data):
    path = tiny / "qa.yaml"
    path.write_bytes(data.draw(mutated((TINY / "qa.yaml").read_text())))
    for command in (["taxonomy", "validate", str(path)], ["taxonomy", "show", str(path)]):
        assert_one_line_or_success(*run_main(command, capsys))


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_broken_seed_files_never_show_a_traceback(tiny, capsys, data):
    seeds = tiny / "seeds" / "tickets.jsonl"
    seeds.write_bytes(data.draw(mutated((TINY / "seeds" / "tickets.jsonl").read_text())))
    assert_one_line_or_success(*run_main(["taxonomy", "validate", str(tiny / "tickets.yaml")], capsys))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "robot"]),
                                           "content": st.text(max_size=60)}), max_size=4)
rows = st.one_of(
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"instruction": st.text(max_size=30), "output": st.text(max_size=30)}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    json_values,
)


@st.composite
def jsonl_bytes(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["row", "row", "cut", "bytes"]))
        if kind == "row":
            lines.append(json.dumps(draw(rows), ensure_ascii=draw(st.booleans())).encode())
        elif kind == "cut":
            text = json.dumps(draw(rows)).encode()
            lines.append(text[: draw(st.integers(0, len(text)))])
        else:
            lines.append(draw(st.binary(max_size=20)).replace(b"\n", b" "))
    return b"\n".join(lines) + b"\n"


@pytest.mark.slow
@FUZZ
@given(content=jsonl_bytes())
def test_broken_datasets_never_show_a_traceback(tmp_path, capsys, content):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    out = tmp_path / "curated"
    shutil.rmtree(out, ignore_errors=True)
    assert_one_line_or_success(*run_main(["curate", str(data), "--out", str(out), "--workers", "1",
                                          "--language", "any"], capsys))


API_CONFIG = """prices:
  gpt-4o-mini: {input: 0.15, output: 0.6}
openai:
  rpm: 500
  tpm: 200000
  concurrency: 8
  batch_poll_s: 30
"""


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_broken_api_configs_never_show_a_traceback(tiny, tmp_path, capsys, monkeypatch, data):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fuzz")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "api.yaml"
    config.write_bytes(data.draw(mutated(API_CONFIG)))
    # --dry-run sends nothing: the config is read, validated and priced with.
    assert_one_line_or_success(*run_main(["generate", "-t", str(tiny / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
                                          "--base-url", "http://127.0.0.1:9/v1", "--api-config", str(config),
                                          "--out", str(tmp_path / "run"), "--dry-run"], capsys))
