"""The dataset card (`README.md`): Hub metadata in YAML, then where the data came from, in numbers.

The YAML is written by huggingface_hub's `DatasetCardData` (never by hand), and `check_dataset_card` holds the
card to what can be checked without the network: the Hub's own front-matter regex and `DatasetCardData`
round trip (`DatasetCard.load`), `datasets`' own parser for `configs` and `dataset_info`, every `configs` path
matching files, and the controlled vocabularies `datasets` ships (size categories, language codes, creators).
Not checked offline: the license id against the Hub's list and the Hub's YAML validator
(`RepoCard.validate()` posts the card to the Hub); `--push-to-hub` meets those.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distill.export.parquet import arrow_schema, axis_names, has_turn_fields
from distill.records import Example
from distill.review.figures import review_lines
from distill.rundir import CONTAMINATION, RunDir
from distill.taxonomy.snapshot import read_snapshot
from distill.train.manifest import sha256_file

# Shown for each task in `task_categories`: chat SFT data is text generation whatever the task.
TASK_CATEGORIES = {"qa": ["question-answering", "text-generation"],
                   "classification": ["text-classification", "text-generation"]}
COLUMN_NOTES = {
    "id": "example id (stable across re-runs)",
    "messages": "the conversation: system, user and assistant turns (TRL's SFTTrainer takes it as it is)",
    "task": "task kind (qa, classification)",
    "taxonomy": "taxonomy name", "taxonomy_path": "taxonomy leaf the example was planned for",
    "seed_ids": "seed examples shown to the teacher", "teacher": "teacher model spec",
    "prompt_sha256": "hash of the rendered prompt", "plan_item_id": "plan item id (run.db)",
    "temperature": "teacher sampling temperature", "top_p": "teacher top-p", "max_tokens": "teacher token budget",
    "sampling_seed": "teacher sampling seed", "prompt_tokens": "teacher prompt tokens",
    "completion_tokens": "teacher completion tokens", "cost_usd": "teacher cost of the example, USD",
    "tools": "the tools the conversation may call (OpenAI-style definitions with a JSON Schema each), as JSON text "
             "(TRL's SFTTrainer reads it so; `json.loads` for a list)",
    "output": "structured tasks: the parsed answer object, as JSON",
    "meta_extra": "any other metadata the record carried, as JSON",
}


def size_category(rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if rows < bound:
            return label
    return "10M<n<100M"


def render_dataset_card(run_dir: RunDir, splits: dict[str, list[Example]], schema, files: dict[str, list[Path]],
                        stats: dict[str, Any], options) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    everything = [example for examples in splits.values() for example in examples]
    tasks = sorted({example.meta.task or stats.get("task") or "qa" for example in everything}) or ["qa"]
    name = options.pretty_name or f"{stats.get('taxonomy') or run_dir.root.name} (distill synthetic data)"
    data = DatasetCardData(
        license=options.license, language=list(options.language), pretty_name=name,
        task_categories=sorted({c for task in tasks for c in TASK_CATEGORIES.get(task, ["text-generation"])}),
        size_categories=[size_category(len(everything))], annotations_creators=["machine-generated"],
        language_creators=["machine-generated"], multilinguality=["monolingual"] if len(options.language) == 1
        else ["multilingual"], source_datasets=["original"], tags=["synthetic", "distill", "sft"],
        configs=[{"config_name": "default", "default": True,
                  "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits]}],
        dataset_info=_dataset_info(schema, splits, files),
    )
    body = _body(run_dir, splits, files, stats, name, options)
    return str(DatasetCard("---\n" + data.to_yaml() + "\n---\n" + body))


def _dataset_info(schema, splits: dict[str, list[Example]], files: dict[str, list[Path]]) -> dict:
    """Features and split sizes in `datasets`' own YAML form, so loaders know the types without reading files."""
    from datasets import Features

    sizes = {split: sum(path.stat().st_size for path in paths) for split, paths in files.items()}
    return {"features": Features.from_arrow_schema(schema)._to_yaml_list(),
            "splits": [{"name": split, "num_bytes": sizes[split], "num_examples": len(rows)}
                       for split, rows in splits.items()],
            "download_size": sum(sizes.values()), "dataset_size": sum(sizes.values())}


# --- the body -------------------------------------------------------------------------------------------------

def _body(run_dir: RunDir, splits, files, stats, name, options) -> str:
    train, test = splits["train"], splits["test"]
    taxonomy = _taxonomy(run_dir)
    teachers = Counter(e.meta.teacher or "(unknown)" for e in train + test)
    lines = [
        f"# {name}", "",
        f"{len(train) + len(test)} synthetic chat examples made by `distill` from the taxonomy "
        f"**{stats.get('taxonomy') or '(unknown)'}** with "
        f"{_list(teachers)}: {len(train)} for training, {len(test)} held out for evaluation (`test`, never "
        "trained on).", "",
        "```python", "from datasets import load_dataset", "",
        'dataset = load_dataset("path/to/this/folder")  # or the Hub repo id', "```", "",
        "## Splits", "", "| split | rows | files |", "|---|---:|---|",
        *(f"| {split} | {len(rows)} | {', '.join(p.relative_to(p.parent.parent).as_posix() for p in files[split])} |"
          for split, rows in splits.items()),
        "", "## Columns", "", "| column | meaning |", "|---|---|",
        *(f"| `{field}` | {_column_note(field)} |" for field in _columns(train + test)),
        *_tools(train + test),
        "", "## How it was made", "",
        *_provenance(run_dir, stats, taxonomy, options),
        *_source_documents(run_dir, train + test),
        "", "## Counts per stage", "", *_stage_counts(stats),
        "", "## Per taxonomy leaf", "", *_leaf_table(stats, splits, taxonomy),
        "", "## Reject reasons", "", *_reasons(stats),
        "", "## Deduplication and decontamination", "", *_dedup_decontam(run_dir, stats),
        "", "## Human review", "", *review_lines(stats),
        "", "## Limitations and license", "",
        f"- License chosen by the publisher: `{options.license}`. The text was written by a model: check that "
        "the teacher's terms of use allow this use and this license.",
        *(["- The source documents' own licences (under Source documents) apply to what the answers take "
           "from them."] if run_dir.read_documents() else []),
        "- Synthetic data inherits its teacher's errors and biases; automatic checks remove malformed, "
        "duplicated and contaminated items, not wrong ones.",
        "- The `test` split comes from the same teacher and taxonomy: scores on it measure agreement with the "
        "teacher, not real-world accuracy.",
        "", f"Exported by `distill export` on {datetime.now(timezone.utc).date().isoformat()}"
        f" (distill {_version()}).", "",
    ]
    return "\n".join(lines)


def _column_note(field: str) -> str:
    return COLUMN_NOTES.get(field) or f"taxonomy axis `{field[len('axis_'):]}`"


def _columns(examples: list[Example]) -> list[str]:
    return [field.name for field in arrow_schema(axis_names(examples), has_turn_fields(examples))]


def _tools(examples: list[Example]) -> list[str]:
    """The tools the conversations declare, how many declare and call each, and how to read the JSON columns."""
    if not has_turn_fields(examples):
        return []
    declared: dict[str, dict] = {}
    offered: Counter = Counter()
    called: Counter = Counter()
    for example in examples:
        for tool in example.tools or []:
            spec = tool.get("function", tool)
            declared.setdefault(spec.get("name", ""), spec)
            offered[spec.get("name", "")] += 1
        called.update(call.function.name for m in example.messages for call in m.tool_calls or [])
    lines = ["", "## Tools", "",
             "`messages` holds whole conversations: an assistant turn may carry `tool_calls` (each `{id, type, "
             "function: {name, arguments}}`, the arguments as JSON text, since each tool's arguments have keys of "
             "their own and a Parquet column has one type) and `reasoning`; a `tool` turn carries the result, with "
             "`tool_call_id` and `name`. Fields a turn does not use are null. To get the arguments and the tools as "
             "objects:", "",
             "```python", "import json", "",
             "row = dataset['train'][0]",
             "tools = json.loads(row['tools']) if row['tools'] else None",
             "for turn in row['messages']:",
             "    for call in turn['tool_calls'] or []:",
             "        call['function']['arguments'] = json.loads(call['function']['arguments'])",
             "```", ""]
    if declared:
        lines += ["| tool | description | examples offering it | calls |", "|---|---|---:|---:|"]
        lines += [f"| `{name}` | {_cell(spec.get('description'))} | {offered[name]} | {called[name]} |"
                  for name, spec in sorted(declared.items())]
    return lines


def _cell(text) -> str:
    """Text on one line, safe inside a Markdown table cell."""
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _taxonomy(run_dir: RunDir):
    """What the run recorded of its taxonomy when it was made (taxonomy.json: descriptions, axes); else None.
    Never the taxonomy file itself: exporting a run folder someone sent must not read the files it names."""
    return read_snapshot(run_dir.root)


def _provenance(run_dir: RunDir, stats, taxonomy, options) -> list[str]:
    run = stats.get("run") or {}
    lines = [f"- Taxonomy: **{stats.get('taxonomy') or '(unknown)'}**"
             + (f": {taxonomy.description}" if taxonomy and taxonomy.description else ""),
             f"- Task: {stats.get('task') or run.get('task') or '(see the task column)'}"]
    if taxonomy:
        lines.append(f"- System prompt of every example: {taxonomy.system_prompt!r}")
        if taxonomy.axes:
            lines.append("- Axes crossed with every leaf: " + "; ".join(
                f"{axis} ({', '.join(spec.values)})" for axis, spec in taxonomy.axes.items()))
    if run.get("teacher"):
        lines.append(f"- Teacher: `{run['teacher']}`, plan seed {run.get('seed', 0)}")
    usage, calls = stats.get("usage") or {}, stats.get("teacher_calls") or {}
    if usage or calls:
        cost = usage.get("cost_usd")
        lines.append(f"- Teacher calls: {calls.get('calls', '?')} ({calls.get('cached', 0)} from cache, "
                     f"{calls.get('errors', 0)} errors); tokens {usage.get('prompt_tokens', 0):,} in, "
                     f"{usage.get('completion_tokens', 0):,} out" + (f"; cost ${cost:.4f}" if cost else ""))
    for split, path in (("train", run_dir.train), ("test", run_dir.eval)):  # "test": what the Hub expects
        if path.is_file():
            lines.append(f"- `{split}` is the run's `{path.name}`, sha256 `{sha256_file(path)[:16]}`")
    return lines


def _source_documents(run_dir: RunDir, examples: list[Example]) -> list[str]:
    """The section naming the documents the examples rest on (`meta.source`), from what the run recorded of them
    when it was made (documents.json): the folder may be gone or changed since. Nothing for a run without one.
    The folder is named, never its path: a published card must not carry the paths of the machine it ran on."""
    record = run_dir.read_documents()
    if record is None:
        return []
    resting: Counter = Counter()
    pages: dict[str, set[int]] = {}
    for example in examples:
        source = (example.meta.model_extra or {}).get("source")
        if isinstance(source, dict) and source.get("file"):
            resting[source["file"]] += 1
            if isinstance(source.get("page"), int):
                pages.setdefault(source["file"], set()).add(source["page"])
    files = [f for f in record.get("files") or [] if isinstance(f, dict) and f.get("file")]
    used = [f for f in files if resting[f["file"]]]
    lines = ["", "## Source documents", "",
             f"{sum(resting.values())} of the {len(examples)} examples rest on a passage of these documents, read "
             f"from a folder `{_cell(Path(str(record.get('folder') or '')).name)}` (each example's `meta_extra` has its `source`: file, page, "
             "headings, span); the licences are those their owner declared in the folder's `documents.yaml`.", "",
             "| file | sha256 | pages used | examples | licence |", "|---|---|---|---:|---|"]
    for each in used:
        total = f" of {each['pages']}" if each.get("pages") else ""
        shown = ", ".join(str(p) for p in sorted(pages.get(each["file"], ()))) + total if each.get("pages") else ""
        lines.append(f"| {_cell(each['file'])} | `{_cell(each.get('sha256'))}` | {shown} | {resting[each['file']]} "
                     f"| {_cell(each.get('license') or 'not declared')} |")
    unused = [each["file"] for each in files if not resting[each["file"]]]
    if unused:
        lines += ["", f"Read, but no example here rests on them: {', '.join(unused)}."]
    held_out = [each for each in record.get("held_out") or [] if isinstance(each, dict) and each.get("file")]
    if held_out:  # the folder's own question sets (documents.yaml `held_out:`): kept out, and decontaminated against
        lines += ["", "Question sets of the folder, held out (not used for generation), every example decontaminated "
                  "against them: " + ", ".join(f"{_cell(each['file'])} (sha256 `{_cell(each.get('sha256'))}`, "
                                              f"{each.get('questions', '?')} questions)" for each in held_out) + "."]
    return lines


def _curation(stats: dict) -> dict:
    """The curation block, from `distill generate` (under "curation") or `distill curate` (top level)."""
    return stats.get("curate") or (stats.get("curation") or {}).get("curate") or {}


def _stage_counts(stats: dict) -> list[str]:
    lines = []
    counts = stats.get("counts") or {}
    if counts:
        keys = [k for k in ("planned", "generated", "valid", "kept", "rejected", "failed", "pending") if k in counts]
        lines += ["| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys),
                  "| " + " | ".join(str(counts[k]) for k in keys) + " |", ""]
    curation = _curation(stats)
    if curation:
        keys = [k for k in ("generated", "valid", "unique", "clean", "kept") if k in curation]
        lines += ["Curation: " + " -> ".join(f"{k} {curation[k]}" for k in keys)
                  + " (valid: passed the checks; unique: after exact and near dedup; clean: after decontamination)"]
    return lines or ["No stage counts recorded (stats.json missing)."]


def _leaf_table(stats: dict, splits: dict[str, list[Example]], taxonomy) -> list[str]:
    nodes = stats.get("nodes") or {}
    split_counts = {split: Counter(e.meta.taxonomy_path or "(none)" for e in examples)
                    for split, examples in splits.items()}
    paths = set(split_counts["train"]) | set(split_counts["test"])
    paths |= {p for p in nodes if p != "(all)" and not any(o.startswith(p + "/") for o in nodes)}
    described = {n.path: n.description for n in taxonomy.nodes} if taxonomy else {}
    lines = ["| leaf | planned | generated | kept | train | test | rejects |", "|---|---:|---:|---:|---:|---:|---|"]
    for path in sorted(paths):
        node = nodes.get(path, {})
        rejects = ", ".join(f"{r} {n}" for r, n in sorted((node.get("rejects") or {}).items(), key=lambda kv: -kv[1]))
        label = f"{path} ({described[path]})" if path in described else path
        lines.append(f"| {label} | {node.get('planned', '')} | {node.get('generated', '')} | {node.get('kept', '')}"
                     f" | {split_counts['train'][path]} | {split_counts['test'][path]} | {rejects} |")
    return lines


def _reasons(stats: dict) -> list[str]:
    reasons = stats.get("reject_reasons") or _curation(stats).get("reasons") or {}
    if not reasons:
        return ["No rejects recorded."]
    return ["Every reject is kept, with its reason, in the run's `rejected.jsonl`.", "",
            "| reason | count |", "|---|---:|",
            *(f"| {reason} | {count} |" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))]


def _dedup_decontam(run_dir: RunDir, stats: dict) -> list[str]:
    curation = _curation(stats)
    dedup, decontam = curation.get("dedup") or {}, curation.get("decontamination") or {}
    lines = []
    if dedup:
        lines.append(f"- Exact duplicates removed: {dedup.get('exact_removed', 0)} (normalised text hash); near "
                     f"duplicates removed: {dedup.get('near_removed', 0)} (MinHash LSH, {dedup.get('num_perm')} "
                     f"permutations, {dedup.get('bands')} bands x {dedup.get('rows')} rows, Jaccard >= "
                     f"{dedup.get('threshold')} on word {dedup.get('shingle_size')}-grams, confirmed exactly)")
        if dedup.get("against"):
            lines.append(f"- Also deduplicated against: {', '.join(map(str, dedup['against']))}")
    if decontam and not decontam.get("heldout"):
        lines.append("- Not decontaminated: no held-out set was given (`heldout:` in the taxonomy, or `--heldout`)")
    elif decontam:
        sets = [Path(p).name for p in decontam["heldout"]]
        lines.append(f"- Decontaminated against {', '.join(sets)} "
                     f"({decontam.get('heldout_items', 0)} items): {decontam.get('flagged', 0)} examples removed for "
                     f"a shared {decontam.get('ngram')}-gram ({decontam.get('flagged_at_13', 0)} also share a "
                     "13-gram)")
    removed = _contamination_by_set(run_dir)
    if removed:
        lines.append("- Removed per held-out set (`contamination.jsonl`): "
                     + ", ".join(f"{name} {count}" for name, count in removed.most_common()))
    return lines or ["No deduplication or decontamination statistics recorded."]


def _contamination_by_set(run_dir: RunDir) -> Counter:
    path = run_dir.path(CONTAMINATION)
    counts: Counter = Counter()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 may be in a string
            if line.strip():
                counts[str(json.loads(line).get("heldout_id", "?")).split(":")[0]] += 1
    return counts


def _list(counter: Counter) -> str:
    return ", ".join(f"`{name}` ({n})" for name, n in counter.most_common()) or "an unknown teacher"


def _version() -> str:
    try:
        return md.version("distill")
    except md.PackageNotFoundError:
        return "unknown"


# --- offline checks -------------------------------------------------------------------------------------------

def check_dataset_card(card_path: Path) -> list[str]:
    """Problems with the card that can be found without the network (empty list: none found)."""
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    problems: list[str] = []
    try:
        card = DatasetCard.load(card_path)
    except Exception as exc:  # the Hub's regex or YAML parser refused it
        return [f"unreadable front matter: {exc}"]
    data = card.data.to_dict()
    if not data:
        return ["no YAML front matter"]
    if DatasetCardData(**data).to_dict() != data:
        problems.append("front matter does not survive a DatasetCardData round trip")
    for key in ("license", "language", "task_categories", "size_categories", "configs"):
        if not data.get(key):
            problems.append(f"missing {key}")
    try:
        configs = MetadataConfigs.from_dataset_card_data(card.data)
        DatasetInfosDict.from_dataset_card_data(card.data)
    except Exception as exc:
        return problems + [f"configs/dataset_info refused by datasets: {str(exc).strip().splitlines()[0]}"]
    folder = Path(card_path).parent
    for name, config in configs.items():
        for entry in config.get("data_files") or []:
            patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            if not any(list(folder.glob(pattern)) for pattern in patterns):
                problems.append(f"config {name}, split {entry['split']}: no file matches {patterns}")
    problems += _vocabulary_problems(data)
    return problems


def _resource(name: str):
    """One of the controlled vocabularies `datasets` ships (languages, size categories, creators)."""
    import datasets

    return json.loads((Path(datasets.__file__).parent / "utils" / "resources" / name).read_text(encoding="utf-8"))


def unknown_languages(codes: list[str]) -> list[str]:
    languages = _resource("languages.json")
    return [code for code in codes if code not in languages]


def _vocabulary_problems(data: dict) -> list[str]:
    sizes, creators = _resource("size_categories.json"), _resource("creators.json")
    problems = [f"unknown language code {code!r}" for code in unknown_languages(data.get("language", []))]
    problems += [f"unknown size category {size!r}" for size in data.get("size_categories", []) if size not in sizes]
    problems += [f"unknown annotations creator {c!r}" for c in data.get("annotations_creators", [])
                 if c not in creators["annotations"]]
    problems += [f"unknown language creator {c!r}" for c in data.get("language_creators", [])
                 if c not in creators["language"]]
    return problems
