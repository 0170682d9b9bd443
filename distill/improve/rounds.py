"""`distill improve CONFIG --rounds N`: round 0 is `distill run`; each later round re-plans from the last eval and
review, asks the student to answer training items of the leaves it targets, generates only the new items
(conditioned on the student's failures), curates, retrains and evaluates on the held-out split frozen at round 0.

Each round's steps (planned -> generated -> trained -> done) are recorded in run.db (`ledger.py`), so a killed
round resumes at the step it did not finish, and a finished one is never run (nor paid for) again.

A round retrains from the base model on the union of all kept data rather than continuing the last adapter:
every round's adapter is then the same recipe on more data, so the rounds' scores compare data and nothing
else; a continued adapter would see round 0's data once more each round and the new data last (an order
effect that grows with the rounds); and on the sizes this runs at, retraining costs minutes.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.curate import split
from distill.curate.diversity import leaf_diversity
from distill.errors import DistillError, RunFailed
from distill.evaluate import report as evaluation
from distill.evaluate.figures import save as save_figure
from distill.evaluate.report import EvalConfig
from distill.executors import generation_executor
from distill.generate import runner as generation
from distill.generate.runner import default_out
from distill.improve import ledger
from distill.improve.attempts import student_attempts
from distill.improve.config import ImproveSettings, load_improve_settings
from distill.improve.figures import rounds_figure
from distill.improve.ledger import DONE, GENERATED, PLANNED, TRAINED, Round
from distill.improve.plan import improved_past_interval, leaf_scores, replan
from distill.improve.records import Attempt
from distill.improve.report import RoundSummary, render, round_table, summarize
from distill.improve.targets import targeted_items
from distill.records import Example
from distill.review.population import load_review
from distill.run import RunConfig, generate_options, load_run_config, run_pipeline
from distill.rundir import EVAL_JSON, IMPROVE_MD, IMPROVE_PNG, RunDir
from distill.store import RunStore
from distill.taxonomy import load_taxonomy
from distill.taxonomy.plan import planned_count
from distill.train import sft as training
from distill.train.config import TrainConfig

ATTEMPTS = "attempts.jsonl"


def improve(config_path: Path, rounds: int, budget_usd: float | None = None, dpo: bool | None = None,
            say: Callable[[str], Any] = print) -> list[RoundSummary]:
    """Run (or resume) rounds 0..`rounds` of the config's job; returns every round's summary (improve.md's)."""
    if rounds < 1:
        raise DistillError(f"--rounds {rounds}: give 1 or more (round 0 is `distill run`; round 1 is the first "
                           "steered by it)")
    if budget_usd is not None and budget_usd < 0:
        raise DistillError(f"--budget-usd {budget_usd}: give 0 or more dollars")
    config = load_run_config(config_path)
    settings = load_improve_settings(config_path, config.improve)
    if dpo is not None:
        settings = settings.model_copy(update={"dpo": dpo})
    _check_dpo(settings)
    try:
        train_config, eval_config = TrainConfig(**config.train), EvalConfig(**config.eval)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DistillError(f"run config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    loaded = load_taxonomy(config.taxonomy)
    run_dir = RunDir.claim(config.out or default_out(loaded), option="out:", force_option=None)
    with run_dir.lock(), run_dir.store_errors():  # every round: a second `distill improve` on it stops at once
        say("round 0: distill run")
        run_pipeline(config, say=say)
        job = _Job(config, settings, train_config, eval_config, run_dir, [leaf.path for leaf in loaded.leaves],
                   settings.new_items or max(1, planned_count(loaded) // 2), budget_usd, say)
        return job.run(rounds)


class _Job:
    def __init__(self, config: RunConfig, settings: ImproveSettings, train_config: TrainConfig,
                 eval_config: EvalConfig, run_dir: RunDir, leaves: list[str], new_items: int,
                 budget_usd: float | None, say: Callable[[str], Any]):
        self.config, self.settings, self.train_config, self.eval_config = config, settings, train_config, eval_config
        self.run_dir, self.leaves, self.new_items, self.budget_usd, self.say = run_dir, leaves, new_items, budget_usd, say

    def run(self, rounds: int) -> list[RoundSummary]:
        store = self.run_dir.open_store()
        try:
            self._record_round_zero(store)
            stopped = None
            for number in range(1, rounds + 1):
                entry = self._entry(store, number)
                if entry is None:
                    stopped = self._why_stop(store, number)
                    if stopped is None:
                        entry = self._plan(store, number)
                        stopped = None if entry is not None else "every leaf is mastered: nothing to add"
                    if entry is None:
                        break
                if not entry.reached(DONE):
                    self._finish(store, entry)
                    summaries = self._summaries(store)
                    self.say(round_table(summaries[-1], summaries[-2] if len(summaries) > 1 else None))
                self._write_report(store, None)
            if stopped:
                self.say(f"stopped: {stopped}")
            return self._write_report(store, stopped)
        finally:
            store.close()

    # --- round 0 and the frozen split -------------------------------------------------------------------------

    def _record_round_zero(self, store: RunStore) -> None:
        if self._entry(store, 0) is not None:
            self._check_frozen(store)
            return
        done = self.run_dir.read_pipeline()["done"]
        trained = done.get("train", {})
        minutes = (trained.get("steps", 0) * (trained.get("seconds_per_step") or 0)) / 60 if trained else None
        # The split's record as round 0 made it: generation rewrites stats.json, and each round restores it.
        frozen = {"eval_sha256": self._eval_digest(), "split": self.run_dir.recorded_split() or {}}
        ledger.start_round(store, Round(round=0, status=DONE, plan=frozen,
                                        adapter=self.run_dir.student.name, eval=EVAL_JSON,
                                        teacher_cost_usd=store.usage_totals()["cost_usd"], train_minutes=minutes), [])

    def _eval_digest(self) -> str:
        return hashlib.sha256(self.run_dir.eval.read_bytes()).hexdigest()

    def _check_frozen(self, store: RunStore) -> None:
        recorded = self._entry(store, 0)
        if recorded is not None and recorded.plan.get("eval_sha256") != self._eval_digest():
            raise DistillError(f"{self.run_dir.eval} changed since round 0 of `distill improve` froze it; every "
                               "round is scored on the same held-out split: restore it, or start in another out:")

    def _freeze_split(self, store: RunStore) -> None:
        """train.jsonl: every kept example not held out at round 0; eval.jsonl left byte for byte as it is. The
        split's record names the dataset as it is now, so no reader extends the held-out side with new data."""
        held_out = {example.id for example in self.run_dir.read_held_out()}
        train = [example for example in self.run_dir.read_dataset() if example.id not in held_out]
        self.run_dir.write_train(train)
        zero = self._entry(store, 0)
        recorded = (zero.plan.get("split") if zero else None) or self.run_dir.recorded_split() or {}
        split.record_split(self.run_dir, {**recorded, "train": len(train), "eval": len(held_out),
                                          "source_sha256": split.dataset_digest(self.run_dir), "frozen": True})

    # --- a round ----------------------------------------------------------------------------------------------

    def _entry(self, store: RunStore, number: int) -> Round | None:
        return next((r for r in ledger.rounds(store) if r.round == number), None)

    def _why_stop(self, store: RunStore, number: int) -> str | None:
        """Before a new round: the budget spent, or the last round gained nothing past its intervals."""
        spent = store.usage_totals()["cost_usd"]
        if self.budget_usd is not None and spent >= self.budget_usd:
            return f"the teacher has cost ${spent:.4f} so far, at or over --budget-usd {self.budget_usd:g}"
        if number >= 2 and self.settings.stop_early:
            before, after = (self._scores(self._entry(store, n)) for n in (number - 2, number - 1))
            if not improved_past_interval(before, after):
                return f"no leaf improved past its interval in round {number - 1}"
        return None

    def _report(self, entry: Round | None) -> dict | None:
        if entry is None or entry.eval is None:
            return None
        return json.loads((self.run_dir.root / entry.eval).read_text(encoding="utf-8"))

    def _scores(self, entry: Round | None):
        report = self._report(entry)
        return leaf_scores(report) if report else {}

    def _similarity(self) -> dict[str, float]:
        """Each leaf's self-similarity (0..1, distill/curate/diversity.py) over the training split as it stands:
        the rule moves quota toward leaves whose data repeats itself."""
        train, _ = self.run_dir.read_split()
        return {leaf: figures.self_similarity for leaf, figures in leaf_diversity(train).items()
                if figures.self_similarity is not None}

    def _plan(self, store: RunStore, number: int) -> Round | None:
        """Re-plan from the last round, run the student on the targeted leaves' training items, and record the
        round with its new items (None when every leaf is mastered)."""
        last = self._entry(store, number - 1)
        assert last is not None and last.adapter is not None
        plan = replan(self.leaves, self._scores(last), reject_rates(self.run_dir), self.new_items,
                      diversity=self._similarity(), mastered=self.settings.mastered)
        quotas = plan.quotas()
        if not quotas:
            return None
        self.say(f"round {number}: new items " + ", ".join(f"{leaf} {n}" for leaf, n in sorted(quotas.items())))
        attempts = self._attempts(number, set(quotas), self.run_dir.root / last.adapter)
        rows = {i: (path, json.loads(axes), idx) for i, path, axes, idx in
                store.db.execute("SELECT id, node_path, axes, idx FROM plan_items")}
        leaf_axes: dict[str, list[dict[str, str]]] = defaultdict(list)
        top: dict[str, int] = {}
        for path, axes, idx in rows.values():
            leaf_axes[path].append(axes)
            top[path] = max(top.get(path, -1), idx)
        items = targeted_items(store.info().get("taxonomy") or "", number, quotas, attempts, leaf_axes,
                               {i: axes for i, (_, axes, _) in rows.items()}, set(rows), top)
        failed = Counter(a.leaf for a in attempts if not a.passed)
        tried = Counter(a.leaf for a in attempts)
        entry = Round(round=number, status=PLANNED, plan={
            **plan.model_dump(mode="json"),
            "attempts": {leaf: {"tried": tried[leaf], "failed": failed[leaf]} for leaf in sorted(tried)}})
        ledger.start_round(store, entry, items)
        return entry

    def _attempts(self, number: int, leaves: set[str], adapter: Path) -> list[Attempt]:
        """The student at `adapter` on up to `attempts_per_leaf` TRAINING items of each targeted leaf (a seeded
        choice), written to rounds/N/attempts.jsonl for the preference pairs."""
        train, _ = self.run_dir.read_split()
        by_leaf: dict[str, list[Example]] = defaultdict(list)
        for example in train:
            if example.meta.taxonomy_path in leaves:
                by_leaf[example.meta.taxonomy_path].append(example)
        chosen = []
        for leaf in sorted(by_leaf):
            pool = sorted(by_leaf[leaf], key=lambda e: e.id)
            random.Random(f"{number}:{leaf}").shuffle(pool)
            chosen += pool[: self.settings.attempts_per_leaf]
        attempts = student_attempts(adapter, chosen, max_new_tokens=self.eval_config.max_new_tokens,
                                    batch_size=self.eval_config.batch_size) if chosen else []
        self.run_dir.folder().write_jsonl(f"{self._folder(number)}/{ATTEMPTS}",
                                          [a.model_dump(mode="json") for a in attempts])
        failed = sum(not a.passed for a in attempts)
        self.say(f"round {number}: the student failed {failed} of {len(attempts)} training items it was asked")
        return attempts

    def _folder(self, number: int) -> str:
        return str(self.run_dir.round_dir(number).relative_to(self.run_dir.root))

    def _finish(self, store: RunStore, entry: Round) -> None:
        """The round's steps not yet done: generate (only its new items) and curate, train, evaluate."""
        number, folder = entry.round, self.run_dir.round_dir(entry.round)
        if not entry.reached(GENERATED):
            self.say(f"round {number}: generate + curate the new items")
            options = generate_options(self.config, self.run_dir.root)
            if self.budget_usd is not None and options.teacher.api:  # the cap holds within a round too
                cap = min(options.budget_usd if options.budget_usd is not None else self.budget_usd, self.budget_usd)
                options = options.model_copy(update={"budget_usd": cap})
            made = generation.run(self.run_dir, options, generation_executor(options.executor))
            counts = made.stats["counts"]
            if counts["pending"] or counts["failed"]:
                raise RunFailed(f"round {number}: generation left {counts['pending']} pending and {counts['failed']} "
                                "failed items; run the same command again to resume")
            self._freeze_split(store)
            earlier = sum(r.teacher_cost_usd for r in ledger.rounds(store) if r.round < number)
            ledger.update_round(store, number, status=GENERATED,
                                teacher_cost_usd=max(0.0, store.usage_totals()["cost_usd"] - earlier))
        if not entry.reached(TRAINED):
            self.say(f"round {number}: train from the base on every kept example (eval.jsonl held out)")
            started = time.monotonic()
            training.run(self.run_dir, self.train_config, out_dir=folder / "student", progress=False, log=self.say)
            # --- DPO hook (issue 23, scope 3): with `improve.dpo` / --dpo, preference pairs from this round's
            # failed attempts (rounds/N/attempts.jsonl: `preference_pairs(attempts)` in distill/improve/pairs.py)
            # train the SFT adapter further with DPO (distill/train/dpo.py), writing over folder / "student".
            # The integrator wires it here; until then the option is refused at the start (`_check_dpo`).
            ledger.update_round(store, number, status=TRAINED, adapter=f"{self._folder(number)}/student",
                                train_minutes=(time.monotonic() - started) / 60)
        self.say(f"round {number}: eval on the held-out split frozen at round 0")
        self._check_frozen(store)
        config = self.eval_config.model_copy(update={"out_dir": folder / "eval"})
        evaluation.run(self.run_dir, config, folder / "student")
        self._check_frozen(store)
        ledger.update_round(store, number, status=DONE, eval=f"{self._folder(number)}/eval/{EVAL_JSON}")

    # --- the report -------------------------------------------------------------------------------------------

    def _summaries(self, store: RunStore) -> list[RoundSummary]:
        kept = self.run_dir.read_dataset()
        added_by = ledger.round_of_items(store)
        # Round 0 added what the taxonomy's plan kept; a later round what its own new items kept.
        first = Counter(e.meta.taxonomy_path or "(none)" for e in kept if e.id not in added_by)
        out = []
        for entry in ledger.rounds(store):
            targeted = {n["leaf"]: n["items"] for n in entry.plan.get("leaves", []) if n.get("items")}
            added = first if entry.round == 0 else ledger.added_per_leaf(store, entry.round, {e.id for e in kept})
            out.append(summarize(entry.round, entry.status, self._report(entry) if entry.reached(DONE) else None,
                                 targeted, dict(added), entry.teacher_cost_usd, entry.train_minutes))
        return out

    def _write_report(self, store: RunStore, stopped: str | None) -> list[RoundSummary]:
        summaries = self._summaries(store)
        folder = self.run_dir.folder()
        plot = None
        try:
            figure = rounds_figure(summaries)
        except ModuleNotFoundError:
            figure = None  # matplotlib is the report extra; the tables do without it
        if figure is not None:
            with folder.replacing(IMPROVE_PNG) as tmp:
                save_figure(figure, tmp)
            plot = IMPROVE_PNG
        folder.write_text(IMPROVE_MD, render(summaries, stopped, plot))
        return summaries


def _check_dpo(settings: ImproveSettings) -> None:
    if settings.dpo:
        raise DistillError("improve.dpo / --dpo: DPO after SFT is not wired into the rounds yet "
                           "(distill/improve/rounds.py names the place); run without it")


def reject_rates(run_dir: RunDir) -> dict[str, float]:
    """Per leaf, the share of its reviewed items the reviewers rejected ({} without a review)."""
    review = load_review(run_dir)
    if review is None:
        return {}
    decided: Counter = Counter()
    rejected: Counter = Counter()
    for item in review.state.items.values():
        outcome = item.outcome
        if outcome is None or item.item.node_path is None:
            continue
        decided[item.item.node_path] += 1
        rejected[item.item.node_path] += outcome == "reject"
    return {leaf: rejected[leaf] / n for leaf, n in decided.items() if n}
