"""eval.md's plots: the PNG files beside it hold exactly the numbers eval.json holds."""

from __future__ import annotations

import copy
import json
import random
import sys

import pytest

pytest.importorskip("matplotlib")

from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from distill.evaluate.figures import CONFUSION_PNG, LEAVES_PNG, confusion_figure, leaf_figure, save, write_figures  # noqa: E402
from distill.evaluate.markdown import render_markdown  # noqa: E402
from distill.evaluate.report import EvalConfig, build_report  # noqa: E402
from distill.records import Example  # noqa: E402

LABELS = ["billing_error", "login_problem", "refund_request"]


def known_report() -> dict:
    """A report of a classification task over four leaves and an open-QA task over two, with answers that
    differ by leaf, so every bar, interval and cell of the plots has its own value."""
    rng = random.Random(1)
    examples, base, student = [], [], []
    for i in range(36):
        gold = LABELS[i % 3]
        examples.append(Example(id=f"c{i}", messages=[{"role": "user", "content": f"ticket {i}"},
                                                      {"role": "assistant", "content": json.dumps({"label": gold})}],
                                meta={"task": "classification", "taxonomy_path": f"billing/leaf{i % 4}"},
                                output={"label": gold}))
        base.append(rng.choice(LABELS))  # prose, no JSON
        right = rng.random() < 0.4 + 0.15 * (i % 4)
        student.append(json.dumps({"label": gold if right else rng.choice(LABELS)}))
    for i in range(8):
        examples.append(Example(id=f"q{i}", messages=[{"role": "user", "content": "why?"},
                                                      {"role": "assistant", "content": "because the sky is blue"}],
                                meta={"task": "qa", "taxonomy_path": f"qa/leaf{i % 2}"}))
        base.append(" ".join(rng.sample("because sky is blue green the a".split(), 3)))
        student.append("because the sky is " + rng.choice(["blue", "grey", "blue today"]))
    answers = {"base": base, "student": student, "teacher": [e.response for e in examples]}
    ended = {"base": [i % 3 != 0 for i in range(len(examples))], "student": [True] * len(examples)}
    return build_report(examples, answers, EvalConfig(resamples=100), ended=ended)


def plotted_leaves(figure) -> dict:
    """{(task, leaf, system): (value, low, high)} read back from the bars and error bars of the figure."""
    out = {}
    for ax in figure.axes:
        task = ax.get_gid()
        leaves = [label.get_text().rsplit(" (n=", 1)[0] for label in ax.get_yticklabels()]
        intervals = {lines.get_gid().removeprefix("interval:"): lines.get_segments() for lines in ax.collections}
        for container in ax.containers:
            if not isinstance(container, BarContainer):
                continue
            system = container.get_label()
            for leaf, bar, segment in zip(leaves, container.patches, intervals[system], strict=True):
                assert segment[0][1] == pytest.approx(bar.get_y() + bar.get_height() / 2)  # on its own bar
                out[(task, leaf, system)] = (bar.get_width(), segment[0][0], segment[1][0])
    return out


def test_leaf_plot_holds_every_leaf_score_and_interval():
    report = known_report()
    plotted = plotted_leaves(leaf_figure(report))
    expected = {}
    for leaf, tasks in report["leaves"].items():
        for task, block in tasks.items():
            metric = "accuracy" if task == "classification" else "token_f1"
            for system in ("base", "student"):
                value = block["systems"][system][metric]
                expected[(task, leaf, system)] = (value["value"], value["low"], value["high"])
    assert set(plotted) == set(expected) and len(expected) == 2 * (4 + 2)
    for key, numbers in expected.items():
        assert plotted[key] == pytest.approx(numbers, abs=1e-9), key
    assert len({plotted[k][0] for k in plotted if k[0] == "classification"}) > 2  # the bars are not all alike


def test_confusion_plot_holds_each_systems_matrix():
    report = known_report()
    figure = confusion_figure(report)
    block = report["tasks"]["classification"]["systems"]
    assert [ax.get_gid() for ax in figure.axes if ax.get_gid()] == ["base", "student"]
    for ax in figure.axes:
        if not ax.get_gid():
            continue
        matrix = block[ax.get_gid()]["confusion"]
        counts = [[matrix[g][p] for p in matrix[g]] for g in matrix]
        assert ax.images[0].get_array().tolist() == counts
        assert [t.get_text() for t in ax.get_yticklabels()] == list(matrix)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(next(iter(matrix.values())))
        written = sorted(int(t.get_text()) for t in ax.texts)
        assert written == sorted(c for row in counts for c in row if c)


@pytest.mark.slow
def test_png_files_are_drawn_from_the_numbers_in_eval_json(tmp_path):
    """Redrawn from eval.json as read back, each file is the same pixels; a changed number changes them."""
    report = known_report()
    report["figures"] = write_figures(report, tmp_path)
    assert report["figures"] == {"leaves": LEAVES_PNG, "confusion": CONFUSION_PNG}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    stored = json.loads((tmp_path / "eval.json").read_text())
    for name, build in ((LEAVES_PNG, leaf_figure), (CONFUSION_PNG, confusion_figure)):
        again = tmp_path / f"again-{name}"
        save(build(stored), again)
        assert (imread(tmp_path / name) == imread(again)).all(), name
    changed = copy.deepcopy(stored)
    changed["leaves"]["billing/leaf1"]["classification"]["systems"]["student"]["accuracy"]["low"] -= 0.1
    changed["tasks"]["classification"]["systems"]["student"]["confusion"]["login_problem"]["billing_error"] += 1
    for name, build in ((LEAVES_PNG, leaf_figure), (CONFUSION_PNG, confusion_figure)):
        save(build(changed), tmp_path / f"changed-{name}")
        assert not (imread(tmp_path / name) == imread(tmp_path / f"changed-{name}")).all(), name
    markdown = render_markdown(report)
    assert f"![Per-leaf scores with 95% intervals]({LEAVES_PNG})" in markdown
    assert f"]({CONFUSION_PNG})" in markdown


def test_a_plot_without_data_leaves_no_stale_file(tmp_path):
    report = known_report()
    write_figures(report, tmp_path)
    qa_only = copy.deepcopy(report)
    del qa_only["tasks"]["classification"]
    assert write_figures(qa_only, tmp_path) == {"leaves": LEAVES_PNG}
    assert not (tmp_path / CONFUSION_PNG).exists()


def test_headline_leads_and_says_whether_intervals_are_apart():
    report = known_report()
    markdown = render_markdown(report)
    assert markdown.index("## Headline") < markdown.index("## Per taxonomy leaf") < markdown.index("## Details")
    versus = report["tasks"]["classification"]["versus_base"]
    assert versus["schema_validity"]["intervals"] == "above"  # the base never answers JSON
    qa = report["tasks"]["qa"]["systems"]
    assert qa["base"]["ends_turn"]["value"] == pytest.approx(5 / 8) and qa["student"]["ends_turn"]["value"] == 1.0
    assert {"token_f1", "rouge_l", "in_length"} <= set(qa["student"])
    headline = markdown.split("## Per taxonomy leaf")[0]
    for text in ("| system | schema validity | accuracy | macro-F1 |", "| teacher (reference) | 1.000",
                 "| system | token-F1 | ROUGE-L | ends its turn | stays in length |",
                 "schema validity +1.000 (above the base, 95% intervals apart)"):
        assert text in headline, text


def test_without_matplotlib_eval_md_says_how_to_get_the_plots(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ModuleNotFoundError
    report = known_report()
    report["figures"] = write_figures(report, tmp_path)
    assert "skipped" in report["figures"] and not list(tmp_path.glob("*.png"))
    assert "pip install 'distill[report]'" in render_markdown(report)
