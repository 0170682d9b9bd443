"""`distill export`: a run's split as a Hugging Face dataset folder (Parquet shards + dataset card).

The folder is what `datasets.load_dataset(FOLDER)` and the Hub both read as it is:

    FOLDER/README.md                              the card; its YAML `configs` names the splits and their files
    FOLDER/data/train-00000-of-00001.parquet      the run's train.jsonl
    FOLDER/data/test-00000-of-00001.parquet       the run's eval.jsonl (held out; never trained on)

Columns: `id`, `messages` (role/content list, what TRL's SFTTrainer takes; with tool calls, results and reasoning
where the run has them, and then a `tools` column: `distill.export.parquet`), then the provenance flattened into
one column each (`task`, `taxonomy`, `taxonomy_path`, `axis_<name>` per taxonomy axis, `seed_ids`, `teacher`,
`prompt_sha256`, `plan_item_id`, sampling and usage figures); `output` holds a structured task's parsed object
as JSON and `meta_extra` any other metadata, so nothing in the run's records is lost. One explicit Arrow schema
serves both splits, so a column that is empty in one split keeps its type.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from distill.errors import DistillError
from distill.export.dataset_card import check_dataset_card, render_dataset_card, unknown_languages
from distill.export.parquet import arrow_schema, axis_names, has_turn_fields, write_shards
from distill.extras import needs
from distill.owned import OwnedFolder
from distill.rundir import RunDir
from distill.train.data import load_splits

# The Hub's dataset viewer and `datasets` read shards of this size comfortably (its own pushes use ~500 MB).
MAX_SHARD_BYTES = 256 * 1024 * 1024


class DatasetExportOptions(BaseModel):
    """Options of `distill export` (the card's license is the user's choice: no default)."""

    out: Path
    license: str
    force: bool = False  # write into a non-empty folder that is not distill's, beside what is there
    language: list[str] = Field(default_factory=lambda: ["en"])
    pretty_name: str | None = None
    split_fraction: float = Field(0.1, gt=0, lt=1)  # only when the run has no split yet
    seed: int = 0
    max_shard_bytes: int = Field(MAX_SHARD_BYTES, gt=0)


class DatasetExport(BaseModel):
    folder: Path
    rows: dict[str, int]
    files: dict[str, list[Path]]
    card: Path
    seconds: float


def export_dataset(run_dir: Path, options: DatasetExportOptions,
                   say: Callable[[str], None] | None = None) -> DatasetExport:
    """`run` on the run folder at `run_dir` (`distill export`)."""
    return run(RunDir(run_dir, "RUN_DIR"), options, say)


@needs("export", purpose="distill export")
def run(run_dir: RunDir, options: DatasetExportOptions, say: Callable[[str], None] | None = None) -> DatasetExport:
    """The dataset export stage: the run's train/test split as Parquet shards plus a dataset card in
    `options.out`. `say` gets what a person should know (the split extended to examples generated after it)."""
    started = time.perf_counter()
    out = Path(options.out)
    check_license(options.license)
    if unknown_languages(options.language):
        raise DistillError(f"--language {', '.join(unknown_languages(options.language))}: not an ISO 639 code "
                           "(en, fr, de, zh, ...); repeat --language for a multilingual set")
    # The run's own split (train.jsonl / eval.jsonl), or the curate stage's stratified one made and written now,
    # so that training later holds out exactly what the card calls `test`.
    with run_dir.hold():  # not while a generate or review rewrites the run's files
        folder = OwnedFolder.claim(out, "dataset-export", force=options.force)
        folder.check("README.md")
        train, held_out = load_splits(run_dir, options.split_fraction, options.seed, say)
    splits = {"train": train, "test": held_out}
    axes = axis_names(train + held_out)
    schema = arrow_schema(axes, has_turn_fields(train + held_out))
    files = {name: write_shards(examples, axes, schema, folder, name, options.max_shard_bytes)
             for name, examples in splits.items()}
    folder.prune("data/")  # an earlier export's shards that this one did not write again (it had more)
    card = out / "README.md"
    with folder.replacing("README.md") as draft:  # the card goes in last, and only once it passes its checks
        draft.write_text(render_dataset_card(run_dir, splits, schema, files, run_dir.read_stats(), options),
                         encoding="utf-8")
        problems = check_dataset_card(draft)
        if problems:  # our bug, not the user's: say so plainly rather than ship a card the Hub refuses
            raise DistillError(f"the dataset card failed its own checks: {'; '.join(problems)}")
    return DatasetExport(folder=out, rows={name: len(rows) for name, rows in splits.items()}, files=files, card=card,
                         seconds=time.perf_counter() - started)


_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def check_license(license_id: str) -> None:
    """A Hub license id is lower case (apache-2.0, cc-by-4.0, mit, other); the Hub checks the list on push."""
    if not _LICENSE.match(license_id or ""):
        raise DistillError(f"--license {license_id!r} is not a license id: use the Hub's lower-case ids, e.g. "
                           "apache-2.0, cc-by-4.0, cc-by-nc-4.0, mit, or other")
