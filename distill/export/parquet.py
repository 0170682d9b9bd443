"""The dataset export's Parquet files: one row an example, under one explicit Arrow schema for both splits (a
column empty in one split keeps its type), in shards of at most a given size, named as the Hub names them.

Conversations with tools: a message carries `tool_calls`, `tool_call_id`, `name` and `reasoning` (null where a
turn has none), and a `tools` column holds the tool definitions. A column has one Arrow type, and each tool's
arguments (and each tool's JSON Schema) have keys of their own, so a call's `arguments` and the `tools` column are
JSON text, as OpenAI's API writes arguments; TRL's SFTTrainer reads a JSON-text `tools` column as it is. A run
without tool calls, tools or reasoning keeps the plain {role, content} messages and no `tools` column.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from distill.owned import OwnedFolder
from distill.records import Example, Message


def axis_names(examples: list[Example]) -> list[str]:
    return sorted({name for example in examples for name in example.meta.axes})


def axis_column(name: str) -> str:
    return "axis_" + re.sub(r"\W", "_", name)


def has_turn_fields(examples: list[Example]) -> bool:
    """Whether any example has tools, or a turn with more than a role and a content (calls, results, reasoning)."""
    return any(example.tools or any(set(m.model_dump()) - {"role", "content"} for m in example.messages)
               for example in examples)


def arrow_schema(axes: list[str], conversations: bool = False):
    import pyarrow as pa

    fields = [("role", pa.string()), ("content", pa.string())]
    if conversations:
        function = pa.struct([("name", pa.string()), ("arguments", pa.string())])
        call = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", function)])
        fields += [("tool_calls", pa.list_(call)), ("tool_call_id", pa.string()), ("name", pa.string()),
                   ("reasoning", pa.string())]
    tools = [("tools", pa.string())] if conversations else []
    return pa.schema(
        [("id", pa.string()), ("messages", pa.list_(pa.struct(fields))), *tools, ("task", pa.string()),
         ("taxonomy", pa.string()), ("taxonomy_path", pa.string())]
        + [(axis_column(name), pa.string()) for name in axes]
        + [("seed_ids", pa.list_(pa.string())), ("teacher", pa.string()), ("prompt_sha256", pa.string()),
           ("plan_item_id", pa.string()), ("temperature", pa.float64()), ("top_p", pa.float64()),
           ("max_tokens", pa.int64()), ("sampling_seed", pa.int64()), ("prompt_tokens", pa.int64()),
           ("completion_tokens", pa.int64()), ("cost_usd", pa.float64()), ("output", pa.string()),
           ("meta_extra", pa.string())]
    )


def message_row(message: Message) -> dict:
    """A turn with every field (None where unset) and its calls' arguments as JSON text."""
    row = message.model_dump()
    for call in row.get("tool_calls") or []:
        arguments = call["function"]["arguments"]
        call["function"]["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments,
                                                                                              ensure_ascii=False)
    return {field: row.get(field) for field in Message.model_fields}


def example_row(example: Example, axes: list[str], conversations: bool = False) -> dict:
    meta = example.meta
    sampling, usage = meta.sampling, meta.usage
    messages = [message_row(m) if conversations else m.model_dump() for m in example.messages]
    tools = {"tools": json.dumps(example.tools, ensure_ascii=False) if example.tools else None} if conversations else {}
    return {
        "id": example.id,
        "messages": messages, **tools,
        "task": meta.task, "taxonomy": meta.taxonomy, "taxonomy_path": meta.taxonomy_path,
        **{axis_column(name): meta.axes.get(name) for name in axes},
        "seed_ids": list(meta.seed_ids), "teacher": meta.teacher, "prompt_sha256": meta.prompt_sha256,
        "plan_item_id": meta.plan_item_id,
        "temperature": sampling.temperature if sampling else None, "top_p": sampling.top_p if sampling else None,
        "max_tokens": sampling.max_tokens if sampling else None, "sampling_seed": sampling.seed if sampling else None,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cost_usd": usage.cost_usd if usage else None,
        "output": json.dumps(example.output, ensure_ascii=False) if example.output is not None else None,
        "meta_extra": json.dumps(meta.model_extra, ensure_ascii=False, default=str) if meta.model_extra else None,
    }


def write_shards(examples: list[Example], axes: list[str], schema, folder: OwnedFolder, split: str,
                 max_shard_bytes: int) -> list[Path]:
    """`split-0000i-of-0000n.parquet` files (the Hub's naming); at least one, even for an empty split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    conversations = "tools" in schema.names
    rows = [example_row(example, axes, conversations) for example in examples]
    sizes = [len(json.dumps(row, ensure_ascii=False).encode()) for row in rows]
    shards = _shard_bounds(sizes, max_shard_bytes)
    paths = []
    for index, (start, end) in enumerate(shards):
        name = f"data/{split}-{index:05d}-of-{len(shards):05d}.parquet"
        with folder.replacing(name) as tmp:  # not matched by the card's data/*.parquet until complete
            pq.write_table(pa.Table.from_pylist(rows[start:end], schema=schema), tmp)
        paths.append(folder.root / name)
    return paths


def _shard_bounds(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    bounds, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if total and total + size > limit:
            bounds.append((start, index))
            start, total = index, 0
        total += size
    bounds.append((start, len(sizes)))
    return bounds
