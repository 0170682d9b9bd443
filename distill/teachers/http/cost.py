"""Prices and token estimates: what a call cost, and what a request could cost at most.

Prices are USD per million tokens (input, output), list prices of common models; the user's API
config (`prices:`) overrides or adds models. Provider batch APIs bill about half.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.userfiles import load_yaml_mapping, located

# (input, output) USD per 1M tokens. Longest matching prefix wins, so dated names resolve.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}
BATCH_DISCOUNT = 0.5


class PriceTable:
    def __init__(self, overrides: dict[str, Any] | None = None):
        self.prices = dict(PRICES)
        for model, price in (overrides or {}).items():
            if isinstance(price, dict):
                self.prices[model] = (float(price["input"]), float(price["output"]))
            else:
                self.prices[model] = (float(price[0]), float(price[1]))

    def price(self, model: str) -> tuple[float, float] | None:
        if model in self.prices:
            return self.prices[model]
        matches = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float | None:
        price = self.price(model)
        if price is None:
            return None  # unknown model (a local vLLM server): tokens are still counted
        usd = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
        return usd * BATCH_DISCOUNT if batch else usd


def estimate_prompt_tokens(messages: list, tools: list[dict[str, Any]] | None = None) -> int:
    """An upper-leaning guess without a tokenizer: English runs ~4 characters a token; count 3. The tool
    definitions and each turn's calls are sent (and billed) as part of the prompt, so they count as their JSON."""
    turns = sum((len(m.content) + (len(json.dumps([c.model_dump() for c in m.tool_calls])) if m.tool_calls else 0))
                // 3 + 4 for m in messages)
    return turns + (len(json.dumps(tools)) // 3 if tools else 0)


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class ProviderConfig(BaseModel):
    """Per-provider settings; a flag given on the command line wins over these."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int | None = Field(None, ge=1, le=4096)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0, le=100)
    base_url: str | None = None
    sender_process: bool | None = None
    batch_poll_s: float | None = Field(None, gt=0)
    batch_collect_s: float | None = Field(None, ge=0)
    batch_attempts: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)


class AnthropicConfig(ProviderConfig):
    """Anthropic's settings: the shared ones, and extended thinking."""

    # Tokens of extended thinking a request may spend before its answer (Anthropic's minimum is 1024); its
    # thinking blocks are kept as the answer's reasoning. Unset: no thinking asked for.
    thinking_budget: int | None = Field(None, ge=1024)


class ApiConfig(BaseModel):
    """`--api-config` YAML: `prices: {model: {input, output}}` and `openai:` / `anthropic:` settings."""

    model_config = ConfigDict(extra="forbid")
    prices: dict[str, Price] = Field(default_factory=dict)
    openai: ProviderConfig | None = None
    anthropic: AnthropicConfig | None = None


def load_api_config(path: Path | None) -> dict[str, Any]:
    """The validated API config as plain data (it travels to a sender process as JSON); {} without a file.
    A mistake is one line: file, line and field."""
    if path is None:
        return {}

    data = load_yaml_mapping(path, "API config file", "prices: and openai: / anthropic: settings")
    try:
        return ApiConfig.model_validate(data).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise located(exc, data, Path(path)) from None
