"""Shared for the train and eval tests: a toy run directory and a fast training config (the real training run
they share is the `trained` fixture in tests/conftest.py).

The toy data is deliberately easy (a fixed JSON label per sentiment, a fixed sentence per colour) so a
handful of real optimizer steps on SmolLM2-135M moves the loss a lot.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLOURS = {"apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white", "coal": "black"}
POSITIVE = ["I love it", "great stuff", "wonderful service", "works perfectly"]
NEGATIVE = ["I hate it", "awful", "terrible support", "broke after a day"]


def toy_rows(n: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2:
            thing = rng.choice(sorted(COLOURS))
            leaf = "colours/fruit" if thing in ("apple", "banana") else "colours/nature"
            rows.append({
                "id": f"q{i}",
                "messages": [{"role": "system", "content": "Answer in one short sentence."},
                             {"role": "user", "content": f"What colour is {thing}? (question {i})"},
                             {"role": "assistant", "content": f"{thing.capitalize()} is {COLOURS[thing]}."}],
                "meta": {"taxonomy": "toy", "taxonomy_path": leaf, "teacher": "local", "task": "qa"},
            })
        else:
            label = "positive" if i % 4 == 0 else "negative"
            text = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            rows.append({
                "id": f"c{i}",
                "messages": [{"role": "system", "content": "Classify the sentiment. Reply with JSON."},
                             {"role": "user", "content": f"{text} (review {i})"},
                             {"role": "assistant", "content": json.dumps({"label": label})}],
                "meta": {"taxonomy": "toy", "taxonomy_path": "sentiment", "teacher": "local",
                         "task": "classification"},
                "output": {"label": label},
            })
    return rows


def make_run(directory: Path, rows: list[dict] | None = None, stats: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = toy_rows() if rows is None else rows
    (directory / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if stats is not None:
        (directory / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return directory


def fast_config(**overrides):
    """Tiny and quick: a few steps, short sequences, one thread (the fastest on a shared 2-core machine)."""
    from distill.train.config import TrainConfig

    values = dict(student="local", qlora=False, max_steps=8, batch_size=2, grad_accum=1, max_length=96,
                  learning_rate=1e-3, logging_steps=1, save_steps=4, threads=1, warmup_ratio=0.0)
    values.update(overrides)
    return TrainConfig(**values)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
                   "required": ["city"], "additionalProperties": False}}}
CONVERT_TOOL = {"type": "function", "function": {
    "name": "convert", "description": "Convert an amount of money between currencies.",
    "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
                   "required": ["amount", "to"], "additionalProperties": False}}}
CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito"]


def conversation_rows(n: int = 6) -> list[dict]:
    """Tool-calling conversations: system, user, assistant calling a tool (with reasoning), the tool's JSON
    result, the answer, a second user turn and its answer. Two tools are declared; each leaf calls one."""
    rows = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        if i % 2:
            call, result = {"name": "convert", "arguments": {"amount": 10 + i, "to": "EUR"}}, {"amount": 9 + i}
            ask, answer, leaf = f"How much is {10 + i} dollars in euros?", f"That is {9 + i} euros.", "tools/money"
        else:
            call, result = {"name": "get_weather", "arguments": {"city": city}}, {"temp": 10 + i}
            ask, answer, leaf = f"What is the weather in {city}?", f"It is {10 + i} degrees in {city}.", "tools/weather"
        rows.append({
            "id": f"conv{i}",
            "tools": [WEATHER_TOOL, CONVERT_TOOL],
            "messages": [
                {"role": "system", "content": "Use the tools when they help."},
                {"role": "user", "content": ask},
                {"role": "assistant", "content": "", "reasoning": f"I should call {call['name']}.",
                 "tool_calls": [{"id": f"call{i}", "type": "function", "function": call}]},
                {"role": "tool", "tool_call_id": f"call{i}", "name": call["name"], "content": json.dumps(result)},
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"Thank you ({i})."},
                {"role": "assistant", "content": "You are welcome."},
            ],
            "meta": {"taxonomy": "toy", "taxonomy_path": leaf, "teacher": "local", "task": "tool_calling"},
        })
    return rows
