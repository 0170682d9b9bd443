"""Preference pairs from the student's own answers, and DPO after SFT: pairs only where the student failed, a
DPO run from the SFT adapter whose loss falls, an adapter `distill eval` loads, a bad pairs file in one line."""

from __future__ import annotations

import json

import pytest

from cli_helpers import cli_env, distill
from distill.improve.pairs import preference_pairs
from distill.improve.records import Attempt
from distill.records import Message, ToolCall, ToolFunction
from distill.train.preferences import read_preferences, write_preferences
from train_helpers import NEGATIVE, POSITIVE

SYSTEM = Message(role="system", content="Classify the sentiment. Reply with JSON.")


def attempt(n: int, reference: str, answer: str, passed: bool, reason: str | None = None, text: str = "review",
            **extra) -> Attempt:
    return Attempt(example_id=f"c{n}", leaf="sentiment", task="classification", turn=2,
                   prompt=[SYSTEM, Message(role="user", content=f"{text} (review {n})")],
                   reference=Message(role="assistant", content=reference), answer=Message(role="assistant", content=answer),
                   passed=passed, reason=reason, **extra)


def label(value: str) -> str:
    return json.dumps({"label": value})


def test_failed_attempts_become_pairs_and_the_file_is_trls_preference_form(tmp_path):
    call = ToolCall(id="call_0", function=ToolFunction(name="get_weather", arguments={"city": "Oslo"}))
    wrong = ToolCall(id="call_0", function=ToolFunction(name="get_weather", arguments={"city": "Lima"}))
    tool_attempt = attempt(4, "", "", False, "wrong_arguments", tools=[{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}}}])
    tool_attempt.reference = Message(role="assistant", content="", tool_calls=[call])
    tool_attempt.answer = Message(role="assistant", content="", tool_calls=[wrong])
    attempts = [
        attempt(1, label("positive"), label("negative"), False, "label_mismatch"),
        attempt(2, label("negative"), '{"label":"negative"}', True),  # passed (the same label): no pair
        attempt(3, label("negative"), f" {label('negative')}\n", False, "schema_invalid"),  # same text: no pair
        tool_attempt,
    ]
    pairs = preference_pairs(attempts)
    assert [(p.example_id, p.reason) for p in pairs] == [("c1", "label_mismatch"), ("c4", "wrong_arguments")]
    first = pairs[0]
    assert first.chosen[0].content == label("positive") and first.rejected[0].content == label("negative")
    assert pairs[1].chosen[0].tool_calls == [call] and pairs[1].rejected[0].tool_calls == [wrong]

    path = write_preferences(tmp_path, pairs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["prompt"] == [m.model_dump() for m in attempts[0].prompt]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": label("positive")}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": label("negative")}]
    assert (rows[0]["leaf"], rows[0]["reason"]) == ("sentiment", "label_mismatch")
    assert rows[1]["tools"] and rows[1]["chosen"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert read_preferences(path) == pairs


def test_a_bad_pairs_file_is_one_line_naming_file_and_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    good = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    pairs = run_dir / "preferences.jsonl"
    pairs.write_text(json.dumps(good) + "\n" + json.dumps({**good, "rejected": [{"role": "user", "content": "b"}]})
                     + "\n")
    done = distill("train", str(run_dir), "--dpo", str(pairs), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"{pairs}:2: rejected: must be a list of one assistant turn" in lines[0]


@pytest.mark.model
@pytest.mark.train
@pytest.mark.slow
def test_dpo_after_sft_trains_from_the_sft_adapter_and_loads_in_eval(trained, tmp_path):
    run_dir, sft = trained
    # The student's wrong label rejected, the teacher's right one chosen, on reviews like the toy data's.
    attempts = [attempt(100 + n, label(good), label(bad), False, "label_mismatch", text=text)
                for n, (text, good, bad) in enumerate([(POSITIVE[n], "positive", "negative") for n in range(3)]
                                                      + [(NEGATIVE[n], "negative", "positive") for n in range(3)])]
    pairs = write_preferences(run_dir, preference_pairs(attempts))
    env = cli_env(tmp_path, OMP_NUM_THREADS="1")
    config = tmp_path / "dpo.yaml"
    config.write_text("qlora: false\nmax_steps: 6\nbatch_size: 2\ngrad_accum: 1\nmax_length: 96\nlearning_rate: 1e-3\n"
                      "warmup_ratio: 0\nlogging_steps: 1\nsave_steps: 3\nthreads: 1\n")
    done = distill("train", str(run_dir), "--dpo", str(pairs), "--config", str(config), cwd=tmp_path, env=env,
                   timeout=900)
    assert done.returncode == 0, done.stderr
    out = run_dir / "student-dpo"
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    # The reference is the SFT adapter, not the bare base: at the first step the policy (the SFT adapter) and the
    # reference agree, so every pair's margin is 0 and the loss is exactly log 2.
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)
    assert losses[-1] < losses[0] * 0.7

    manifest = json.loads((out / "distill_manifest.json").read_text())
    assert manifest["preference"]["method"] == "dpo" and manifest["preference"]["pairs"] == 6
    assert manifest["preference"]["sft_adapter"] == str(sft.adapter_dir.resolve())
    assert manifest["base_model"] == json.loads((sft.adapter_dir / "distill_manifest.json").read_text())["base_model"]

    done = distill("eval", str(run_dir), "--student", str(out), "--out", str(tmp_path / "eval"), "--limit", "4",
                   "--max-new-tokens", "8", "--threads", "1", cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert len(report["examples"]) == 4
