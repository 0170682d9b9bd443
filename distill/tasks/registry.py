"""Where a taxonomy's `task:` comes from: a built-in name, a plugin, a task YAML file, or an inline spec.

Built-in tasks are YAML files in `distill/tasks/builtin/`, read by the same code as any user's task
file: `qa` and `classification` run on the one engine like every other task.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.plugins import find_plugin, installed
from distill.tasks.spec import TaskSpec
from distill.userfiles import load_yaml_mapping, located

BUILTIN = Path(__file__).resolve().parent / "builtin"


@dataclass(frozen=True)
class TaskSource:
    """A task spec and the folder its template and check files are relative to (None: the taxonomy's)."""

    spec: TaskSpec
    folder: Path | None
    origin: str  # "built-in", "plugin <name> (<package>)", "file", or "inline"
    file: Path | None = None  # the task YAML file it was read from
    data: Any = None  # that file's YAML, for the line of a field


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN.glob("*.yaml"))


def looks_like_path(reference: str) -> bool:
    return reference.endswith((".yaml", ".yml")) or "/" in reference or "\\" in reference


def resolve_task(reference: str | dict | TaskSpec, base: Path | None) -> TaskSource:
    """The task a taxonomy names. A path is relative to `base` (the taxonomy's folder); ValueError for
    an unknown name (the caller says where the name was written)."""
    if isinstance(reference, TaskSpec):
        return TaskSource(reference, None, "inline")
    if isinstance(reference, dict):
        return TaskSource(TaskSpec.model_validate(reference), None, "inline")
    if looks_like_path(reference):
        path = Path(reference)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ValueError(f"task file {path} not found (a task path is relative to the taxonomy's folder)")
        return _file_source(path, "file")
    if reference in builtin_names():
        return _builtin(reference)

    found = find_plugin("tasks", reference)
    if found is not None:
        plugin = next(p for p in installed("tasks") if p.name == reference)
        return _from_plugin(found, plugin)
    plugins = [p.name for p in installed("tasks")]
    raise ValueError(f"unknown task {reference!r}; built-in tasks: {', '.join(builtin_names())}"
                     + (f"; installed task plugins: {', '.join(plugins)}" if plugins else "")
                     + "; or give the path of a task YAML file, or declare the task inline (a mapping)")


@lru_cache(maxsize=None)
def _builtin(name: str) -> TaskSource:
    # Their templates are found through the built-in prompts folder, after the taxonomy's own prompts/.
    source = _file_source(BUILTIN / f"{name}.yaml", "built-in")
    return TaskSource(source.spec, None, "built-in", source.file, source.data)


def _file_source(path: Path, origin: str) -> TaskSource:
    data = load_yaml_mapping(path, "task file", "name:, seed:, steps: and example:")
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise located(exc, data, path) from None
    return TaskSource(spec, path.resolve().parent, origin, path, data)


def load_task_file(path: str | Path) -> TaskSpec:
    """A task YAML file as a TaskSpec; a mistake is one line naming the file, the line and the field."""
    return _file_source(Path(path), "file").spec


def _from_plugin(found: Any, plugin: Any) -> TaskSource:
    """A `distill.tasks` entry point: a TaskSpec, a mapping, a path to a task YAML file, or a function
    returning one of them."""
    value = found() if callable(found) and not isinstance(found, type) else found
    origin = f"plugin {plugin.name} ({plugin.package})"
    try:
        if isinstance(value, TaskSpec):
            return TaskSource(value, None, origin)
        if isinstance(value, dict):
            return TaskSource(TaskSpec.model_validate(value), None, origin)
        if isinstance(value, (str, Path)):
            return _file_source(Path(value), origin)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DistillError(f"the task plugin {plugin.name!r} ({plugin.package}) is not a valid task: "
                           f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    raise DistillError(f"the task plugin {plugin.name!r} ({plugin.module}) gave a {type(value).__name__}; it must "
                       "point to a TaskSpec, a mapping, or the path of a task YAML file")
