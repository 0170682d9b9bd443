"""The docs site: its generated pages match the code, it builds with `mkdocs build --strict`, and the pages
that error messages name exist."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import ROOT, cli_env, distill, error_lines, tiny_copy

GENERATOR = ROOT / "scripts" / "docs_reference.py"
# A page an error names, as written in the code: page="docs/review.md#the-gate"
PAGE_RE = re.compile(r"""["'](docs/[\w-]+\.md(?:#[\w-]+)?)["']""")


def run_generator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_generated_pages_are_current():
    """docs/cli.md, docs/checks.md and the import graph are what the code says now (else: run the script)."""
    done = run_generator("--check")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_check_names_a_stale_page(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    cli_page = docs / "cli.md"
    cli_page.write_text(cli_page.read_text(encoding="utf-8") + "An option nobody regenerated.\n", encoding="utf-8")
    stale = run_generator("--check", "--docs", str(docs))
    assert stale.returncode == 1
    assert "cli.md is stale" in stale.stderr and "checks.md" not in stale.stderr
    assert run_generator("--docs", str(docs)).returncode == 0  # rewritten
    assert run_generator("--check", "--docs", str(docs)).returncode == 0


def _error_pages() -> set[str]:
    pages = set()
    for source in (ROOT / "distill").rglob("*.py"):
        pages.update(PAGE_RE.findall(source.read_text(encoding="utf-8")))
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
def test_site_builds_strict(site):
    for page in ("index", "cli", "checks", "curation", "python-api", "architecture", "benchmarks"):
        assert (site / ("index.html" if page == "index" else f"{page}/index.html")).is_file(), page
    # The API page is rendered from the docstrings, the benchmarks page from benchmarks/README.md.
    assert 'id="distill.api.generate"' in (site / "python-api" / "index.html").read_text(encoding="utf-8")
    assert "1,000,000 records" in (site / "benchmarks" / "index.html").read_text(encoding="utf-8")


def test_pages_named_by_errors_exist(site):
    pages = _error_pages()
    assert len(pages) >= 5, pages
    for page in pages:
        name, _, anchor = page.removeprefix("docs/").partition("#")
        built = site / name.removesuffix(".md") / "index.html"
        assert built.is_file(), f"{page}: no such page"
        if anchor:
            assert f'id="{anchor}"' in built.read_text(encoding="utf-8"), f"{page}: no such section"


def test_errors_name_their_page(tmp_path):
    """A user's mistake ends with the page that explains it, on the same one line."""
    tiny = tiny_copy(tmp_path)
    env = cli_env(tmp_path)
    spec = distill("generate", "-t", str(tiny / "qa.yaml"), "--teacher", "gpt5", cwd=tmp_path, env=env)
    lines = error_lines(spec.stderr)
    assert spec.returncode == 2 and len(lines) == 1, spec.stderr
    assert lines[0].endswith("; see docs/teachers.md#teacher-specs")

    taxonomy = tiny / "qa.yaml"
    taxonomy.write_text(taxonomy.read_text(encoding="utf-8") + "sytem_prompt: typo\n", encoding="utf-8")
    field = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=env)
    lines = error_lines(field.stderr)
    assert field.returncode == 2 and len(lines) == 1, field.stderr
    assert "sytem_prompt: unknown field" in lines[0]
    assert lines[0].endswith("; see docs/taxonomies.md#the-taxonomy-file")
