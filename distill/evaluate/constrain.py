"""Constrained decoding for `distill eval --constrained`: greedy answers held to the task's output schema.

The schema of a task is the run's own: `taxonomy.json`'s output schema (what the teacher was asked for and
curation checked), else one read off the held-out references' `output` objects (each field's JSON type); a
classification's `label` is held to the taxonomy's label set (else the held-out labels, as eval's validity measure
uses). A task whose examples carry no typed output (open QA) is answered as before, with a one-line note.

The mechanism is llguidance (the `local` extra): the JSON Schema compiled to a grammar, a token mask per row and
step, applied as a transformers logits processor. Chosen by measurement against xgrammar and distill's own choice
trie (`teachers/local/choices.py`) on the embedded SmolLM2-135M, batch 8, one thread, a busy 2-core machine
(load 8), 2026-12-07: a decode step took 700-900 ms unconstrained; the mask added 0.79 ms a token (llguidance,
label + free-text rationale), 0.83 (xgrammar, same schema) and 0.47 (the trie, label only): under 1% for any of
them, so cost did not decide. The trie enumerates finite answers only, so it cannot hold the classification
task's free-text rationale or an extraction's nested fields; xgrammar does both but depends on triton (pulled on
Linux x86, 150+ MB, no use on CPU) and apache-tvm-ffi; llguidance does both with no dependency at all.

A schema holds an answer's shape, not its length: on the tickets split (2026-12-07) every constrained miss was a
free-text rationale still running when `--max-new-tokens` ran out, so the object never closed. `within_budget`
therefore gives the grammar a length bound derived from the token budget (see its docstring), so that a
constrained answer always closes inside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import DistillError
from distill.records import Example, read_examples
from distill.rundir import RunDir
from distill.taxonomy.snapshot import read_snapshot

LABEL = "label"


def task_schema(task: str, examples: Sequence[Example], run_schema: dict[str, Any] | None,
                labels: Sequence[str]) -> dict[str, Any] | None:
    """The JSON Schema a task's answers are held to, or None where the task has no typed output.

    `run_schema`: the run's own output schema for this task (taxonomy.json), if any; `labels`: a
    classification's label set."""
    schema = run_schema
    if schema is None:
        outputs = [e.output for e in examples if e.output]
        if not outputs:
            return None
        schema = reference_schema(outputs[0])
    if task == "classification" and labels:
        schema = _with_labels(schema, labels)
    return schema


def reference_schema(value: Any) -> dict[str, Any]:
    """The JSON Schema of a reference value's shape: every field required, each of the type it has there."""
    if isinstance(value, dict):
        return {"type": "object", "properties": {key: reference_schema(item) for key, item in value.items()},
                "required": list(value), "additionalProperties": False}
    if isinstance(value, list):
        return {"type": "array", "items": reference_schema(value[0])} if value else {"type": "array"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, (int, float)):
        return {"type": "number"}  # eval's validity measure takes an int for a float and back
    if isinstance(value, str):
        return {"type": "string"}
    return {}  # null in the reference: any value


def within_budget(schema: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    """The schema as decoding under `max_new_tokens` is held to it: every free-text string capped in length so the
    answer's JSON always closes (and its end-of-turn token fits) inside the budget.

    Why a length cap in the grammar rather than forcing the closing near the end: the cap is decided once, from the
    schema and the budget alone, so every answer is a value of one fixed schema (what the card's schema.json says
    and any server can enforce), and the model sees from the start how much room a string has; forcing the end
    would need the grammar's shortest completion at every step, which llguidance does not expose.

    The bound, token by token: the fixed parts (braces, keys, separators, the longest enum value, `minLength`
    characters) are counted in UTF-8 bytes, and no token is shorter than one byte; the room left is split evenly
    over the free strings, as characters, which a token covers one or more of in text a byte-level tokenizer has
    whole characters for (ASCII, most Latin script). Whitespace between tokens is fixed (`x-guidance`), and an
    object takes no property the schema does not name: either would be unbounded. Not bounded: numbers' digits
    and arrays' item counts (a schema with them gets only its strings capped)."""
    strings = _free_strings(schema)
    if not strings:
        return schema
    fixed = len(json.dumps(_longest_fixed(schema), ensure_ascii=False).encode()) + 1  # + the end-of-turn token
    room = max(0, max_new_tokens - fixed) // strings
    bounded = _capped(schema, room)
    return {**bounded, "x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}}


def _is_free_string(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" and not {"enum", "const", "pattern", "format"} & set(schema)


def _children(schema: dict[str, Any]) -> list[dict[str, Any]]:
    kids = list((schema.get("properties") or {}).values())
    kids += [schema["items"]] if isinstance(schema.get("items"), dict) else []
    return kids + [option for key in ("anyOf", "oneOf") for option in schema.get(key) or []]


def _free_strings(schema: dict[str, Any]) -> int:
    return int(_is_free_string(schema)) + sum(_free_strings(kid) for kid in _children(schema))


def _longest_fixed(schema: dict[str, Any]) -> Any:
    """A value with every fixed part at its longest and every free string at its shortest (`minLength` characters):
    what an answer writes whatever its free text says."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return max(schema["enum"], key=lambda value: len(json.dumps(value, ensure_ascii=False).encode()))
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return max((_longest_fixed(option) for option in options),
                   key=lambda value: len(json.dumps(value, ensure_ascii=False).encode()))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {key: _longest_fixed(value) for key, value in (schema.get("properties") or {}).items()}
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    return {"array": [], "boolean": False, "number": 0, "integer": 0}.get(str(kind))


def _capped(schema: dict[str, Any], room: int) -> dict[str, Any]:
    out = dict(schema)
    if _is_free_string(schema):
        cap = room + int(schema.get("minLength", 0))
        out["maxLength"] = min(cap, schema.get("maxLength", cap))  # a tighter cap of the schema's own stands
    if "properties" in schema:
        out["properties"] = {key: _capped(value, room) for key, value in schema["properties"].items()}
        out["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        out["items"] = _capped(schema["items"], room)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            out[key] = [_capped(option, room) for option in schema[key]]
    return out


def _with_labels(schema: dict[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """The schema with its `label` property held to the label set, unless the schema already names one."""
    properties = dict(schema.get("properties") or {})
    if "enum" in properties.get(LABEL, {}):
        return schema
    properties[LABEL] = {"type": "string", "enum": list(labels)}
    required = list(schema.get("required") or [])
    return {**schema, "type": "object", "properties": properties,
            "required": required if LABEL in required else [*required, LABEL]}


@lru_cache(maxsize=4)
def _guidance_tokenizer(tokenizer, vocab_size: int, stop: int):
    """llguidance's view of the tokenizer (~1-2 s to build: once per tokenizer)."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=stop)


def compile_schemas(tokenizer, vocab_size: int, stop: int,
                    schemas: Sequence[dict[str, Any] | None]) -> list[str | None]:
    """Each schema as llguidance's grammar (None stays None); a schema it cannot take is a DistillError."""
    import llguidance

    guidance = _guidance_tokenizer(tokenizer, vocab_size, stop)
    grammars: dict[str, str] = {}
    out: list[str | None] = []
    for schema in schemas:
        if schema is None:
            out.append(None)
            continue
        key = json.dumps(schema, sort_keys=True)
        if key not in grammars:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(key)
            failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, guidance)
            if failed:
                raise DistillError(f"--constrained: the output schema cannot be decoded under "
                                   f"({'; '.join(messages)}): {key[:200]}")
            grammars[key] = grammar
        out.append(grammars[key])
    return out


class SchemaMask:
    """A transformers logits processor: row i may only continue as its grammar allows (None: unconstrained).

    One per `generate` call: it follows each row from its first generated token."""

    def __init__(self, tokenizer, vocab_size: int, stop: int, grammars: Sequence[str | None]):
        import llguidance

        guidance = _guidance_tokenizer(tokenizer, vocab_size, stop)
        self.matchers = [None if g is None else llguidance.LLMatcher(guidance, g) for g in grammars]
        self.vocab_size, self.stop = vocab_size, stop
        self.started = False

    def __call__(self, input_ids, scores):
        import llguidance.numpy
        import torch

        if self.started:  # the token chosen at the last step, for every row that is still decoding
            for matcher, token in zip(self.matchers, input_ids[:, -1].tolist()):
                if matcher is not None and not matcher.is_stopped():
                    matcher.consume_token(token)
        self.started = True
        held = [i for i, matcher in enumerate(self.matchers) if matcher is not None]
        if not held:
            return scores
        mask = llguidance.numpy.allocate_token_bitmask(len(self.matchers), self.vocab_size)
        for i in held:
            matcher = self.matchers[i]
            assert matcher is not None
            if matcher.is_stopped():
                # Its schema is complete (or it failed): the end of turn, nothing else. A stopped matcher left
                # free let the model write on after its JSON closed (an extraction answer, 2026-12-07).
                mask[i] = 0
                mask[i, self.stop // 32] = np.int32(np.uint32(1 << (self.stop % 32)).view(np.int32))
            else:
                llguidance.numpy.fill_next_token_bitmask(matcher, mask, i)
        # Bit b of word w allows token 32*w + b (little-endian words): unpacked, one flag per token.
        allowed = np.unpackbits(mask.view(np.uint8), axis=1, bitorder="little")[:, : scores.shape[1]]
        blocked = torch.from_numpy(allowed == 0).to(scores.device)
        rows = torch.zeros(len(self.matchers), 1, dtype=torch.bool, device=scores.device)
        rows[held] = True
        return scores.masked_fill(blocked & rows, float("-inf"))


def run_schema(run_dir: Path) -> dict[str, Any] | None:
    """The schema a run's student answers in, for serving (export-model's schema.json): the taxonomy's output
    schema with its label set, else one read off a held-out reference; None for a task without typed output
    (and for a run of several tasks without taxonomy.json)."""
    snapshot = read_snapshot(run_dir)
    labels = sorted(snapshot.labels) if snapshot and snapshot.labels else []
    held = RunDir(run_dir).eval
    examples = read_examples(held) if held.is_file() else []
    tasks = {e.meta.task or ("classification" if LABEL in (e.output or {}) else "qa") for e in examples}
    if snapshot is None and len(tasks) != 1:
        return None  # a run of several tasks has no one schema to serve
    task = snapshot.task if snapshot else tasks.pop()
    typed = [e for e in examples if e.output and (e.meta.task or task) == task]
    if not labels and task == "classification":
        labels = sorted({label for e in typed if isinstance(label := (e.output or {}).get(LABEL), str)})
    return task_schema(task, typed, snapshot.output_schema if snapshot else None, labels)
