"""What distill may replace in a folder it writes to: its own files, never the user's.

Every folder distill writes into carries `.distill-owned.json`:

    {"version": 1, "kind": "run", "files": ["run.db", "dataset.jsonl", "data/train-00000-of-00001.parquet",
                                            "checkpoints/"]}

the record of the names distill wrote there (a name ending in "/" is a whole subfolder a library manages,
TRL's checkpoints). Only those may be replaced or removed; any other file in the folder is the user's and
stays byte for byte. Run folders are shared between people, so the record is checked on reading: a path in
it must be relative and stay inside the folder.

- `OwnedFolder.claim(path, kind)`: a folder given as an output (`--out`). A new or empty folder, or one that
  already holds this kind of output, is taken; any other non-empty folder is refused in one line unless
  `force`, which writes beside the user's files (the per-file rule still guards each of them). A folder an
  earlier distill wrote, before this record existed, is recognised by its files and adopted.
- `OwnedFolder.in_place(path)`: a folder a command works in (`split DIR`, `review DIR`, `train RUN_DIR`):
  never refused as a whole; each file still follows the rule.
- Each write (`write_text`, `write_jsonl`, `replacing`, ...) refuses a name that exists and is not distill's,
  writes to a temporary name in the same folder, flushes and fsyncs it and renames it into place; on any
  failure (a full disk, Ctrl-C) the temporary is removed, and one left by a kill -9 is removed at the next
  claim. Writing never goes through a symbolic link: a subfolder that is a link is refused, and renaming
  over a link replaces the link, not what it points to.
- Libraries that write folders of their own (transformers' save_pretrained, PEFT) write into `staging()`,
  a folder inside ours; the files are then moved in under the same rule, and a failure leaves nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from distill.errors import DistillError
from distill.records import jsonl_line

MANIFEST = ".distill-owned.json"
VERSION = 1
# Temporaries and staging folders carry the writer's pid: a later claim removes those of dead processes only,
# never one another distill process is writing now (a review server and `distill train` share a run folder).
_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.distill-tmp$")
_STAGING = re.compile(r"^\.distill-staging-(\d+)-[0-9a-f]{8}$")
# What `rundir.run_lock` writes into run.lock for a run (split, export and review lock a user's folder too).
_RUN_LOCK = re.compile(r"pid \d+ on [^\n]*: distill (generate|run) ")
_SHOWN = 3  # names a refusal lists
FORCE_HELP = ("Write into a non-empty --out folder distill did not make, beside what is there: only files distill "
              "wrote are ever replaced.")

WHAT = {
    "run": "a distill run folder",
    "curated": "a folder `distill curate` wrote",
    "dataset": "a dataset folder distill works in",
    "dataset-export": "a dataset folder `distill export` wrote",
    "review-export": "a review export (`distill review export`)",
    "adapter": "an adapter folder `distill train` wrote",
    "merged": "a merged model folder (`distill export-model`)",
    "model-export": "a GGUF folder `distill export-model` wrote",
    "eval": "an evaluation folder (`distill eval --out`)",
    "taxonomy-seeds": "a seeds folder `distill taxonomy import-instructlab` wrote",
}

# What each kind writes, by name: adopted as distill's when a folder from an earlier distill (no record) holds
# them, and checked before expensive work so that a user's file of that name stops a command at its start.
# The run folder's names are rundir.py's; they are spelled again here because this module sits below it (RunDir
# writes through OwnedFolder) and because, for those kinds, these lists record what an earlier distill wrote.
EVAL_FILES = ("eval.json", "eval.md", "eval_leaves.png", "eval_confusion.png")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "added_tokens.json")
KNOWN: dict[str, tuple[str, ...]] = {
    "run": ("run.db", "run.lock", "dataset.jsonl", "rejected.jsonl", "stats.json", "taxonomy.json", "train.jsonl",
            "eval.jsonl", "pipeline.json", *EVAL_FILES),
    "curated": ("dataset.jsonl", "rejected.jsonl", "stats.json", "contamination.jsonl", "duplicates.jsonl",
                "report.md", "judge.db", "run.db", "train.jsonl", "eval.jsonl", "dataset/", "rejected/", *EVAL_FILES),
    "dataset": ("run.db", "stats.json", "train.jsonl", "eval.jsonl", *EVAL_FILES),
    "dataset-export": ("README.md", "data/*.parquet"),
    "review-export": ("README.md", "queue.jsonl", "decisions.jsonl", "records.json", ".argilla/settings.json",
                      ".argilla/dataset.json"),
    "adapter": ("adapter_model.safetensors", "adapter_config.json", "README.md", "distill_manifest.json",
                "training_args.bin", "checkpoints/", *TOKENIZER_FILES),
    "merged": ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
               "model-*.safetensors", "README.md", "distill_manifest.json", "export.json", *TOKENIZER_FILES,
               *EVAL_FILES),
    "model-export": ("*.gguf", "Modelfile", "README.md", "distill_manifest.json", "export.json", *EVAL_FILES),
    "eval": EVAL_FILES,
    "taxonomy-seeds": (),
}


def writable_folder(path: Path, option: str) -> Path:
    """`path` as a folder this process can write into, made if missing; else one line naming `option`."""
    if path.exists() and not path.is_dir():
        raise DistillError(f"{option} {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistillError(f"{option} {path}: cannot make this folder ({_reason(exc)}); "
                           "choose a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(path) else "permission denied"
        raise DistillError(f"{option} {path}: cannot write here ({why}); choose a folder you can write to")
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class _Record(BaseModel):
    """`.distill-owned.json` as read from disk (a shared folder's file: every path is checked)."""

    model_config = ConfigDict(extra="ignore")
    version: int
    kind: str
    files: list[str]

    @field_validator("files")
    @classmethod
    def _inside(cls, files: list[str]) -> list[str]:
        for name in files:
            if not isinstance(name, str) or not _safe_name(name):
                raise ValueError(f"{name!r} is not a path inside the folder")
        return files


def _safe_name(name: str) -> bool:
    """A relative POSIX path that stays inside the folder (a trailing "/" marks a whole subfolder)."""
    if not name or "\\" in name or "\0" in name or name.startswith("/"):
        return False
    parts = name.rstrip("/").split("/")
    return all(part not in ("", ".", "..") for part in parts) and name.rstrip("/") != MANIFEST


class OwnedFolder:
    """A folder distill writes into, and the names in it that are distill's."""

    def __init__(self, root: Path, kind: str, files: Iterable[str], option: str, recorded: bool):
        self.root, self.kind, self.option = Path(root), kind, option
        self.in_place_of_user = False  # set by `in_place`: the user pointed at this folder to work in it
        self.files: set[str] = set(files)
        self.written: set[str] = set()  # names written (or reserved) through this object
        self._recorded = recorded  # whether the record is on disk yet

    # --- opening ------------------------------------------------------------------------------------------

    @classmethod
    def claim(cls, path: str | Path, kind: str, *, option: str = "--out", force: bool = False,
              force_option: str | None = "--force", hosts: Iterable[str] = ()) -> OwnedFolder:
        """`path` as an output folder of `kind`, made if missing; `hosts`: other kinds it may be written into
        (an evaluation's report beside a run). Refuses, in one line, a folder of another kind, and a
        non-empty folder that is not distill's unless `force`."""
        root = Path(path)
        writable_folder(root, option)
        record = _read_record(root)
        if record is not None and record.kind == "dataset":  # a user's folder distill only worked in
            foreign = [name for name in _user_entries(root) if name not in record.files]
            if foreign and not force:
                raise DistillError(_not_empty(root, option, foreign, force_option))
            folder = cls(root, record.kind, record.files, option, recorded=True)
            folder._save(kind=kind)  # chosen for this output now: a re-run finds its own folder
        elif record is not None:
            folder = cls(root, record.kind, record.files, option, recorded=True)
            if record.kind != kind and record.kind not in hosts:
                raise DistillError(f"{option} {root} is {WHAT.get(record.kind, 'a distill ' + record.kind + ' folder')}"
                                   f", not {_article(kind)}: writing there could replace its files; choose "
                                   f"another {option}")
        else:
            legacy = legacy_kind(root)
            if legacy == "dataset":  # a user's folder an earlier distill worked in: judged as the user's
                legacy = None
            if legacy is not None and legacy != kind and legacy not in hosts:
                raise DistillError(f"{option} {root} is {WHAT[legacy]}, not {_article(kind)}: writing there could "
                                   f"replace its files; choose another {option}")
            if legacy is not None:
                folder = cls(root, legacy, known_present(root, legacy), option, recorded=False)
            else:
                foreign = _user_entries(root)
                if foreign and not force:
                    raise DistillError(_not_empty(root, option, foreign, force_option))
                folder = cls(root, kind, (), option, recorded=False)
            folder._save()
        folder.clean_stale()
        return folder

    @classmethod
    def in_place(cls, path: str | Path, kind: str = "dataset", option: str = "DIR") -> OwnedFolder:
        """A folder a command works in, never refused as a whole: its record, or an earlier distill's files
        adopted, or (a folder of the user's) nothing yet; each write follows the per-file rule."""
        root = Path(path)
        _check_folder(root, option)
        record = _read_record(root) if root.is_dir() else None
        if record is not None:
            folder = cls(root, record.kind, record.files, option, recorded=True)
        else:
            legacy = legacy_kind(root) if root.is_dir() else None
            folder = cls(root, legacy or kind, known_present(root, legacy) if legacy else (), option,
                         recorded=False)
            if legacy:
                folder._save()
        folder.in_place_of_user = True
        if root.is_dir():
            folder.clean_stale()
        return folder

    # --- the per-file rule --------------------------------------------------------------------------------

    def owns(self, name: str) -> bool:
        """Whether `name` is distill's here (listed, or inside a listed subfolder). (`check` also takes a
        distill store, run.db, made outside the record as distill's: its tables say so.)"""
        name = name.rstrip("/")
        return name in self.files or f"{name}/" in self.files or any(
            name.startswith(entry) for entry in self.files if entry.endswith("/"))

    def check(self, name: str) -> Path:
        """The path of `name`, refused in one line if a file of that name is there and distill did not write
        it, or if the way to it goes through a symbolic link."""
        if not _safe_name(name):
            raise ValueError(f"not a name inside the folder: {name!r}")  # our bug, not the user's
        target = self.root / name.rstrip("/")
        self._check_parents(name)
        if os.path.lexists(target):
            if not self.owns(name) and not (name.endswith(".db") and _store_info(target) is not None):
                raise DistillError(f"{target} exists and distill did not write it; {self._way_out()}")
            if name.endswith("/") and (target.is_symlink() or not target.is_dir()):
                raise DistillError(f"{target} is {'a symbolic link' if target.is_symlink() else 'a file'} where "
                                   "distill keeps a folder; " + self._way_out())
        return target

    def check_all(self, names: Iterable[str]) -> None:
        """`check` every name: a user's file stops the command before any expensive work."""
        for name in names:
            if any(ch in name for ch in "*?["):
                for match in sorted(self.root.glob(name)):
                    self.check(match.relative_to(self.root).as_posix())
            else:
                self.check(name)

    def reserve(self, name: str) -> Path:
        """`name` checked and recorded as distill's, for a file or subfolder ("name/") another library writes
        in place (SQLite's run.db, TRL's checkpoints/); returns its path."""
        target = self.check(name)
        self._make_parents(name)
        self.record(name)
        self.written.add(name)
        return target

    def record(self, *names: str) -> None:
        new = [name for name in names if name not in self.files]
        if new or not self._recorded:
            self._save(add=new)

    # --- writing ------------------------------------------------------------------------------------------

    @contextmanager
    def replacing(self, name: str) -> Iterator[Path]:
        """A temporary path to write `name` to (by any writer: pyarrow, matplotlib, gguf); on success it is
        fsynced and renamed over `name`, on failure removed."""
        target = self.check(name)
        self._make_parents(name)
        self.record(name)  # before the rename: a crash between the two never leaves an unlisted file of ours
        with _temporary_for(target) as tmp:
            yield tmp
        self.written.add(name)

    @contextmanager
    def open(self, name: str, mode: str = "w") -> Iterator[IO[Any]]:
        """`name` opened for writing ("w" text, UTF-8, or "wb"); replaces the old file only once complete."""
        with self.replacing(name) as tmp:
            with tmp.open(mode, encoding=None if "b" in mode else "utf-8") as handle:
                yield handle

    def write_text(self, name: str, text: str) -> Path:
        with self.open(name) as handle:
            handle.write(text)
        return self.root / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        with self.open(name, "wb") as handle:
            handle.write(data)
        return self.root / name

    def write_json(self, name: str, data: Any, **dumps: Any) -> Path:
        return self.write_text(name, json.dumps(data, **{"indent": 2, "ensure_ascii": False, **dumps}) + "\n")

    def write_jsonl(self, name: str, rows: Iterable[Any]) -> Path:
        """One JSON object a line (pydantic records without their None fields)."""
        with self.open(name) as handle:
            for row in rows:
                handle.write(jsonl_line(row))
        return self.root / name

    @contextmanager
    def staging(self, into: str = "") -> Iterator[Path]:
        """A folder inside ours for a library that writes a folder of files (save_pretrained); on success
        each file is moved to `into`/its name under the per-file rule (all checked before any moves), on
        failure the staging folder is removed."""
        stage = self.root / f".distill-staging-{os.getpid()}-{secrets.token_hex(4)}"
        stage.mkdir()
        try:
            yield stage
            names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                           if p.is_file() or p.is_symlink())
            where = [f"{into.rstrip('/')}/{name}" if into else name for name in names]
            self.check_all(where)
            self.record(*where)
            for name, final in zip(names, where):
                self._make_parents(final)
                os.replace(stage / name, self.root / final)
            self.written.update(where)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    # --- removing -----------------------------------------------------------------------------------------

    def remove(self, name: str) -> bool:
        """Remove `name` (a file, or a subfolder recorded as "name/") if distill wrote it; a name distill did
        not write is left alone. Returns whether something was removed."""
        if not self.owns(name):
            return False
        target = self.root / name.rstrip("/")
        self._check_parents(name)
        removed = os.path.lexists(target)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif removed:
            target.unlink()
        listed = [entry for entry in (name, name.rstrip("/") + "/") if entry in self.files]
        if listed:
            self._save(drop=listed)
        return removed

    def prune(self, under: str = "") -> list[str]:
        """Remove the files distill recorded (under a subfolder, or anywhere) that this command did not write
        again: an earlier export's extra shards, the other format's files. Returns their names."""
        stale = [name for name in self.owned_files(under) if name not in self.written]
        return [name for name in stale if self.remove(name)]

    def owned_files(self, under: str = "") -> list[str]:
        """The recorded files under a subfolder ("data/"), or all of them."""
        return sorted(name for name in self.files if name.startswith(under) and not name.endswith("/"))

    def clean_stale(self) -> None:
        """Remove temporaries and staging folders a killed distill left (a dead pid's only)."""
        folders = {self.root} | {self.root / PurePosixPath(name).parent for name in self.files}
        for folder in folders:
            if folder.is_symlink() or not folder.is_dir():
                continue
            with suppress(OSError):
                for entry in folder.iterdir():
                    match = _TMP.match(entry.name) or (_STAGING.match(entry.name) if folder == self.root else None)
                    if match and not _alive(int(match.group(1))):
                        _remove(entry)

    # --- inside -------------------------------------------------------------------------------------------

    def _check_parents(self, name: str) -> None:
        """Each folder between the root and `name` is a real folder, not a link out of it."""
        current = self.root
        for part in PurePosixPath(name.rstrip("/")).parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise DistillError(f"{current} is a symbolic link; distill writes only inside {self.root}: "
                                   + self._way_out())
            if os.path.lexists(current) and not current.is_dir():
                raise DistillError(f"{current} is a file where distill writes a folder; {self._way_out()}")

    def _way_out(self) -> str:
        if self.in_place_of_user:
            return "move it aside and run again (distill never replaces a file it did not write)"
        return f"move it or choose another {self.option}"

    def _make_parents(self, name: str) -> None:
        parent = (self.root / name.rstrip("/")).parent
        if parent != self.root:
            parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)

    def _save(self, add: Iterable[str] = (), drop: Iterable[str] = (), kind: str | None = None) -> None:
        """Merge into the record on disk (another process may have added names since) and write it atomically,
        under a lock on the folder; `kind` changes the folder's kind."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _folder_lock(self.root):
            on_disk = _read_record(self.root)
            files = (set(on_disk.files) if on_disk is not None else set(self.files)) | set(add)
            files -= set(drop)
            kind = kind or (on_disk.kind if on_disk is not None else self.kind)
            with _temporary_for(self.root / MANIFEST) as tmp:
                tmp.write_text(json.dumps({"version": VERSION, "kind": kind, "files": sorted(files)}, indent=1)
                               + "\n", encoding="utf-8")
        self.files, self.kind, self._recorded = files, kind, True


# --- reading a folder ---------------------------------------------------------------------------------------

def _check_folder(root: Path, option: str) -> None:
    if os.path.lexists(root) and not root.is_dir():
        raise DistillError(f"{option} {root} is a file, not a folder; give a folder path")


def _read_record(root: Path) -> _Record | None:
    path = root / MANIFEST
    if not os.path.lexists(path):
        return None
    hint = (f"delete {MANIFEST} there (distill then treats every file in {root} as yours) or choose another "
            "folder")
    if path.is_symlink() or not path.is_file():
        raise DistillError(f"{path} is not a file distill wrote (a link or a folder); {hint}")
    try:
        record = _Record.model_validate_json(path.read_bytes())
    except (ValidationError, OSError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else (exc.strerror or str(exc))
        raise DistillError(f"{path} is damaged ({reason}); {hint}") from None
    if record.version != VERSION:
        raise DistillError(f"{path} has version {record.version}, which this distill does not know; update distill "
                           "or choose another folder")
    return record


def _user_entries(root: Path) -> list[str]:
    """What is in the folder, our record and the temporaries of a killed distill aside."""
    with suppress(OSError):
        return sorted(entry.name for entry in root.iterdir()
                      if entry.name != MANIFEST and not _TMP.match(entry.name) and not _STAGING.match(entry.name))
    return []


def _not_empty(root: Path, option: str, names: list[str], force_option: str | None) -> str:
    shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    count = f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"
    force = (f", or pass {force_option} to write beside them (distill replaces only its own files there)"
             if force_option else "")
    return (f"{option} {root} is not empty and distill did not make it ({count}: {shown}); choose a new or empty "
            f"folder{force}")


def _article(kind: str) -> str:
    return {"run": "a run folder", "curated": "a curated folder", "dataset-export": "a dataset export",
            "review-export": "a review export", "adapter": "an adapter folder", "merged": "a merged model folder",
            "model-export": "a GGUF folder", "eval": "an evaluation folder"}.get(kind, f"a {kind} folder")


def known_present(root: Path, kind: str) -> list[str]:
    """The names `kind` writes that are in `root` now (an earlier distill's folder, adopted)."""
    found = []
    for pattern in KNOWN.get(kind, ()):
        if pattern.endswith("/"):
            if (root / pattern).is_dir() and not (root / pattern.rstrip("/")).is_symlink():
                found.append(pattern)
        elif any(ch in pattern for ch in "*?["):
            found += [p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()]
        elif (root / pattern).is_file() or (pattern == "run.db" and (root / pattern).exists()):
            found.append(pattern)
    if kind in ("adapter", "merged", "model-export"):  # save_pretrained's weight shards and tokenizer extras
        found += [p.name for p in root.glob("*.safetensors") if p.is_file()]
    return sorted(set(found))


def legacy_kind(root: Path) -> str | None:
    """The kind of output an earlier distill (before `.distill-owned.json`) left in `root`, from its files;
    None for a folder that shows no sign of distill."""
    if not root.is_dir():
        return None
    stats = _json(root / "stats.json")
    store = _store_info(root / "run.db")
    if isinstance(stats, dict) and "curate" in stats and "input" in stats:
        return "curated"
    if (store or {}).get("taxonomy") or (isinstance(stats, dict) and isinstance(stats.get("counts"), dict)
                                         and "kept" in stats["counts"]) or _RUN_LOCK.match(_text(root / "run.lock")):
        return "run"  # generation's stats.json always counts what it kept; its run.lock names its holder
    if store is not None or (isinstance(stats, dict) and ({"split", "review"} & stats.keys())):
        return "dataset"  # a user's dataset folder an earlier distill split or reviewed
    manifest = _json(root / "distill_manifest.json")
    if isinstance(manifest, dict) and "base_model" in manifest:
        if any(root.glob("*.gguf")):
            return "model-export"
        if (root / "adapter_config.json").is_file():
            return "adapter"
        if (root / "config.json").is_file():
            return "merged"
    if any(root.glob("checkpoints/checkpoint-*/trainer_state.json")):
        return "adapter"  # a training interrupted before it wrote its manifest
    readme = _text(root / "README.md")
    if "Exported by `distill review export" in readme or str((_json(root / ".argilla" / "dataset.json") or {})
                                                           .get("name", "")).startswith("distill-review-"):
        return "review-export"
    if "Exported by `distill export`" in readme and any(root.glob("data/*.parquet")):
        return "dataset-export"
    report = _json(root / "eval.json")
    if isinstance(report, dict) and "systems" in report:
        return "eval"
    return None


def _json(path: Path) -> Any:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:4096] if path.is_file() else ""
    except OSError:
        return ""


def _store_info(path: Path) -> dict[str, Any] | None:
    """run_info of a distill run store (read-only); None when `path` is no distill store."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT key, value FROM run_info").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    info = {}
    for key, value in rows:
        with suppress(ValueError, TypeError):
            info[key] = json.loads(value)
    return info


# --- small helpers ------------------------------------------------------------------------------------------

@contextmanager
def _folder_lock(root: Path) -> Iterator[None]:
    """flock on the folder itself: two processes updating the record one after the other, not at once."""
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)



@contextmanager
def _temporary_for(target: Path) -> Iterator[Path]:
    """A temporary beside `target` (our pid in its name, so a dead writer's is known as ours): fsynced and renamed
    over `target` when the block ends, removed when it raises, the error then naming `target`."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.distill-tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        _remove(tmp)
        _name_the_file(exc, tmp, target)
        raise

def _fsync(path: Path) -> None:
    if path.is_dir():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def _name_the_file(exc: BaseException, tmp: Path, target: Path) -> None:
    """A failed write() names no file, and a failed temporary names one the user never sees: name the target."""
    if isinstance(exc, OSError) and exc.filename in (None, str(tmp), tmp):
        exc.filename = str(target)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file outside any owned folder (a file the user named) through a temporary beside it."""
    with _temporary_for(Path(path)) as tmp:
        write(tmp)
