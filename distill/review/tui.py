"""`distill review DIR --cli`: the same queue and keys in a terminal, for a reviewer on SSH.

rich draws the card; keys are read one at a time (the terminal in cbreak mode, restored on exit);
an edit opens $VISUAL / $EDITOR on the conversation, as `git commit` does. Teacher text is shown
as plain text with control characters removed, so it can neither format nor drive the terminal.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import termios
import textwrap
import tty
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from distill.errors import DistillError
from distill.records import REVIEW_REASONS, Message
from distill.review.cards import Card
from distill.review.session import BadDecision, ReviewSession
from distill.review.sources import SourcePassage

REASON_KEYS = {str(k): code for k, code in enumerate(REVIEW_REASONS, 1)}
KEYS = ("a accept · r reject (1-7 toggle, Enter) · e edit ($EDITOR) · u undo · s skip · "
        "j/→ next · k/← previous · n next to review · ? help · q quit")
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A turn's heading in the editor's file: `### assistant`, with what the turn does in brackets for a conversation
# (`### assistant (calls lookup_order)`, `### tool (lookup_order)`).
TURN = re.compile(r"^### (system|user|assistant|tool)( \([^\n]*\))?[ \t]*$", re.MULTILINE)
RESULT_CHARS = 160  # a tool result is shown this long, with its full length
REASONING_CHARS = 200


def clean(text: str) -> str:
    """Teacher text safe to print: no escape sequences, no control characters but newline and tab."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


@contextmanager
def cbreak(stream):
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_key(stream) -> str:
    """One key press; arrow keys come back as "left" / "right", Escape alone as "esc"."""
    fd = stream.fileno()
    char = os.read(fd, 1).decode("utf-8", "replace")
    if char != "\x1b":
        return {"\r": "enter", "\n": "enter", "\x04": "q", "\x7f": "backspace"}.get(char, char)
    if not select.select([fd], [], [], 0.05)[0]:
        return "esc"
    rest = os.read(fd, 8).decode("utf-8", "replace")
    return {"[C": "right", "[D": "left", "OC": "right", "OD": "left"}.get(rest[:2], "esc")


class Terminal:
    def __init__(self, directory: Path, reviewer: str, stream=None, console: Console | None = None):
        self.session = ReviewSession(directory)
        self.reviewer = reviewer
        self.stream = stream or sys.stdin
        self.console = console or Console(highlight=False)
        self.order: list[str] = []
        self.index = 0
        self.message = ""

    # navigation
    def reload(self) -> None:
        self.order = list(self.session.state().items)

    def next_todo(self, start: int) -> int | None:
        state = self.session.state()
        n = len(self.order)
        for step in range(1, n + 1):
            item = state.items.get(self.order[(start + step) % n])
            if item and item.wants(self.reviewer) and self.reviewer not in item.standing:
                return (start + step) % n
        for step in range(1, n + 1):  # then this reviewer's skips
            item = state.items.get(self.order[(start + step) % n])
            if item and item.wants(self.reviewer):
                return (start + step) % n
        return None

    # drawing
    def draw(self) -> None:
        state = self.session.state()
        done = sum(s.done for s in state.items.values())
        todo = sum(s.wants(self.reviewer) for s in state.items.values())
        card = self.session.card(self.order[self.index], self.reviewer)
        self.console.clear()
        self.console.print(Text(f"distill review · {self.reviewer} · {done} of {len(state.items)} done · "
                                f"{todo} left for you · item {self.index + 1}/{len(self.order)}", style="bold"))
        self.console.print(render_card(card))
        self.console.print(Text(KEYS, style="dim"))
        if self.message:
            self.console.print(Text(self.message, style="yellow"))
            self.message = ""

    # actions
    def decide(self, verdict: str, **fields) -> None:
        item_id = self.order[self.index]
        try:
            self.session.decide(self.reviewer, item_id, verdict, **fields)
        except BadDecision as err:
            self.message = str(err)
            return
        self.message = f"{verdict}: {item_id}"
        following = self.next_todo(self.index)
        if following is not None:
            self.index = following

    def ask_reasons(self) -> None:
        chosen: list[str] = []
        listing = "  ".join(f"{k} {REVIEW_REASONS[c]}" for k, c in REASON_KEYS.items())
        while True:
            picked = ", ".join(REVIEW_REASONS[c] for c in chosen) or "none yet"
            self.console.print(Text(f"reject: {listing}\n  chosen: {picked} (Enter confirms, Esc cancels)",
                                    style="red"))
            key = read_key(self.stream)
            if key == "esc":
                self.message = "reject cancelled"
                return
            if key == "enter":
                if chosen:
                    break
                self.console.print(Text("pick at least one reason (1-7)", style="yellow"))
            elif key in REASON_KEYS:
                code = REASON_KEYS[key]
                chosen.remove(code) if code in chosen else chosen.append(code)
        turn = None
        card = self.session.card(self.order[self.index], self.reviewer)
        if is_conversation(card):
            typed = self.read_line(f"about turn (1-{len(card.messages)}; Enter for the whole conversation): ").strip()
            if typed and not (typed.isdigit() and 1 <= int(typed) <= len(card.messages)):
                self.message = f"reject not recorded: {typed!r} is not a turn of this item (1-{len(card.messages)})"
                return
            turn = int(typed) if typed else None
        note = self.read_line("note (optional, Enter to skip): ")
        self.decide("reject", reasons=chosen, note=note, turn=turn)

    def read_line(self, prompt: str) -> str:
        """A line typed by the reviewer, with the terminal back in its normal mode meanwhile."""
        fd = self.stream.fileno()
        current = termios.tcgetattr(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_attrs)
        try:
            self.console.print(Text(prompt), end="")
            line = os.read(fd, 4096).decode("utf-8", "replace")  # canonical mode: one line, as typed
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, current)
        return line.rstrip("\r\n")

    def edit(self) -> None:
        card = self.session.card(self.order[self.index], self.reviewer)
        text = "".join(f"### {m.role}{_doing(m)}\n{m.content}\n\n" for m in card.messages)
        with tempfile.NamedTemporaryFile("w+", suffix=".md", prefix="distill-review-", delete=False,
                                         encoding="utf-8") as handle:
            handle.write("# Edit the turns below; keep the ### lines. Save and quit to record the edit.\n")
            if any(m.tool_calls or m.reasoning for m in card.messages):
                handle.write("# Only the text is edited here: tool calls and reasoning stay as they are.\n")
            handle.write(text)
            path = Path(handle.name)
        fd = self.stream.fileno()
        current = termios.tcgetattr(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_attrs)
        try:
            subprocess.run([*shlex.split(editor()), str(path)], check=False)
            edited = parse_turns(path.read_text(encoding="utf-8"))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, current)
            path.unlink(missing_ok=True)
        if edited is None:
            self.message = "edit not recorded: keep one ### line per turn"
            return
        if [m["content"] for m in edited] == [m.content for m in card.messages]:
            self.message = "nothing changed: press a to accept as it is"
            return
        self.decide("edit", messages=edited)

    def undo(self) -> None:
        undone = self.session.undo(self.reviewer)
        if undone is None:
            self.message = "nothing of yours to undo"
            return
        self.reload()
        self.index = self.order.index(undone.item_id)
        self.message = f"undone: {undone.item_id}"

    def run(self) -> None:
        self.reload()
        first = self.next_todo(len(self.order) - 1)
        self.index = first or 0
        fd = self.stream.fileno()
        self._saved_attrs = termios.tcgetattr(fd)
        with cbreak(self.stream):
            while True:
                self.draw()
                key = read_key(self.stream)
                if key in ("q", "\x03"):
                    break
                action = {
                    "a": lambda: self.decide("accept"),
                    "r": self.ask_reasons,
                    "e": self.edit,
                    "s": lambda: self.decide("skip"),
                    "u": self.undo,
                    "j": lambda: self._move(1), "right": lambda: self._move(1),
                    "k": lambda: self._move(-1), "left": lambda: self._move(-1),
                    "n": self._next,
                    "?": self._help,
                }.get(key)
                if action:
                    action()

    def _move(self, step: int) -> None:
        self.index = max(0, min(len(self.order) - 1, self.index + step))

    def _next(self) -> None:
        following = self.next_todo(self.index)
        if following is None:
            self.message = "nothing left for you to review"
        else:
            self.index = following

    def _help(self) -> None:
        self.message = ("keys: " + KEYS + "\nreasons: " +
                        ", ".join(f"{k} {REVIEW_REASONS[c]}" for k, c in REASON_KEYS.items()))


def editor() -> str:
    for choice in (os.environ.get("VISUAL"), os.environ.get("EDITOR"), "nano", "vi"):
        if choice and shutil.which(shlex.split(choice)[0]):
            return choice
    raise DistillError("no editor: set $EDITOR")


def parse_turns(text: str) -> list[dict] | None:
    """The turns back from the editor's file: `### role` headings, each followed by its text."""
    marks = list(TURN.finditer(text))
    if not marks:
        return None
    turns = []
    for mark, following in zip(marks, [*marks[1:], None]):
        body = text[mark.end(): following.start() if following else len(text)]
        turns.append({"role": mark.group(1), "content": body.strip("\n").rstrip()})
    return turns


def is_conversation(card: Card) -> bool:
    """More than one answer, or tool turns: the turns are numbered and a reject can name one."""
    return sum(m.role == "assistant" for m in card.messages) > 1 or any(m.role == "tool" for m in card.messages)


def _doing(message: Message) -> str:
    """What a turn does, for its heading: "(calls lookup_order)", "(lookup_order)"; "" for a plain turn."""
    def one_line(name: str) -> str:  # a tool's name is the teacher's: it must not start a heading of its own
        return " ".join(clean(name).split())

    if message.tool_calls:
        return f" (calls {', '.join(one_line(call.function.name) for call in message.tool_calls)})"
    if message.role == "tool" and message.name:
        return f" ({one_line(message.name)})"
    return ""


def formatted(arguments: dict | str) -> str:
    """A tool call's arguments as indented JSON; a string (what the teacher wrote when it was not a JSON object,
    records.py) as written, said to be."""
    if isinstance(arguments, str):
        return f"(not a JSON object: as the teacher wrote it)\n{arguments}"
    return json.dumps(arguments, indent=2, ensure_ascii=False)


def shortened(text: str, limit: int) -> str:
    """The first `limit` characters on one line ("…" where that is not all of it)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _turn(message: Message) -> Text:
    """One turn's body: the teacher's reasoning and a tool's result shortened (with their length), tool calls
    with their arguments as indented JSON."""
    lines: list[Text] = []
    if message.reasoning:
        lines.append(Text(f"teacher's reasoning (folded, {len(message.reasoning)} characters): "
                          f"{shortened(clean(message.reasoning), REASONING_CHARS)}", style="dim italic"))
    if message.role == "tool":
        lines.append(Text.assemble((f"result, {len(message.content)} characters: ", "dim"),
                                   shortened(clean(message.content), RESULT_CHARS)))
    elif message.content or not message.tool_calls:
        lines.append(Text(clean(message.content)))
    for call in message.tool_calls or []:
        lines.append(Text.assemble(("→ calls ", "dim"), (clean(call.function.name), "bold"),
                                   "\n" + textwrap.indent(clean(formatted(call.function.arguments)), "    ")))
    return Text("\n").join(lines)


def _source(source: SourcePassage) -> Panel:
    """The passage the example was made from, its supporting sentences highlighted. It is the user's document:
    each piece cleaned as teacher text is (cleaned apart, so the spans keep to the recorded text)."""
    where = f"{source.file}, page {source.page}" if source.page else source.file
    title = Text(clean(" · ".join(["source", where, " › ".join(source.headings)] if source.headings
                                  else ["source", where])))
    if source.text is None:
        return Panel(Text("the passage's text is not in the run's documents.json", style="dim"), title=title,
                     title_align="left", border_style="yellow")
    body, at = Text(), 0
    for span in source.spans:
        body.append(clean(source.text[at:span.start]))
        body.append(clean(source.text[span.start:span.end]), style="black on yellow")
        at = span.end
    body.append(clean(source.text[at:]))
    return Panel(body, title=title, title_align="left", border_style="yellow")


def render_card(card: Card) -> Group:
    axes = ", ".join(f"{k}: {v}" for k, v in card.axes.items())
    head = Text.assemble((card.leaf or "(no leaf)", "bold"), f"  {axes}  ", (f"[{card.id}]", "dim"))
    if card.mine:
        reasons = f" ({', '.join(REVIEW_REASONS.get(r, r) for r in card.mine.reasons)})" if card.mine.reasons else ""
        head.append(f"  you: {card.mine.verdict}{reasons}", style="magenta")
    parts: list = [head]
    colours = {"system": "dim", "user": "cyan", "assistant": "green", "tool": "yellow"}
    numbered = is_conversation(card)
    for number, message in enumerate(card.messages, 1):
        # A Text title: a str one would be read as rich markup, and tool names are the teacher's.
        title = Text(f"{number} · {message.role}{_doing(message)}" if numbered else message.role)
        parts.append(Panel(_turn(message), title=title, title_align="left",
                           border_style=colours.get(message.role, "white")))
    if card.source is not None:
        parts.append(_source(card.source))
    facts = []
    if card.tools:
        facts.append("tools: " + ", ".join(clean(str(t.get("function", {}).get("name", "?"))) for t in card.tools))
    if card.signals:
        facts.append("risk: " + "; ".join(f"{s.name} ({clean(s.detail)})" for s in card.signals))
    if card.neighbour:
        facts.append(f"nearest kept: {card.neighbour.id} at Jaccard {card.neighbour.similarity:.2f}: "
                     f"{clean(card.neighbour.prompt)[:100]}")
    failed = [c for c in card.checks if not c.passed]
    facts.append("checks: " + ("all passed" if not failed else "; ".join(f"{c.name}: {c.detail}" for c in failed)))
    if card.seeds:
        facts.append("seeds: " + ", ".join(s.id for s in card.seeds))
    facts.append(f"teacher: {card.teacher or 'unknown'} · queued for: {card.why}")
    parts.append(Text("\n".join(facts), style="dim"))
    return Group(*parts)


def run_terminal(directory: Path, reviewer: str) -> None:
    if not sys.stdin.isatty():
        raise DistillError("--cli needs a terminal to read keys from; use --serve for the web page")
    terminal = Terminal(directory, reviewer)
    try:
        terminal.run()
    except KeyboardInterrupt:
        pass
    finally:
        terminal.session.close()
