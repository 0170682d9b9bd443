"""Plugins: teachers, tasks and curation checks from other installed packages, through entry points.

A package declares them in its pyproject.toml, and nothing in distill changes:

    [project.entry-points."distill.teachers"]
    echo = "my_package.teacher:EchoTeacher"      # --teacher echo:<model>; a distill.teachers.base.Teacher class
    [project.entry-points."distill.tasks"]
    rewrite = "my_package.tasks:REWRITE"         # task: rewrite; a TaskSpec, a dict, a path to a task YAML file
    [project.entry-points."distill.checks"]
    no_urls = "my_package.checks:no_urls"        # custom: no_urls in a task's checks; f(example, **args)

`distill plugins` lists what is installed. A plugin is imported only when it is used. distill declares
its own teacher backends in the same group (distill/teachers/builtin.py), and the teacher registry
finds them through `find_plugin` as it finds any plugin; `installed` leaves them out: they are not
plugins to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from distill.errors import DistillError

GROUPS = {"teachers": "distill.teachers", "tasks": "distill.tasks", "checks": "distill.checks"}
OWN = "distill"  # the distribution whose entry points are its built-ins, not plugins


@dataclass(frozen=True)
class Plugin:
    name: str
    kind: str  # teachers | tasks | checks
    module: str  # the entry point's target, package.module:object
    package: str  # the distribution that declares it, with its version

    @staticmethod
    def of(kind: str, point: EntryPoint) -> Plugin:
        dist = point.dist
        package = f"{dist.name} {dist.version}" if dist is not None else "?"
        return Plugin(name=point.name, kind=kind, module=point.value, package=package)


def _points(kind: str) -> list[EntryPoint]:
    return sorted(entry_points(group=GROUPS[kind]), key=lambda p: p.name)


def installed(kind: str | None = None) -> list[Plugin]:
    """Every installed plugin (of one kind), sorted by kind and name: other packages' entry points, not
    distill's own."""
    kinds = [kind] if kind else list(GROUPS)
    return [Plugin.of(k, point) for k in kinds for point in _points(k) if not _own(point)]


def _own(point: EntryPoint) -> bool:
    return point.dist is not None and point.dist.name == OWN


def find_plugin(kind: str, name: str) -> Any | None:
    """The object a plugin of this kind and name points to, imported now; None when none is installed."""
    points = [p for p in _points(kind) if p.name == name]
    if not points:
        return None
    if len(points) > 1:
        packages = ", ".join(Plugin.of(kind, p).package for p in points)
        raise DistillError(f"{len(points)} installed packages offer the {kind[:-1]} plugin {name!r} ({packages}); "
                           "uninstall all but one")
    try:
        return points[0].load()
    except Exception as exc:  # a broken plugin is the plugin's fault: name it
        plugin = Plugin.of(kind, points[0])
        raise DistillError(f"the {kind[:-1]} plugin {name!r} ({plugin.module}, from {plugin.package}) failed to "
                           f"load: {type(exc).__name__}: {exc}") from None
