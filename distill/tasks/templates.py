"""Jinja2 for tasks: template files and inline templates, compiled once and rendered many times.

A template file is looked up next to the task's own file first, then in a `prompts/` folder next to the
taxonomy (or its parent folder), then among the built-in templates, so a project overrides a built-in
template by writing one of the same name.

Templates come with taxonomies people share, so they render in Jinja's sandbox: a template reads the values
it is given and calls their public methods, and never reaches Python's internals (`cycler.__init__.__globals__`
would otherwise run any code). Such an attempt is refused when the template compiles (one line naming the file
and line, or the task's field), and the sandbox refuses what only shows at render time. Only the task's own
template text is ever compiled: seeds, descriptions and teacher answers are values a template prints.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from distill.errors import DistillError
from distill.tasks.spec import TaskError

BUILTIN_PROMPTS = Path(__file__).resolve().parent / "builtin" / "prompts"


def _json(value: Any) -> str:
    """`{{ value | json }}`: JSON as the examples store it (Jinja's own `tojson` sorts keys and escapes HTML)."""
    return json.dumps(value, ensure_ascii=False)


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, refusing an unsafe attribute at once: the stock one hands back an undefined value, whose
    error later names whatever was read from it next (`StrictUndefined has no attribute os`), not the attempt."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe "
                            "(templates run in a sandbox)")


@lru_cache(maxsize=16)
def environment(search: tuple[Path, ...]) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(p) for p in search if p.is_dir()])
    # StrictUndefined: a typo in a template is an error, not a silently empty prompt.
    # auto_reload off: otherwise every render stats the template file to see whether it changed.
    env = Sandbox(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                               auto_reload=False)
    env.filters["json"] = _json
    return env


def internals_reached(tree: nodes.Node) -> tuple[str, int] | None:
    """(the name, its line) of the first double-underscore name a parsed template or expression reaches
    (`x.__class__`, `x['__init__']`, `x | attr('__globals__')`), or None: the way out of the values a
    template is given to Python's internals. (The sandbox also refuses any `_name` attribute at render time.)"""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem):
            name = node.arg.value if isinstance(node.arg, nodes.Const) else None
        elif isinstance(node, nodes.Filter):
            name = node.args[0].value if node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const) \
                else None
        if isinstance(name, str) and name.startswith("__"):
            return name, node.lineno
    return None


def _refused(name: str) -> str:
    return (f"reaches {name!r}, a Python internal: templates run in a sandbox and read only the values they are "
            "given (topic, seeds, steps, ...); remove it")


def _searchpath(env: jinja2.Environment) -> list[str]:
    return list(env.loader.searchpath) if isinstance(env.loader, jinja2.FileSystemLoader) else []


def search_path(task_dir: Path | None, taxonomy_dir: Path | None) -> tuple[Path, ...]:
    folders: list[Path] = []
    if task_dir is not None:
        folders += [task_dir, task_dir / "prompts"]
    if taxonomy_dir is not None:
        folders += [taxonomy_dir / "prompts", taxonomy_dir.parent / "prompts"]
    folders.append(BUILTIN_PROMPTS)
    seen: list[Path] = []
    for folder in folders:
        if folder not in seen:
            seen.append(folder)
    return tuple(seen)


class Compiled:
    """One template (a file or inline text), compiled. A mistake in a file is a DistillError naming the file
    and line; in inline text a TaskError naming the task's field (`where`)."""

    def __init__(self, env: jinja2.Environment, source: Any, where: tuple, label: str | None = None):
        try:
            self._source = source if isinstance(source, str) else None
            if isinstance(source, str):
                if found := internals_reached(env.parse(source)):
                    raise TaskError(where, _refused(found[0]))
                self.template = env.from_string(source)
                self.name = label or ".".join(map(str, where))  # `label`: where it is written, file:line
            else:
                if env.loader is None:  # (environment() always gives one)
                    raise jinja2.TemplateNotFound(source.file)
                text, filename, _ = env.loader.get_source(env, source.file)
                if found := internals_reached(env.parse(text, source.file, filename)):
                    raise DistillError(f"prompt template: {_refused(found[0])}", path=filename, line=found[1])
                self.template = env.get_template(source.file)
                self.name = f"prompt template {self.template.filename or source.file}"
        except jinja2.TemplateNotFound:
            folders = ", ".join(_searchpath(env)) or "nowhere"
            raise TaskError((*where, "file"), f"prompt template {source.file} not found (looked in {folders})") from None
        except jinja2.TemplateSyntaxError as exc:
            if exc.filename is None:
                raise TaskError(where, f"template syntax: {exc.message}") from None
            raise DistillError(f"prompt template syntax: {exc.message}", path=exc.filename, line=exc.lineno) from None

    # Pickled as its text and search path and compiled again on arrival: a compiled template holds its
    # environment by weak reference, and Ray ships a task to its workers by pickling (executors/ray_generate.py).
    def __getstate__(self) -> dict:
        # Without its text, the template came from a file: it has a file name.
        source = self._source if self._source is not None else Path(cast(str, self.template.filename)).read_text()
        return {"source": source, "name": self.name, "search": _searchpath(self.template.environment)}

    def __setstate__(self, state: dict) -> None:
        self.name, self._source = state["name"], state["source"]
        self.template = environment(tuple(map(Path, state["search"]))).from_string(state["source"])

    def render(self, context: dict[str, Any], strip: bool = True) -> str:
        try:
            text = self.template.render(context)
        except jinja2.TemplateError as exc:
            error = TemplateRefused if isinstance(exc, SecurityError) else DistillError
            where = _template_file(exc, _searchpath(self.template.environment))
            name = f"prompt template {where[0]}:{where[1]}" if where else self.name
            raise error(f"{name}: {exc}") from None
        return text.strip() if strip else text


class TemplateRefused(DistillError):
    """A template tried what the sandbox forbids: the template is at fault, whatever it was rendered for."""


def _template_file(exc: BaseException, folders: list[str]) -> tuple[str, int] | None:
    """(file, line) of the template file a render error happened in (an included one, too): Jinja rewrites
    the traceback so that a template's own frames carry its file name and line. None for inline text."""
    found, frame = None, exc.__traceback__
    while frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        if any(filename.startswith(folder + "/") for folder in folders):
            found = (filename, frame.tb_lineno)
        frame = frame.tb_next
    return found


class Expression:
    """A Jinja2 expression (`steps.extract`, `label`) evaluated to a value, not to text."""

    def __init__(self, env: jinja2.Environment, source: str, where: tuple, label: str | None = None):
        self.where = label or ".".join(map(str, where))
        self.source, self.search = source, _searchpath(env)
        try:
            if found := internals_reached(Parser(env, source, state="variable").parse_expression()):
                raise TaskError(where, _refused(found[0]))
            self.expression = env.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise TaskError(where, f"not a valid expression ({exc.message}): {source!r}") from None

    def __getstate__(self) -> dict:  # as Compiled's: the text, compiled again on arrival
        return {"source": self.source, "where": self.where, "search": self.search}

    def __setstate__(self, state: dict) -> None:
        self.where, self.source, self.search = state["where"], state["source"], state["search"]
        env = environment(tuple(map(Path, self.search)))
        self.expression = env.compile_expression(self.source, undefined_to_none=False)

    def evaluate(self, context: dict[str, Any]) -> Any:
        try:
            value = self.expression(**context)
        except jinja2.TemplateError as exc:
            raise DistillError(f"{self.where}: {exc}") from None
        if isinstance(value, jinja2.Undefined):
            raise DistillError(f"{self.where}: {value._undefined_message}")
        return value
