"""Structured output for in-process models when a schema allows only a few answers.

A verdict schema (`{"label": one of N}`, `{"on_topic": true|false}`) has a handful of valid JSON
texts. Generation is restricted to exactly those token sequences through transformers' own
`prefix_allowed_tokens_fn`, so a 135M model always answers with one of them, however weak it is;
greedy decoding then picks the likeliest token by token. Schemas with free text (a ticket, a
rationale) are not finite and are left to the prompt, as before.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

MAX_CHOICES = 256


def finite_outputs(schema: dict[str, Any] | None) -> list[str] | None:
    """Every JSON text an object schema allows when each property is an enum, a const or a boolean."""
    if not schema or schema.get("type") != "object":
        return None
    properties = schema.get("properties") or {}
    if not properties or set(schema.get("required") or []) != set(properties):
        return None
    names, values = [], []
    for name, spec in properties.items():
        if "enum" in spec:
            allowed = list(spec["enum"])
        elif "const" in spec:
            allowed = [spec["const"]]
        elif spec.get("type") == "boolean":
            allowed = [True, False]
        else:
            return None
        names.append(name)
        values.append(allowed)
    if not all(values) or len(list(itertools.islice(itertools.product(*values), MAX_CHOICES + 1))) > MAX_CHOICES:
        return None
    return [json.dumps(dict(zip(names, combo)), ensure_ascii=False) for combo in itertools.product(*values)]


class ChoiceTrie:
    """The token sequences of the allowed texts; `allowed(prefix)` is what may come next."""

    END = -1

    def __init__(self, sequences: list[list[int]], end_id: int):
        self.root: dict[int, dict] = {}
        self.end_id = end_id
        for sequence in sequences:
            node = self.root
            for token in sequence:
                node = node.setdefault(token, {})
            node[self.END] = {}

    def allowed(self, prefix: list[int]) -> list[int]:
        node = self.root
        for token in prefix:
            if token not in node:
                return [self.end_id]  # finished (or padding after the end): only the end token
            node = node[token]
        return [self.end_id if token == self.END else token for token in node]
