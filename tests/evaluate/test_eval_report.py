"""`distill eval` end to end on the adapter trained once for the session."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from distill.errors import DistillError
from distill.evaluate.report import EvalConfig, build_report, evaluate
from distill.records import Example

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def report(trained, tmp_path_factory):
    run_dir, result = trained
    out = tmp_path_factory.mktemp("eval")
    return evaluate(run_dir, result.adapter_dir, EvalConfig(out_dir=out, max_new_tokens=24, resamples=200, threads=1))


def test_eval_writes_json_and_markdown(report, trained):
    run_dir, _ = trained
    data = json.loads(report.json_path.read_text())
    held_out = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert data["n"] == len(held_out) and len(data["examples"]) == len(held_out)
    assert set(data["tasks"]) == {"classification", "qa"}
    cls = data["tasks"]["classification"]["systems"]
    for system in ("base", "student"):
        assert {"accuracy", "macro_f1", "confusion", "schema_validity"} <= set(cls[system])
        assert cls[system]["accuracy"]["low"] <= cls[system]["accuracy"]["value"] <= cls[system]["accuracy"]["high"]
    assert cls["teacher"]["schema_validity"]["value"] == 1.0
    assert {"token_f1", "rouge_l"} <= set(data["tasks"]["qa"]["systems"]["student"])
    assert set(data["leaves"]) == {e["meta"]["taxonomy_path"] for e in held_out}
    markdown = report.markdown_path.read_text()
    assert "### classification" in markdown and "## Per taxonomy leaf" in markdown and "confusion matrix" in markdown
    assert markdown.index("## Headline") < markdown.index("## Per taxonomy leaf")
    for row in data["examples"]:  # whether each model's answer ended its turn, per item
        assert set(row["ended"]) == {"base", "student"}
    assert {"ends_turn", "in_length"} <= set(data["tasks"]["qa"]["systems"]["student"])


def test_eval_draws_its_plots_from_the_numbers_it_writes(report):
    """The PNG files beside eval.md are what eval.json's numbers draw, pixel for pixel."""
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from distill.evaluate.figures import confusion_figure, leaf_figure, save

    data = json.loads(report.json_path.read_text())
    assert data["figures"] == {"leaves": "eval_leaves.png", "confusion": "eval_confusion.png"}
    markdown = report.markdown_path.read_text()
    for key, build in (("leaves", leaf_figure), ("confusion", confusion_figure)):
        drawn = report.json_path.parent / data["figures"][key]
        assert f"]({data['figures'][key]})" in markdown
        again = drawn.with_name("redrawn-" + drawn.name)
        save(build(data), again)
        assert (imread(drawn) == imread(again)).all(), key


def test_an_answer_ends_its_turn_only_when_the_model_stopped(trained):
    from distill.evaluate.generate import generate, load_student
    from distill.models import set_threads

    run_dir, result = trained
    set_threads(1)
    model, tokenizer, manifest = load_student(result.adapter_dir)
    conversations = [[{"role": "system", "content": "Classify the sentiment. Reply with JSON."},
                      {"role": "user", "content": text}] for text in ("I love it (review 1)", "awful (review 2)")]
    cut = generate(model, tokenizer, manifest, conversations, max_new_tokens=2)
    assert [a.ended for a in cut] == [False, False]  # cut at the budget mid-JSON
    whole = generate(model, tokenizer, manifest, conversations, max_new_tokens=24)
    assert [a.ended for a in whole] == [True, True], [a.text for a in whole]  # the trained short JSON, then stop


def test_trained_student_beats_base_on_the_toy_task(report):
    systems = json.loads(report.json_path.read_text())["tasks"]["classification"]["systems"]
    # Eight steps on an easy, fixed-format task teach the JSON answer the base model does not give.
    assert systems["student"]["schema_validity"]["value"] > systems["base"]["schema_validity"]["value"]


def test_eval_scores_tool_calls_of_student_and_base(trained, tmp_path):
    """Held-out conversations: each tool-calling turn is asked of both models and its rates written."""
    from train_helpers import conversation_rows

    _, result = trained
    run = tmp_path / "conversations"
    run.mkdir()
    (run / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in conversation_rows(2)))
    out = evaluate(run, result.adapter_dir, EvalConfig(out_dir=tmp_path / "eval", max_new_tokens=32, resamples=50,
                                                       threads=1))
    data = json.loads(out.json_path.read_text())
    block = data["tasks"]["tool_calling"]
    for system in ("base", "student"):
        for metric in ("valid_call", "right_tool", "arguments_equal"):
            estimate = block["systems"][system][metric]
            assert estimate["n"] == 2 and estimate["low"] <= estimate["value"] <= estimate["high"]
        for row in data["examples"]:
            assert len(row["tool_calls"][system]) == 1
    assert "valid_call" in block["versus_base"]
    assert set(data["leaves"]) == {"tools/money", "tools/weather"}
    markdown = out.markdown_path.read_text()
    assert "| system | valid call | right tool | arguments equal |" in markdown
    assert "| tools/weather | tool_calling (valid_call) | 1 |" in markdown


def test_build_report_scores_known_answers():
    examples = [Example(id=str(i), messages=[{"role": "user", "content": "x"},
                                             {"role": "assistant", "content": f'{{"label": "{g}"}}'}],
                        meta={"task": "classification", "taxonomy_path": "leaf"}, output={"label": g})
                for i, g in enumerate(["pos", "neg", "pos", "neg"])]
    answers = {"base": ["pos", "pos", "pos", "pos"], "student": ['{"label": "pos"}', '{"label": "neg"}',
                                                                   '{"label": "pos"}', '{"label": "pos"}'],
               "teacher": [e.response for e in examples]}
    report = build_report(examples, answers, EvalConfig(resamples=100))
    cls = report["tasks"]["classification"]["systems"]
    assert cls["base"]["accuracy"]["value"] == 0.5 and cls["student"]["accuracy"]["value"] == 0.75
    assert cls["base"]["schema_validity"]["value"] == 0.0 and cls["student"]["schema_validity"]["value"] == 1.0
    assert cls["student"]["confusion"]["neg"] == {"neg": 1, "pos": 1, "(none)": 0}
    assert report["leaves"]["leaf"]["classification"]["systems"]["student"]["accuracy"]["value"] == 0.75


def test_eval_cli(trained, tmp_path):
    from distill.evaluate.commands import register

    run_dir, result = trained
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, [str(run_dir), "--student", str(result.adapter_dir), "--out", str(tmp_path),
                                   "--limit", "2", "--max-new-tokens", "8", "--threads", "1"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "eval.json").is_file() and "# Evaluation" in out.output


def test_eval_without_adapter_manifest_is_a_clear_error(trained, tmp_path):
    run_dir, _ = trained
    with pytest.raises(DistillError, match="not an adapter written by `distill train`"):
        evaluate(run_dir, tmp_path, EvalConfig())


def test_judge_end_to_end_against_the_loopback_server(trained, tmp_path):
    """`distill eval --judge openai:...` through the real SDK: both orders asked, verdicts combined, and kept
    in the response cache so a second eval asks nothing."""
    import subprocess

    from cli_helpers import cli_env, distill_command
    from fakeapi import FakeAPI

    run_dir, result = trained
    with FakeAPI() as api:  # it judges as a judge that prefers the longer answer would
        env = cli_env(tmp_path, OPENAI_BASE_URL=api.url + "/v1", OMP_NUM_THREADS="1")

        def judged_eval() -> list[dict]:
            """Run `distill eval --judge` once; the judge requests the server has seen so far."""
            done = subprocess.run(distill_command("eval", str(run_dir), "--student", str(result.adapter_dir), "--out",
                                                  str(tmp_path / "report"), "--judge", "openai:gpt-4o-mini", "--limit", "6",
                                                  "--max-new-tokens", "8", "--threads", "1"),
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr
            return [b for b in api.bodies if "Reply with exactly one word" in b["messages"][-1]["content"]]

        asked = judged_eval()
        first = json.loads((tmp_path / "report" / "eval.json").read_text())
        # Run again: every verdict comes from the shared response cache, none is asked (or paid) twice.
        assert len(judged_eval()) == len(asked)
    data = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert data["tasks"]["qa"]["judge"] == first["tasks"]["qa"]["judge"]
    qa = [row for row in data["examples"] if row["task"] == "qa"]
    assert qa and len(asked) == 2 * 2 * len(qa)  # student vs base and vs teacher, each pair in both orders
    judged = data["tasks"]["qa"]["judge"]
    for other in ("base", "teacher"):
        # Longer wins in both orders: a win or a loss; equal lengths say "A" both times: a tie.
        expected = [1.0 if len(r["student"]) > len(r[other]) else 0.0 if len(r["student"]) < len(r[other]) else 0.5
                    for r in qa]
        verdict = judged[f"student_vs_{other}"]
        assert (verdict["wins"], verdict["ties"], verdict["losses"], verdict["failed"]) == (
            expected.count(1.0), expected.count(0.5), expected.count(0.0), 0), (other, verdict)
        assert verdict["win_rate"]["value"] == pytest.approx(sum(expected) / len(expected))
        assert verdict["judge"] == "openai:gpt-4o-mini"


def test_a_drop_after_merge_or_quantization_is_flagged_in_red():
    from distill.evaluate.markdown import render_markdown

    examples = [Example(id=str(i), messages=[{"role": "user", "content": "x"},
                                             {"role": "assistant", "content": f'{{"label": "{g}"}}'}],
                        meta={"task": "classification", "taxonomy_path": "leaf"}, output={"label": g})
                for i, g in enumerate(["pos", "neg", "pos", "neg"])]
    right = [e.response for e in examples]
    answers = {"base": ["pos"] * 4, "student": right, "merged": right,
               "gguf-q8_0": right[:2] + ["pos", "neg"],  # the quantized model lost the JSON format on two items
               "teacher": right}
    report = build_report(examples, answers, EvalConfig(resamples=50))
    from distill.evaluate.steps import compare_steps

    report.update(compare_steps(report, max_drop=0.05))
    assert [(s["from"], s["to"], s["identical"]) for s in report["steps"]] == [("student", "merged", 4),
                                                                              ("merged", "gguf-q8_0", 2)]
    flagged = {(f["to"], f["metric"]) for f in report["flags"]}
    assert flagged == {("gguf-q8_0", "schema_validity")}  # accuracy held: the labels are still named
    assert report["flags"][0]["before"] == 1.0 and report["flags"][0]["after"] == 0.5
    markdown = render_markdown(report)
    assert '<span style="color:red">' in markdown and "merged -> gguf-q8_0: classification schema_validity" in markdown
    assert "| student -> merged | 4/4 (100%) | no metric changed |" in markdown
    assert "| gguf-q8_0 |" in markdown.split("## Per taxonomy leaf")[1].splitlines()[2]
    assert not compare_steps(report, max_drop=0.5)["flags"]


def test_forms_are_told_apart_by_what_the_path_holds(tmp_path):
    from distill.evaluate.forms import detect_forms
    from distill.evaluate.steps import step_pairs

    adapter, merged = tmp_path / "student", tmp_path / "student-merged"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    forms = detect_forms([adapter, merged])
    assert [(f.name, f.kind) for f in forms] == [("student", "adapter"), ("merged", "merged")]
    assert step_pairs(["base", "student", "merged", "gguf-f16", "gguf-q8_0", "teacher"]) == [
        ("student", "merged"), ("merged", "gguf-f16"), ("merged", "gguf-q8_0")]
    assert step_pairs(["base", "student", "gguf-q8_0"]) == [("student", "gguf-q8_0")]
    with pytest.raises(DistillError, match="GGUF file not found"):
        detect_forms([tmp_path / "missing.gguf"])
    (tmp_path / "bad.gguf").write_text("not a gguf")
    with pytest.raises(DistillError, match="not a readable GGUF file"):
        detect_forms([tmp_path / "bad.gguf"])
