"""`distill review regenerate DIR --leaf PATH`: ask the teacher again for a leaf the review found wanting.

New plan items (ids from a key no taxonomy plan uses, checked against the run) are recorded in run.db
with their round before anything is asked, then `runner.generate` runs them like any
generation: answers stored as they come, curated, exported. A killed or failed regeneration resumes:
running the command again finishes that round instead of starting another. The new items join the
queue; the leaf's earlier unread items leave the data (review/feedback.py) and the gate reads the new round.

It asks a teacher and curates, so it runs the taxonomy's Python (its custom checks): the taxonomy is the
one the user names (`--taxonomy`), never the file run.db records. A run folder can come from someone else,
and naming a file in it must not be enough to run that file's code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.generate.runner import GenerateOptions, generate
from distill.records import PlanItem
from distill.review.ledger import ReviewLedger
from distill.review.population import load_review
from distill.review.queue import build_queue
from distill.review.state import REJECT, ReviewState
from distill.rundir import RunDir
from distill.store import FAILED, PENDING
from distill.taxonomy import build_plan, load_taxonomy
from distill.teachers.registry import TeacherSpec, teacher_options


@dataclass
class RegenerateReport:
    leaves: list[str]
    round: int
    asked: int
    kept: int
    queued: int
    failed: int
    message: str


def new_item_id(taxonomy: str, leaf: str, round_: int, k: int, taken: set[str],
                source: str = "review-regenerate") -> str:
    """An id no plan item of the taxonomy can have: the key differs in shape from PlanItem.make_id's. `source`
    (who adds items after the plan: the review's regeneration, `distill improve`'s rounds) keeps theirs apart."""
    salt = 0
    while True:
        key = json.dumps([source, taxonomy, leaf, round_, k, salt])
        item_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        if item_id not in taken:
            return item_id
        salt += 1


def regenerate(directory: Path, leaf: str, taxonomy: Path | None = None, count: int | None = None,
               teacher: TeacherSpec | None = None, base_url: str | None = None, curate: bool = True,
               progress: bool = False) -> RegenerateReport:
    """Ask again for `leaf` of the run in `directory`, made from `taxonomy` (the file or InstructLab folder);
    `teacher`: another teacher than the run's."""
    directory = Path(directory)
    review = load_review(directory)
    if review is None:
        raise DistillError(f"no review queue here: review the run first (`distill review {directory}`)",
                           path=directory)
    with ReviewLedger.open(directory) as ledger:
        info = ledger.store.info()
        if not info.get("taxonomy"):
            raise DistillError("regenerate needs a run made by `distill generate` (its taxonomy is not recorded)",
                               path=directory)
        if taxonomy is None:
            raise DistillError(f"pass --taxonomy with the taxonomy of run {info['taxonomy']!r} (run.db recorded "
                               f"{info.get('taxonomy_file')}); a run folder never chooses the file distill loads",
                               path=directory)
        loaded = load_taxonomy(Path(taxonomy))
        if loaded.name != info["taxonomy"]:
            raise DistillError(f"{directory} is a run of taxonomy {info['taxonomy']!r}, not {loaded.name!r}; pass "
                               "the taxonomy it was made from", path=taxonomy)
        leaves = [n.path for n in loaded.leaves if n.path == leaf or n.path.startswith(leaf.rstrip("/") + "/")]
        if not leaves:
            raise DistillError(f"no leaf {leaf!r} in {loaded.file}; leaves look like {loaded.leaves[0].path!r}")
        spec = (teacher or TeacherSpec.parse(str(info.get("teacher") or "local"))).check()
        statuses = ledger.store.statuses()
        regenerated = ledger.regenerated()
        unfinished = [pid for pid, (path, _) in regenerated.items()
                      if path in leaves and statuses.get(pid) in (PENDING, FAILED)]
        plan_rows = {row[0]: (row[1], json.loads(row[2]), row[3]) for row in ledger.db.execute(
            "SELECT id, node_path, axes, idx FROM plan_items")}
        round_ = max((r for _, r in regenerated.values()), default=0)
        if not unfinished:
            round_ += 1
            items = _new_items(review.state, review.population, loaded.name, leaves, count, round_, plan_rows)
            if not items:
                raise DistillError(f"nothing to regenerate in {leaf}: no rejected or unread items there "
                                   "(pass --count N to ask for more anyway)")
            # Recorded before anything is asked: a killed run finds these pending and finishes them.
            ledger.add_regenerated([(i.id, i.node_path) for i in items], round_)
            ledger.store.add_plan(items)
        original = sum(1 for pid in plan_rows if pid not in regenerated)
    full = len(build_plan(loaded, seed=int(info.get("seed") or 0)))
    options = GenerateOptions(
        taxonomy=loaded.file, teacher=spec, out=directory, seed=int(info.get("seed") or 0),
        limit=original if original < full else None, retry_failed=True, curate=curate, progress=progress,
        teacher_options=teacher_options(base_url=base_url))
    generate(options)

    with ReviewLedger.open(directory) as ledger:
        statuses = ledger.store.statuses()
        ids = [pid for pid, (path, r) in ledger.regenerated().items() if path in leaves and r == round_]
    report = build_queue(directory, add_ids=ids, why="regenerated")
    failed = sum(statuses.get(i) == FAILED for i in ids)
    kept = _kept(directory, set(ids))
    message = (f"round {round_} of {', '.join(leaves)}: asked for {len(ids)} items, {kept} kept and "
               f"{report.added} added to the review queue")
    if failed:
        message += f"; {failed} failed: run the same command again to retry them"
    return RegenerateReport(leaves=leaves, round=round_, asked=len(ids), kept=kept, queued=report.added,
                            failed=failed, message=message)


def _new_items(state: ReviewState, population, taxonomy: str, leaves: list[str], count: int | None, round_: int,
               plan_rows: dict[str, tuple[str, dict, int]]) -> list[PlanItem]:
    """As many items as leave each leaf (its rejects and its unread current items), with their axes, so
    the leaf keeps its size and its axis balance; or `count` items spread over the leaves."""
    latest = state.latest_rounds()
    leaving: dict[str, list[dict]] = {leaf: [] for leaf in leaves}
    for example in population:
        path = example.meta.taxonomy_path
        if path not in leaving or state.round_of(example.id, example.meta.plan_item_id) < latest.get(path, 0):
            continue
        item = state.items.get(example.id)
        if item is None or item.outcome in (REJECT, None):
            row = plan_rows.get(example.meta.plan_item_id or example.id)
            leaving[path].append(row[1] if row else dict(example.meta.axes))
    if count is not None:
        pool = [axes for leaf in leaves for axes in leaving[leaf]] or [{}]
        wanted = [(leaves[k % len(leaves)], pool[k % len(pool)]) for k in range(count)]
    else:
        wanted = [(leaf, axes) for leaf in leaves for axes in leaving[leaf]]
    taken = set(plan_rows)
    top = {leaf: max((idx for path, _, idx in plan_rows.values() if path == leaf), default=-1) for leaf in leaves}
    items = []
    for k, (leaf, axes) in enumerate(wanted):
        item_id = new_item_id(taxonomy, leaf, round_, k, taken)
        taken.add(item_id)
        top[leaf] += 1
        items.append(PlanItem(id=item_id, node_path=leaf, axes=axes, index=top[leaf]))
    return items


def _kept(directory: Path, ids: set[str]) -> int:
    return sum(1 for item_id in RunDir(directory).read_dataset_ids() if item_id in ids)
