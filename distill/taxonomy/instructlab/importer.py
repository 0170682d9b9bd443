"""`import_instructlab` writes a taxonomy file and its seed and passage files, then loads it back. Like
`load_instructlab` (the other way in, in memory: `--taxonomy DIR`) it reports every skipped file and every
warning, one line each, and goes on with the valid leaves; nothing valid at all is an error (exit 2)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from distill.errors import DistillError
from distill.owned import MANIFEST, OwnedFolder, atomic_write
from distill.taxonomy.instructlab.convert import SYSTEM_PROMPT, Converted, convert, node_name
from distill.taxonomy.instructlab.documents import ReadPassages
from distill.taxonomy.instructlab.load import Say, log_line, report
from distill.taxonomy.instructlab.read import Problem
from distill.taxonomy.load import load_taxonomy
from distill.taxonomy.model import Taxonomy

HEADER = "# Imported from the InstructLab taxonomy "  # the first line of every taxonomy file written here


@dataclass
class ImportReport:
    taxonomy: Path  # the taxonomy file written
    leaves: int  # leaves of the distill taxonomy (a grounded qna.yaml gives one a passage)
    seeds: int
    files: list[Path] = field(default_factory=list)  # seed and passage files written
    problems: list[Problem] = field(default_factory=list)  # invalid qna.yaml files, not imported
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # defaults for what an older schema version lacks


def import_instructlab(root: str | Path, out: str | Path, *, read: ReadPassages, documents: str | Path | None = None,
                       name: str | None = None, per_leaf: int = 3, system_prompt: str = SYSTEM_PROMPT,
                       force: bool = False, say: Say = log_line) -> ImportReport:
    """Write `out` (a distill taxonomy) and its files in `<NAME>-seeds/` beside it, then load it back. `read`
    reads a knowledge leaf's documents into passages (distill/documents/knowledge.py `passage_texts`: it sits
    above the taxonomy, so the command hands it in)."""
    root, out = Path(root), Path(out)
    name = name or node_name(out.stem)
    if not name:
        raise DistillError("the taxonomy file's name needs a letter or digit (it names the taxonomy); "
                           "or give --name", path=out)
    _check_taxonomy_file(out, force)
    if documents is not None and not Path(documents).is_dir():
        raise DistillError("--documents: not a folder; give the folder holding the knowledge documents",
                           path=documents)
    files_dir = f"{name}-seeds"
    converted = convert(root, name, files_dir=files_dir, documents=Path(documents) if documents else None,
                        per_leaf=per_leaf, system_prompt=system_prompt, read=read)
    report(converted, root, say)
    Taxonomy.model_validate(converted.data)  # what we write must load
    seeds = _seeds_folder(out, files_dir, converted, force)
    written = [seeds.write_text(relative.removeprefix(files_dir + "/"), text)
               for relative, text in converted.files.items()]
    seeds.prune()  # seed files of leaves an earlier import had and this one has not

    def write_taxonomy(path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            handle.write(f"{HEADER}{root.resolve()} by `distill taxonomy import-instructlab`.\n"
                         f"# Seeds and passages are in {files_dir}/.\n")
            yaml = YAML()
            yaml.width = 4096
            yaml.dump(_literal(converted.data), handle)

    atomic_write(out, write_taxonomy)
    load_taxonomy(out)  # the file we wrote loads, seeds and passages too
    return ImportReport(taxonomy=out, leaves=converted.leaves, seeds=converted.seeds, files=written,
                        problems=converted.problems, warnings=converted.warnings, notes=converted.notes)


def _check_taxonomy_file(out: Path, force: bool) -> None:
    """An existing --out is replaced only with --force (it may carry the user's edits since the import),
    and never when distill did not write it (no import header): a hand-written taxonomy is the user's."""
    if not os.path.lexists(out):
        return
    if out.is_dir():
        raise DistillError("is a folder; give the path of the taxonomy file to write", path=out)
    if not _imported(out):
        raise DistillError("exists and distill did not write it (no import header); move it or choose another "
                           "--out", path=out)
    if not force:
        raise DistillError("already exists; pass --force to replace it (and the seed files it names)", path=out)


def _imported(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return first.startswith(HEADER) and "import-instructlab" in first


def _seeds_folder(out: Path, files_dir: str, converted: Converted, force: bool) -> OwnedFolder:
    """NAME-seeds/ beside the taxonomy file, claimed. One an earlier distill import wrote (before
    `.distill-owned.json`) is adopted, the names this import writes counted as its own, when the taxonomy
    file beside it carries the import header."""
    folder = out.parent / files_dir
    if folder.is_dir() and not (folder / MANIFEST).exists() and _imported(out):
        names = [relative.removeprefix(files_dir + "/") for relative in converted.files]
        OwnedFolder(folder, "taxonomy-seeds", [n for n in names if (folder / n).is_file()], "--out",
                    recorded=False).record()
    seeds = OwnedFolder.claim(folder, "taxonomy-seeds", force=force)
    seeds.check_all(relative.removeprefix(files_dir + "/") for relative in converted.files)
    return seeds


# Characters a block scalar cannot hold as they are (ruamel would write them out and fail to read them back,
# or turn \r\n into \n): text with any of them stays a quoted string with escapes.
_NOT_LITERAL = re.compile(r"[^\n\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]")


def _literal(value):
    """Multi-line text as YAML block scalars (`|`), which read as the text they hold."""
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    if isinstance(value, str) and "\n" in value and not _NOT_LITERAL.search(value):
        return LiteralScalarString(value)
    return value
