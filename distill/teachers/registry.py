"""Teacher specs (`local`, `hf:<model>`, `openai:<model>` ...) -> teacher objects.

Each backend is one module with a `make(model, options)` factory, imported only when its spec is
used, so a missing optional dependency is a clear message, not an import error at start-up.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from distill.errors import DistillError
from distill.teachers.base import Teacher

# prefix -> (module, extra that installs it)
BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("distill.teachers.transformers_teacher", "local"),
    "hf": ("distill.teachers.transformers_teacher", "local"),
    "openai": ("distill.teachers.openai_teacher", "api"),
    "anthropic": ("distill.teachers.anthropic_teacher", "api"),
    "vllm": ("distill.teachers.vllm_teacher", "vllm"),
}


class TeacherOptions(BaseModel):
    """Settings a backend may use; each takes what applies to it."""

    model_config = ConfigDict(extra="allow")

    batch_size: int | None = None
    concurrency: int | None = None
    base_url: str | None = None
    timeout_s: float | None = None
    max_retries: int | None = None


def parse_spec(spec: str) -> tuple[str, str]:
    prefix, _, model = spec.partition(":")
    if prefix == "local" and not model:
        return "local", "local"
    if prefix not in BACKENDS or not model:
        known = ", ".join(["local", *(f"{p}:<model>" for p in BACKENDS if p != "local")])
        raise DistillError(f"unknown teacher spec {spec!r}; use one of: {known}")
    return prefix, model


API_PREFIXES = ("openai", "anthropic")


def make_teacher(spec: str, options: TeacherOptions | None = None, cache: Path | None = None) -> Teacher:
    """The teacher a spec names; an API teacher answers from the response cache file `cache` first, if given."""
    prefix, model = parse_spec(spec)
    module_name, extra = BACKENDS[prefix]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("distill"):
            raise DistillError(f"teacher backend {prefix!r} is not available in this version of distill") from None
        raise DistillError(
            f"teacher {spec!r} needs the package {exc.name!r}; install it with: pip install 'distill[{extra}]'"
        ) from None
    teacher = module.make(spec, model, options or TeacherOptions())
    if cache is not None and prefix in API_PREFIXES:
        from distill.teachers.cache import CachedTeacher

        teacher = CachedTeacher(teacher, cache)
    return teacher


def teacher_options(**values: Any) -> TeacherOptions:
    return TeacherOptions(**{k: v for k, v in values.items() if v is not None})
