"""Plugins: a package installed beside distill adds a teacher, a task and a check through entry points.

The package (tests/plugins/distill-shout) is installed with `pip install --target` into a folder of
its own, so the shared environment stays as it was; the CLI sees it through PYTHONPATH.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill
from distill.records import read_jsonl

PACKAGE = ROOT / "tests" / "plugins" / "distill-shout"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("plugin-site")
    build = tmp_path_factory.mktemp("plugin-build")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PACKAGE)], check=True, timeout=300, cwd=build,
                   env={**cli_env(build), "PIP_NO_INDEX": "1"})
    return target


def env_with(site: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, PYTHONPATH=f"{ROOT}:{site}")


TAXONOMY = """\
name: gardens
system_prompt: Shout.
task: shout
generation: {per_leaf: 4, seeds_per_prompt: 1}
tree:
  roses: {description: Climbing roses, seeds: [{id: r1, text: Roses climb., loud: ROSES CLIMB!}]}
  ponds: {description: Garden ponds, seeds: [{id: p1, text: Ponds are calm., loud: PONDS ARE CALM!}]}
"""


@pytest.mark.slow
def test_distill_plugins_lists_each_kind_with_its_module_and_package(site, tmp_path):
    done = distill("plugins", cwd=tmp_path, env=env_with(site, tmp_path))
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in done.stdout.splitlines() if line.count("│") >= 5}
    assert rows["echo"] == ["teacher", "distill_shout.teacher:EchoTeacher", "distill-shout 0.1.0"]
    assert rows["shout"] == ["task", "distill_shout.tasks:SHOUT", "distill-shout 0.1.0"]
    assert rows["no_digits"] == ["check", "distill_shout.checks:no_digits", "distill-shout 0.1.0"]
    # Without the package on the path, the same command says there are none.
    bare = distill("plugins", cwd=tmp_path, env=cli_env(tmp_path))
    assert bare.returncode == 0 and "no plugins installed" in bare.stdout


def test_a_plugin_teacher_task_and_check_through_generate(site, tmp_path):
    taxonomy = tmp_path / "gardens.yaml"
    taxonomy.write_text(TAXONOMY)
    done = distill("generate", "-t", str(taxonomy), "--teacher", "echo:cheerful", "--out", str(tmp_path / "run"),
                   cwd=tmp_path, env=env_with(site, tmp_path))
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["task"] == "shout" and stats["counts"]["planned"] == 8
    kept = read_jsonl(tmp_path / "run" / "dataset.jsonl")
    rejected = read_jsonl(tmp_path / "run" / "rejected.jsonl")
    assert kept and rejected and len(kept) + len(rejected) == 8
    for row in kept:  # the plugin teacher wrote them, the plugin task shaped them
        user, assistant = (m["content"] for m in row["messages"])
        assert "cheerful" in user and assistant == user.upper().rstrip(".") + "!"
        assert row["meta"]["teacher"] == "echo:cheerful"
    # Every sentence with a number was turned away by the plugin's check, under its name.
    assert all(r["reason"] == "no_digits" and r["stage"] == "check" for r in rejected)
    assert all(any(ch.isdigit() for ch in r["example"]["messages"][1]["content"].split("(")[0]) for r in rejected)


def test_an_unknown_prefix_names_the_installed_plugin_teachers(site, tmp_path):
    taxonomy = tmp_path / "gardens.yaml"
    taxonomy.write_text(TAXONOMY)
    done = distill("generate", "-t", str(taxonomy), "--teacher", "ecko:x", cwd=tmp_path, env=env_with(site, tmp_path))
    assert done.returncode == 2
    assert "unknown teacher spec 'ecko:x'" in done.stderr and "echo:<model>" in done.stderr
    # A taxonomy naming the plugin task without the plugin installed: one line naming the task line.
    missing = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert missing.returncode == 2 and "gardens.yaml:3: task: unknown task 'shout'" in missing.stderr
