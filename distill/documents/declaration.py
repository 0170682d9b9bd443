"""`documents.yaml`, what the owner of a documents folder declares in it: the licences of its files, and the
question sets it holds that are held out (an FAQ, an exam): never read as documents, and decontaminated against
as a taxonomy's `heldout:` sets are.

    license: CC-BY-4.0            # every file not named below
    licenses:
      protocols.pdf: proprietary  # a file, relative to the folder
    held_out: [faq.jsonl, {path: exam/questions.csv, fields: [question]}]
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill.documents.records import DECLARATION
from distill.errors import DistillError
from distill.records import HELDOUT_SUFFIXES, HeldoutSource
from distill.userfiles import line_of, load_yaml_mapping, located

PAGE = "docs/documents.md#licences-and-the-dataset-card"
HELD_OUT_PAGE = "docs/documents.md#your-own-question-sets-held-out"


class Declaration(BaseModel):
    """`documents.yaml`: a licence for every file (`license`), one by file (`licenses`, which wins), and the
    question sets held out (`held_out`: a path relative to the folder, or `{path:, fields: [...]}`)."""

    model_config = ConfigDict(extra="forbid")

    license: str | None = None
    licenses: dict[str, str] = Field(default_factory=dict)
    held_out: list[HeldoutSource] = Field(default_factory=list)

    @field_validator("held_out", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        """`faq.jsonl`, `[faq.jsonl, {path: exam.csv, fields: [question]}]`: each entry a source."""
        entries = [value] if isinstance(value, (str, dict)) else [] if value is None else value
        if not isinstance(entries, list):
            return value
        return [{"path": entry} if isinstance(entry, str) else entry for entry in entries]

    @field_validator("license")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty licence; name it (CC-BY-4.0, proprietary ...) or leave the key out")
        return value

    @field_validator("licenses")
    @classmethod
    def _each_named(cls, licenses: dict[str, str]) -> dict[str, str]:
        for file, value in licenses.items():
            if not value.strip():
                raise ValueError(f"{file}: an empty licence; name it (CC-BY-4.0, proprietary ...)")
        return licenses


def load_declaration(folder: Path) -> tuple[Declaration, Any]:
    """The folder's `documents.yaml` and its parsed YAML (for line numbers); none: nothing declared."""
    path = folder / DECLARATION
    if not path.is_file():
        return Declaration(), None
    data = load_yaml_mapping(path, "documents declaration",
                             "license: NAME, licenses: {FILE: NAME} and held_out: [FILE, ...]")
    try:
        return Declaration.model_validate(data), data
    except ValidationError as exc:
        page = HELD_OUT_PAGE if exc.errors()[0]["loc"][:1] == ("held_out",) else PAGE
        raise located(exc, data, path, page=page) from None


def held_out_sets(folder: Path) -> dict[str, HeldoutSource]:
    """The question sets `folder`'s documents.yaml holds out, by their path relative to the folder, each a
    held-out source named by that path (so a contaminated example's detail names the file). Checked before
    anything reads them: a path that leaves the folder (absolute, `..`, a link out) is never opened, and it, a
    missing file or a format distill cannot read as a question set is one line."""
    declaration, data = load_declaration(folder)
    root = folder.resolve()
    sets: dict[str, HeldoutSource] = {}
    entries = data.get("held_out") if isinstance(data, dict) else None
    for number, source in enumerate(declaration.held_out):
        written_as_path = isinstance(entries, str) or (isinstance(entries, list) and isinstance(entries[number], str))
        where = ("held_out", number) if written_as_path else ("held_out", number, "path")
        problem = _problem(folder, root, source.path)
        if problem:
            raise DistillError(f"held_out.{number}: {source.path}: {problem}", path=folder / DECLARATION,
                               line=line_of(data, where), page=HELD_OUT_PAGE)
        name = PurePosixPath(source.path).as_posix()
        sets[name] = source.model_copy(update={"path": str(folder / name), "name": source.name or name})
    return sets


def _problem(folder: Path, root: Path, path: str) -> str | None:
    """Why `path` cannot be a held-out set of `folder` (None: it can); never reads the file."""
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        return "an absolute path; name a file inside the documents folder, relative to it"
    if ".." in PurePosixPath(path).parts:
        return "'..' leads out of the documents folder; name a file inside it, relative to it"
    target = folder / path
    if not target.resolve().is_relative_to(root):  # a link: resolved, not opened
        return "a link that leads out of the documents folder; copy the question set into the folder"
    if not target.exists():
        return f"not found in {folder}; name a file inside the documents folder, relative to it"
    suffix = target.suffix.lower()
    if target.is_file() and suffix not in HELDOUT_SUFFIXES:
        return (f"{suffix or 'a file without a suffix'} is not a question-set format distill reads; save it as "
                f"{', '.join(sorted(HELDOUT_SUFFIXES))} (or a datasets folder)")
    return None
