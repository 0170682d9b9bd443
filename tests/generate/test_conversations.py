"""Conversations as a task (`conversation:` in a taxonomy): `distill generate` against the loopback server, through
the installed console script, writes whole conversations in which the assistant's tool calls run the real tools
(or a teacher simulates them), the user turns come from the user teacher, and a killed run resumes paying only
for the turns it had not been answered yet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import ROOT, answers_in, cli_env, distill, distill_command, error_lines, wait_for
from fakeapi import AgentReply, AgentView, FakeAPI, Faults
from fakeapi.support import CUSTOMER, support_agent, support_user

SUPPORT = ROOT / "taxonomies" / "support-agent.yaml"
MEDICAL = ROOT / "taxonomies" / "medical-conversation.yaml"


def generate(taxonomy: Path, api: FakeAPI, out: Path, tmp_path: Path, *extra: str, **env: str):
    return distill("generate", "-t", str(taxonomy), "--teacher", "openai:gpt-4o-mini", "--base-url", api.url + "/v1",
                   "--out", str(out), "--no-cache", *extra, cwd=tmp_path, env=cli_env(tmp_path, **env), timeout=240)


def examples(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines() if line.strip()]


def tool_results(example: dict[str, Any]) -> dict[str, list[Any]]:
    """Each tool's results in the conversation, by the name of the tool the call named."""
    found: dict[str, list[Any]] = {}
    for message in example["messages"]:
        if message["role"] == "tool":
            found.setdefault(message["name"], []).append(json.loads(message["content"]))
    return found


def steps(out: Path) -> Counter:
    with sqlite3.connect(out / "run.db") as db:
        return Counter(row[0] for row in db.execute("SELECT step FROM teacher_calls WHERE error IS NULL"))


# -- the shipped support agent ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def support_run(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("support")
    out = tmp_path / "run"
    with FakeAPI(Faults(agent=support_agent, user=support_user)) as api:
        done = generate(SUPPORT, api, out, tmp_path, "--no-curate")
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_support_conversations_call_the_real_tools_over_the_fixture(support_run):
    """Every conversation's calls ran the shipped tools: the refund of the lamp that arrived broken is the
    policy's answer from store.json ($64, in full), the rug delivered 66 days ago is refused."""
    rows = examples(support_run)
    assert len(rows) == 21
    refunds = {r["order_id"]: r for row in rows for r in tool_results(row).get("refund_order", [])}
    assert refunds["NW-50121"] == {"order_id": "NW-50121", "refunded": True, "amount": 64.0, "items": ["LMP-220"],
                                   "refund_to": "original payment method",
                                   "policy": "damaged or wrong items are refunded in full"}
    assert refunds["NW-49702"]["refunded"] is False and "66 days" in refunds["NW-49702"]["reason"]
    for row in rows:
        assert [t["function"]["name"] for t in row["tools"]] == \
            ["lookup_customer", "lookup_order", "track_shipment", "cancel_order", "refund_order"]
        messages = row["messages"]
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "assistant"
        calls = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
        answered = {m["tool_call_id"]: m["name"] for m in messages if m["role"] == "tool"}
        assert calls == answered  # every call has its result, named after the tool it called
        assert row["meta"]["persona"] in ("calm", "angry", "confused-first-time-buyer", "in-a-hurry")
        assert row["meta"]["turns"] == sum(m["role"] == "user" for m in messages)
        assert any(m.get("reasoning") for m in messages if m.get("tool_calls"))  # the teacher's reasoning kept
    assert {"user", "assistant"} <= set(steps(support_run))  # each turn a teacher call in run.db


RIGHT_TOOL = {"orders/where-is-my-order": "track_shipment", "orders/cancel-an-order": "cancel_order",
              "orders/order-details": "lookup_order", "refunds/damaged-or-wrong-item": "refund_order",
              "refunds/changed-mind": "refund_order", "refunds/never-arrived": "refund_order",
              "account/find-my-orders": "lookup_customer"}


@pytest.mark.slow
def test_the_fake_support_agent_calls_the_right_tool_with_the_seed_s_order(support_run):
    """The fake is the teacher of a measured recipe: each leaf's first call is the tool its request needs, with
    the order number (or email) of the item's seed, and no call of it fails."""
    seeds = {json.loads(line)["id"]: json.loads(line) for path in (ROOT / "seeds" / "support-agent").glob("*.jsonl")
             for line in path.read_text().splitlines()}
    for row in examples(support_run):
        calls = [c["function"] for m in row["messages"] for c in m.get("tool_calls") or []]
        seed = seeds[row["meta"]["seed_ids"][0]]
        assert calls[0]["name"] == RIGHT_TOOL[row["meta"]["taxonomy_path"]], row["messages"]
        assert calls[0]["arguments"].get("order_id", seed.get("order_id")) == seed.get("order_id")
        assert calls[0]["arguments"].get("email", seed.get("email")) == seed.get("email")
        assert not any("error" in result for results in tool_results(row).values() for result in results)


# -- tools that raise, hang, are simulated, unknown or called wrongly --------------------------------------------

TOOLS_PY = """
import os
import time


def boom(x):
    raise ValueError(f"boom {x}")


def hang():
    time.sleep(120)


def dump():
    return {"rows": ["row %d" % i for i in range(5000)]}


def record(note):
    with open(os.environ["TOOL_LOG"], "a") as log:
        log.write(note + "\\n")
    return {"recorded": note}
"""

FAULTS_YAML = """
name: tool-faults
system_prompt: You help with tools.
generation: {per_leaf: 1}
task:
  name: tool-faults
  seed: {situation: text}
  conversation:
    turns: 1
    max_tool_rounds: 2
    tool_timeout_s: 20
    max_tool_result_chars: 1000
    tools:
      - name: boom
        description: Always fails.
        parameters: {type: object, properties: {x: {type: integer}}, required: [x]}
        function: tools.py:boom
      - name: hang
        description: Never answers.
        function: tools.py:hang
        timeout_s: 1
      - name: record
        description: Writes down that it ran.
        parameters: {type: object, properties: {note: {type: string}}, required: [note], additionalProperties: false}
        function: tools.py:record
      - name: dump
        description: Every row there is.
        function: tools.py:dump
      - name: weather
        description: Today's weather in a city.
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
        simulated: true
tree:
  calls:
    description: Every kind of call
    seeds: [{id: s1, situation: "CALLS"}]
  loops:
    description: Calls that never end
    seeds: [{id: s2, situation: "LOOP"}]
  big:
    description: A result too long to keep
    seeds: [{id: s3, situation: "BIG"}]
"""


def faulty_agent(view: AgentView) -> AgentReply:
    last_user = next(t.content for t in reversed(view.turns) if t.role == "user")
    if "loop" in last_user:  # calls again whatever the results say
        return AgentReply(calls=[("nope", {})])
    if any(t.role == "tool" for t in view.since_last_user()):
        return AgentReply(content="All done.")
    if "everything" in last_user:
        return AgentReply(calls=[("dump", {})])
    return AgentReply(calls=[("boom", {"x": 3}), ("hang", {}), ("weather", {"city": "Oslo"}), ("record", {"note": "ran"}),
                             ("record", {"note": 5}), ("record", "{not json"), ("nope", {"a": 1})])


def faulty_user(request: dict[str, Any]) -> str | None:
    system, prompt = (m.get("content") or "" for m in request["messages"][:2])
    if system.startswith("You are the tool `weather`"):
        return '{"temp_c": 7, "sky": "rain"}'
    if "role-playing the user" in system:
        return "please loop" if "LOOP" in prompt else "show me everything" if "BIG" in prompt else \
            "please check the tools"
    return None


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory) -> tuple[Path, Path, float]:
    tmp_path = tmp_path_factory.mktemp("faults")
    folder = tmp_path / "tax"
    folder.mkdir()
    (folder / "tools.py").write_text(TOOLS_PY)
    (folder / "faults.yaml").write_text(FAULTS_YAML)
    log, out = tmp_path / "tool.log", tmp_path / "run"
    with FakeAPI(Faults(agent=faulty_agent, user=faulty_user)) as api:
        started = time.monotonic()
        done = generate(folder / "faults.yaml", api, out, tmp_path, "--no-curate", "--no-preflight", TOOL_LOG=str(log))
        seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return out, log, seconds


def _conversation(out: Path, leaf: str) -> dict[str, Any]:
    return next(row for row in examples(out) if row["meta"]["taxonomy_path"] == leaf)


def _results(row: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["name"], json.loads(m["content"])) for m in row["messages"] if m["role"] == "tool"]


@pytest.mark.slow
def test_a_tool_that_raises_is_recorded_with_its_exception(faults_run):
    results = _results(_conversation(faults_run[0], "calls"))
    assert results[0] == ("boom", {"error": {"type": "ValueError", "message": "boom 3"}})


@pytest.mark.slow
def test_a_tool_that_hangs_is_stopped_at_its_timeout_and_recorded(faults_run):
    out, _, seconds = faults_run
    name, result = _results(_conversation(out, "calls"))[1]
    assert name == "hang" and result["error"]["type"] == "TimeoutError"
    assert seconds < 100  # the tool sleeps 120 s: the run did not wait for it


@pytest.mark.slow
def test_a_simulated_tool_is_answered_by_a_teacher_call_and_marked(faults_run):
    out = faults_run[0]
    row = _conversation(out, "calls")
    assert _results(row)[2] == ("weather", {"temp_c": 7, "sky": "rain"})
    assert row["meta"]["simulated_tools"] == ["weather"]
    assert steps(out)["tool:weather"] == 1


@pytest.mark.slow
def test_unknown_tools_and_invalid_arguments_are_recorded_not_run(faults_run):
    out, log = faults_run[0], faults_run[1]
    row = _conversation(out, "calls")
    results = _results(row)
    assert results[3] == ("record", {"recorded": "ran"})
    assert [(name, r["error"]["type"]) for name, r in results[4:]] == \
        [("record", "invalid_arguments"), ("record", "invalid_arguments"), ("nope", "unknown_tool")]
    assert log.read_text() == "ran\n"  # the valid call ran once; the invalid ones never did
    calls = [c["function"] for m in row["messages"] for c in m.get("tool_calls") or []]
    assert {"name": "record", "arguments": "{not json"} in calls and calls[-1]["name"] == "nope"  # kept as called


@pytest.mark.slow
def test_a_result_past_max_tool_result_chars_is_cut_saying_so(faults_run):
    """A tool returning a whole table would fill every later turn's prompt: the conversation keeps its first
    max_tool_result_chars and says how much was cut."""
    row = _conversation(faults_run[0], "big")
    result = next(m["content"] for m in row["messages"] if m["role"] == "tool")
    assert result.startswith('{"rows": ["row 0", "row 1"') and len(result) < 1100
    assert result.endswith("more characters (max_tool_result_chars)]")


@pytest.mark.slow
def test_past_the_tool_round_limit_the_conversation_stops_and_is_kept(faults_run):
    row = _conversation(faults_run[0], "loops")
    assert row["meta"]["stopped"] == "tool_round_limit"
    assert [r["error"]["type"] for _, r in _results(row)] == ["unknown_tool", "unknown_tool", "tool_round_limit"]


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_the_tools_once(tmp_path):
    """`distill.generate()` at the top of a user's script: the tools' process must not run the script again."""
    folder = tmp_path / "tax"
    folder.mkdir()
    (folder / "tools.py").write_text(TOOLS_PY)
    (folder / "faults.yaml").write_text(FAULTS_YAML)
    script = tmp_path / "make_data.py"
    script.write_text(textwrap.dedent(f"""
        import os
        import distill

        with open(os.environ["STARTS"], "a") as starts:
            starts.write("started\\n")
        report = distill.generate(taxonomy={str(folder / "faults.yaml")!r}, teacher="openai:gpt-4o-mini",
                                  out={str(tmp_path / "run")!r}, curate=False, cache=False, preflight=False,
                                  progress=False, teacher_options={{"base_url": os.environ["BASE_URL"]}})
        print(report.stats["counts"]["kept"])
        """))
    starts = tmp_path / "starts"
    with FakeAPI(Faults(agent=faulty_agent, user=faulty_user)) as api:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                              env=cli_env(tmp_path, BASE_URL=api.url + "/v1", STARTS=str(starts),
                                          TOOL_LOG=str(tmp_path / "tool.log")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"] and starts.read_text() == "started\n"  # one conversation a leaf
    assert (tmp_path / "tool.log").read_text() == "ran\n"


# -- the user teacher, resuming, mistakes -----------------------------------------------------------------------

def support_copy(tmp_path: Path) -> Path:
    """A writable copy of the support-agent taxonomy, its tools and its seeds, laid out as in the repository."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "taxonomies" / "support_agent", project / "taxonomies" / "support_agent")
    shutil.copytree(ROOT / "seeds" / "support-agent", project / "seeds" / "support-agent")
    shutil.copy(SUPPORT, project / "taxonomies" / SUPPORT.name)
    return project / "taxonomies" / SUPPORT.name


@pytest.mark.slow
@pytest.mark.parametrize("where", ["flag", "taxonomy"])
def test_user_teacher_writes_the_user_turns(tmp_path, where):
    """--user-teacher, or the task's conversation.user_teacher: the user turns go to that teacher, the rest not."""
    out = tmp_path / "run"
    taxonomy, flag = SUPPORT, ["--user-teacher", "openai:cheap-user"]
    if where == "taxonomy":
        taxonomy, flag = support_copy(tmp_path), []
        taxonomy.write_text(taxonomy.read_text().replace("    persona_axis: customer\n",
                                                         "    persona_axis: customer\n    user_teacher: openai:cheap-user\n"))
    with FakeAPI(Faults(agent=support_agent)) as main, FakeAPI(Faults(user=support_user)) as users:
        done = generate(taxonomy, main, out, tmp_path, "--no-curate", "--limit", "4", *flag,
                        "--user-base-url", users.url + "/v1")
        assert done.returncode == 0, done.stderr
        main_bodies, user_bodies = list(main.bodies), list(users.bodies)
    assert user_bodies and all(b["model"] == "cheap-user" and CUSTOMER in b["messages"][0]["content"]
                               for b in user_bodies)
    assert main_bodies and not any(CUSTOMER in str(b["messages"][0].get("content")) for b in main_bodies)
    with sqlite3.connect(out / "run.db") as db:
        teachers = dict(db.execute("SELECT DISTINCT step, teacher FROM teacher_calls"))
    assert teachers == {"user": "openai:cheap-user", "assistant": "openai:gpt-4o-mini"}
    assert len(examples(out)) == 4


@pytest.mark.slow
def test_kill_9_mid_conversation_resumes_without_paying_twice(tmp_path):
    """kill -9 with conversations half done, then the same command against another server: the answered turns
    are replayed from run.db (never asked again) and only the rest is paid for."""
    out = tmp_path / "run"
    env = cli_env(tmp_path)

    def args(api: FakeAPI) -> list[str]:
        return ["generate", "-t", str(SUPPORT), "--teacher", "openai:gpt-4o-mini", "--base-url", api.url + "/v1",
                "--out", str(out), "--no-cache", "--no-preflight", "--no-curate", "--concurrency", "4"]

    with FakeAPI(Faults(agent=support_agent, user=support_user, latency_s=0.05, hold_after=15)) as first:
        proc = subprocess.Popen(distill_command(*args(first)), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while first.total_paid() < 15 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        wait_for(lambda: answers_in(out) >= 15, proc, 60)  # committed; every later request is held unanswered
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        paid = Counter(first.paid)
    assert sum(paid.values()) == 15
    with sqlite3.connect(out / "run.db") as db:
        answered = db.execute("SELECT COUNT(*) FROM teacher_calls WHERE error IS NULL").fetchone()[0]
        half_done = db.execute("SELECT COUNT(DISTINCT plan_item_id) FROM teacher_calls WHERE plan_item_id IN "
                               "(SELECT id FROM plan_items WHERE status = 'pending')").fetchone()[0]
    assert answered == 15 and half_done >= 1  # killed mid-conversation
    with FakeAPI(Faults(agent=support_agent, user=support_user)) as second:
        done = subprocess.run(distill_command(*args(second)), cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, done.stderr
        paid += second.paid
    with FakeAPI(Faults(agent=support_agent, user=support_user)) as clean:  # the same run, never killed
        whole = tmp_path / "whole"
        assert generate(SUPPORT, clean, whole, tmp_path, "--no-preflight", "--no-curate").returncode == 0
        uninterrupted = clean.total_paid()
    assert max(paid.values()) == 1  # no prompt was paid for twice
    assert sum(paid.values()) == uninterrupted  # and nothing beyond what an uninterrupted run pays
    resumed = {row["id"]: row["messages"] for row in examples(out)}
    assert len(resumed) == 21 and resumed == {row["id"]: row["messages"] for row in examples(whole)}


def test_user_teacher_is_refused_for_a_task_that_is_not_a_conversation(tmp_path):
    done = distill("generate", "-t", str(ROOT / "tests" / "fixtures" / "tiny" / "qa.yaml"), "--teacher",
                   "openai:gpt-4o-mini", "--base-url", "http://127.0.0.1:9/v1", "--user-teacher", "openai:cheap",
                   "--out", str(tmp_path / "run"), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert error_lines(done.stderr) == ["error: --user-teacher and --user-base-url are for conversation tasks; 'tiny-qa' "
                                        "is task 'qa'"], done.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_conversation_field_is_one_line_naming_the_file_line_and_field(tmp_path):
    taxonomy = tmp_path / "bad.yaml"
    text = SUPPORT.read_text().replace("    max_tool_rounds: 3\n", "    max_tool_round: 3\n")
    taxonomy.write_text(text.replace("../seeds/", str(ROOT / "seeds") + "/").replace(
        "support_agent/tools.py", str(ROOT / "taxonomies" / "support_agent" / "tools.py")))
    done = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    line = next(n for n, text in enumerate(taxonomy.read_text().splitlines(), 1) if "max_tool_round:" in text)
    assert error_lines(done.stderr) == [f"error: {taxonomy}:{line}: task.conversation.max_tool_round: unknown field "
                                        "'max_tool_round'; remove it or check its spelling; see "
                                        "docs/taxonomies.md#your-own-task"], done.stderr


def test_a_persona_axis_the_taxonomy_lacks_is_refused_with_its_line(tmp_path):
    folder = tmp_path / "tax"
    folder.mkdir()
    (folder / "tools.py").write_text(TOOLS_PY)
    taxonomy = folder / "faults.yaml"
    taxonomy.write_text(FAULTS_YAML.replace("    turns: 1\n", "    turns: 1\n    persona_axis: mood\n"))
    done = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and f"{taxonomy}:10: task.conversation.persona_axis: no axis 'mood'" in lines[0], lines


def test_a_tool_file_that_cannot_be_imported_stops_generate_before_any_teacher_call(tmp_path):
    folder = tmp_path / "tax"
    folder.mkdir()
    (folder / "tools.py").write_text("import no_such_module_here\n" + TOOLS_PY)
    taxonomy = folder / "faults.yaml"
    taxonomy.write_text(FAULTS_YAML)
    with FakeAPI() as api:
        done = generate(taxonomy, api, tmp_path / "run", tmp_path)
        asked = sum(api.requests.values())
    assert done.returncode == 2, done.stderr
    lines = error_lines(done.stderr)
    line = next(n for n, text in enumerate(FAULTS_YAML.splitlines(), 1) if "tools.py:boom" in text)
    assert len(lines) == 1 and f"{taxonomy}:{line}: task.conversation.tools.0.function:" in lines[0], lines
    assert "No module named 'no_such_module_here'" in lines[0] and asked == 0


@pytest.mark.parametrize("taxonomy", [SUPPORT, MEDICAL], ids=["support-agent", "medical-conversation"])
def test_the_shipped_conversation_taxonomies_validate(taxonomy, tmp_path):
    done = distill("taxonomy", "validate", str(taxonomy), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok {taxonomy}"), done.stdout


@pytest.mark.slow
def test_the_medical_conversation_generates_with_the_fake(tmp_path):
    out = tmp_path / "run"
    with FakeAPI() as api:
        done = generate(MEDICAL, api, out, tmp_path, "--no-curate")
    assert done.returncode == 0, done.stderr
    rows = examples(out)
    assert len(rows) == 8
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system" and roles[1:] == ["user", "assistant"] * (len(roles) // 2)
        assert 2 <= row["meta"]["turns"] <= 4 and row["meta"]["persona"] in ("patient", "caregiver")
        assert "tools" not in row
    assert steps(out)["user"] == steps(out)["assistant"] == sum(row["meta"]["turns"] for row in rows)
