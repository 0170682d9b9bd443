"""Where the files a taxonomy names may be: under its project, and never a hidden file.

A taxonomy is shared like any data file, and what it names is read and sent on: context files and seeds
go to the teacher, held-out sets into curation's reports. So a path in a taxonomy is relative, resolves
(links followed) under the taxonomy's project, and passes through no hidden folder or file (`.ssh`,
`.aws`, `.env`): a taxonomy downloaded into ~/Downloads cannot make distill read ~/.ssh/id_rsa.

The project is the folder above the taxonomy's own, where this layout keeps `seeds/`, `prompts/` and
held-out sets beside `taxonomies/`; but when that folder is the file system's root, the home folder or
a folder above it, the project is the taxonomy's own folder only.
"""

from __future__ import annotations

from pathlib import Path


def project_root(taxonomy_file: Path) -> Path:
    """The folder every path in `taxonomy_file` must stay under (see the module docstring)."""
    own = taxonomy_file.resolve().parent
    above = own.parent
    home = Path.home().resolve()
    if above == own or above == home or above in home.parents:
        return own
    return above


def taxonomy_path(taxonomy_file: Path, value: str | Path) -> Path:
    """`value`, a path written in the taxonomy, resolved against its folder; ValueError saying why it is refused
    when it is absolute, leaves the project, or names a hidden file or folder."""
    if Path(value).is_absolute():
        raise ValueError(f"{value} is an absolute path; write it relative to the taxonomy file's folder, "
                         "under its project folder")
    root = project_root(taxonomy_file)
    path = (taxonomy_file.parent / value).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{value} leads outside the taxonomy's project folder {root}; a taxonomy reads only "
                         "files under it: move the file there")
    hidden = [part for part in path.relative_to(root).parts if part.startswith(".")]
    if hidden:
        raise ValueError(f"{value} goes through the hidden {hidden[0]!r}; a taxonomy does not read hidden files or "
                         "folders (where keys and settings live): move the file to a visible folder")
    return path
