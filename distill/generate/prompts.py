"""Jinja2 templates from prompts/: looked up next to the taxonomy first, so a project can override them."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from distill.errors import DistillError

BUILTIN_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


@lru_cache(maxsize=8)
def environment(taxonomy_dir: Path) -> jinja2.Environment:
    search = [taxonomy_dir / "prompts", taxonomy_dir.parent / "prompts", BUILTIN_PROMPTS]
    loader = jinja2.FileSystemLoader([str(p) for p in search if p.is_dir()])
    # StrictUndefined: a typo in a template is an error, not a silently empty prompt.
    # auto_reload off: otherwise every render stats the template file to see whether it changed.
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                              auto_reload=False)


def render(taxonomy_dir: Path, name: str, **context) -> str:
    try:
        template = environment(taxonomy_dir).get_template(name)
    except jinja2.TemplateNotFound:
        raise DistillError(f"prompt template {name} not found in prompts/ next to the taxonomy or in {BUILTIN_PROMPTS}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise DistillError(f"prompt template syntax: {exc.message}", path=exc.filename or name, line=exc.lineno) from None
    try:
        return template.render(**context).strip()
    except jinja2.TemplateError as exc:
        raise DistillError(f"prompt template {exc}", path=template.filename or name) from None
