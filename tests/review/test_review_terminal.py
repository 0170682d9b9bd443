"""`distill review DIR --cli` driven for real through a pseudo-terminal: keys in, decisions in run.db."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from sources_helpers import documents_run, fridge_item

from cli_helpers import ROOT as REPO
from distill.review.tui import clean, parse_turns
from distill.train.data import load_splits
from review_helpers import conversation_row, example_row, leaf_ids, make_dataset, queue_ids, wait_for_decisions

ORDER = leaf_ids("respiratory/asthma", 3) + ["hostile"] + leaf_ids("cardiology/arrhythmias", 2)
CONVERSATION_EDITOR = """
import sys
path = sys.argv[1]
text = open(path).read()
assert "### assistant (calls lookup_order)" in text and "### tool (lookup_order)" in text, text
head, mark, rest = text.rpartition("### assistant\\n")
open(path, "w").write(head + mark + "Only the carrier can redirect it now.\\n")
"""
LONG_NOTE = "<script>alert(1)</script> " + "delivery window " * 30
EDITOR = """
import sys, re
path = sys.argv[1]
text = open(path).read()
head, _, rest = text.partition("### assistant\\n")
open(path, "w").write(head + "### assistant\\nFixed in the terminal editor.\\n")
"""


class Pty:
    """A child process on a pseudo-terminal, and what it has printed so far."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while text.encode() not in self.seen:
            if time.time() > deadline or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"never printed {text!r}; got:\n{self.seen.decode(errors='replace')[-3000:]}")
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    pass

    def send(self, keys: str) -> None:
        self.seen = b""
        os.write(self.master, keys.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.slow
def test_terminal_review_accept_reject_edit_undo(tmp_path):
    hostile = example_row("hostile", "respiratory/asthma", "Does \x1b[2J\x1b]0;pwned\x07 this clear the screen?",
                          "[bold red]Not markup[/bold red] and \x1b[31mnot red\x1b[0m.")
    directory = make_dataset(tmp_path / "run", per_leaf=3, extra=[hostile])
    queue_ids(directory, ORDER)
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "50", "EDITOR": f"{sys.executable} {editor}"}
    term = Pty([sys.executable, "-m", "distill.cli", "review", str(directory), "--cli", "--reviewer", "tess"], env)
    try:
        term.expect(f"[{ORDER[0]}]")
        term.expect("a accept")
        term.send("a")
        term.expect(f"[{ORDER[1]}]")
        term.send("r")
        term.expect("chosen: none yet")
        term.send("1")
        term.expect("chosen: wrong or hallucinated")
        term.send("\r")
        term.expect("note (optional")
        term.send("mixes up two inhalers\r")
        term.expect(f"[{ORDER[2]}]")
        term.send("e")
        term.expect(f"[{ORDER[3]}]")  # the editor ran and the edit moved the review on
        term.expect("[bold red]Not markup[/bold red]")  # teacher text printed as text
        assert b"\x1b]0;pwned" not in term.seen and b"\x1b[2J\x1b]" not in term.seen
        term.send("u")
        term.expect(f"undone: {ORDER[2]}")
        term.send("q")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    found = wait_for_decisions(directory, 4)
    assert [(d.item_id, d.verdict, d.reviewer) for d in found] == [
        (ORDER[0], "accept", "tess"), (ORDER[1], "reject", "tess"), (ORDER[2], "edit", "tess"),
        (ORDER[2], "undo", "tess")]
    assert found[1].reasons == ["wrong"] and found[1].note == "mixes up two inhalers"
    assert found[2].messages[-1].content == "Fixed in the terminal editor." and found[3].undoes == found[2].id


def test_editor_file_format_and_cleaning():
    turns = parse_turns("# header\n### system\nBe brief.\n\n### user\nQ?\n\n### assistant\nLine one.\n\nLine two.\n")
    assert turns == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"},
                     {"role": "assistant", "content": "Line one.\n\nLine two."}]
    assert parse_turns("no headings here") is None
    assert [t["role"] for t in parse_turns("### user\nQ\n### assistant (calls lookup_order)\n\n### tool (lookup_order)\n"
                                            "{}\n### assistant\nA\n")] == ["user", "assistant", "tool", "assistant"]
    assert clean("a\x1b[31mred\x1b[0m\x07 b\x1b]0;title\x07c\tend\n") == "ared bc\tend\n"


@pytest.mark.slow
def test_terminal_shows_a_conversation_and_reviews_one_turn(tmp_path):
    planted = conversation_row("conv", "support/orders", order_id="[bold]A-1[/bold] \x1b]0;pwned\x07",
                               result_note=LONG_NOTE)
    directory = make_dataset(tmp_path / "run", per_leaf=3, extra=[planted, conversation_row("conv-2", "support/orders")])
    queue_ids(directory, ["conv", "conv-2"])
    editor = tmp_path / "editor.py"
    editor.write_text(CONVERSATION_EDITOR)
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "140", "LINES": "80", "EDITOR": f"{sys.executable} {editor}"}
    term = Pty([sys.executable, "-m", "distill.cli", "review", str(directory), "--cli", "--reviewer", "tess"], env)
    try:
        term.expect("[conv]")
        term.expect("a accept")
        screen = clean(term.seen.decode(errors="replace"))  # the text as seen, less rich's colours
        for shown in ("3 · assistant (calls lookup_order)", "4 · tool (lookup_order)", "7 · assistant",
                      "teacher's reasoning (folded, 59 characters): The customer gave an order id",
                      "→ calls lookup_order", '"order_id": "[bold]A-1[/bold] \\u001b]0;pwned\\u0007"',
                      f"result, {len(planted['messages'][3]['content'])} characters:", "<script>alert(1)</script>",
                      "tools: lookup_order"):
            assert shown in screen, shown
        assert "delivery window " * 12 not in screen  # the tool result is shortened
        assert b"\x1b]0;pwned" not in term.seen
        term.send("r")
        term.expect("chosen: none yet")
        term.send("1")
        term.expect("chosen: wrong or hallucinated")
        term.send("\r")
        term.expect("about turn (1-7")
        term.send("5\r")
        term.expect("note (optional")
        term.send("made up the total\r")
        term.expect("[conv-2]")
        term.send("e")
        term.expect("edit: conv-2")
        term.send("q")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    found = wait_for_decisions(directory, 2)
    assert [(d.item_id, d.verdict) for d in found] == [("conv", "reject"), ("conv-2", "edit")]
    assert found[0].note == "turn 5 (assistant): made up the total"
    edited = found[1].messages
    assert edited[-1].content == "Only the carrier can redirect it now."
    assert edited[2].tool_calls[0].function.arguments == {"order_id": "A-1001"} and edited[3].tool_call_id == "call_1"
    train, held_out = load_splits(directory, eval_fraction=0.2)
    trained = {e.id: e for e in train + held_out}
    assert "conv" not in trained and trained["conv-2"].messages[2].tool_calls[0].function.name == "lookup_order"


@pytest.mark.slow  # a run generated from the documents first
def test_terminal_shows_the_source_passage_with_its_support_highlighted(tmp_path):
    run = documents_run(tmp_path)
    fridge = fridge_item(run)["id"]
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", "LINES": "60"}
    term = Pty([sys.executable, "-m", "distill.cli", "review", str(run), "--cli", "--reviewer", "tess"], env)
    try:
        term.expect("a accept")
        if f"[{fridge}]".encode() not in term.seen:
            term.send("j")
            term.expect(f"[{fridge}]")
        term.expect("source · protocols.pdf, page 3 · Medication storage")
        term.expect("practice manager is told the same day.")
        # The supporting sentence on a yellow background (SGR 43); the table's rows on the same page plain.
        assert re.search(rb"\x1b\[[0-9;]*43mthe lowest and highest reading of the week\.", term.seen)
        assert not re.search(rb"\x1b\[[0-9;]*43mVaccines 2 to 8", term.seen)
        term.send("q")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
