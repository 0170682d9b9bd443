"""The adapter's model card: what it was trained from (taxonomy, teacher, counts, review) and how."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from distill.models import LOCAL_ALIASES
from distill.records import Example
from distill.review.figures import override_lines, review_lines
from distill.train.manifest import Manifest


def _counts(values) -> str:
    counts = Counter(value or "(unknown)" for value in values)
    return ", ".join(f"{name} ({n})" for name, n in counts.most_common())


def render_card(manifest: Manifest, train: list[Example], held_out: list[Example], stats: dict[str, Any]) -> str:
    taxonomy = stats.get("taxonomy") or _counts(e.meta.taxonomy for e in train) or "(unknown)"
    if isinstance(taxonomy, dict):
        taxonomy = taxonomy.get("name", json.dumps(taxonomy))
    teacher = stats.get("teacher") or _counts(e.meta.teacher for e in train)
    leaves = Counter(e.meta.taxonomy_path or "(none)" for e in train)
    held = Counter(e.meta.taxonomy_path or "(none)" for e in held_out)
    tasks = _counts(e.meta.task for e in train)
    lines = [
        "---",
        f"base_model: {hub_id(manifest)}",
        "library_name: peft",
        "tags: [distill, lora, trl, sft]",
        "---",
        "",
        f"# LoRA adapter for {manifest.student}",
        "",
        f"Trained by `distill train` on {manifest.train_examples} synthetic examples "
        f"({manifest.eval_examples} held out for evaluation).",
        "",
        "## Data provenance",
        f"- Taxonomy: {taxonomy}",
        f"- Teacher: {teacher}",
        f"- Tasks: {tasks}",
        f"- Train split sha256: `{manifest.train_sha256[:16]}`, eval split sha256: `{manifest.eval_sha256[:16]}`",
    ]
    if stats.get("counts"):
        lines.append(f"- Counts (from stats.json): `{json.dumps(stats['counts'], sort_keys=True)}`")
    lines += ["", "| taxonomy leaf | train | held out |", "|---|---:|---:|"]
    for leaf in sorted(set(leaves) | set(held)):
        lines.append(f"| {leaf} | {leaves.get(leaf, 0)} | {held.get(leaf, 0)} |")
    lines += review_section(stats.get("review"), manifest.review)
    lines += ["", "## Training", *training_lines(manifest), "", "## Results", *result_lines(manifest), "",
              "Run `distill eval RUN_DIR --student THIS_FOLDER` for task metrics on the held-out split.", ""]
    return "\n".join(lines)


def training_lines(manifest: Manifest) -> list[str]:
    """How the adapter was trained, as Markdown list items (the merged/GGUF model card shows them too)."""
    cfg = manifest.config
    return [
        f"- Method: {'QLoRA (nf4, double quantisation)' if manifest.qlora else 'LoRA'}, r {cfg.get('lora_r')}, "
        f"alpha {cfg.get('lora_alpha')}, dropout {cfg.get('lora_dropout')}, targets {cfg.get('target_modules')}",
        f"- lr {cfg.get('learning_rate')} ({cfg.get('lr_scheduler')}, warm-up {cfg.get('warmup_ratio')}), "
        f"epochs {cfg.get('epochs')}, max_steps {cfg.get('max_steps')}, batch {cfg.get('batch_size')} x "
        f"accumulation {cfg.get('grad_accum')}, max_length {cfg.get('max_length')}",
        f"- Loss on the assistant turn and its end-of-turn token `{manifest.eot_token}` only "
        f"({manifest.mask.get('labelled_fraction', 0):.1%} of tokens)",
        f"- Chat template sha256 `{manifest.chat_template_sha256[:16]}`, tokenizer sha256 "
        f"`{manifest.tokenizer_sha256[:16]}`",
    ]


def result_lines(manifest: Manifest) -> list[str]:
    m = manifest.metrics
    return [
        f"- Steps: {m.get('steps')}, train loss {_fmt(m.get('train_loss_first'))} -> {_fmt(m.get('train_loss_last'))}",
        f"- Eval loss: base {_fmt(m.get('eval_loss_before'))}, adapter {_fmt(m.get('eval_loss_after'))}",
        f"- Throughput: {_fmt(m.get('tokens_per_second'))} tokens/s, {_fmt(m.get('seconds_per_step'))} s/step",
    ]


def review_section(figures: dict[str, Any] | None, gate: dict[str, Any]) -> list[str]:
    """The human review in words: the gate (and --force), what was read, the reject rate, agreement."""
    if not figures and not gate.get("forced"):
        return []
    return ["", "## Human review", *override_lines(gate), *(review_lines({"review": figures}) if figures else [])]


def hub_id(manifest: Manifest) -> str:
    """The base as the Hub knows it: a local path means nothing to a reader of the card."""
    if manifest.student in LOCAL_ALIASES:
        return "HuggingFaceTB/SmolLM2-135M-Instruct"
    return manifest.student


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
