"""`distill export-model`: adapter -> merged 16-bit model -> GGUF (+ Ollama Modelfile), checked at each step.

    ADAPTER-merged/   the merged transformers model (bf16), its manifest and model card
    OUT/              NAME-q8_0.gguf (and/or NAME-f16.gguf), Modelfile, README.md (model card),
                      distill_manifest.json, export.json (sizes, times, checks), eval.json / eval.md

Each step is checked: every GGUF is read back by transformers and its logits held to its quantization's
tolerance against the merged model (`verify.py`); then, with the run's held-out split at hand, base, adapter,
merged and every GGUF answer the same items and a metric that falls after a step is flagged (`distill eval`).
"""

from __future__ import annotations

import gc
import re
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from distill.errors import DistillError
from distill.evaluate.forms import detect_form, load_form
from distill.evaluate.report import EvalConfig, evaluate
from distill.export.dataset import check_license
from distill.export.dataset_card import unknown_languages
from distill.export.gguf_writer import QUANT_TYPES, GgufFile, write_gguf
from distill.export.model_card import SCHEMA_FILE, write_model_cards
from distill.export.modelfile import Modelfile, write_modelfile
from distill.export.verify import GgufChecker, LogitCheck, probe_sequences
from distill.extras import needs
from distill.models import set_threads
from distill.owned import OwnedFolder
from distill.records import read_examples
from distill.rundir import EVAL_REPORT, RunDir
from distill.train.card import hub_id
from distill.train.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_student_tokenizer,
    read_manifest,
    sha256_file,
    write_manifest,
)
from distill.train.merge import merge_adapter, merged_folder

Say = Callable[[str], None]
Progress = Callable[[str, int, int], None]  # (what, done, total)

# Licenses of bases we know without a card at hand (the Hub ids SmolLM2 is published under are Apache-2.0).
KNOWN_BASE_LICENSES = {"HuggingFaceTB/SmolLM2-": "apache-2.0", "HuggingFaceTB/SmolLM-": "apache-2.0"}


class ModelExportOptions(BaseModel):
    """Options of `distill export-model`.

    - gguf: quantizations to write ("f16", "q8_0"); empty: merge only.
    - merge: merge again even when a merged folder of this adapter exists.
    - license: the fine-tune's license (default: the base model's, when known).
    - dataset: the training data's card: a Hub dataset repo id or the folder `distill export` wrote.
    - run_dir: the run the adapter was trained on (default: the adapter's parent, when its train.jsonl matches).
    - verify / evaluate: the logit check of each GGUF, and the held-out evaluation of every form.
    - force: write into a non-empty OUT (or ADAPTER-merged) distill did not make; its files stay untouched.
    """

    out: Path | None = None
    name: str | None = None
    gguf: list[str] = Field(default_factory=lambda: ["q8_0"])
    merge: bool = False
    license: str | None = None
    language: list[str] = Field(default_factory=lambda: ["en"])
    dataset: str | None = None
    run_dir: Path | None = None
    verify: bool = True
    evaluate: bool = True
    eval_limit: int | None = Field(None, gt=0)
    max_new_tokens: int = Field(128, gt=0)
    max_drop: float = Field(0.05, ge=0, le=1)
    threads: int | None = None
    force: bool = False  # write into folders of the user's (OUT, ADAPTER-merged), beside what is there


class ModelExport(BaseModel):
    adapter_dir: Path
    merged_dir: Path
    out_dir: Path
    name: str
    license: str
    run_dir: Path | None = None
    ggufs: list[GgufFile] = Field(default_factory=list)
    modelfile: Modelfile | None = None
    checks: list[LogitCheck] = Field(default_factory=list)
    eval_json: Path | None = None
    eval_markdown: Path | None = None
    flags: list[dict] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)


@needs("local", "train", "export", purpose="distill export-model")
def export_model(adapter_dir: Path, options: ModelExportOptions, say: Say = lambda line: None,
                 progress: Progress | None = None) -> ModelExport:
    """Merge, write the GGUF files and the Modelfile, check and evaluate them, write the cards."""
    adapter_dir = Path(adapter_dir)
    result = _plan(adapter_dir, read_manifest(adapter_dir), options, say)
    set_threads(options.threads)
    started = time.perf_counter()
    result.merged_dir = ensure_merged(adapter_dir, read_manifest(adapter_dir), options.merge, say)
    result.seconds["merge"] = time.perf_counter() - started
    manifest = read_manifest(adapter_dir)  # now naming the merged folder
    write_model_cards(result, manifest, options)  # before the GGUFs: gguf's Metadata reads the merged card
    _write_ggufs(result, manifest, options, say, progress)
    _check_and_evaluate(result, manifest, options, say)
    write_model_cards(result, manifest, options)
    report_dir = result.out_dir if result.ggufs else result.merged_dir
    OwnedFolder.in_place(report_dir, option="--out").write_text("export.json", result.model_dump_json(indent=2))
    return result


def _plan(adapter_dir: Path, manifest: Manifest, options: ModelExportOptions, say: Say) -> ModelExport:
    """Everything decided before any work: options checked, license, run, name and folders."""
    unknown = [q for q in options.gguf if q not in QUANT_TYPES]
    if unknown:
        raise DistillError(f"--gguf {unknown[0]!r}: choose from {', '.join(QUANT_TYPES)}, or none")
    license_id = options.license or base_license(manifest)
    check_license(license_id)
    if unknown_languages(options.language):
        raise DistillError(f"--language {', '.join(unknown_languages(options.language))}: not an ISO 639 code")
    run_dir = find_run(adapter_dir, manifest, options.run_dir, say)
    result = ModelExport(adapter_dir=adapter_dir, merged_dir=adapter_dir, license=license_id, run_dir=run_dir,
                         name=slug(options.name or (run_dir.name if run_dir else adapter_dir.name)),
                         out_dir=Path(options.out or adapter_dir.with_name(adapter_dir.name + "-gguf")))
    _claim_folders(result, manifest, options)
    return result


def _claim_folders(result: ModelExport, manifest: Manifest, options: ModelExportOptions) -> None:
    """The folders this export writes, claimed before anything loads: the merged one when a merge is due,
    and OUT when GGUFs go there; a user's file named like one of ours stops the export now."""
    reports = ("README.md", "export.json", SCHEMA_FILE, *(EVAL_REPORT if options.evaluate else ()))
    if options.gguf:
        out = OwnedFolder.claim(result.out_dir, "model-export", force=options.force)
        out.check_all((*(f"{result.name}-{quant}.gguf" for quant in options.gguf), "Modelfile", MANIFEST_NAME,
                       *reports))
    if options.merge or reusable_merge(manifest) is None:
        merged_folder(result.adapter_dir, options.force).check_all(reports)


def _write_ggufs(result: ModelExport, manifest: Manifest, options: ModelExportOptions, say: Say,
                 progress: Progress | None) -> None:
    for quant in options.gguf:
        say(f"writing {quant} GGUF ...")
        bar = (lambda done, total, q=quant: progress(f"GGUF {q}", done, total)) if progress else None
        gguf = write_gguf(result.merged_dir, result.out_dir / f"{result.name}-{quant}.gguf", quant,
                          chat_template=manifest.chat_template, name=result.name, progress=bar)
        result.ggufs.append(gguf)
        result.seconds[f"gguf_{quant}"] = gguf.seconds
        say(f"{gguf.path} ({gguf.bytes / 1e6:.1f} MB, {gguf.seconds:.1f} s)")
    if result.ggufs:
        write_manifest(result.out_dir, manifest)  # `distill eval --student FILE.gguf` reads it
        result.modelfile = _modelfile(result, manifest)


def _check_and_evaluate(result: ModelExport, manifest: Manifest, options: ModelExportOptions, say: Say) -> None:
    """The held-out evaluation of every form when the run is at hand (the GGUF checks ride along), else the
    GGUF checks alone."""
    checker = gguf_checker(result, manifest) if result.ggufs and options.verify else None
    started = time.perf_counter()
    if options.evaluate and result.run_dir is not None and RunDir(result.run_dir).eval.is_file():
        _evaluate(result, result.run_dir, options, checker)  # loads every form once
        result.seconds["eval"] = time.perf_counter() - started
    else:
        if options.evaluate:
            say("not evaluated: the run's held-out split was not found (pass --run RUN_DIR)")
        if checker:
            load_and_check(result, checker)
            result.seconds["verify"] = time.perf_counter() - started
    result.checks = checker.checks if checker else []
    for check in result.checks:
        say(_check_line(check))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def base_license(manifest: Manifest) -> str:
    """The base model's license: known for SmolLM2, else from the base's model card when it is on disk."""
    base = hub_id(manifest)
    for prefix, license_id in KNOWN_BASE_LICENSES.items():
        if base.startswith(prefix):
            return license_id
    card = _base_card(manifest.base_model)
    if card is not None and card.data.license:
        return card.data.license if isinstance(card.data.license, str) else card.data.license[0]
    raise DistillError(f"the license of the base model {base} is unknown here: pass --license (a fine-tune is "
                       "bound by its base model's license)")


def _base_card(base_model: str):
    from huggingface_hub import ModelCard, try_to_load_from_cache

    path = Path(base_model) / "README.md"
    if not path.is_file():
        cached = try_to_load_from_cache(base_model, "README.md") if "/" in base_model else None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        return ModelCard.load(path)
    except Exception:  # an unreadable card is the same as none: the user is asked for --license
        return None


def find_run(adapter_dir: Path, manifest: Manifest, run_dir: Path | None, say: Say) -> Path | None:
    """The run the adapter was trained on: given, or the adapter's parent when its train.jsonl is the one."""
    candidate = Path(run_dir) if run_dir else adapter_dir.parent
    train = RunDir(candidate).train
    if train.is_file() and sha256_file(train) == manifest.train_sha256:
        return candidate
    if run_dir is not None:
        if not train.is_file():
            raise DistillError("no train.jsonl: --run must be the run directory the adapter was trained on",
                               path=candidate)
        say(f"note: {train} changed since the adapter was trained (sha256 differs); using it anyway")
        return candidate
    return None


def ensure_merged(adapter_dir: Path, manifest: Manifest, force: bool, say: Say) -> Path:
    """The adapter's merged 16-bit folder: reused when it was merged from this very adapter, else merged now."""
    merged = reusable_merge(manifest)
    if not force and merged is not None:
        say(f"merged model: {merged} (already merged from this adapter)")
        return merged
    say("merging the adapter into a 16-bit copy of its base ...")
    merged = merge_adapter(adapter_dir)
    say(f"merged model: {merged}")
    return merged


def reusable_merge(manifest: Manifest) -> Path | None:
    """The merged folder the adapter's manifest names, when it was merged from this very adapter."""
    merged = Path(manifest.merged_dir) if manifest.merged_dir else None
    if merged and (merged / "config.json").is_file() and (merged / MANIFEST_NAME).is_file():
        if read_manifest(merged).created_at == manifest.created_at:
            return merged
    return None


def training_system_prompt(run_dir: Path | None) -> str | None:
    """The system prompt most training examples carry: what the student learned to answer under."""
    path = RunDir(run_dir).train if run_dir else None
    if path is None or not path.is_file():
        return None
    prompts = Counter(e.turn("system") for e in read_examples(path) if e.turn("system"))
    return prompts.most_common(1)[0][0] if prompts else None


def _modelfile(result: ModelExport, manifest: Manifest) -> Modelfile:
    tokenizer = load_student_tokenizer(manifest)
    stop = [manifest.eot_token] + ([tokenizer.eos_token] if tokenizer.eos_token not in (None, manifest.eot_token)
                                   else [])
    smallest = min(result.ggufs, key=lambda g: g.bytes)
    return write_modelfile(result.out_dir, smallest.path.name, tokenizer, stop, training_system_prompt(result.run_dir))


def gguf_checker(result: ModelExport, manifest: Manifest):
    """A GgufChecker over a few held-out conversations (or fixed ones when the run is not at hand)."""
    held_out = RunDir(result.run_dir).eval if result.run_dir else None
    examples = read_examples(held_out) if held_out and held_out.is_file() else []
    sequences = probe_sequences(load_student_tokenizer(manifest), examples)
    return GgufChecker(sequences, {gguf.path.name: gguf.quant for gguf in result.ggufs})


def load_and_check(result: ModelExport, checker) -> None:
    """Without an evaluation: load the merged model, then each GGUF, one at a time, for the checker."""
    for path in [result.merged_dir] + [gguf.path for gguf in result.ggufs]:
        form = detect_form(path)
        model = load_form(form)
        checker.observe(form, model)
        del model
        gc.collect()


def _check_line(check: LogitCheck) -> str:
    verdict = "ok" if check.ok else "OUTSIDE TOLERANCE"
    t = check.tolerance
    return (f"{check.file}: read back by transformers; vs merged over {check.positions} positions: max |logit diff| "
            f"{check.max_abs_diff:.4f} (<= {t.max_abs_diff}), mean KL {check.mean_kl:.2e} (<= {t.mean_kl}), "
            f"top-1 agreement {check.top1_agreement:.1%} (>= {t.min_top1:.0%}): {verdict}")


def _evaluate(result: ModelExport, run_dir: Path, options: ModelExportOptions, checker) -> None:
    forms = [result.adapter_dir, result.merged_dir] + [gguf.path for gguf in result.ggufs]
    config = EvalConfig(out_dir=result.out_dir if result.ggufs else result.merged_dir, limit=options.eval_limit,
                        max_new_tokens=options.max_new_tokens, max_drop=options.max_drop, threads=options.threads)
    evaluation = evaluate(run_dir, forms, config, observe=checker.observe if checker else None)
    result.eval_json, result.eval_markdown = evaluation.json_path, evaluation.markdown_path
    result.flags = evaluation.report.get("flags", [])
