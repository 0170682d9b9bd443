"""The teacher registry: distill's own backends are entry points as a plugin's are, found by the same path, and
`--teacher`'s help lists what the registry holds, an installed plugin's teacher included.

distill (a copy of this checkout) and the tests' plugin package (tests/plugins/distill-shout) are installed with
`pip install --target` into folders of their own, so the registry reads the metadata pip writes from
pyproject.toml, as on a user's machine; the shared environment stays as it was. Each test runs twice: with that
metadata, and with metadata that predates distill's teacher entry points (an editable install made before
pyproject.toml named them), where the built-ins must work all the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from cli_helpers import ROOT, TINY, cli_env, distill
from distill.teachers.builtin import BACKENDS
from fakeapi import FakeAPI

PLUGIN = ROOT / "tests" / "plugins" / "distill-shout"
TEACHER_ENTRY_POINTS = re.compile(r'\[project\.entry-points\."distill\.teachers"\]\n(?:[^\[\n].*\n)+')


def test_pyproject_entry_points_are_the_registry_builtins():
    """pyproject.toml registers exactly the backends builtin.BACKENDS holds, in its order, each pointing at it."""
    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["distill.teachers"]
    assert list(points) == list(BACKENDS)
    for name, value in points.items():
        assert EntryPoint(name, value, "distill.teachers").load() is BACKENDS[name], name


def _pip_install(source: Path, target: Path, build: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, timeout=300, cwd=build,
                   env={**os.environ, "PIP_NO_INDEX": "1"})


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("plugin-site")
    _pip_install(PLUGIN, target, tmp_path_factory.mktemp("plugin-build"))
    return target


@pytest.fixture(scope="module", params=["entry points", "stale metadata"])
def distill_site(request, tmp_path_factory) -> Path:
    """distill installed from a copy of this checkout; "stale metadata": from a pyproject.toml without its teacher
    entry points."""
    source = tmp_path_factory.mktemp("distill-source")
    shutil.copytree(ROOT / "distill", source / "distill", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", source / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text()
    if request.param == "stale metadata":
        pyproject, removed = TEACHER_ENTRY_POINTS.subn("", pyproject)
        assert removed == 1
    (source / "pyproject.toml").write_text(pyproject)
    target = tmp_path_factory.mktemp("distill-site")
    _pip_install(source, target, tmp_path_factory.mktemp("distill-build"))
    [metadata] = target.glob("distill-*.dist-info")
    assert ("[distill.teachers]" in (metadata / "entry_points.txt").read_text()) == (request.param == "entry points")
    return target


def env_with(tmp_path: Path, *sites: Path) -> dict[str, str]:
    return cli_env(tmp_path, PYTHONPATH=os.pathsep.join(str(site) for site in sites))


def teacher_help(env: dict[str, str], tmp_path: Path) -> str:
    done = distill("generate", "--help", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if "--teacher" in line]
    return " ".join(line.replace("│", " ").split())


@pytest.mark.slow
def test_teacher_help_lists_the_builtins_and_each_installed_plugin(distill_site, plugin_site, tmp_path):
    builtins = "local | hf:<model> | openai:<model> | anthropic:<model> | vllm:<model>"
    alone = teacher_help(env_with(tmp_path, distill_site), tmp_path)
    assert alone.endswith(f" {builtins} [default: local]"), alone
    with_plugin = teacher_help(env_with(tmp_path, distill_site, plugin_site), tmp_path)
    assert with_plugin.endswith(f" {builtins} | echo:<model> [default: local]"), with_plugin


@pytest.mark.slow
def test_a_builtin_and_a_plugin_teacher_run_through_the_registry(distill_site, plugin_site, tmp_path):
    env = env_with(tmp_path, distill_site, plugin_site)
    with FakeAPI() as api:
        done = distill("generate", "-t", str(TINY / "qa.yaml"), "--teacher", "openai:gpt-4o-mini", "--limit", "2",
                       "--base-url", api.url + "/v1", "--out", str(tmp_path / "openai"), "--no-preflight",
                       cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert api.total_paid() > 0
    assert json.loads((tmp_path / "openai" / "stats.json").read_text())["counts"]["planned"] == 2
    # An unknown spec names every teacher the registry holds, the plugin's too.
    unknown = distill("generate", "-t", str(TINY / "qa.yaml"), "--teacher", "ecko:x", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert ("use one of: local, hf:<model>, openai:<model>, anthropic:<model>, vllm:<model>, echo:<model>"
            in unknown.stderr), unknown.stderr
    # `distill plugins` lists what other packages add, never distill's own backends.
    listed = distill("plugins", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    names = {line.split("│")[1].strip() for line in listed.stdout.splitlines() if line.count("│") >= 5}
    assert names == {"echo", "shout", "no_digits"}
