"""An InstructLab folder as a taxonomy, converted in memory wherever a taxonomy path is accepted
(`--taxonomy DIR`): every skipped file and every warning reported, one line each, and the valid leaves kept;
nothing valid at all is an error (exit 2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from distill.errors import DistillError
from distill.taxonomy.instructlab.convert import Converted, convert, node_name
from distill.taxonomy.instructlab.documents import Knowledge
from distill.taxonomy.model import Taxonomy

log = logging.getLogger("distill.instructlab")
Say = Callable[[str], None]


def log_line(line: str) -> None:
    log.warning(line)


def report(converted: Converted, root: Path, say: Say) -> None:
    """Every skipped file, warning and note (a default for what an older schema version lacks), one line each; an error when nothing valid is left."""
    for problem in converted.problems:
        say(f"invalid, not imported: {problem}")
    for warning in converted.warnings:
        say(f"warning: {warning}")
    for note in converted.notes:
        say(f"note: {note}")
    if not converted.data["tree"]:
        files = len({problem.file for problem in converted.problems})
        if not files:
            raise DistillError("no qna.yaml file below this folder; give the root folder of an InstructLab "
                               "taxonomy (or the path of a taxonomy YAML file)", path=root)
        raise DistillError(f"no valid InstructLab qna.yaml to import ({files} invalid file{'s' if files != 1 else ''}, "
                           "listed above); fix them and import again", path=root)


def load_instructlab(root: str | Path, say: Say = log_line) -> tuple[Taxonomy, Knowledge | None]:
    """The taxonomy of an InstructLab folder, converted in memory (seeds and seed contexts inline), and its
    knowledge leaves' document files, for `distill generate` to read (None: no leaf has local documents)."""
    root = Path(root)
    converted = convert(root, node_name(root.resolve().name) or "instructlab")
    report(converted, root, say)
    return Taxonomy.model_validate(converted.data), converted.knowledge
