"""Bad values and damaged files, as a user meets them: through the installed `distill` script (and `import
distill` for the Python API). Every option is checked by the one pydantic model its flag, its `distill run`
config key and its keyword share; a damaged input is one line naming the file; a run whose teacher went
away says so and names --retry-failed. Each case was a traceback, a silent exit 0 or a line naming the
wrong file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

import distill
from cli_helpers import (
    TESTS,
    TINY,
    cli_env,
    distill as run_distill,
    distill_command,
    error_lines,
    in_own_mount,
    tiny_copy,
    wait_for,
)
from fakeapi import FakeAPI, Faults

DATASET = TESTS / "fixtures" / "medical-limit24.jsonl"  # 24 real examples


def one_error(done: subprocess.CompletedProcess, code: int = 2, progress: bool = False) -> str:
    """The single `error: ...` line of a command that failed as a user's mistake should: no traceback.
    `progress`: the command said what it was doing first (loading a model): the error is its last line."""
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = error_lines(done.stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    assert done.returncode == code and len(errors) == 1 and errors[0] == lines[-1], done.stderr
    assert progress or len(lines) == 1, done.stderr
    return lines[-1]


# `distill run CONFIG.yaml`: the generate section's teacher options are checked like their flags.
@pytest.mark.parametrize("option, says", [
    ("concurrency: 0", "job.yaml:7: generate.teacher_options.concurrency: Input should be greater than or equal to 1"),
    ("concurency: 4", "job.yaml:7: generate.teacher_options.concurency: unknown field 'concurency'"),
    ("rpm: 0", "job.yaml:7: generate.teacher_options.rpm: Input should be greater than 0"),
    ("timeout_s: -1", "job.yaml:7: generate.teacher_options.timeout_s: Input should be greater than 0"),
    ("max_retries: -2", "job.yaml:7: generate.teacher_options.max_retries: Input should be greater than or equal"),
    ("api_config: {openai: {tpm: 0}}", "job.yaml:7: generate.teacher_options.api_config.openai.tpm: Input should be"),
], ids=["concurrency-0", "unknown-key", "zero-rpm", "negative-timeout", "negative-retries", "nested-api-config"])
def test_a_run_configs_teacher_options_are_checked_like_the_flags(tmp_path, option, says):
    tiny_copy(tmp_path)
    (tmp_path / "job.yaml").write_text(
        "taxonomy: tiny/qa.yaml\nout: run\ngenerate:\n  teacher: openai:gpt-4o-mini\n  teacher_options:\n"
        f"    base_url: http://127.0.0.1:1/v1\n    {option}\n")
    done = run_distill("run", "job.yaml", cwd=tmp_path, env=cli_env(tmp_path))
    assert says in one_error(done)
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_the_python_apis_teacher_options_are_checked_before_anything_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    with FakeAPI() as api:
        for options, field in (({"concurrency": 0}, "teacher_options.concurrency"),
                               ({"concurency": 4}, "teacher_options.concurency"),
                               ({"tpm": 0}, "teacher_options.tpm")):
            with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
                distill.generate(TINY / "qa.yaml", teacher="openai:gpt-4o-mini", out=tmp_path / "run", progress=False,
                                 teacher_options={"base_url": api.url + "/v1", **options})
        assert sum(api.requests.values()) == 0
    # A plugin's teacher reads names of its own: they are passed on, not refused.
    from distill.generate.runner import GenerateSettings

    assert GenerateSettings(teacher="shout:x", teacher_options={"volume": 11}).teacher_options.model_extra == {
        "volume": 11}


@pytest.mark.parametrize("flags, says", [
    (["--min-words", "10", "--max-words", "5"], "bad option: max_words: 5 is below min_words (10)"),
    (["--language", "xx"], "bad option: language: unknown language 'xx'; the check knows ar, de, el, en"),
    (["--labels", ","], "bad option: labels: an empty label"),
    (["--labels", ""], "bad option: labels: an empty label"),
    (["--heldout", "HELDOUT:"], "an empty field name"),
    (["--heldout", "HELDOUT:question,,"], "an empty field name"),
], ids=["min-above-max", "unknown-language", "comma-labels", "empty-labels", "no-heldout-fields", "blank-field"])
def test_contradictory_or_empty_curate_flags_are_refused(tmp_path, flags, says):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text('{"question": "What is asthma?"}\n')
    flags = [flag.replace("HELDOUT", str(heldout)) for flag in flags]
    done = run_distill("curate", str(DATASET), "--out", str(tmp_path / "out"), *flags, cwd=tmp_path,
                       env=cli_env(tmp_path))
    assert says in one_error(done)
    assert not (tmp_path / "out" / "dataset.jsonl").exists()


def test_an_empty_heldout_field_list_in_a_taxonomy_is_refused_at_its_line(tmp_path):
    """`fields: []` matched no text at all: the set decontaminated against nothing, without a word."""
    folder = tiny_copy(tmp_path)
    (folder / "heldout.jsonl").write_text('{"question": "What is asthma?"}\n')
    text = (folder / "qa.yaml").read_text()
    (folder / "qa.yaml").write_text(text.replace("tree:\n", "heldout:\n  - {path: heldout.jsonl, fields: []}\ntree:\n"))
    done = run_distill("taxonomy", "validate", str(folder / "qa.yaml"), cwd=tmp_path, env=cli_env(tmp_path))
    assert f"{folder / 'qa.yaml'}:15: heldout.0.fields: no field names" in one_error(done)


def test_the_python_apis_curate_options_are_checked_like_the_flags(tmp_path):
    for options, field in (({"min_words": 5, "max_words": 2}, "max_words"), ({"language": "klingon"}, "language"),
                           ({"labels": []}, "labels"), ({"min_word": 3}, "min_word")):
        with pytest.raises(ValidationError, match=field):
            distill.curate(DATASET, progress=False, **options)
    assert len(distill.curate(DATASET, progress=False, language="ANY", workers=1).kept) > 0  # 'any': no check


def test_max_steps_0_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    done = run_distill("train", str(tmp_path / "run"), "--max-steps", "0", cwd=tmp_path, env=cli_env(tmp_path))
    assert "'max_steps': 0 steps would train nothing" in one_error(done)
    with pytest.raises(ValidationError, match="max_steps"):
        distill.train(tmp_path / "run", max_steps=0)


def parquet_copy(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_a_truncated_parquet_file_is_one_line_naming_it(tmp_path):
    pytest.importorskip("pyarrow")
    shards = tmp_path / "shards"
    shards.mkdir()
    parquet_copy(shards / "part-0.parquet")
    whole = parquet_copy(shards / "part-1.parquet").read_bytes()
    (shards / "part-1.parquet").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    done = run_distill("curate", str(shards), "--out", str(tmp_path / "out"), cwd=tmp_path, env=cli_env(tmp_path))
    line = one_error(done)
    assert f"{shards / 'part-1.parquet'}: not a readable Parquet file" in line, line


def test_a_datasets_folder_without_its_state_is_one_line_naming_it(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "heldout-set"
    datasets.Dataset.from_list([{"question": "What is asthma?"}, {"question": "Is a cold viral?"}]).save_to_disk(
        str(folder))
    (folder / "state.json").unlink()
    done = run_distill("curate", str(DATASET), "--out", str(tmp_path / "out"), "--heldout", f"{folder}:question",
                       cwd=tmp_path, env=cli_env(tmp_path))
    assert f"{folder}: not a readable `datasets` folder" in one_error(done)


@pytest.mark.model
@pytest.mark.train
def test_a_damaged_adapter_is_one_line_naming_its_file(tmp_path):
    from train_helpers import make_run

    run = make_run(tmp_path / "run")
    env = {**cli_env(tmp_path), "OMP_NUM_THREADS": "1"}
    trained = run_distill("train", str(run), "--max-steps", "1", "--no-qlora", "--max-length", "64", "--batch-size",
                          "2", "--threads", "1", cwd=tmp_path, env=env, timeout=900)
    assert trained.returncode == 0, trained.stderr
    # Into a pipe, the libraries' own bars and deprecation notices are not written (distill's lines are).
    assert "Tokenizing train dataset" not in trained.stderr and "Loading weights" not in trained.stderr
    assert "FutureWarning" not in trained.stderr and "memory estimate on cpu" in trained.stderr
    weights = run / "student" / "adapter_model.safetensors"
    weights.write_bytes(b"not safetensors at all" * 8)  # overwritten by something else
    exported = run_distill("export-model", str(run / "student"), "--out", str(tmp_path / "export"), cwd=tmp_path,
                           env=env, timeout=900)
    assert f"{weights}: damaged adapter file" in one_error(exported, progress=True)
    evaluated = run_distill("eval", str(run), "--student", str(run / "student"), cwd=tmp_path, env=env, timeout=900)
    assert f"{weights}: damaged adapter file" in one_error(evaluated, progress=True)


def test_a_corrupt_response_cache_is_named_not_run_db(tmp_path):
    """run.db and the response cache are both open during a run: the line names the one that is corrupt."""
    tiny_copy(tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "responses.sqlite").write_bytes(b"\x13" * 8192)  # not a database
    with FakeAPI() as api:
        done = run_distill("generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
                           "--base-url", api.url + "/v1", "--out", str(tmp_path / "run"), cwd=tmp_path,
                           env=cli_env(tmp_path))
        assert sum(api.requests.values()) == 0
    line = one_error(done)
    assert f"{tmp_path / 'cache' / 'responses.sqlite'} is corrupt" in line and "run.db" not in line, line


def test_a_full_disk_while_writing_the_curated_dataset_names_the_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    command = " ".join(f"'{part}'" for part in distill_command("curate", str(DATASET), "--out", str(disk / "out"),
                                                              "--workers", "1"))
    done = in_own_mount(tmp_path, f"mount -t tmpfs -o size=40k tmpfs '{disk}' || exit 99\n{command}\n",
                        cli_env(tmp_path))
    line = one_error(done, code=1)
    assert f"{disk / 'out' / 'dataset.jsonl'}: the disk is full" in line, line


def generated(db: Path) -> int:
    """Plan items answered so far, read as another process would while the run writes (read-only: connecting
    must not create an empty run.db before distill makes its own)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM plan_items WHERE status = 'generated'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_a_teacher_that_goes_away_mid_run_is_named_and_retry_failed_asks_again_for_its_items(tmp_path):
    tiny_copy(tmp_path, per_leaf=4)  # 8 items, 16 calls
    env = cli_env(tmp_path)
    args = ["generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini", "--out",
            str(tmp_path / "run"), "--no-curate", "--concurrency", "1", "--max-retries", "1", "--no-preflight"]
    api = FakeAPI(Faults(latency_s=0.2)).start()
    proc = subprocess.Popen(distill_command(*args, "--base-url", api.url + "/v1"),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: generated(tmp_path / "run" / "run.db") >= 3, proc)  # three items done, then it is gone
    finally:
        api.stop()
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = one_error(done, code=1)
    assert "items failed because the teacher stopped answering" in line, line
    assert f"connection refused: nothing is listening at {api.url}" in line and "--retry-failed" in line, line
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    failed, kept = stats["counts"]["failed"], stats["counts"]["kept"]
    assert failed > 0 and kept >= 3 and f"{failed} of 8 items failed" in line
    paid_before = dict(api.paid)
    with FakeAPI() as back:  # the teacher answers again (at another port)
        again = run_distill(*args, "--base-url", back.url + "/v1", "--retry-failed", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert not set(back.paid) & {prompt for prompt, n in paid_before.items() if n}  # nothing answered twice
    assert json.loads((tmp_path / "run" / "stats.json").read_text())["counts"]["kept"] == 8
