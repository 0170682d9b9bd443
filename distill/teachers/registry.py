"""Teacher specs (`local`, `hf:<model>`, `openai:<model>` ...) -> teacher backends.

Every backend is an entry point in the `distill.teachers` group, found through distill/plugins.py:
distill's own (builtin.py: each a module imported only when its spec is used, so a missing optional
dependency is a clear message, not an import error at start-up) and those plugins add. A plugin's
entry point is a `Teacher` subclass (made as `cls(spec, model, options)`), a factory returning a
`Teacher`, or a `LazyBackend` as distill's own are. `distill.teachers.stack.build_teacher` puts the
cache, sender process and batch wrappers around what `make_teacher` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import InitErrorDetails
from ruamel.yaml import YAML

from distill import plugins
from distill.errors import DistillError
from distill.teachers.base import Teacher
from distill.teachers.builtin import BACKENDS, LazyBackend
from distill.teachers.http.cost import ApiConfig, ProviderConfig


class TeacherSpec(BaseModel):
    """A teacher spec (`local`, `hf:<model>`, `openai:<model>`, a plugin's `echo:<model>`), parsed once where the
    user gives it (a flag, a config file, a keyword): the backend's prefix (`kind`) and its `model`. Written
    back, in a config dump or a message, it is the text again. Whether `kind` names an installed backend is
    checked when the backend is looked up (`backend`): a plugin's spec is read like a built-in one."""

    model_config = ConfigDict(frozen=True)

    kind: str
    model: str

    @classmethod
    def parse(cls, text: str) -> TeacherSpec:
        return cls.model_validate(str(text))

    @classmethod
    def of(cls, spec: TeacherSpec | str) -> TeacherSpec:
        """`spec` as a TeacherSpec (a spec already parsed is returned as it is)."""
        return spec if isinstance(spec, TeacherSpec) else cls.parse(spec)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # the one place a spec's text is taken apart
            kind, _, model = value.partition(":")
            return {"kind": kind, "model": model or ("local" if kind == "local" else "")}
        if not isinstance(value, (dict, TeacherSpec)):
            raise ValueError("a teacher spec is text: local, hf:<model>, openai:<model>, anthropic:<model> ...")
        return value

    @model_serializer
    def _as_text(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        """The spec as the user writes it, and as the run records it (`local`, `openai:gpt-4o-mini`)."""
        if (self.kind, self.model) == ("local", "local"):
            return "local"
        return f"{self.kind}:{self.model}" if self.model else self.kind

    @property
    def api(self) -> bool:
        """Whether the teacher is an HTTP API (looked up: an unknown spec is refused here)."""
        return backend(self).api

    def check(self) -> TeacherSpec:
        """The spec, once its backend is known to exist (an unknown one fails before any model loads)."""
        backend(self)
        return self

    def __str__(self) -> str:
        return self.text


class TeacherOptions(ProviderConfig):
    """Settings a backend may use; each takes what applies to it. The API settings and their bounds are an
    `--api-config` file's (`ProviderConfig`), so `concurrency: 0` is refused wherever it is written. A name
    no built-in backend reads is refused for them (`for_teacher`); a plugin's backend gets it in
    `model_extra`."""

    model_config = ConfigDict(extra="allow")

    batch: bool | None = None  # API teachers: the provider's batch API
    api_config: dict[str, Any] | None = None  # a checked --api-config (`ApiConfig`), as plain data
    retry_base_s: float | None = Field(None, ge=0)  # the first backoff step (tests shrink it)
    engine: bool | None = None  # local / hf: the decode engine (False: transformers' generate)
    prefix_cache_mb: int | None = Field(None, ge=0)  # local / hf: the engine's prompt-prefix cache
    dtype: str | None = None  # local / hf: torch dtype of the weights
    engine_args: dict[str, Any] | None = None  # vllm: engine arguments
    lora: str | None = None  # vllm: an adapter folder applied to every request

    @field_validator("api_config")
    @classmethod
    def _checked_api_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else ApiConfig.model_validate(value).model_dump(exclude_none=True)

    @classmethod
    def for_teacher(cls, spec: TeacherSpec, options: TeacherOptions) -> TeacherOptions:
        """`options` for the teacher `spec`: a built-in backend refuses a name it does not read (a misspelt
        `concurency` would otherwise be ignored without a word); a plugin's backend takes what it likes."""
        if spec.kind not in BACKENDS or not options.model_extra:
            return options
        raise ValidationError.from_exception_data(cls.__name__, [
            InitErrorDetails(type="extra_forbidden", loc=(name,), input=value)
            for name, value in options.model_extra.items()])


@dataclass(frozen=True)
class Backend:
    """What a spec names: its prefix and model, whether it is an HTTP API, and how to make it."""

    prefix: str
    model: str
    api: bool
    make: Callable[[str, str, TeacherOptions], Any]


def parse_spec(spec: TeacherSpec | str) -> tuple[str, str]:
    """(prefix, model) of a spec whose backend exists; an unknown one is refused in one line, naming the known."""
    parsed = TeacherSpec.of(spec)
    prefix, model = parsed.kind, parsed.model
    if prefix in BACKENDS and model:
        return prefix, model
    if prefix not in BACKENDS and _plugin(prefix) is not None:
        return prefix, model
    known = ", ".join(spec_forms())
    raise DistillError(f"unknown teacher spec {str(spec)!r}; use one of: {known}",
                       page="docs/teachers.md#teacher-specs")


def spec_forms() -> list[str]:
    """The teacher specs the registry knows, as `--teacher`'s help and an unknown spec's message list them:
    distill's own backends (`local`, `hf:<model>` ...), then each installed plugin's (`echo:<model>`)."""
    own = [f"{prefix}:<model>" if found.model else prefix for prefix, found in BACKENDS.items()]
    return [*own, *(f"{p.name}:<model>" for p in plugins.installed("teachers") if p.name not in BACKENDS)]


def backend(spec: TeacherSpec | str) -> Backend:
    """The backend a spec names, through its entry point (a plugin's module is imported now; a `LazyBackend`'s
    only when made)."""
    prefix, model = parse_spec(spec)
    target = _plugin(prefix)
    if target is None:  # distill's own, on an install whose metadata predates its entry point (see builtin.py)
        target = BACKENDS[prefix]
    if isinstance(target, LazyBackend):
        return Backend(prefix, model, target.api, target.make)
    if isinstance(target, type) and issubclass(target, Teacher):
        # A plugin's Teacher takes (spec, model, options); the protocol's base class declares no constructor.
        return Backend(prefix, model, bool(target.api),
                       lambda spec, model, options: target(spec, model, options))  # type: ignore[call-arg]
    if callable(target) and not isinstance(target, type):
        return Backend(prefix, model, False, target)
    raise DistillError(f"the teacher plugin {prefix!r} points to {target!r}: it must be a subclass of "
                       "distill.teachers.base.Teacher or a function returning one")


def _plugin(prefix: str) -> Any | None:
    return plugins.find_plugin("teachers", prefix)


def make_teacher(spec: TeacherSpec | str, options: TeacherOptions | None = None) -> Teacher:
    """The backend's own teacher for a spec, with nothing around it (see stack.build_teacher for that)."""
    found = backend(spec)
    spec = str(spec)  # what the teacher records in every call and example
    teacher = found.make(spec, found.model, options or TeacherOptions())
    if not isinstance(teacher, Teacher):
        raise DistillError(f"teacher {spec!r}: its backend made a {type(teacher).__name__}, not a "
                           "distill.teachers.base.Teacher (subclass it: it declares every member distill uses)")
    return teacher


def teacher_options(**values: Any) -> TeacherOptions:
    return TeacherOptions(**{k: v for k, v in values.items() if v is not None})


def parse_engine_args(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> engine arguments, each value read as a YAML scalar (8, 0.85, true, text)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DistillError(f"--engine-arg {pair!r}: expected KEY=VALUE, e.g. tensor_parallel_size=2")
        args[key.strip().replace("-", "_")] = YAML(typ="safe").load(value) if value.strip() else None
    return args
