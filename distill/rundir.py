"""The run folder and its one owner, `RunDir`: the name of every file in it, and every read and write of it.

A run folder is what `distill generate` writes (`--out`, default runs/<taxonomy name>), a folder `distill curate`
writes, or a dataset folder of the user's that `split`, `review`, `train` and `eval` work in. The stages meet
only here: generation ends at run.db and the examples in it, curation writes the dataset, the review applies its
decisions to it, the split carves train.jsonl and eval.jsonl out of it, training and evaluation read the split.
No other module spells a file name of the folder; each asks `RunDir` for the path, the reader or the writer.

Every write goes through `OwnedFolder` (distill/owned.py): atomic, and never over a file distill did not write.

Two `distill generate` on one `--out` would each see every item as pending and each pay the teacher
for all of them. `run_lock` holds an OS file lock (flock on `run.lock`) for the whole run; the kernel
drops it when the process ends, kill -9 included, so a stale lock never blocks a resume. The holder's
pid and command are written into the file so the second run can say who holds it; a key in the command
(a `--base-url` carrying one) is masked first, since the file and that message reach other users.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.owned import OwnedFolder, writable_folder
from distill.records import Example, iter_jsonl, read_examples
from distill.redact import redact
from distill.store import RunStore, store_errors

# --- the names ------------------------------------------------------------------------------------------------

RUN_DB = "run.db"  # the source of truth: plan, teacher calls, examples, rejects, the review (store.py)
LOCK_FILE = "run.lock"  # held by the process writing the folder; names its holder
DATASET = "dataset.jsonl"  # the kept examples
REJECTED = "rejected.jsonl"  # every reject, with its stage, reason and detail
STATS = "stats.json"  # every stage's counts and figures, a key each
TAXONOMY = "taxonomy.json"  # what review and export show of the run's taxonomy (taxonomy/snapshot.py)
TRAIN = "train.jsonl"  # the split: trained on
EVAL = "eval.jsonl"  # the split: held out, never trained on
PIPELINE = "pipeline.json"  # the stages of `distill run` that finished
CONTAMINATION = "contamination.jsonl"  # curation: examples removed for overlapping a held-out set
DUPLICATES = "duplicates.jsonl"  # curation: examples removed as duplicates, with what they duplicate
REPORT = "report.md"  # curation: the yield report a person reads
JUDGE_DB = "judge.db"  # `distill curate --judge/--label-check`: the judges' calls (run.db marks a generation run)
DATASET_PARTS = "dataset/"  # curation on Ray: the kept rows as part files
REJECTED_PARTS = "rejected/"  # curation on Ray: the rejects as part files
EVAL_JSON = "eval.json"  # `distill eval`: every number and every answer
EVAL_MD = "eval.md"  # `distill eval`: the tables a person reads
EVAL_LEAVES_PNG = "eval_leaves.png"  # `distill eval`: scores per leaf
EVAL_CONFUSION_PNG = "eval_confusion.png"  # `distill eval`: confusion matrices
STUDENT = "student"  # `distill train`'s adapter folder, by default
DIVERSITY = "diversity.json"  # `distill taxonomy diversity`: distinct-n, self-similarity, empty and saturated leaves
DOCUMENTS = "documents.json"  # `distill generate --documents`: the files read (sha256, licence) and passages' texts
PREFERENCES = "preferences.jsonl"  # preference pairs from the student's own answers (train/preferences.py)
STUDENT_DPO = "student-dpo"  # `distill train --dpo`'s adapter folder, by default
ROUNDS = "rounds"  # `distill improve`: rounds/N/ holds round N's attempts, adapter (student/) and eval (eval/)
IMPROVE_MD = "improve.md"  # `distill improve`: every round's table
IMPROVE_PNG = "improve_leaves.png"  # `distill improve`: per-leaf scores across rounds

EXPORTS = (DATASET, REJECTED, STATS)  # rebuilt from run.db at the end of every generation (and by the review)
SPLIT = (TRAIN, EVAL)
CURATED = (DATASET, REJECTED, STATS, REPORT, CONTAMINATION, DUPLICATES)  # what `distill curate` writes
EVAL_REPORT = (EVAL_JSON, EVAL_MD, EVAL_LEAVES_PNG, EVAL_CONFUSION_PNG)
ARTIFACTS = (RUN_DB, LOCK_FILE, *CURATED, TAXONOMY, *SPLIT, PIPELINE, JUDGE_DB, DATASET_PARTS, REJECTED_PARTS,
             *EVAL_REPORT, DIVERSITY, DOCUMENTS, PREFERENCES, ROUNDS, IMPROVE_MD, IMPROVE_PNG)

_held: dict[Path, int] = {}  # run directories this process holds -> nesting depth (`distill run` wraps generate)


class RunDir:
    """A run folder: its paths, its store and the readers and writers of its files.

    `option` is how the user named the folder (`--out`, `DIR`, `RUN_DIR`, `out:`), for the one-line errors;
    `kind` is the kind of folder it is taken for when it carries no ownership record yet (see owned.py)."""

    def __init__(self, root: str | Path, option: str = "DIR", kind: str = "dataset"):
        self.root = Path(root)
        self.option = option
        self.kind = kind
        self._claimed: OwnedFolder | None = None  # `curated`'s, once claimed: its writes answer as an --out's
        self._force: bool | None = None  # `curated`'s --force, kept until the folder is claimed

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    # --- opening --------------------------------------------------------------------------------------------

    @classmethod
    def claim(cls, root: str | Path, option: str = "--out", force: bool = False,
              force_option: str | None = "--force") -> RunDir:
        """A generation run folder, claimed before its lock or store go in: a folder of the user's is refused
        unless `force`, and a file of theirs named like one of the run's is refused at once."""
        run_dir = cls(root, option, kind="run")
        folder = OwnedFolder.claim(run_dir.root, "run", option=option, force=force, force_option=force_option)
        folder.check_all((*EXPORTS, TAXONOMY))
        folder.reserve(LOCK_FILE)
        folder.reserve(RUN_DB)
        return run_dir

    @classmethod
    def curated(cls, root: str | Path, force: bool = False) -> RunDir:
        """The --out folder of `distill curate`, named but not made yet: it is claimed (`claimed`) once the
        curation is checked, or at its first write, so a curation refused before it starts leaves no folder."""
        run_dir = cls(root, "--out", kind="curated")
        run_dir._force = force
        return run_dir

    def claimed(self) -> RunDir:
        """This `curated` folder, claimed before anything is written there (the judges' judge.db included), if it
        is not yet: a generation run folder is refused (curate would write over its exports), a folder of the
        user's too unless --force, and a file of theirs named like one of curate's outputs at once."""
        if self._claimed is not None or self._force is None:
            return self
        if (self.root / RUN_DB).exists():
            raise DistillError(f"--out {self.root} is a generation run directory: curate would write over its "
                               f"{DATASET} and {REJECTED} (generation's exports); give another --out "
                               "(default INPUT/curated)")
        folder = OwnedFolder.claim(self.root, "curated", force=self._force)
        folder.check_all(CURATED)
        self._claimed = folder
        return self

    def folder(self) -> OwnedFolder:
        """The folder's record of what distill wrote there, for writing under its per-file rule: as claimed for
        this output, or a folder worked in (never refused as a whole, each file still guarded)."""
        self.claimed()
        return self._claimed or OwnedFolder.in_place(self.root, self.kind, option=self.option)

    @contextmanager
    def lock(self) -> Iterator[RunDir]:
        """`run_lock` on this folder: this process writes it, and a second run stops at once."""
        with run_lock(self.root, self.option):
            yield self

    @contextmanager
    def hold(self) -> Iterator[RunDir]:
        """`hold_run` on this folder: a command rewriting its derived files waits for no writer."""
        with hold_run(self.root, self.option):
            yield self

    # --- paths ----------------------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def run_db(self) -> Path:
        return self.root / RUN_DB

    @property
    def dataset(self) -> Path:
        return self.root / DATASET

    @property
    def rejected(self) -> Path:
        return self.root / REJECTED

    @property
    def stats(self) -> Path:
        return self.root / STATS

    @property
    def train(self) -> Path:
        return self.root / TRAIN

    @property
    def eval(self) -> Path:
        return self.root / EVAL

    @property
    def student(self) -> Path:
        """Where `distill train` writes the adapter unless told otherwise."""
        return self.root / STUDENT

    @property
    def preferences(self) -> Path:
        return self.root / PREFERENCES

    @property
    def student_dpo(self) -> Path:
        """Where `distill train --dpo` writes the preference-trained adapter unless told otherwise."""
        return self.root / STUDENT_DPO

    # --- the store ------------------------------------------------------------------------------------------

    def has_store(self) -> bool:
        return self.run_db.is_file()

    def open_store(self) -> RunStore:
        """run.db, opened (and made, with its tables, when missing)."""
        return RunStore(self.run_db)

    def reserve_store(self) -> Path:
        """run.db recorded as distill's before SQLite makes it (the review's tables in a user's folder)."""
        return self.folder().reserve(RUN_DB)

    def store_errors(self):
        """SQLite's errors about run.db as one line naming it."""
        return store_errors(self.run_db)

    # --- reading --------------------------------------------------------------------------------------------

    def has_dataset(self) -> bool:
        return self.dataset.is_file()

    def has_split(self) -> bool:
        return self.train.is_file() and self.eval.is_file()

    def read_dataset(self) -> list[Example]:
        """dataset.jsonl as distill writes it (a dataset in another format is read by curate's load_examples)."""
        return read_examples(self.dataset)

    def read_split(self) -> tuple[list[Example], list[Example]]:
        """(train.jsonl, eval.jsonl) as they are on disk."""
        return read_examples(self.train), read_examples(self.eval)

    def read_held_out(self) -> list[Example]:
        return read_examples(self.eval)

    def read_stats(self) -> dict[str, Any]:
        """stats.json, or {} when there is none or it cannot be read (it is a report: a reader says less)."""
        try:
            data = json.loads(self.stats.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def recorded_split(self) -> dict | None:
        """The split's record in stats.json, if any."""
        split = self.read_stats().get("split")
        return split if isinstance(split, dict) else None

    def read_rejected_rows(self) -> list[dict[str, Any]]:
        return [row for _, row in iter_jsonl(self.rejected)] if self.rejected.is_file() else []

    def read_dataset_ids(self) -> list[str]:
        """The ids of dataset.jsonl's rows, in order (a quick count of what was kept)."""
        return [row.get("id") for _, row in iter_jsonl(self.dataset)] if self.has_dataset() else []

    def read_pipeline(self) -> dict[str, Any]:
        """pipeline.json: the stages of `distill run` that finished ({"done": {}} before the first)."""
        path = self.root / PIPELINE
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"done": {}}
        except (ValueError, UnicodeDecodeError):
            raise DistillError(f"{PIPELINE} is damaged; delete it to run every stage again (each resumes from what "
                               "it saved)", path=path) from None

    def read_documents(self) -> dict[str, Any] | None:
        """documents.json: the documents the run was generated from (distill/documents/provenance.py); None
        for a run without `--documents`."""
        path = self.root / DOCUMENTS
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise DistillError(f"{DOCUMENTS} is damaged; run `distill generate --documents DIR` on this folder "
                               "again to write it", path=path)
        return data

    def users_files(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that are in the folder and were not written by distill: the user's, left alone."""
        folder = self.folder()
        return [name for name in names if os.path.lexists(self.root / name) and not folder.owns(name)]

    # --- writing --------------------------------------------------------------------------------------------

    def write_exports(self, kept: Iterable[Any], rejects: Iterable[Any], stats: dict[str, Any]) -> dict[str, Path]:
        """dataset.jsonl, rejected.jsonl and stats.json, each replaced whole; their paths (and run.db's)."""
        folder = self.folder()
        folder.write_jsonl(DATASET, kept)
        folder.write_jsonl(REJECTED, rejects)
        folder.write_json(STATS, stats, default=str)
        return {"dataset": self.dataset, "rejected": self.rejected, "stats": self.stats, "run_db": self.run_db}

    def write_dataset(self, kept: Iterable[Any]) -> Path:
        return self.folder().write_jsonl(DATASET, kept)

    def write_rejected(self, rejects: Iterable[Any]) -> Path:
        return self.folder().write_jsonl(REJECTED, rejects)

    def write_stats(self, stats: dict[str, Any]) -> Path:
        return self.folder().write_json(STATS, stats, default=str)

    def update_stats(self, **parts: Any) -> Path:
        """Merge top-level keys into stats.json (where every stage keeps its figures), the rest kept."""
        return self.write_stats({**self.read_stats(), **parts})

    def write_documents(self, record: dict[str, Any]) -> Path:
        """documents.json, replaced whole: what the run was generated from (distill/documents/provenance.py)."""
        return self.folder().write_json(DOCUMENTS, record)

    def write_diversity(self, report: dict[str, Any]) -> Path:
        """diversity.json, replaced whole: the figures of each taxonomy leaf (`curate/diversity_report.py`)."""
        return self.folder().write_json(DIVERSITY, report)

    def check_split(self) -> None:
        """Refuse, before any work, a train.jsonl, eval.jsonl or stats.json of the user's."""
        self.folder().check_all((*SPLIT, STATS))

    def write_split(self, train: Iterable[Example], held_out: Iterable[Example]) -> None:
        """train.jsonl and eval.jsonl, each replaced whole (a file of those names the user wrote is refused
        before either is written)."""
        folder = self.folder()
        folder.check_all(SPLIT)
        folder.write_jsonl(TRAIN, train)
        folder.write_jsonl(EVAL, held_out)

    def write_train(self, train: Iterable[Example]) -> Path:
        """train.jsonl alone, replaced whole: eval.jsonl is left byte for byte as it is (`distill improve`)."""
        folder = self.folder()
        folder.check_all(SPLIT)
        return folder.write_jsonl(TRAIN, train)

    def round_dir(self, number: int) -> Path:
        """`distill improve`'s folder for round `number` (its attempts, adapter and eval)."""
        return self.root / ROUNDS / str(number)

    def write_pipeline(self, state: dict[str, Any]) -> Path:
        return self.folder().write_text(PIPELINE, json.dumps(state, indent=2, default=str))

    def write_curated(self, input_name: str, kept: Iterable[Any] | None, rejects: Iterable[Any] | None,
                      contamination: Iterable[Any], duplicates: Iterable[Any], stats: dict[str, Any],
                      report: str) -> None:
        """What `distill curate` writes (the kept rows and rejects only where the Ray executor did not write
        them as parts)."""
        folder = self.folder()
        if kept is not None:
            folder.write_jsonl(DATASET, kept)
        if rejects is not None:
            folder.write_jsonl(REJECTED, rejects)
        folder.write_jsonl(CONTAMINATION, contamination)
        folder.write_jsonl(DUPLICATES, duplicates)
        folder.write_json(STATS, {"input": input_name, **stats})
        folder.write_text(REPORT, report)

    def reserve_parts(self) -> None:
        """dataset/ and rejected/ recorded as distill's: the Ray executor's tasks each write a part in there."""
        folder = self.folder()
        for parts in (DATASET_PARTS, REJECTED_PARTS):
            folder.reserve(parts)


# --- holding a folder -----------------------------------------------------------------------------------------

@contextmanager
def run_lock(out: Path, option: str = "--out") -> Iterator[Path]:
    """Hold `out` for this process: a second run on it stops at once, naming the process that holds it."""
    writable_folder(out, option)
    key = out.resolve()
    if key in _held:  # the same process again (`distill run` -> generate): it already holds it
        _held[key] += 1
        try:
            yield out
        finally:
            _held[key] -= 1
        return
    try:
        # O_NOFOLLOW: a run.lock that is a link must not make us truncate whatever it points at.
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DistillError(f"{out / LOCK_FILE} is a link and distill did not make it; move it away") from None
        raise DistillError(f"{option} {out}: cannot write here ({_reason(exc)}); "
                           "choose a folder you can write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # Masked again on the way out: a lock file written by an older distill may hold a key.
        holder = redact(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()) or "another process"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DistillError(f"{option} {out}: cannot lock the run directory ({_reason(exc)})") from None
        raise DistillError(f"{out} is in use by another run ({holder}); wait for it to finish, stop it, "
                           f"or give another {option}") from None
    if not _ours(os.pread(fd, 4096, 0)):
        os.close(fd)
        raise DistillError(f"{out / LOCK_FILE} exists and distill did not write it; move it away (distill keeps "
                           "its run lock under that name)")
    os.ftruncate(fd, 0)
    command = redact(" ".join(["distill", *sys.argv[1:]]))[:300]
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: {command}\n".encode(), 0)
    _held[key] = 1
    try:
        yield out
    finally:
        del _held[key]
        os.close(fd)  # releases the lock; the file stays (removing it would race with a run taking it)


@contextmanager
def hold_run(run_dir: Path, option: str = "DIR") -> Iterator[Path]:
    """Hold an existing run directory while a command reads it and rewrites its derived files (split, export,
    review): none of them may work on a run another process is writing. A folder this process cannot write
    (a colleague's run, read-only) is read as it is: nobody we could wait for writes there either."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DistillError("run directory does not exist; give the folder distill wrote", path=run_dir)
    if not any((run_dir / name).exists() for name in (DATASET, DATASET_PARTS, RUN_DB, LOCK_FILE)):
        # Before the lock: a folder that holds no run must not be left with a run.lock in it.
        raise DistillError(f"no {DATASET} here: give a run directory (`distill generate`) or a folder "
                           "`distill curate` wrote", path=run_dir)
    if not os.access(run_dir, os.W_OK | os.X_OK):
        yield run_dir
        return
    with run_lock(run_dir, option):
        yield run_dir


_LOCK_LINE = re.compile(rb"pid \d+ on [^\n]*: distill")


def _ours(content: bytes) -> bool:
    """Empty (just made), or the line a distill run writes: anything else in run.lock is a user's file."""
    return not content.strip() or _LOCK_LINE.match(content) is not None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
