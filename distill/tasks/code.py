"""Python a task names (custom checks, pydantic output models): checked without running it, imported only
when asked (by the commands that generate or curate).

Taxonomies travel, and a run folder names the taxonomy it was made from, so a file must never make Python
run by being read. A task written in a taxonomy or in a task YAML file names Python in two ways only:
`file.py:name`, a file under the taxonomy's own folder (symlinks followed) that defines `name` at its top
level, and an installed `distill.checks` plugin by name. Both are checked here by reading, never running:
the file is parsed with `ast`, the plugin looked up among the installed entry points. Built-in and plugin
tasks, which are code the user installed, may also name `package.module:name`.

What is imported is checked again once it is: a check must be a plain function defined in that file (not
`os.system` bound to a name), a model a pydantic class defined there.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel

from distill.errors import DistillError
from distill.plugins import find_plugin, installed
from distill.tasks.schema import import_object
from distill.userfiles import read_text

Kind = Literal["function", "class"]  # a check is a function, an output schema a pydantic class


@dataclass(frozen=True)
class CodeRef:
    """One piece of Python a task names, checked to exist; `load` imports it."""

    reference: str  # as the task writes it
    kind: Kind
    name: str  # the function or class (a plugin's name for a plugin)
    file: Path | None = None  # file.py:name, resolved
    module: str | None = None  # package.module:name (built-in and plugin tasks only)

    @property
    def plugin(self) -> bool:
        return self.file is None and self.module is None


def check_reference(reference: str, kind: Kind, base: Path | None, root: Path | None) -> CodeRef:
    """`reference` checked without running anything: ValueError saying what is wrong. Relative files are
    found from `base`; `root` is the folder they must lie in (None: a built-in or plugin task, trusted)."""
    if ".py:" in reference:
        file_part, _, name = reference.rpartition(":")
        return _file_ref(reference, kind, Path(file_part), name, base, root)
    if ":" in reference:
        if root is not None:
            raise ValueError(f"{reference!r} names a Python module; a taxonomy's task names Python only as "
                             "file.py:name, a file in the taxonomy's folder"
                             + (" (or an installed check plugin by name)" if kind == "function" else ""))
        module, _, name = reference.partition(":")
        return CodeRef(reference, kind, name, module=module)
    if kind == "function":
        if reference not in {p.name for p in installed("checks")}:
            known = ", ".join(p.name for p in installed("checks")) or "none installed"
            raise ValueError(f"unknown check {reference!r} (installed check plugins: {known}); give "
                             "file.py:function, a file in the taxonomy's folder, for your own")
        return CodeRef(reference, kind, reference)
    raise ValueError(f"{reference!r}: give a pydantic model as file.py:Model (a file in the taxonomy's folder)")


def _file_ref(reference: str, kind: Kind, path: Path, name: str, base: Path | None, root: Path | None) -> CodeRef:
    if not path.is_absolute() and base is not None:
        path = base / path
    path = path.resolve()
    if root is not None and not path.is_relative_to(root.resolve()):
        raise ValueError(f"{reference!r} is outside the taxonomy's folder ({root}); Python a taxonomy runs lives "
                         "in its own folder: move the file there")
    if not path.is_file():
        raise ValueError(f"{'check' if kind == 'function' else 'model'} file {path} not found (paths are relative "
                         "to the file that declares the task)")
    try:
        tree = ast.parse(read_text(path, "Python file"), filename=str(path))
    except DistillError as exc:  # not UTF-8, unreadable
        raise ValueError(f"{path.name}: {exc.reason}") from None
    except SyntaxError as exc:
        raise ValueError(f"{path.name}:{exc.lineno}: not valid Python ({exc.msg})") from None
    wanted = ast.FunctionDef if kind == "function" else ast.ClassDef
    if not any(isinstance(node, wanted) and node.name == name for node in tree.body):
        raise ValueError(f"{path.name} has no {kind} {name!r} at its top level ({path})")
    return CodeRef(reference, kind, name, file=path)


def load(ref: CodeRef) -> Any:
    """The function or class `ref` names, imported now; ValueError when it is not what the task says."""
    if ref.plugin:
        found = find_plugin("checks", ref.name)
        if not callable(found):
            raise ValueError(f"the check plugin {ref.name!r} is not a function")
        return found
    if ref.module is not None:
        return import_object(f"{ref.module}:{ref.name}", f"a {'check function' if ref.kind == 'function' else 'model'}")
    file = cast(Path, ref.file)  # neither a plugin nor a module: a file
    module = _load_file(file)
    found = getattr(module, ref.name, None)
    if ref.kind == "function":
        if not (inspect.isfunction(found) and found.__code__.co_filename == str(file)):
            raise ValueError(f"{ref.name!r} in {file.name} is not a function defined in that file")
    elif not (isinstance(found, type) and issubclass(found, BaseModel) and found.__module__ == module.__name__):
        raise ValueError(f"{ref.name!r} in {file.name} is not a pydantic model defined in that file (a class "
                         "deriving from pydantic.BaseModel)")
    return found


def _load_file(path: Path):
    """A Python file as a module, once (named after its path, so two files of the same name stay apart)."""
    name = f"distill_user_code_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # (a .py file always has both)
        raise ValueError(f"{path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(f"{path} failed to load: {type(exc).__name__}: {exc}") from None
    return module
