"""No code runs because a file said so, and no file is read that the user did not point at.

Through the installed `distill` script, with hostile inputs: a template that reaches Python's internals, a
custom check that runs code when imported (or names `os:system`, or a file outside the taxonomy), a run folder
whose run.db and stats.json name such a taxonomy, and InstructLab qna.yaml files whose documents lie outside
the taxonomy's tree. Each attempt leaves a marker file when it succeeds; the markers must stay absent, the
commands must answer in one line (exit 2) where they refuse, and the outside file's text must go nowhere.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from cli_helpers import cli_env, distill, distill_command, error_lines, tiny_copy
from fakeapi import FakeAPI

# A task of one text step; `{prompt}` and `{checks}` are filled in by each test.
TASK = """\
name: echo
seed: {{question: text, answer: text}}
steps:
  - name: ask
    prompt: {prompt}
example:
  messages:
    - {{role: user, content: "{{{{ steps.ask }}}}"}}
    - {{role: assistant, content: "{{{{ steps.ask }}}}"}}
checks: {checks}
"""
SAFE_PROMPT = '"Write one question about {{ topic.title }}: {{ topic.description }}."'


def touch(marker: Path) -> str:
    """Python that leaves `marker` behind when it runs."""
    return f"open({str(marker)!r}, 'w').close()"


def echo_taxonomy(folder: Path, prompt: str = SAFE_PROMPT, checks: str = "[]") -> Path:
    """tests/fixtures/tiny's QA taxonomy, its task replaced by tasks/echo.yaml (in the taxonomy's folder)."""
    (folder / "tasks").mkdir(exist_ok=True)
    (folder / "tasks" / "echo.yaml").write_text(TASK.format(prompt=prompt, checks=checks))
    path = folder / "qa.yaml"
    path.write_text(path.read_text().replace("task: qa", "task: tasks/echo.yaml"))
    return path


def one_error(done: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints (exit 2, no traceback)."""
    lines = error_lines(done.stderr)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(lines) == 1, lines
    return lines[0]


CHECK_COMMANDS = [("taxonomy", "validate"), ("taxonomy", "show"), ("generate", "--dry-run", "--teacher", "openai:m",
                                                                  "-t")]


# --- templates render in Jinja's sandbox ------------------------------------------------------------------------

@pytest.mark.parametrize("command", CHECK_COMMANDS, ids=["validate", "show", "dry-run"])
def test_a_template_reaching_python_internals_is_refused_before_anything_runs(tmp_path, command):
    marker = tmp_path / "pwned"
    tricks = f"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}"
    folder = tiny_copy(tmp_path)
    # An inline prompt in the task file: the error names the task file, its line and the field.
    taxonomy = echo_taxonomy(folder, prompt=json.dumps(tricks))
    line = one_error(distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
    assert f"{folder / 'tasks' / 'echo.yaml'}:5: steps.0.prompt: reaches '__" in line and "sandbox" in line
    assert not marker.exists()
    # A prompt template file in the taxonomy's prompts/ folder (overriding the built-in qa's): its file and line.
    (folder / "qa.yaml").write_text((folder / "qa.yaml").read_text().replace("task: tasks/echo.yaml", "task: qa"))
    (folder / "prompts").mkdir()
    (folder / "prompts" / "qa_instruction.j2").write_text("Write a question about {{ topic.title }}.\n" + tricks)
    line = one_error(distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
    assert f"{folder / 'prompts' / 'qa_instruction.j2'}:2: prompt template: reaches '__" in line
    assert not marker.exists()


@pytest.mark.slow
def test_the_sandbox_refuses_internals_a_template_computes_at_render_time(tmp_path):
    marker = tmp_path / "pwned"
    # The attribute names are built while rendering, so only the sandbox can see them.
    computed = ('{% set i = "__in" ~ "it__" %}{% set g = "__glo" ~ "bals__" %}'
                f"{{{{ ((cycler | attr(i)) | attr(g)).os.system('touch {marker}') }}}}")
    taxonomy = echo_taxonomy(tiny_copy(tmp_path), prompt=json.dumps(computed))
    for command in (("taxonomy", "validate"), ("generate", "--dry-run", "--teacher", "openai:m", "-t")):
        line = one_error(distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
        assert "echo.yaml:5: steps.0.prompt: access to attribute '__init__'" in line and "is unsafe" in line, line
    shown = distill("taxonomy", "show", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))  # renders nothing
    assert shown.returncode == 0, shown.stderr
    # In a template another includes, the refusal names the included file and its line.
    (taxonomy.parent / "tasks" / "inc.j2").write_text("Write a question.\n" + computed)
    taxonomy = echo_taxonomy(taxonomy.parent, prompt=json.dumps('{% include "inc.j2" %}'))
    line = one_error(distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
    assert f"prompt template {taxonomy.parent / 'tasks' / 'inc.j2'}:2: access to attribute '__init__'" in line, line
    assert not marker.exists()


# --- a taxonomy's Python runs only when generating or curating ----------------------------------------------------

def checked_taxonomy(tmp_path: Path, marker: Path) -> Path:
    """The echo task with a custom check in checks.py (in the taxonomy's folder) that leaves `marker` on import."""
    folder = tiny_copy(tmp_path)
    (folder / "checks.py").write_text(f"{touch(marker)}\n\n\ndef long_enough(example):\n"
                                      "    return None if len(example.prompt) > 3 else 'too short'\n")
    return echo_taxonomy(folder, checks="[{custom: ../checks.py:long_enough}]")


@pytest.mark.slow
def test_a_custom_check_is_read_not_run_by_validate_show_and_dry_run_and_imported_by_generate_and_curate(tmp_path):
    marker = tmp_path / "imported"
    taxonomy = checked_taxonomy(tmp_path, marker)
    for command in CHECK_COMMANDS:
        done = distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
        assert done.returncode == 0, (command, done.stderr)
        assert not marker.exists(), command
    # Still read: a typo in the function's name is caught early, without importing the file.
    (taxonomy.parent / "tasks" / "echo.yaml").write_text(
        (taxonomy.parent / "tasks" / "echo.yaml").read_text().replace("long_enough", "long_enuf"))
    line = one_error(distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
    assert "echo.yaml:10: checks.0: checks.py has no function 'long_enuf' at its top level" in line
    assert not marker.exists()
    (taxonomy.parent / "tasks" / "echo.yaml").write_text(
        (taxonomy.parent / "tasks" / "echo.yaml").read_text().replace("long_enuf", "long_enough"))

    # Data is printed by templates, never rendered as one: a description that looks like Jinja reaches the teacher
    # as it is written.
    taxonomy.write_text(taxonomy.read_text().replace("Asthma symptoms", "Asthma {{ 7 * 7 }} symptoms"))
    with FakeAPI() as api:
        done = distill("generate", "-t", str(taxonomy), "--teacher", "openai:m", "--base-url", api.url + "/v1",
                       "--out", str(tmp_path / "run"), "--no-preflight", "--no-curate", cwd=tmp_path,
                       env=cli_env(tmp_path))
        prompts = [body["messages"][-1]["content"] for body in api.bodies]
    assert done.returncode == 0, done.stderr
    assert sum("Asthma {{ 7 * 7 }} symptoms" in prompt for prompt in prompts) == 2, prompts
    assert marker.exists()  # generating imports the taxonomy's Python
    marker.unlink()
    curated = distill("curate", str(tmp_path / "run"), "--taxonomy", str(taxonomy), "--out", str(tmp_path / "cur"),
                      "--language", "any", cwd=tmp_path, env=cli_env(tmp_path))
    assert curated.returncode == 0, curated.stderr
    assert marker.exists()  # and so does curating


MODEL_TASK = """\
name: drafts
seed: {question: text, answer: text}
steps:
  - name: draft
    prompt: "Draft a title for {{ topic.title }}."
    output: json
    schema: ../models.py:Draft
  - name: polish
    prompt: "Polish this title: {{ steps.draft.title }}"
example:
  messages:
    - {role: user, content: "{{ steps.draft.title }}"}
    - {role: assistant, content: "{{ steps.polish }}"}
"""


@pytest.mark.slow
def test_an_output_model_file_is_read_not_imported_until_generating(tmp_path):
    marker = tmp_path / "imported"
    folder = tiny_copy(tmp_path)
    (folder / "models.py").write_text(f"from pydantic import BaseModel\n{touch(marker)}\n\n\n"
                                      "class Draft(BaseModel):\n    title: str\n")
    (folder / "tasks").mkdir()
    (folder / "tasks" / "drafts.yaml").write_text(MODEL_TASK)
    taxonomy = folder / "qa.yaml"
    taxonomy.write_text(taxonomy.read_text().replace("task: qa", "task: tasks/drafts.yaml"))
    for command in CHECK_COMMANDS:
        done = distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
        assert done.returncode == 0, (command, done.stderr)
        assert not marker.exists(), command
    # The dry run says which steps it could not count without the model.
    assert "not counted     step(s) polish" in " ".join(done.stdout.split("\n"))
    with FakeAPI() as api:
        done = distill("generate", "-t", str(taxonomy), "--teacher", "openai:m", "--base-url", api.url + "/v1",
                       "--out", str(tmp_path / "run"), "--no-preflight", "--no-curate", cwd=tmp_path,
                       env=cli_env(tmp_path))
        asked = [body["response_format"]["json_schema"]["schema"] for body in api.bodies if "response_format" in body]
    assert done.returncode == 0, done.stderr
    assert marker.exists() and asked and all(schema["title"] == "Draft" for schema in asked)


@pytest.mark.slow
@pytest.mark.parametrize("reference, expected", [
    ("os:system", "checks.0: 'os:system' names a Python module; a taxonomy's task names Python only as file.py:name"),
    ("../../outside.py:run", "checks.0: '../../outside.py:run' is outside the taxonomy's folder"),
    ("../checks.py:alias", "checks.0: checks.py has no function 'alias' at its top level"),
])
def test_a_custom_check_that_is_not_a_function_in_the_taxonomy_folder_is_refused_in_one_line(tmp_path, reference,
                                                                                              expected):
    marker = tmp_path / "imported"
    (tmp_path / "outside.py").write_text(f"{touch(marker)}\n\n\ndef run(example):\n    return None\n")
    taxonomy = checked_taxonomy(tmp_path, marker)
    (taxonomy.parent / "checks.py").write_text(f"import os\n{touch(marker)}\nalias = os.system\n")
    (taxonomy.parent / "tasks" / "echo.yaml").write_text(
        (taxonomy.parent / "tasks" / "echo.yaml").read_text().replace("../checks.py:long_enough", reference))
    for command in (("taxonomy", "validate"), ("generate", "--teacher", "openai:m", "--base-url",
                                               "http://127.0.0.1:9/v1", "-t")):
        line = one_error(distill(*command, str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path)))
        assert f"{taxonomy.parent / 'tasks' / 'echo.yaml'}:10: {expected}" in line, line
        assert not marker.exists()


def test_a_name_rebound_to_a_builtin_is_refused_when_the_file_is_imported(tmp_path):
    marker = tmp_path / "called"
    taxonomy = checked_taxonomy(tmp_path, tmp_path / "imported")
    # `def` satisfies the reading; the name is then bound to os.system: not a function defined in the file.
    (taxonomy.parent / "checks.py").write_text(f"import os\n\n\ndef long_enough(example):\n    {touch(marker)}\n\n\n"
                                               "long_enough = os.system\n")
    line = one_error(distill("generate", "-t", str(taxonomy), "--teacher", "openai:m", "--base-url",
                             "http://127.0.0.1:9/v1", "--no-preflight", cwd=tmp_path, env=cli_env(tmp_path)))
    assert "echo.yaml:10: checks.0: 'long_enough' in checks.py is not a function defined in that file" in line
    assert not marker.exists() and not (tmp_path / "runs").exists()


# --- commands that read a run folder never load code through it -------------------------------------------------

def hostile_run(tmp_path: Path, marker: Path) -> tuple[Path, Path]:
    """A run of the tiny QA taxonomy whose run.db and stats.json were made to name another taxonomy, whose
    custom check leaves `marker` when imported. Returns (the run folder, the hostile taxonomy)."""
    folder = tiny_copy(tmp_path)
    with FakeAPI() as api:
        done = distill("generate", "-t", str(folder / "qa.yaml"), "--teacher", "openai:m", "--base-url",
                       api.url + "/v1", "--out", str(tmp_path / "run"), "--no-preflight", "--no-curate",
                       cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    evil = checked_taxonomy(tmp_path / "evil", marker)
    run = tmp_path / "run"
    with sqlite3.connect(run / "run.db") as db:
        db.execute("UPDATE run_info SET value = ? WHERE key = 'taxonomy_file'", (json.dumps(str(evil)),))
    stats = json.loads((run / "stats.json").read_text())
    stats["run"]["taxonomy_file"] = str(evil)
    (run / "stats.json").write_text(json.dumps(stats))
    return run, evil


@pytest.mark.slow
def test_commands_reading_a_run_folder_never_load_the_taxonomy_it_names(tmp_path):
    marker = tmp_path / "imported"
    run, evil = hostile_run(tmp_path, marker)
    env = cli_env(tmp_path)
    for command in (("review", str(run), "--size", "4"), ("review", "status", str(run)),
                    ("review", "export", str(run), "--format", "datasets"),
                    ("export", str(run), "--license", "mit", "--out", str(tmp_path / "hub"))):
        done = distill(*command, cwd=tmp_path, env=env)
        assert done.returncode == 0, (command, done.stderr)
        assert not marker.exists(), command
    # The card still describes the taxonomy: from what the run recorded when it was made (taxonomy.json).
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "Asthma symptoms, triggers and inhalers" in card and "question_type (diagnosis, treatment)" in card
    # Regenerating asks a teacher with the taxonomy's code: the user names the taxonomy, never the run.
    line = one_error(distill("review", "regenerate", str(run), "--leaf", "respiratory/asthma", cwd=tmp_path,
                             env=env))
    assert "pass --taxonomy with the taxonomy of run 'tiny-qa'" in line and not marker.exists()

    # The web review shows each seed's text, from the run's own record.
    proc = subprocess.Popen(distill_command("review", str(run), "--serve", "--port", "0", "--reviewer", "dana"),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = token = None
        deadline = time.time() + 60
        while url is None and time.time() < deadline:
            found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", proc.stdout.readline())
            if found:
                url, token = found.groups()
        assert url, proc.stderr.read()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        for _ in range(50):
            try:
                first = client.get("/api/queue").json()["items"][0]["id"]
                break
            except httpx.TransportError:
                time.sleep(0.1)
        seeds = client.get(f"/api/item/{first}").json()["seeds"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert seeds and all(seed["text"] and seed["text"].endswith("?") for seed in seeds), seeds
    assert not marker.exists()


# --- InstructLab documents are read only inside the taxonomy's tree or --documents --------------------------------

SECRET = "SECRET-7f3a9c do not leak"


def qna(kind: str, **document) -> dict:
    seeds = [{"question": f"Write a line about {t}.", "answer": f"A line about {t}."}
             for t in ("rain", "sun", "snow", "wind", "fog")]
    if kind == "skill":
        return {"version": 3, "created_by": "t", "task_description": "Write one line", "seed_examples": seeds}
    return {"version": 3, "created_by": "t", "domain": "Weather", "document_outline": "Weather words",
            "seed_examples": [{"context": f"Passage {n} about the weather, the rain and the sun.",
                               "questions_and_answers": [{"question": f"What is passage {n} about ({k})?",
                                                          "answer": f"The weather ({k})."} for k in range(3)]}
                              for n in range(5)],
            "document": {"repo": "docs", "commit": "abc123", "patterns": ["*.md"], **document}}


def hostile_tree(tmp_path: Path) -> tuple[Path, dict[str, tuple[Path, str]]]:
    """An InstructLab tree: one valid skill, and knowledge files whose documents lie outside it (a secret file
    beside the tree). Returns the root and, per hostile file, (its qna.yaml, what its refusal says)."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text(SECRET + "\n")
    root = tmp_path / "ilab"
    cases = {
        "absolute_repo": ({"repo": str(secret), "patterns": ["passwd"]}, "document.repo"),
        "escaping_repo": ({"repo": "../../../../secret", "patterns": ["passwd"]}, "document.repo"),
        "file_url_repo": ({"repo": f"file://{secret}", "patterns": ["passwd"]}, "document.repo"),
        "absolute_pattern": ({"repo": ".", "patterns": [str(secret / "passwd")]}, "document.patterns.0"),
        "dotdot_pattern": ({"repo": ".", "patterns": ["../../../../secret/passwd"]}, "document.patterns.0"),
        "linked_file": ({"repo": ".", "patterns": ["*.md"]}, "a link to a file outside"),
    }
    written = {}
    for name, (document, says) in cases.items():
        path = root / "knowledge" / name / "qna.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(qna("knowledge", **document), sort_keys=False))
        written[name] = (path, says)
    (root / "knowledge" / "linked_file" / "notes.md").symlink_to(secret / "passwd")
    # A qna.yaml that is itself a link out, to a valid file whose seeds hold the secret.
    leaked = qna("knowledge")
    leaked["seed_examples"][0]["context"] = f"{SECRET}: a passage about the weather and the rain."
    (secret / "qna.yaml").write_text(yaml.safe_dump(leaked, sort_keys=False))
    (root / "knowledge" / "linked_qna").mkdir()
    (root / "knowledge" / "linked_qna" / "qna.yaml").symlink_to(secret / "qna.yaml")
    written["linked_qna"] = (root / "knowledge" / "linked_qna" / "qna.yaml", "a link to a file outside")
    skill = root / "compositional_skills" / "lines" / "qna.yaml"
    skill.parent.mkdir(parents=True)
    skill.write_text(yaml.safe_dump(qna("skill"), sort_keys=False))
    return root, written


def assert_refused(stderr: str, written: dict[str, tuple[Path, str]]) -> None:
    lines = error_lines(stderr)
    assert "Traceback" not in stderr and SECRET not in stderr
    for path, says in written.values():
        mine = [line for line in lines if str(path) in line]
        assert len(mine) == 1 and mine[0].startswith(f"invalid, not imported: {path}:") and says in mine[0], \
            (path, lines)


def nowhere(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_instructlab_documents_outside_the_tree_are_refused_by_import_and_by_generate(tmp_path):
    root, written = hostile_tree(tmp_path)
    out = tmp_path / "taxonomies" / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(root), "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "1 leaves" in done.stdout and f"{len(written)} invalid qna.yaml files skipped" in done.stdout
    assert_refused(done.stderr, written)
    nowhere(out.parent)

    with FakeAPI() as api:
        done = distill("generate", "-t", str(root), "--teacher", "openai:m", "--base-url", api.url + "/v1",
                       "--out", str(tmp_path / "run"), "--no-preflight", "--no-curate", cwd=tmp_path,
                       env=cli_env(tmp_path))
        sent = json.dumps(api.bodies)
    assert done.returncode == 0, done.stderr
    assert_refused(done.stderr, written)
    assert SECRET not in sent and "compositional_skills/lines" in (tmp_path / "run" / "dataset.jsonl").read_text()
    nowhere(tmp_path / "run")


def test_documents_outside_the_documents_folder_are_refused(tmp_path):
    root, _ = hostile_tree(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "weather.md").write_text("The weather today is mild.\n")
    tree = tmp_path / "only"
    for name in ("dotdot_pattern", "escaping_repo"):
        (tree / "knowledge" / name).mkdir(parents=True)
        (tree / "knowledge" / name / "qna.yaml").write_text((root / "knowledge" / name / "qna.yaml").read_text())
    # With --documents: a `..` pattern is refused; a repo named `..` is not a clone folder, --documents is read.
    (tree / "knowledge" / "escaping_repo" / "qna.yaml").write_text(
        yaml.safe_dump(qna("knowledge", repo="..", patterns=["*.md"]), sort_keys=False))
    out = tmp_path / "ilab.yaml"
    done = distill("taxonomy", "import-instructlab", str(tree), "--out", str(out), "--documents", str(docs),
                   cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "dotdot_pattern/qna.yaml:" in lines[0] and "document.patterns.0" in lines[0], lines
    assert "weather today is mild" in (tmp_path / "ilab-seeds" / "knowledge" / "escaping_repo" /
                                       "passage-1.md").read_text()
    nowhere(tmp_path / "ilab-seeds")
