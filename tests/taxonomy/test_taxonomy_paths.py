"""A taxonomy reads only files under its project, and no hidden ones: a shared taxonomy cannot make distill read
a key or a password file and send it to a teacher (issue: no file is read that the user did not point at)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_helpers import TINY, cli_env, distill, error_lines

SECRET = "sk-ant-PRIVATE-never-read-me"


def project(tmp_path: Path) -> Path:
    """The project layout this repository keeps: taxonomies/ and seeds/ side by side; returns the taxonomy."""
    root = tmp_path / "project"
    (root / "taxonomies").mkdir(parents=True)
    shutil.copytree(TINY / "seeds", root / "seeds")
    text = (TINY / "qa.yaml").read_text().replace("seeds: seeds/respiratory.jsonl", "seeds: ../seeds/respiratory.jsonl")
    (root / "taxonomies" / "qa.yaml").write_text(text)
    return root / "taxonomies" / "qa.yaml"


def plant(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"id": "s1", "question": "{SECRET}", "answer": "{SECRET}"}}\n')
    return path


def with_line(taxonomy: Path, old: str, new: str) -> None:
    text = taxonomy.read_text()
    assert old in text
    taxonomy.write_text(text.replace(old, new, 1))


def test_the_project_layout_validates(tmp_path):
    taxonomy = project(tmp_path)
    done = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", ["outside", "absolute", "hidden", "link-out", "home-above"])
@pytest.mark.parametrize("field", ["seeds", "context_file", "heldout", "task"])
def test_a_path_leaving_the_project_or_hidden_is_refused_before_it_is_read(tmp_path, case, field):
    taxonomy = project(tmp_path)
    root = taxonomy.parent.parent
    outside = plant(tmp_path / "elsewhere" / "secret.jsonl")
    env = cli_env(tmp_path)
    if case == "outside":
        written = "../../elsewhere/secret.jsonl"
    elif case == "absolute":
        written = str(outside)
    elif case == "hidden":
        plant(root / ".ssh" / "id_rsa.jsonl")
        written = "../.ssh/id_rsa.jsonl"
    elif case == "link-out":
        (root / "seeds" / "innocent.jsonl").symlink_to(outside)
        written = "../seeds/innocent.jsonl"
    else:  # a taxonomy straight in the home folder's child: the folder above is home, so only its own folder
        home = tmp_path / "home"
        (home / "Downloads").mkdir(parents=True)
        plant(home / "notes" / "secret.jsonl")
        shutil.copytree(TINY / "seeds", home / "Downloads" / "seeds")
        taxonomy = home / "Downloads" / "qa.yaml"
        taxonomy.write_text((TINY / "qa.yaml").read_text())
        env = cli_env(tmp_path, HOME=str(home))
        written = "../notes/secret.jsonl"
    if field == "seeds":
        with_line(taxonomy, "seeds: ../seeds/respiratory.jsonl" if case != "home-above" else
                  "seeds: seeds/respiratory.jsonl", f"seeds: {written}")
    elif field == "context_file":
        with_line(taxonomy, "description: Lungs and airways", f"description: Lungs and airways\n    context_file: {written}")
    elif field == "heldout":
        with_line(taxonomy, "tree:\n", f"heldout:\n  - {{path: {written}, fields: [question]}}\ntree:\n")
    else:
        with_line(taxonomy, "task: qa", f"task: {written}")
    for args in (["taxonomy", "validate", str(taxonomy)], ["generate", "-t", str(taxonomy), "--dry-run"]):
        done = distill(*args, cwd=tmp_path, env=env)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "qa.yaml:" in lines[0], lines
        assert any(word in lines[0] for word in ("outside the taxonomy's project", "absolute path", "hidden")), lines
        assert SECRET not in done.stdout + done.stderr
