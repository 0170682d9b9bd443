"""Real training on CPU with SmolLM2-135M: the loss falls, the adapter saves, reloads, merges and resumes."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from train_helpers import fast_config, make_run

pytestmark = [pytest.mark.model, pytest.mark.train]


def test_loss_falls(trained):
    _, result = trained
    assert result.steps == 8
    assert result.quantized_layers == 0  # plain LoRA: a full-precision base
    assert result.train_loss_last < result.train_loss_first * 0.7
    assert result.eval_loss_after < result.eval_loss_before * 0.7


def test_adapter_manifest_and_card_are_written(trained):
    run_dir, result = trained
    out = result.adapter_dir
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (run_dir / "train.jsonl").is_file() and (run_dir / "eval.jsonl").is_file()
    manifest = json.loads((out / "distill_manifest.json").read_text())
    assert manifest["eot_token"] == "<|im_end|>"
    assert "<|im_start|>" in manifest["chat_template"] and len(manifest["tokenizer_sha256"]) == 64
    n_train = sum(1 for _ in (run_dir / "train.jsonl").open())
    n_eval = sum(1 for _ in (run_dir / "eval.jsonl").open())
    assert (manifest["train_examples"], manifest["eval_examples"]) == (n_train, n_eval)
    assert manifest["mask"]["rows"] == n_train  # trained on train.jsonl's rows alone: eval.jsonl stays unseen
    assert n_train + n_eval == 40 and n_eval >= 3  # every leaf is represented in the held-out split
    card = (out / "README.md").read_text()
    assert "Taxonomy: toy" in card and "Teacher: local" in card
    assert "## Human review" in card and "Read 32 of 32 queued items: 30 accepted" in card
    assert "wrong or hallucinated (2)" in card
    assert "| sentiment |" in card


def test_adapter_reloads_and_changes_the_model(trained):
    import torch

    from distill.evaluate.generate import load_student

    _, result = trained
    model, tokenizer, manifest = load_student(result.adapter_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "great stuff"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        adapted = model(**ids).logits
        with model.disable_adapter():
            base = model(**ids).logits
    assert (adapted - base).abs().mean() > 0.05


def test_merge_writes_a_16bit_model_equal_to_base_plus_adapter(trained, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.evaluate.generate import load_student
    from distill.train.merge import merge_adapter

    _, result = trained
    merged_dir = merge_adapter(result.adapter_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    assert json.loads((merged_dir / "config.json").read_text()).get("dtype") == "bfloat16"
    assert not (merged_dir / "adapter_config.json").exists()
    model, tokenizer, _ = load_student(result.adapter_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What colour is snow?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        expected = model(**ids).logits
        with model.disable_adapter():
            base = model(**ids).logits
        got = merged(**ids).logits
    # bf16 rounding moves logits a little; the adapter moves them a lot more.
    assert (got - expected).abs().mean() < 0.5 * (base - expected).abs().mean()


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    from distill.train.sft import train

    run_dir, result = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    again = train(copy, fast_config(max_steps=10), out_dir=copy / "student", progress=False)
    assert again.resumed_from is not None and again.resumed_from.endswith("checkpoint-8")
    assert again.steps == 10


def test_qlora_loads_the_base_in_nf4_with_double_quantisation():
    """QLoRA as the paper and the docs promise: 4-bit NormalFloat weights, their scales quantised again."""
    from bitsandbytes.nn import Linear4bit

    from distill.models import resolve_model
    from distill.train.sft import load_model

    model = load_model(resolve_model("local"), qlora=True, cuda=False, checkpointing=False)
    weights = [module.weight for module in model.modules() if isinstance(module, Linear4bit)]
    assert len(weights) == 7 * 30
    assert {w.quant_type for w in weights} == {"nf4"}
    assert all(w.quant_state.nested for w in weights)  # double quantisation: the absmax scales in 8 bits


def test_qlora_runs_on_cpu_through_bitsandbytes(tmp_path):
    from distill.train.manifest import read_manifest
    from distill.train.sft import train

    notes = []
    run_dir = make_run(tmp_path / "run")
    result = train(run_dir, fast_config(qlora=True, max_steps=2, eval_before=False), progress=False,
                   log=notes.append)
    assert math.isfinite(result.train_loss_first) and math.isfinite(result.train_loss_last)
    assert read_manifest(result.adapter_dir).qlora
    # The base really ran in 4 bits: every linear projection (7 a layer, 30 layers) is a bitsandbytes Linear4bit.
    assert result.quantized_layers == 7 * 30
    assert any("bitsandbytes' CPU path" in note and "--no-qlora" in note for note in notes)
