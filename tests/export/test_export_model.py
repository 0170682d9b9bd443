"""`distill export-model` end to end on the adapter trained once for the session: merge, GGUF f16 and q8_0,
read back by transformers' own GGUF loader, every form evaluated side by side, Modelfile and model cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.model, pytest.mark.train]

PROMPTS = [[{"role": "user", "content": "What colour is grass? (question 7)"}],
           [{"role": "system", "content": "Classify the sentiment. Reply with JSON."},
            {"role": "user", "content": "terrible support (review 3)"}],
           [{"role": "user", "content": "Name a fruit and its colour."}]]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    import torch

    from distill.export.dataset import DatasetExportOptions, export_dataset
    from distill.export.model import ModelExportOptions, export_model

    torch.set_num_threads(1)
    run_dir, result = trained
    out = tmp_path_factory.mktemp("export")
    export_dataset(run_dir, DatasetExportOptions(out=out / "dataset", license="apache-2.0"))
    notes = []
    exported = export_model(result.adapter_dir, ModelExportOptions(
        out=out / "gguf", gguf=["f16", "q8_0"], dataset=str(out / "dataset"), eval_limit=4, max_new_tokens=16,
        threads=1), say=notes.append)
    return exported, notes


def test_export_writes_merged_model_ggufs_modelfile_and_cards(exported):
    result, notes = exported
    assert (result.merged_dir / "model.safetensors").is_file() and (result.merged_dir / "README.md").is_file()
    assert [g.path.name for g in result.ggufs] == [f"{result.name}-f16.gguf", f"{result.name}-q8_0.gguf"]
    f16, q8 = result.ggufs
    assert 0.5 < q8.bytes / f16.bytes < 0.6  # 8.5 bits a weight against 16
    saved = json.loads((result.out_dir / "export.json").read_text())
    assert [g["quant"] for g in saved["ggufs"]] == ["f16", "q8_0"] and len(saved["checks"]) == 2
    modelfile = (result.out_dir / "Modelfile").read_text()
    assert f"FROM ./{q8.path.name}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "TEMPLATE" in modelfile and 'SYSTEM """' in modelfile
    assert any("read back by transformers" in note for note in notes)


def test_gguf_metadata_matches_the_original_smollm2_gguf(exported):
    """The tokenizer and hyper-parameters as SmolLM2's own GGUF (the embedded model) names and stores them."""
    from gguf import GGUFReader

    from distill.models import embedded_gguf
    from distill.train.manifest import read_manifest

    result, _ = exported
    ours, original = GGUFReader(result.ggufs[1].path), GGUFReader(embedded_gguf())
    for key in ("general.architecture", "llama.block_count", "llama.context_length", "llama.embedding_length",
                "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
                "llama.rope.dimension_count", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
                "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "general.license",
                "general.languages", "general.size_label"):
        assert ours.fields[key].contents() == original.fields[key].contents(), key
    assert ours.fields["tokenizer.chat_template"].contents() == read_manifest(result.adapter_dir).chat_template
    assert ours.fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0
    # The embedded tokenizer as transformers converts it splits text with GPT-2's regex (no digit split), and
    # the student was trained with it: the file says so, so llama.cpp tokenizes as training did.
    assert ours.fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    assert ours.fields["general.base_model.0.name"].contents() == "SmolLM2 135M Instruct"
    assert {t.name for t in ours.tensors} == {t.name for t in original.tensors}


def test_f16_gguf_read_back_by_transformers_answers_as_the_merged_model(exported):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.train.manifest import load_student_tokenizer, read_manifest

    result, _ = exported
    tokenizer = load_student_tokenizer(read_manifest(result.adapter_dir))
    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir, dtype=torch.float32).eval()
    gguf = result.ggufs[0].path
    from_gguf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    for messages in PROMPTS:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        with torch.no_grad():
            expected = merged.generate(ids, max_new_tokens=20, do_sample=False)
            got = from_gguf.generate(ids, max_new_tokens=20, do_sample=False)
        assert got.tolist() == expected.tolist(), tokenizer.decode(got[0])


def test_each_gguf_is_within_its_tolerance(exported):
    from distill.export.verify import TOLERANCES

    result, _ = exported
    f16, q8 = result.checks
    assert (f16.file, q8.file) == (result.ggufs[0].path.name, result.ggufs[1].path.name)
    assert f16.ok and q8.ok and f16.positions > 50
    assert f16.max_abs_diff < 0.01 and f16.top1_agreement == 1.0  # bf16 weights are exact in f16
    assert 0.01 < q8.max_abs_diff <= TOLERANCES["q8_0"].max_abs_diff  # rounded, but close
    assert q8.mean_kl <= TOLERANCES["q8_0"].mean_kl and q8.top1_agreement >= TOLERANCES["q8_0"].min_top1


def test_every_form_is_scored_side_by_side(exported):
    result, _ = exported
    report = json.loads(result.eval_json.read_text())
    assert report["systems"] == ["base", "student", "merged", "gguf-f16", "gguf-q8_0", "teacher"]
    assert [(s["from"], s["to"]) for s in report["steps"]] == [("student", "merged"), ("merged", "gguf-f16"),
                                                               ("merged", "gguf-q8_0")]
    f16_step = report["steps"][1]
    assert f16_step["identical"] == f16_step["n"] == 4  # the same weights give the same greedy answers
    assert report["flags"] == [s for s in report["flags"] if s["drop"] > report["max_drop"]]
    markdown = result.eval_markdown.read_text()
    assert "## Merge and quantization" in markdown and "| merged -> gguf-q8_0 |" in markdown


def test_model_cards_validate_and_say_where_the_model_came_from(exported):
    from huggingface_hub import ModelCard

    from distill.export.model_card import check_model_card

    result, _ = exported
    for folder in (result.merged_dir, result.out_dir):
        assert check_model_card(folder / "README.md") == []
    card = ModelCard.load(result.out_dir / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.license == "apache-2.0"
    text = card.text
    for expected in ("(the base model's license)", "distill's embedded copy", "dataset/README.md",
                     "30 accepted, 2 rejected (left out)",
                     "## Training", "LoRA, r 16", "### Merge and quantization", "| base |", "| gguf-q8_0 |",
                     "### GGUF read back", "ollama create", "## Intended use and limits"):
        assert expected in text, expected
    merged_card = ModelCard.load(result.merged_dir / "README.md")
    assert merged_card.data.library_name == "transformers" and "AutoModelForCausalLM" in merged_card.text


def test_export_again_reuses_the_merged_model(exported):
    from distill.export.model import ModelExportOptions, export_model

    result, _ = exported
    notes = []
    again = export_model(result.adapter_dir, ModelExportOptions(gguf=[], evaluate=False), say=notes.append)
    assert again.merged_dir == result.merged_dir and any("already merged from this adapter" in n for n in notes)


def test_eval_cli_takes_several_forms(exported, tmp_path):
    result, _ = exported
    done = subprocess.run([sys.executable, "-m", "distill.cli", "eval", str(result.run_dir), "--student",
                           str(result.adapter_dir), "--student", str(result.merged_dir), "--limit", "1",
                           "--max-new-tokens", "4", "--threads", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["systems"] == ["base", "student", "merged", "teacher"]


@pytest.mark.parametrize("args, message", [
    (["--gguf", "q4_k"], "--gguf 'q4_k': choose from f16, q8_0"),
    (["--license", "Apache 2"], "is not a license id"),
])
def test_cli_mistakes_are_one_line(exported, args, message):
    result, _ = exported
    done = subprocess.run([sys.executable, "-m", "distill.cli", "export-model", str(result.adapter_dir), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_not_an_adapter_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "distill.cli", "export-model", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "not an adapter written by `distill train`" in done.stderr
