"""Every mistake a user can make, through the installed `distill` script: an exit code, one line, no traceback.

Usage mistakes get click's usage message and exit 2; a bad input file, option or folder gets one line
`error: FILE:LINE: ...` and exit 2, before any teacher call (the loopback server counts them); a run
whose items all failed exits 1. The table is the contract; each row was a traceback or a silent exit 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, error_lines, tiny_copy
from fakeapi import FakeAPI


@dataclass
class Case:
    id: str
    setup: Callable[[Path, str], list[str]]  # (workspace, base URL) -> the arguments
    code: int
    says: str  # a piece of the one error line (or of the usage message)


def generate_args(ws: Path, url: str, *extra: str, taxonomy: str = "qa.yaml") -> list[str]:
    return ["generate", "-t", str(ws / "tiny" / taxonomy), "--teacher", "openai:gpt-4o-mini", "--base-url", url,
            "--out", str(ws / "run"), *extra]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def with_heldout(ws: Path, url: str) -> list[str]:
    edit(ws / "tiny" / "qa.yaml", "tree:\n", "heldout:\n  - {path: ../heldout/missing.jsonl, fields: [question]}\ntree:\n")
    return generate_args(ws, url)


def validate_heldout(ws: Path, url: str) -> list[str]:
    with_heldout(ws, url)
    return ["taxonomy", "validate", str(ws / "tiny" / "qa.yaml")]


def bad_seed_bytes(ws: Path, url: str) -> list[str]:
    with (ws / "tiny" / "seeds" / "respiratory.jsonl").open("ab") as handle:
        handle.write(b'{"id": "resp-3", "question": "Caf\xe9?", "answer": "Latin-1, not UTF-8."}\n')
    return generate_args(ws, url)


def bad_taxonomy_bytes(ws: Path, url: str) -> list[str]:
    edit(ws / "tiny" / "qa.yaml", "description: Everyday health questions", "description: x")
    path = ws / "tiny" / "qa.yaml"
    path.write_bytes(path.read_bytes().replace(b"description: x", b"description: \xff\xfe"))
    return ["taxonomy", "validate", str(path)]


def bad_curate_bytes(ws: Path, url: str) -> list[str]:
    good = {"messages": [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because it is."}]}
    (ws / "data.jsonl").write_bytes(json.dumps(good).encode() + b"\n" + b'{"messages": "\x81"}\n')
    return ["curate", str(ws / "data.jsonl"), "--out", str(ws / "curated")]


def bad_heldout_csv(ws: Path, url: str) -> list[str]:
    good = {"messages": [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because it is."}]}
    (ws / "data.jsonl").write_text(json.dumps(good) + "\n")
    (ws / "held.csv").write_bytes(b"question,answer\nWhat is it?,This\nCaf\xe9 or tea?,Tea\n")
    return ["curate", str(ws / "data.jsonl"), "--out", str(ws / "curated"), "--heldout", str(ws / "held.csv")]


def bad_run_config_bytes(ws: Path, url: str) -> list[str]:
    (ws / "job.yaml").write_bytes(b"taxonomy: tiny/qa.yaml\nout: r\xe9sultat\n")
    return ["run", str(ws / "job.yaml")]


def out_is_a_file(ws: Path, url: str) -> list[str]:
    (ws / "run").write_text("a file, not a folder\n")
    return generate_args(ws, url)


def cache_dir_is_a_file(ws: Path, url: str) -> list[str]:
    (ws / "cache-file").write_text("a file\n")
    return generate_args(ws, url, "--cache-dir", str(ws / "cache-file"))


def deep_tree(ws: Path, url: str) -> list[str]:
    lines = ["name: deep", "system_prompt: Answer.", "tree:"]
    indent = "  "
    for level in range(150):
        lines += [f"{indent}n{level}:", f"{indent}  description: level {level}"]
        if level == 0:
            lines.append(f"{indent}  seeds: seeds/respiratory.jsonl")
        if level < 149:
            lines.append(f"{indent}  children:")
        indent += "    "
    (ws / "tiny" / "deep.yaml").write_text("\n".join(lines) + "\n")
    return generate_args(ws, url, taxonomy="deep.yaml")


def alias_bomb(ws: Path, url: str) -> list[str]:
    # ~1 KB whose aliases expand to 10^6 leaves (each level repeats the one above ten times).
    lines = ["name: bomb", "system_prompt: Answer.", "x0: &x0 {description: leaf, seeds: seeds/respiratory.jsonl}"]
    for level in range(1, 7):
        children = ", ".join(f"c{i}: *x{level - 1}" for i in range(10))
        lines.append(f"x{level}: &x{level} {{description: level, children: {{{children}}}}}")
    lines.append("tree: {root: *x6}")
    (ws / "tiny" / "bomb.yaml").write_text("\n".join(lines) + "\n")
    assert (ws / "tiny" / "bomb.yaml").stat().st_size < 1500
    return ["taxonomy", "validate", str(ws / "tiny" / "bomb.yaml")]


def huge_quota(ws: Path, url: str) -> list[str]:
    edit(ws / "tiny" / "qa.yaml", "per_leaf: 2", "per_leaf: 50000000")
    return generate_args(ws, url)


def huge_quota_limited(ws: Path, url: str) -> list[str]:
    huge_quota(ws, url)
    return generate_args(ws, url, "--limit", "2", "--dry-run")


def api_config(text: str) -> Callable[[Path, str], list[str]]:
    def setup(ws: Path, url: str) -> list[str]:
        (ws / "api.yaml").write_text(text)
        return generate_args(ws, url, "--api-config", str(ws / "api.yaml"))
    return setup


def broken_template(ws: Path, url: str) -> list[str]:
    (ws / "tiny" / "prompts").mkdir()
    (ws / "tiny" / "prompts" / "qa_response.j2").write_text("{{ system_prompt }}\n{% for axis in axes %}\n")
    return generate_args(ws, url)


def undefined_in_template(ws: Path, url: str) -> list[str]:
    (ws / "tiny" / "prompts").mkdir()
    (ws / "tiny" / "prompts" / "qa_response.j2").write_text("{{ system_prompt }} {{ nope.field }}\n")
    return generate_args(ws, url)


def duplicate_seed_id(ws: Path, url: str) -> list[str]:
    with (ws / "tiny" / "seeds" / "respiratory.jsonl").open("a") as handle:
        handle.write('{"id": "resp-1", "question": "Again?", "answer": "The same id twice."}\n')
    return ["taxonomy", "validate", str(ws / "tiny" / "qa.yaml")]


def unknown_axis_value(ws: Path, url: str) -> list[str]:
    with (ws / "tiny" / "seeds" / "respiratory.jsonl").open("a") as handle:
        handle.write('{"id": "resp-3", "question": "Q?", "answer": "A.", "axes": {"question_type": "diagnsis"}}\n')
    return ["taxonomy", "validate", str(ws / "tiny" / "qa.yaml")]


def missing_student(ws: Path, url: str) -> list[str]:
    (ws / "run").mkdir()
    (ws / "run" / "eval.jsonl").write_text(json.dumps({"id": "e1", "messages": [
        {"role": "user", "content": "What is asthma?"}, {"role": "assistant", "content": "A lung disease."}]}) + "\n")
    return ["eval", str(ws / "run"), "--student", str(ws / "no-such-adapter")]


def eval_cache_dir_is_a_file(ws: Path, url: str) -> list[str]:
    (ws / "cache-file").write_text("a file\n")
    return [*missing_student(ws, url), "--judge", "openai:gpt-4o-mini", "--cache-dir", str(ws / "cache-file")]


def curate_over_a_run(ws: Path, url: str) -> list[str]:
    (ws / "run").mkdir()
    (ws / "run" / "run.db").write_bytes(b"")
    (ws / "run" / "dataset.jsonl").write_text("")
    return ["curate", str(ws / "run"), "--out", str(ws / "run")]


def run_config(text: str) -> Callable[[Path, str], list[str]]:
    def setup(ws: Path, url: str) -> list[str]:
        (ws / "job.yaml").write_text(text)
        return ["run", str(ws / "job.yaml")]
    return setup


def train_config(ws: Path, url: str) -> list[str]:
    (ws / "train.yaml").write_text("qlora: false\nlora_r: many\n")
    return ["train", str(ws / "run"), "--config", str(ws / "train.yaml")]


def markup_in_description(ws: Path, url: str) -> list[str]:
    edit(ws / "tiny" / "qa.yaml", "description: Lungs and airways", "description: 'Lungs [/x] and [bold] airways'")
    return ["taxonomy", "show", str(ws / "tiny" / "qa.yaml")]


def fixed(*args: str) -> Callable[[Path, str], list[str]]:
    return lambda ws, url: [arg.replace("TAX", str(ws / "tiny" / "qa.yaml")) for arg in args]


USAGE = [
    Case("no-arguments", fixed(), 2, "Usage"),
    Case("plain-help", fixed("--help"), 0, "Usage"),
    Case("unknown-command", fixed("frobnicate"), 2, "No such command 'frobnicate'"),
    Case("missing-argument", fixed("curate"), 2, "Missing argument 'INPUT'"),
    Case("group-without-command", fixed("taxonomy"), 2, "Usage"),
    Case("limit-zero", fixed("generate", "-t", "TAX", "--limit", "0"), 2, "Invalid value for '--limit'"),
    Case("limit-not-a-number", fixed("generate", "-t", "TAX", "--limit", "abc"), 2, "Invalid value for '--limit'"),
    Case("unknown-option", fixed("generate", "--bogus"), 2, "No such option: --bogus"),
]
INPUT = [
    Case("heldout-missing", with_heldout, 2, "qa.yaml:15: heldout.0.path:"),
    Case("heldout-missing-validate", validate_heldout, 2, "relative to the taxonomy file's folder"),
    Case("seeds-not-utf8", bad_seed_bytes, 2, "respiratory.jsonl:3: not UTF-8 text (byte 0xe9"),
    Case("taxonomy-not-utf8", bad_taxonomy_bytes, 2, "qa.yaml:2: not UTF-8 text"),
    Case("curate-input-not-utf8", bad_curate_bytes, 2, "data.jsonl:2: not UTF-8 text"),
    Case("heldout-csv-not-utf8", bad_heldout_csv, 2, "held.csv:3: not UTF-8 text"),
    Case("run-config-not-utf8", bad_run_config_bytes, 2, "job.yaml:2: not UTF-8 text"),
    Case("out-is-a-file", out_is_a_file, 2, "is a file, not a folder"),
    Case("cache-dir-is-a-file", cache_dir_is_a_file, 2, "--cache-dir"),
    Case("tree-150-levels", deep_tree, 2, "nested more than 64 levels deep"),
    Case("alias-bomb", alias_bomb, 2, "expands to more than 200,000 YAML nodes"),
    Case("huge-quota", huge_quota, 2, "the plan has 100,000,000 items"),
    Case("huge-quota-with-limit", huge_quota_limited, 0, "2 items"),
    Case("api-config-negative-concurrency", api_config("openai:\n  concurrency: -5\n"), 2,
         "api.yaml:2: openai.concurrency: Input should be greater than or equal to 1"),
    Case("api-config-zero-concurrency", api_config("openai:\n  concurrency: 0\n"), 2, "api.yaml:2: openai.concurrency"),
    Case("api-config-price-word", api_config("prices:\n  gpt-4o-mini: {input: cheap, output: 1}\n"), 2,
         "api.yaml:2: prices.gpt-4o-mini.input: Input should be a valid number"),
    Case("api-config-rpm-word", api_config("openai:\n  rpm: x\n"), 2, "api.yaml:2: openai.rpm"),
    Case("api-config-unknown-key", api_config("openai:\n  rpm: 60\n  concurency: 4\n"), 2,
         "api.yaml:3: openai.concurency: unknown field"),
    Case("api-config-not-a-mapping", api_config("- 1\n"), 2, "api.yaml:1: expected a mapping"),
    Case("template-syntax", broken_template, 2, "qa_response.j2:2: prompt template syntax"),
    Case("template-undefined", undefined_in_template, 2, "'nope' is undefined"),
    Case("duplicate-seed-id", duplicate_seed_id, 2, "respiratory.jsonl:3: seed id 'resp-1' is also used at"),
    Case("seed-axis-value", unknown_axis_value, 2, "'diagnsis' is not a value of axis 'question_type'"),
    Case("budget-for-local-teacher", fixed("generate", "-t", "TAX", "--budget-usd", "1"), 2, "only for API teachers"),
    Case("batch-size-for-api", lambda ws, url: generate_args(ws, url, "--batch-size", "4"), 2,
         "--batch-size: only for in-process teachers"),
    Case("eval-missing-student", missing_student, 2, "student folder does not exist"),
    Case("eval-cache-dir-is-a-file", eval_cache_dir_is_a_file, 2, "--cache-dir"),
    Case("curate-over-its-run", curate_over_a_run, 2, "is a generation run directory"),
    Case("run-config-unknown-field", run_config("taxonomy: tiny/qa.yaml\ngenerat: {limit: 2}\n"), 2,
         "job.yaml:2: generat: unknown field"),
    Case("run-config-bad-limit", run_config("taxonomy: tiny/qa.yaml\ngenerate:\n  limit: 0\n"), 2,
         "job.yaml:3: generate.limit"),
    Case("train-config-bad-value", train_config, 2, "train.yaml:2: lora_r: Input should be a valid integer"),
    Case("heldout-option-missing", lambda ws, url: ["curate", str(ws / "tiny" / "seeds" / "respiratory.jsonl"),
                                                    "--heldout", "nope.jsonl:question"], 2,
         "nope.jsonl: --heldout: file not found"),
    Case("markup-in-user-text", markup_in_description, 0, "Lungs [/x] and [bold] airways"),
]


@pytest.fixture(scope="module")
def api():
    with FakeAPI() as server:
        yield server


@pytest.mark.parametrize("case", USAGE + INPUT, ids=lambda case: case.id)
def test_a_mistake_is_one_line_and_an_exit_code(tmp_path, api, case):
    tiny_copy(tmp_path)
    args = case.setup(tmp_path, api.url + "/v1")
    sent = sum(api.requests.values())
    done = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == case.code, output
    assert sum(api.requests.values()) == sent  # nothing was asked of the teacher
    if case in USAGE:
        assert case.says in output
        if case.code == 2 and case.says != "Usage":
            assert [line for line in error_lines(done.stderr) if line.startswith("Error:")] == [f"Error: {case.says}"] \
                or case.says in error_lines(done.stderr)[-1]
    elif case.code == 0:
        assert case.says in done.stdout
    else:
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert case.says in lines[0], lines[0]


@pytest.mark.slow
def test_a_run_whose_items_all_failed_exits_1_and_says_connection_refused(tmp_path):
    tiny_copy(tmp_path)
    args = ["generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
            "--base-url", "http://127.0.0.1:1/v1", "--limit", "3", "--max-retries", "0", "--out", str(tmp_path / "run")]
    done = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: nothing was kept: 3 of 3 items failed"), done.stderr
    assert "connection refused" in lines[0] and "timeout" not in lines[0] and "--retry-failed" in lines[0]
    rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 3 and all("connection refused" in r["detail"] for r in rejected)


@pytest.mark.slow
def test_a_corrupt_run_db_is_named_and_the_exports_are_untouched(tmp_path):
    tiny_copy(tmp_path)
    with FakeAPI() as server:
        args = generate_args(tmp_path, server.url + "/v1")
        first = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))
        assert first.returncode == 0, first.stderr
        exports = {name: (tmp_path / "run" / name).read_bytes() for name in ("dataset.jsonl", "rejected.jsonl",
                                                                             "stats.json")}
        for extra in ("run.db-wal", "run.db-shm"):
            (tmp_path / "run" / extra).unlink(missing_ok=True)
        with (tmp_path / "run" / "run.db").open("r+b") as handle:
            handle.truncate(1000)
        sent = sum(server.requests.values())
        again = distill(*args, cwd=tmp_path, env=cli_env(tmp_path))
        assert sum(server.requests.values()) == sent
    lines = error_lines(again.stderr)
    assert again.returncode == 2 and "Traceback" not in again.stderr and len(lines) == 1, again.stderr
    assert "run.db is corrupt" in lines[0] and "move the database aside" in lines[0]
    assert {name: (tmp_path / "run" / name).read_bytes() for name in exports} == exports


@pytest.mark.slow
def test_distill_run_retry_failed_gets_past_an_outage(tmp_path):
    tiny_copy(tmp_path)
    (tmp_path / "job.yaml").write_text(
        "taxonomy: tiny/qa.yaml\nout: run\ngenerate: {teacher: 'openai:gpt-4o-mini', limit: 1}\n")
    env = cli_env(tmp_path)
    down = distill("generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
                   "--base-url", "http://127.0.0.1:1/v1", "--limit", "1", "--max-retries", "0",
                   "--out", str(tmp_path / "run"), cwd=tmp_path, env=env)
    assert down.returncode == 1
    with FakeAPI() as server:  # the server is back
        env["OPENAI_BASE_URL"] = server.url + "/v1"
        stuck = distill("run", str(tmp_path / "job.yaml"), cwd=tmp_path, env=env)
        assert stuck.returncode == 1 and "1 of 1 items failed" in stuck.stderr and "--retry-failed" in stuck.stderr
        assert sum(server.requests.values()) == 0
        done = distill("run", str(tmp_path / "job.yaml"), "--retry-failed", cwd=tmp_path, env=env)
        assert sum(server.requests.values()) == 2  # the failed item's two calls, once
    # Generation finished; one kept example is too few to split, the next stage's own clear stop.
    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert state["done"]["generate"]["kept"] == 1 and state["done"]["generate"]["failed"] == 0
    assert done.returncode == 2 and "too few to train" in done.stderr and "Traceback" not in done.stderr


def test_retry_failed_in_the_run_config(tmp_path):
    from distill.run import load_run_config

    tiny_copy(tmp_path)
    (tmp_path / "job.yaml").write_text("taxonomy: tiny/qa.yaml\ngenerate: {retry_failed: true}\n")
    assert load_run_config(tmp_path / "job.yaml").generate.retry_failed is True


@pytest.mark.slow
def test_the_help_of_every_command_exits_0(tmp_path):
    for command in ("generate", "curate", "split", "train", "eval", "run", "taxonomy"):
        done = distill(command, "--help", cwd=tmp_path, env=cli_env(tmp_path))
        assert done.returncode == 0 and "Usage" in done.stdout and "Traceback" not in done.stderr, command


@pytest.mark.slow
def test_python_dash_m_distill_cli_behaves_the_same(tmp_path):
    done = subprocess.run([sys.executable, "-m", "distill.cli", "frobnicate"], cwd=tmp_path, env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 2 and "No such command" in done.stderr and "Traceback" not in done.stderr
    # `accelerate launch -m distill.train` runs the train command alone, with the same handling.
    for args, says in ((["--bogus"], "No such option: --bogus"), ([str(tmp_path / "nope")], "run directory does not exist")):
        done = subprocess.run([sys.executable, "-m", "distill.train", *args], cwd=tmp_path, env=cli_env(tmp_path),
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_distill_run_checks_the_generations_inputs_before_it_makes_its_folder(tmp_path):
    tiny_copy(tmp_path)
    (tmp_path / "tiny" / "seeds" / "respiratory.jsonl").unlink()  # the taxonomy names it
    (tmp_path / "job.yaml").write_text(
        "taxonomy: tiny/qa.yaml\nout: run\ngenerate: {teacher: 'openai:gpt-4o-mini', limit: 1}\n")
    done = distill("run", str(tmp_path / "job.yaml"), cwd=tmp_path, env=cli_env(tmp_path))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1 and "respiratory.jsonl" in lines[0], done.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind for a mistake in the inputs
