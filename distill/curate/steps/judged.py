"""The judged checks as a step: a teacher's verdict on each example every cheaper step kept (`curate/judge.py`)."""

from __future__ import annotations

from distill.curate.judge import Judge, LabelTask, run_judged_checks
from distill.curate.steps.base import Findings, Rows, Step, Verdict
from distill.curate.topic import NodeText


class JudgedChecks(Step):
    """The label round trip (`label_mismatch`), the topic judge (`off_topic`) and the faithfulness judge
    (`unfaithful`, examples from a passage of the user's documents): a teacher call per example,
    looked up in and recorded to one call log (run.db, or curate's OUT/judge.db)."""

    name = "judged checks"
    stage = "judge"
    section = "judge"
    local_only = ("the judged checks (--label-check, --judge) run with --executor local only: their teacher calls "
                  "are looked up in and recorded to one call log on this machine (OUT/judge.db)")

    def __init__(self, labels: LabelTask | None, label_judge: Judge | None, topics: dict[str, NodeText] | None,
                 topic_judge: Judge | None, passages: dict[str, str] | None = None, faithful_judge: Judge | None = None):
        self.labels, self.label_judge, self.topics, self.topic_judge = labels, label_judge, topics, topic_judge
        self.passages, self.faithful_judge = passages, faithful_judge

    def resolve(self, rows: Rows) -> Findings:
        live = rows.gather(["order", "example"], references=False)
        examples = live["example"].tolist()
        outcome = run_judged_checks(examples, list(range(len(examples))), labels=self.labels,
                                    label_judge=self.label_judge, topics=self.topics, topic_judge=self.topic_judge,
                                    passages=self.passages, faithful_judge=self.faithful_judge,
                                    progress=rows.progress)
        orders = live["order"].tolist()
        return Findings(
            rejects={orders[f.index]: Verdict(f.reason, f.detail) for f in outcome.failures},
            info={"new_calls": outcome.asked, "calls_from_log": outcome.found,
                  **{step: stats.as_dict() for step, stats in outcome.stats.items()}})
