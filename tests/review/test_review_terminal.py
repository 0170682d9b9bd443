"""`distill review DIR --cli` driven for real through a pseudo-terminal: keys in, decisions in run.db."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from cli_helpers import ROOT as REPO
from distill.review.tui import clean, parse_turns
from review_helpers import example_row, leaf_ids, make_dataset, queue_ids, wait_for_decisions

ORDER = leaf_ids("respiratory/asthma", 3) + ["hostile"] + leaf_ids("cardiology/arrhythmias", 2)
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
    assert clean("a\x1b[31mred\x1b[0m\x07 b\x1b]0;title\x07c\tend\n") == "ared bc\tend\n"
