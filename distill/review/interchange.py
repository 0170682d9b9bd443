"""`distill review export DIR --format argilla|datasets`: the queue and its decisions for other tools.

- datasets: `queue.jsonl` (one row per queued item: original and current conversation, outcome, reasons
  and every reviewer's standing verdict) and `decisions.jsonl` (the whole append-only log, undos
  included), with a README whose `configs` let `datasets.load_dataset(FOLDER, "queue")` read them.
- argilla: the folder `rg.Dataset.to_disk` writes and `rg.Dataset.from_disk` loads into an Argilla 2.x
  server: `.argilla/settings.json` (a chat field; verdict, reasons, edited answer and note questions),
  `.argilla/dataset.json`, `records.json`. Argilla keys responses by its own user ids, which a local
  review does not have, so the outcome comes in as suggestions (agent: the reviewers' names) for a team
  to confirm there; the per-reviewer log is in the datasets export.
Written by hand from Argilla's documented layout, so the review extra does not depend on its SDK;
tests/review/test_review_interchange.py loads both exports with the real `argilla` and `datasets` packages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.owned import OwnedFolder
from distill.records import REVIEW_REASONS
from distill.review.ledger import ReviewLedger
from distill.review.state import ItemState, ReviewState
from distill.rundir import RunDir

FORMATS = ("argilla", "datasets")


def export_review(directory: Path, format: str, out: Path | None = None, force: bool = False) -> Path:
    """Write DIR's queue and decisions in `format` into `out` (default DIR/review-FORMAT), a folder of its own:
    a run folder, or a folder of the user's, is refused (with `force`, written beside the user's files)."""
    if format not in FORMATS:
        raise DistillError(f"--format must be one of {', '.join(FORMATS)} (got {format!r})")
    directory = Path(directory)
    if not RunDir(directory).has_store():
        raise DistillError("no review here (no run.db): build a queue with `distill review DIR`", path=directory)
    with ReviewLedger.open(directory) as ledger:
        state = ReviewState.load(ledger)
    if not state.has_queue:
        raise DistillError(f"no review queue yet: build one with `distill review {directory}`", path=directory)
    out = Path(out) if out else directory / f"review-{format}"
    folder = OwnedFolder.claim(out, "review-export", force=force)
    (write_argilla if format == "argilla" else write_datasets)(state, folder, directory.name)
    folder.prune()  # the other format's files, from an earlier export into this folder
    return out


def _review_rows(item: ItemState) -> list[dict[str, Any]]:
    return [{"reviewer": name, "verdict": d.verdict, "reasons": d.reasons, "note": d.note,
             "seconds": d.seconds, "at": d.created_at} for name, d in item.reviews.items()]


def write_datasets(state: ReviewState, out: OwnedFolder, name: str) -> None:
    rows = []
    for item in state.items.values():
        example = item.item.example
        rows.append({
            "id": item.item_id, "leaf": item.item.node_path, "queued_for": item.why, "slots": item.slots,
            "teacher": example.meta.teacher, "axes": json.dumps(example.meta.axes, ensure_ascii=False),
            "messages": [m.model_dump() for m in example.messages],
            "current_messages": [m.model_dump() for m in item.messages()],
            "outcome": item.outcome, "reasons": item.reasons, "reviews": _review_rows(item),
            "signals": [s.name for s in item.item.signals],
            "neighbour_id": item.item.neighbour.id if item.item.neighbour else None,
            "neighbour_similarity": item.item.neighbour.similarity if item.item.neighbour else None,
        })
    out.write_jsonl("queue.jsonl", rows)
    out.write_jsonl("decisions.jsonl", [
        {"id": d.id, "item_id": d.item_id, "reviewer": d.reviewer, "verdict": d.verdict, "reasons": d.reasons,
         "note": d.note, "messages": [m.model_dump() for m in d.messages] if d.messages else None,
         "undoes": d.undoes, "seconds": d.seconds, "at": d.created_at} for d in state.decisions])
    out.write_text(
        "README.md", "---\nconfigs:\n- config_name: queue\n  data_files: queue.jsonl\n  default: true\n"
        "- config_name: decisions\n  data_files: decisions.jsonl\n---\n\n"
        f"# Review of {name}\n\nExported by `distill review export --format datasets`: `queue` holds one row per "
        "queued item (its original and current conversation, the outcome and every reviewer's standing verdict); "
        "`decisions` is the append-only log, undos included.\n\n"
        "```python\nfrom datasets import load_dataset\nqueue = load_dataset(FOLDER, \"queue\", split=\"train\")\n```\n")


def _question(name: str, settings: dict[str, Any], title: str, required: bool) -> dict[str, Any]:
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name, "settings": settings, "title": title,
            "description": None, "required": required, "dataset_id": None, "type": settings["type"]}


def _metadata(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name,
            "settings": {"visible_for_annotators": True, **settings}, "title": name,
            "visible_for_annotators": True, "dataset_id": None}


def argilla_settings(threshold: float) -> dict[str, Any]:
    options = lambda pairs: [{"text": text, "value": value} for value, text in pairs]  # noqa: E731
    verdicts = [("accept", "accept"), ("reject", "reject"), ("edit", "edit (fixed)")]
    return {
        "guidelines": ("Spot-check of synthetic training data exported by distill. Accept what is right, reject what "
                       f"is wrong (with reasons), fix what is nearly right. The set passes when the reject rate's "
                       f"95% upper bound is under {threshold:.0%}."),
        "questions": [
            _question("verdict", {"type": "label_selection", "options": options(verdicts), "visible_options": 3},
                      "Verdict", True),
            _question("reasons", {"type": "multi_label_selection", "options": options(REVIEW_REASONS.items()),
                                  "visible_options": None, "options_order": "natural"}, "Reasons to reject", False),
            _question("edited_answer", {"type": "text", "use_markdown": True}, "Edited answer", False),
            _question("note", {"type": "text", "use_markdown": False}, "Note", False),
        ],
        "fields": [{"id": None, "inserted_at": None, "updated_at": None, "name": "conversation",
                    "settings": {"type": "chat", "use_markdown": True}, "title": "Conversation", "required": True,
                    "description": None, "dataset_id": None, "type": "chat"}],
        "vectors": [],
        "metadata": [_metadata("leaf", {"type": "terms", "values": None}),
                     _metadata("queued_for", {"type": "terms", "values": None}),
                     _metadata("teacher", {"type": "terms", "values": None}),
                     _metadata("reviewers", {"type": "terms", "values": None}),
                     _metadata("seconds", {"type": "float", "min": None, "max": None}),
                     _metadata("neighbour_similarity", {"type": "float", "min": None, "max": None})],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }


def _suggestions(item: ItemState) -> dict[str, Any]:
    outcome = item.outcome
    if outcome is None:
        return {}
    agent = "distill review: " + ", ".join(sorted(item.reviews))
    out: dict[str, Any] = {"verdict": {"value": outcome, "score": None, "agent": agent}}
    if outcome == "reject":
        out["reasons"] = {"value": item.reasons, "score": None, "agent": agent}
    edit = item.latest_edit()
    if outcome == "edit" and edit is not None:
        out["edited_answer"] = {"value": item.messages()[-1].content, "score": None, "agent": edit.reviewer}
    notes = "; ".join(f"{d.reviewer}: {d.note}" for d in item.reviews.values() if d.note)
    if notes:
        out["note"] = {"value": notes, "score": None, "agent": agent}
    return out


def write_argilla(state: ReviewState, out: OwnedFolder, name: str) -> None:
    out.write_text(".argilla/settings.json", json.dumps(argilla_settings(state.settings.threshold)))
    out.write_text(".argilla/dataset.json", json.dumps({
        "name": f"distill-review-{name}", "guidelines": None, "allow_extra_metadata": True, "status": "draft",
        "distribution": {"strategy": "overlap", "min_submitted": 1}, "metadata": None}))
    records = []
    for item in state.items.values():
        example = item.item.example
        metadata: dict[str, Any] = {"leaf": item.item.node_path or "(none)", "queued_for": item.why,
                                    "teacher": example.meta.teacher or "unknown",
                                    "reviewers": sorted(item.reviews) or ["(none)"]}
        seconds = [d.seconds for d in item.reviews.values() if d.seconds]
        if seconds:
            metadata["seconds"] = float(sum(seconds))
        if item.item.neighbour:
            metadata["neighbour_similarity"] = float(item.item.neighbour.similarity)
        records.append({"id": item.item_id,
                        "fields": {"conversation": [m.model_dump() for m in example.messages]},
                        "metadata": metadata, "suggestions": _suggestions(item), "responses": {}, "vectors": {},
                        "status": "pending", "_server_id": None})
    out.write_text("records.json", json.dumps(records, ensure_ascii=False))
