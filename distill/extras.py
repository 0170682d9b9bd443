"""Optional extras: the packages a stage needs beyond distill's core (`pip install 'distill[train]'`).

They are imported inside the functions that use them, never at the top of a module, so that `pip install distill`
runs everything else. Where a user's command meets one first, the import stands in `with needs(...)`: a package
that is missing is then one line naming the extra that installs it, not a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distill.errors import DistillError

PAGE = "docs/getting-started.md#extras"


class MissingExtra(DistillError):
    """A package of an optional extra is not installed (exit code 2: installing it is the user's to do)."""

    page = PAGE


@contextmanager
def needs(*extras: str, purpose: str, install: str = "") -> Iterator[None]:
    """Imports in this block that find a package missing raise MissingExtra: "`purpose` needs the package
    'trl'; install it with: pip install 'distill[local,train]'" (or `install`, where pip alone is not the
    whole answer). A module of distill's own that is missing is a bug, and stays a ModuleNotFoundError."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.partition(".")[0] == "distill":
            raise
        how = install or f"install it with: pip install 'distill[{','.join(extras)}]'"
        raise MissingExtra(f"{purpose} needs the package {exc.name!r}; {how}") from None
