"""Nothing the user owns is deleted or silently replaced: every command that writes a folder or file, through the
installed `distill` script, with the user's files planted where it writes (some named like distill's own).

Each command refuses a non-empty folder it did not make in one line (exit 2, no traceback) and says `--force`;
with `--force` it writes beside the user's files and refuses, in one line, to replace one of them; a re-run
into its own output needs no `--force`. Every planted file is compared byte for byte after each step.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, distill, distill_command, error_lines, in_own_mount, tiny_copy
from distill.owned import MANIFEST, OwnedFolder
from distill.records import Decision
from distill.review.ledger import ReviewLedger
from distill.review.session import ReviewSession
from distill.train.manifest import Manifest, write_manifest
from fakeapi import FakeAPI
from instructlab_helpers import POEMS, skill, write
from review_helpers import WORDS, example_row, leaf_ids, make_dataset, queue_ids
from train_helpers import make_run

MINE = b"the user's own bytes\n\x00\xff not distill's\n"


def plant(folder: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return dict(files)


def survived(folder: Path, planted: dict[str, bytes]) -> None:
    for name, data in planted.items():
        assert (folder / name).read_bytes() == data, name


def refused(done: subprocess.CompletedProcess, *pieces: str) -> str:
    """Exit 2 and one error line, the last (train's notices about its split may come before it)."""
    lines = error_lines(done.stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr and errors == lines[-1:], done.stderr
    for piece in pieces:
        assert piece in errors[0], (piece, errors[0])
    return errors[0]


def ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


def leftovers(folder: Path) -> list[str]:
    """Temporaries or staging folders of distill's under `folder`."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".distill-tmp") or ".distill-staging-" in p.name]


def model_env(tmp_path: Path) -> dict[str, str]:
    """cli_env, keeping the usual model cache: the embedded student is converted once, not once per test."""
    env = cli_env(tmp_path)
    env.pop("DISTILL_CACHE_DIR")
    if "DISTILL_CACHE_DIR" in os.environ:
        env["DISTILL_CACHE_DIR"] = os.environ["DISTILL_CACHE_DIR"]
    return env


def adapter_manifest(folder: Path) -> Path:
    """An adapter folder's manifest alone: enough for eval and export-model to plan, and refuse, before loading."""
    folder.mkdir(parents=True)
    write_manifest(folder, Manifest(student="local", base_model="local", qlora=False, chat_template="{{ x }}",
                                    chat_template_sha256="0", tokenizer_sha256="0", eot_token="<|im_end|>",
                                    train_examples=1, eval_examples=1, train_sha256="0", eval_sha256="0", config={}))
    return folder


# --- review export: the bug that started this ------------------------------------------------------------------

@pytest.fixture
def reviewed(tmp_path):
    directory = make_dataset(tmp_path / "run", per_leaf=3)
    ids = leaf_ids("respiratory/asthma", 3)
    queue_ids(directory, ids)
    session = ReviewSession(directory)
    session.decide("ann", ids[0], "accept")
    session.decide("ann", ids[1], "reject", reasons=["wrong"], note="wrong drug")
    session.close()
    return directory


def decisions(directory: Path) -> list[tuple]:
    with ReviewLedger.open(directory) as ledger:
        return [(d.id, d.item_id, d.reviewer, d.verdict, d.note) for d in ledger.decisions()]


def test_review_export_pointed_at_the_run_or_the_current_folder_keeps_run_db_and_every_decision(reviewed, tmp_path):
    env = cli_env(tmp_path)
    decided = decisions(reviewed)
    assert len(decided) == 2
    files = {name: data for name, data in
             ((p.name, p.read_bytes()) for p in reviewed.iterdir() if p.is_file() and not p.name.startswith("run.db"))}
    for out, cwd in ((str(reviewed), tmp_path), (".", reviewed)):
        for force in ([], ["--force"]):  # --force never mixes two kinds of output
            done = distill("review", "export", str(reviewed), "--format", "datasets", "--out", out, *force,
                           cwd=cwd, env=env)
            refused(done, f"--out {out} is a folder `distill curate` wrote", "choose another --out")
            assert (reviewed / "run.db").is_file() and decisions(reviewed) == decided
            survived(reviewed, files)


@pytest.mark.slow
def test_review_export_into_a_folder_of_the_users(reviewed, tmp_path):
    env = cli_env(tmp_path)
    project = tmp_path / "project"
    planted = plant(project, {"notes.txt": MINE, "README.md": b"# My project\n", "src/main.py": b"print(1)\n"})

    def export(fmt: str, *extra: str) -> subprocess.CompletedProcess:
        return distill("review", "export", str(reviewed), "--format", fmt, "--out", str(project), *extra,
                       cwd=tmp_path, env=env)

    refused(export("datasets"), f"--out {project} is not empty and distill did not make it (3 entries: "
            "README.md, notes.txt, src)", "pass --force to write beside them")
    refused(export("datasets", "--force"), f"{project / 'README.md'} exists and distill did not write it")
    survived(project, planted)
    ok(export("argilla", "--force"))  # writes beside them: .argilla/ and records.json
    assert (project / "records.json").is_file() and (project / ".argilla" / "settings.json").is_file()
    survived(project, planted)
    (project / "README.md").unlink()
    del planted["README.md"]
    ok(export("datasets"))  # its own folder now: no --force; the argilla files go, the user's stay
    assert (project / "queue.jsonl").is_file() and not (project / "records.json").exists()
    survived(project, planted)
    ok(export("datasets"))
    survived(project, planted)
    assert not leftovers(project)


def test_a_hostile_record_cannot_point_outside_the_folder(reviewed, tmp_path):
    precious = plant(tmp_path, {"precious.txt": MINE})
    out = tmp_path / "export"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"version": 1, "kind": "review-export", "files": ["../precious.txt"]}))
    done = distill("review", "export", str(reviewed), "--format", "argilla", "--out", str(out), cwd=tmp_path,
                   env=cli_env(tmp_path))
    refused(done, f"{out / MANIFEST} is damaged", "'../precious.txt' is not a path inside the folder")
    survived(tmp_path, precious)


@pytest.mark.slow
def test_review_in_a_users_dataset_folder_leaves_their_dataset_as_written(tmp_path):
    folder = tmp_path / "mine"
    rows = [example_row(f"q{i:02d}", "respiratory/asthma", f"What about inhalers, case {i}?",
                        f"Use the spacer every day, case {i}.") for i in range(12)]
    planted = plant(folder, {"dataset.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()})
    env = cli_env(tmp_path)
    ok(distill("review", str(folder), "--size", "12", cwd=tmp_path, env=env))
    with ReviewLedger.open(folder) as ledger:
        for row in rows[:3]:
            ledger.add_decision(Decision(item_id=row["id"], reviewer="ann", verdict="reject", reasons=["wrong"]))
    done = distill("review", "status", str(folder), cwd=tmp_path, env=env)
    ok(done)
    assert "dataset.jsonl in " in done.stdout and "not distill's: left as written" in done.stdout
    survived(folder, planted)
    rejected = [json.loads(line)["id"] for line in (folder / "rejected.jsonl").read_text().splitlines()]
    assert rejected == ["q00", "q01", "q02"]  # the review's own files are written beside it


# --- the dataset commands ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_generate_out(tmp_path):
    tiny_copy(tmp_path)
    env = cli_env(tmp_path)
    out = tmp_path / "project"
    planted = plant(out, {"notes.txt": MINE, "dataset.jsonl": b'{"mine": true}\n'})
    with FakeAPI() as api:
        def generate(*extra: str) -> subprocess.CompletedProcess:
            return distill("generate", "-t", str(tmp_path / "tiny" / "qa.yaml"), "--teacher", "openai:gpt-4o-mini",
                           "--base-url", api.url + "/v1", "--out", str(out), "--no-curate", *extra, cwd=tmp_path,
                           env=env)

        refused(generate(), f"--out {out} is not empty and distill did not make it (2 entries: dataset.jsonl, "
                "notes.txt)", "--force")
        refused(generate("--force"), f"{out / 'dataset.jsonl'} exists and distill did not write it")
        assert sum(api.requests.values()) == 0  # refused before any teacher call
        survived(out, planted)
        (out / "dataset.jsonl").unlink()
        del planted["dataset.jsonl"]
        ok(generate("--force"))
        assert (out / "dataset.jsonl").is_file() and (out / "run.db").is_file()
        survived(out, planted)
        ok(generate())  # its own run now: resumes without --force
        # A run folder an earlier distill made (no record) is recognised by its run.db and resumed as it was.
        (out / MANIFEST).unlink()
        ok(generate())
        assert "dataset.jsonl" in json.loads((out / MANIFEST).read_text())["files"]
    survived(out, planted)
    assert not leftovers(out)


@pytest.mark.slow
def test_curate_out(tmp_path):
    env = cli_env(tmp_path)
    source = make_dataset(tmp_path / "source", per_leaf=4) / "dataset.jsonl"
    out = tmp_path / "project"
    planted = plant(out, {"notes.txt": MINE, "report.md": b"# my report\n"})

    def curate(*extra: str) -> subprocess.CompletedProcess:
        return distill("curate", str(source), "--out", str(out), "--language", "any", "--workers", "1", *extra,
                       cwd=tmp_path, env=env)

    refused(curate(), f"--out {out} is not empty and distill did not make it", "--force")
    refused(curate("--force"), f"{out / 'report.md'} exists and distill did not write it")
    survived(out, planted)
    (out / "report.md").unlink()
    del planted["report.md"]
    ok(curate("--force"))
    assert (out / "dataset.jsonl").is_file() and (out / "report.md").is_file()
    survived(out, planted)
    ok(curate())
    survived(out, planted)


@pytest.mark.slow
def test_export_out(tmp_path):
    env = cli_env(tmp_path)
    run = make_run(tmp_path / "run")
    out = tmp_path / "ds"
    # Named like the export's own card and shards: the old export removed every data/*.parquet it found.
    planted = plant(out, {"notes.txt": MINE, "README.md": b"# My dataset\n", "data/mine.parquet": MINE})

    def export(*extra: str) -> subprocess.CompletedProcess:
        return distill("export", str(run), "--out", str(out), "--license", "mit", *extra, cwd=tmp_path, env=env)

    refused(export(), f"--out {out} is not empty and distill did not make it (3 entries: README.md, data, "
            "notes.txt)", "--force")
    refused(export("--force"), f"{out / 'README.md'} exists and distill did not write it")
    survived(out, planted)
    (out / "README.md").unlink()
    del planted["README.md"]
    ok(export("--force"))
    assert (out / "README.md").is_file() and list(out.glob("data/train-*.parquet"))
    survived(out, planted)
    ok(export())
    survived(out, planted)


@pytest.mark.slow
def test_export_never_writes_through_a_linked_subfolder(tmp_path):
    run = make_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    planted = plant(elsewhere, {"train-00000-of-00001.parquet": MINE})
    out = tmp_path / "ds"
    out.mkdir()
    (out / "data").symlink_to(elsewhere)
    done = distill("export", str(run), "--out", str(out), "--license", "mit", "--force", cwd=tmp_path,
                   env=cli_env(tmp_path))
    refused(done, f"{out / 'data'} is a symbolic link; distill writes only inside {out}")
    survived(elsewhere, planted)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["train-00000-of-00001.parquet"]


def test_a_full_disk_during_curate_leaves_no_temporary_and_the_users_file_whole(tmp_path):
    rng = random.Random(0)
    source = make_dataset(tmp_path / "source", per_leaf=0, extra=[
        example_row(f"x{i:03d}", "respiratory/asthma", f"Question {i}: " + " ".join(rng.choices(WORDS, k=30)) + "?",
                    " ".join(rng.choices(WORDS, k=120)) + ".") for i in range(200)]) / "dataset.jsonl"
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    command = " ".join(f"'{part}'" for part in distill_command("curate", str(source), "--out", str(disk), "--force",
                                                                "--language", "any", "--no-near-dedup",
                                                                "--workers", "1"))
    # 16 pages; the user's file takes 14: room for the record, not for dataset.jsonl (about 200 KB).
    done = in_own_mount(tmp_path, f"mount -t tmpfs -o size=64k tmpfs '{disk}' || exit 99\n"
                                  f"head -c 57344 /dev/urandom > '{disk}/ballast.bin'\n"
                                  f"cp '{disk}/ballast.bin' '{tmp_path}/ballast.copy'\n"
                                  f"{command}\nrc=$?\ncp -a '{disk}' '{kept}'\nexit $rc\n", cli_env(tmp_path))
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1 and "the disk is full" in lines[0], done.stderr
    assert (kept / "ballast.bin").read_bytes() == (tmp_path / "ballast.copy").read_bytes()
    assert not leftovers(kept) and not (kept / "dataset.jsonl").exists()


def test_split_in_place(tmp_path):
    env = cli_env(tmp_path)
    run = make_run(tmp_path / "run")  # a dataset.jsonl of the user's, made by hand
    planted = plant(run, {"dataset.jsonl": (run / "dataset.jsonl").read_bytes(), "train.jsonl": MINE})
    refused(distill("split", str(run), cwd=tmp_path, env=env), f"{run / 'train.jsonl'} exists and distill did not "
            "write it; move it aside and run again")
    survived(run, planted)
    (run / "train.jsonl").unlink()
    del planted["train.jsonl"]
    # A temporary a killed distill left (its pid is gone) is cleared; a file of the user's with a like name is not.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = run / f".eval.jsonl.{dead.pid}-0123abcd.distill-tmp"
    stale.write_text("half a file")
    planted[".eval.jsonl.distill-tmp"] = plant(run, {".eval.jsonl.distill-tmp": MINE})[".eval.jsonl.distill-tmp"]
    ok(distill("split", str(run), cwd=tmp_path, env=env))
    assert (run / "train.jsonl").is_file() and (run / "eval.jsonl").is_file() and not stale.exists()
    survived(run, planted)
    ok(distill("split", str(run), "--seed", "1", cwd=tmp_path, env=env))
    survived(run, planted)


@pytest.mark.slow
def test_import_instructlab_out(tmp_path):
    env = cli_env(tmp_path)
    root = tmp_path / "taxonomy"
    write(root, "compositional_skills/writing/poems", skill("Write a poem", POEMS))
    taxonomies = tmp_path / "taxonomies"
    hand = plant(taxonomies, {"mine.yaml": b"name: mine\n# written by hand\n"})

    def import_(out: Path, *extra: str) -> subprocess.CompletedProcess:
        return distill("taxonomy", "import-instructlab", str(root), "--out", str(out), *extra, cwd=tmp_path, env=env)

    for force in ([], ["--force"]):  # a taxonomy file without the import header is the user's, --force or not
        refused(import_(taxonomies / "mine.yaml", *force), "mine.yaml: exists and distill did not write it "
                "(no import header)")
    survived(taxonomies, hand)
    seeds = taxonomies / "ilab-seeds"
    planted = plant(seeds, {"notes.txt": MINE, "compositional_skills/writing/poems.jsonl": MINE})
    out = taxonomies / "ilab.yaml"
    refused(import_(out), f"--out {seeds} is not empty and distill did not make it", "--force")
    refused(import_(out, "--force"), f"{seeds / 'compositional_skills/writing/poems.jsonl'} exists and distill "
            "did not write it")
    assert not out.exists()
    survived(seeds, planted)
    (seeds / "compositional_skills/writing/poems.jsonl").unlink()
    del planted["compositional_skills/writing/poems.jsonl"]
    ok(import_(out, "--force"))
    assert (seeds / "compositional_skills/writing/poems.jsonl").is_file()
    survived(seeds, planted)
    refused(import_(out), "already exists; pass --force to replace it")  # it may hold the user's edits
    ok(import_(out, "--force"))
    survived(seeds, planted)
    survived(taxonomies, hand)


# --- the model commands: each refuses before any model loads ---------------------------------------------------

@pytest.mark.slow
def test_train_out_refuses_before_training(tmp_path):
    env = model_env(tmp_path)
    run = make_run(tmp_path / "run")
    out = tmp_path / "adapter"
    planted = plant(out, {"notes.txt": MINE})
    args = ["train", str(run), "--student", "local", "--no-qlora", "--max-steps", "1", "--threads", "1",
            "--out", str(out)]
    refused(distill(*args, cwd=tmp_path, env=env, timeout=300), f"--out {out} is not empty and distill did not "
            "make it (1 entry: notes.txt)", "pass --force-out")
    refused(distill(*args, "--force", cwd=tmp_path, env=env, timeout=300), "--force-out")  # --force: the gate's
    planted.update(plant(out, {"README.md": MINE}))
    refused(distill(*args, "--force-out", cwd=tmp_path, env=env, timeout=300),
            f"{out / 'README.md'} exists and distill did not write it")
    assert not (out / "checkpoints").exists() and sorted(p.name for p in out.iterdir()) == [MANIFEST, "README.md",
                                                                                              "notes.txt"]
    survived(out, planted)


def test_eval_out_refuses_before_loading(tmp_path):
    env = model_env(tmp_path)
    run = make_run(tmp_path / "run")
    ok(distill("split", str(run), cwd=tmp_path, env=env))
    student = adapter_manifest(tmp_path / "adapter")
    out = tmp_path / "report"
    planted = plant(out, {"notes.txt": MINE, "eval.md": b"# my notes on the eval\n"})
    args = ["eval", str(run), "--student", str(student), "--limit", "1", "--out", str(out)]
    started = time.monotonic()
    refused(distill(*args, cwd=tmp_path, env=env, timeout=300), f"--out {out} is not empty and distill did not "
            "make it", "--force")
    refused(distill(*args, "--force", cwd=tmp_path, env=env, timeout=300),
            f"{out / 'eval.md'} exists and distill did not write it")
    assert time.monotonic() - started < 120  # no model was loaded
    survived(out, planted)


@pytest.mark.slow
def test_export_model_out_refuses_before_merging(tmp_path):
    env = model_env(tmp_path)
    adapter = adapter_manifest(tmp_path / "adapter")
    out = tmp_path / "gguf"
    planted = plant(out, {"notes.txt": MINE, "Modelfile": b"FROM ./my-own.gguf\n"})
    args = ["export-model", str(adapter), "--out", str(out), "--gguf", "q8_0", "--no-eval"]
    refused(distill(*args, cwd=tmp_path, env=env, timeout=300), f"--out {out} is not empty and distill did not "
            "make it", "--force")
    refused(distill(*args, "--force", cwd=tmp_path, env=env, timeout=300),
            f"{out / 'Modelfile'} exists and distill did not write it")
    survived(out, planted)
    assert not (tmp_path / "adapter-merged" / "config.json").exists()


# --- the model commands' own writes, once (slow) ----------------------------------------------------------------

@pytest.mark.model
@pytest.mark.train
def test_train_force_out_writes_beside_the_users_files(tmp_path):
    env = model_env(tmp_path)
    run = make_run(tmp_path / "run")
    out = tmp_path / "adapter"
    planted = plant(out, {"notes.txt": MINE, "mine/weights.bin": MINE})
    args = ["train", str(run), "--student", "local", "--no-qlora", "--max-steps", "2", "--batch-size", "2",
            "--max-length", "64", "--threads", "1", "--out", str(out)]
    ok(distill(*args, "--force-out", cwd=tmp_path, env=env, timeout=900))
    assert (out / "adapter_model.safetensors").is_file() and (out / "distill_manifest.json").is_file()
    survived(out, planted)
    ok(distill(*args, cwd=tmp_path, env=env, timeout=900))  # into its own adapter again: resumes, no flag
    survived(out, planted)
    assert not leftovers(out)


@pytest.mark.model
@pytest.mark.train
def test_eval_and_export_model_write_beside_the_users_files(trained, tmp_path):
    env = model_env(tmp_path)
    run_dir, result = trained
    report = tmp_path / "report"
    planted = plant(report, {"notes.txt": MINE})
    args = ["eval", str(run_dir), "--student", str(result.adapter_dir), "--limit", "1", "--max-new-tokens", "4",
            "--threads", "1", "--out", str(report)]
    ok(distill(*args, "--force", cwd=tmp_path, env=env, timeout=900))
    assert json.loads((report / "eval.json").read_text())["n"] == 1
    survived(report, planted)

    out = tmp_path / "gguf"
    planted = plant(out, {"notes.txt": MINE})
    args = ["export-model", str(result.adapter_dir), "--out", str(out), "--gguf", "q8_0", "--no-eval", "--no-verify",
            "--threads", "1"]
    ok(distill(*args, "--force", cwd=tmp_path, env=env, timeout=900))
    assert list(out.glob("*-q8_0.gguf")) and (out / "Modelfile").is_file()
    survived(out, planted)
    ok(distill(*args, cwd=tmp_path, env=env, timeout=900))  # its own folder now
    survived(out, planted)
    assert not leftovers(out) and not leftovers(result.adapter_dir.with_name(result.adapter_dir.name + "-merged"))


# --- the rule itself, where a crash is easiest to make ----------------------------------------------------------

def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    folder = OwnedFolder.claim(tmp_path / "out", "run")
    folder.write_jsonl("dataset.jsonl", [{"id": 1}])
    before = (folder.root / "dataset.jsonl").read_bytes()

    def rows():
        yield {"id": 2}
        raise KeyboardInterrupt  # Ctrl-C half way through

    with pytest.raises(KeyboardInterrupt):
        folder.write_jsonl("dataset.jsonl", rows())
    assert (folder.root / "dataset.jsonl").read_bytes() == before and not leftovers(folder.root)
    with pytest.raises(RuntimeError):
        with folder.staging() as stage:  # a library writing a folder of files, failing
            (stage / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("out of memory")
    assert not leftovers(folder.root) and not (folder.root / "model.safetensors").exists()
