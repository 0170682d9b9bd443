"""Output schemas: inline JSON Schema or a pydantic model (`file.py:Model`), behind one interface.

The JSON Schema is what a teacher is asked for (`GenerationRequest.json_schema`: OpenAI json_schema,
Anthropic tool use, the prompt for servers that support neither); `validate` checks a parsed reply
and returns it as plain JSON data.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model


class SchemaError(Exception):
    """A value the schema does not accept: `where` is its field path, `message` what is wrong."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


class OutputSchema:
    """A JSON Schema dict or a pydantic model, validated the same way."""

    deferred = False  # see DeferredSchema

    def __init__(self, source: dict[str, Any] | type[BaseModel], name: str | None = None):
        self.model = source if isinstance(source, type) else None
        self._validator: Any = None  # jsonschema's, for a JSON Schema
        if isinstance(source, type):
            self.name = name or source.__name__
            # Built once: model_json_schema() walks the model on every call (~0.4 ms, a sixth of a request's CPU).
            # Shared by every request, so never mutated.
            self.json_schema = source.model_json_schema()
        else:
            from jsonschema.validators import validator_for  # noqa: PLC0415 (137 ms; inline JSON Schemas only)

            self.name = name or str(source.get("title") or "output")
            self.json_schema = source
            cls = validator_for(source)
            cls.check_schema(source)
            self._validator = cls(source)

    def validate(self, value: Any) -> Any:
        """`value` as the schema accepts it (a pydantic model's dump), or SchemaError."""
        if self.model is not None:
            try:
                return self.model.model_validate(value).model_dump(mode="json")
            except ValidationError as exc:
                err = exc.errors()[0]
                raise SchemaError(".".join(str(p) for p in err["loc"]) or "(object)", err["msg"]) from None
        error = next(iter(sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))), None)
        if error is not None:
            raise SchemaError(".".join(str(p) for p in error.absolute_path) or "(object)", error.message)
        return value

    def with_labels(self, field: str, labels: tuple[str, ...]) -> OutputSchema:
        """The same schema with `field` restricted to `labels` (a labelled task's label set)."""
        if self.model is not None:
            return OutputSchema(_narrowed_model(self.model, field, labels), self.name)
        schema = dict(self.json_schema)
        properties = dict(schema.get("properties") or {})
        properties[field] = {**properties.get(field, {"type": "string"}), "enum": list(labels)}
        return OutputSchema({**schema, "properties": properties}, self.name)


class DeferredSchema(OutputSchema):
    """A pydantic model in a Python file, not imported (the taxonomy was loaded without its code: validate,
    show, a dry run). It accepts any value; nothing is generated or curated against it."""

    deferred = True

    def __init__(self, reference: str):
        self.model, self._validator, self.name = None, None, reference
        self.json_schema: dict[str, Any] = {}

    def validate(self, value: Any) -> Any:
        return value

    def with_labels(self, field: str, labels: tuple[str, ...]) -> OutputSchema:
        return self


@lru_cache(maxsize=32)
def _narrowed_model(model: type[BaseModel], field: str, labels: tuple[str, ...]) -> type[BaseModel]:
    # create_model costs ~1 ms; every item of a run shares the same label set.
    # The Literal is made of the labels at run time: no overload of create_model can say so.
    return create_model(model.__name__, __base__=model, **{field: (Literal[labels], ...)})  # type: ignore[call-overload]


def load_schema(source: dict[str, Any] | str) -> OutputSchema:
    """An inline JSON Schema, or `package.module:Model` imported; ValueError saying what is wrong. (A task
    names a model through distill.tasks.code, which decides whether it may be imported.)"""
    if isinstance(source, dict):
        from jsonschema.exceptions import SchemaError as BadSchema  # noqa: PLC0415 (as above)

        try:
            return OutputSchema(source)
        except BadSchema as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return model_schema(import_object(source, "a pydantic model"), source)


def model_schema(model: Any, source: str) -> OutputSchema:
    """The schema of an imported pydantic model; ValueError when it is not one."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ValueError(f"{source} is not a pydantic model (a class deriving from pydantic.BaseModel)")
    return OutputSchema(model)


def import_object(path: str, what: str) -> Any:
    """`package.module:name` imported; ValueError naming what could not be found."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path!r}: give {what} as package.module:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} for {path!r} ({exc}); install its package or fix the "
                         "path") from None
    try:
        obj = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ValueError(f"{module_name!r} has no {attribute!r} ({what})") from None
    return obj


def stand_in(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value of the schema's shape, for rehearsals and estimates (never sent anywhere)."""
    root = root or schema
    if "$ref" in schema and schema["$ref"].startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target.get(part, {})
        return stand_in(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return stand_in(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        if depth > 8:
            return {}
        return {name: stand_in(sub, root, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [stand_in(schema.get("items") or {"type": "string"}, root, depth + 1) for _ in range(count)]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return float(max(1, schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = "A rehearsal value long enough to pass."
    return text + " x" * max(0, (schema.get("minLength", 0) - len(text) + 1) // 2)
