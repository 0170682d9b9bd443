"""How long a reviewer waits between cards on the review page: key press -> next card on screen.

A dataset made from the medical seeds (real prose, some answers as Markdown lists), a queue of 300,
`distill review DIR --serve` in its own process as a user starts it, and Debian's Chromium driven by
Playwright pressing `a` (accept) card after card. The page records, for each key press, the time to
the new card in the DOM and laid out (`layout`) and to the next animation frame, when it is painted
(`frame`). Two paces: `rapid` presses again as soon as the card changes (the worst case for the
preloading), `reading` waits 0.8 s on each card as a (very fast) reader would.

`--conversations` makes every item a seven-turn conversation in which the assistant calls a tool (with its
reasoning), reads a 1-2 KB JSON result, answers and answers a follow-up: the cards issue 21's generation makes.

    .venv/bin/python benchmarks/bench_review_page.py [--cards 150] [--conversations] [--screenshot docs/review.png]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SYSTEM = "You are a careful, accurate medical expert. Answer clearly and say when to seek care."


def as_markdown(answer: str) -> str:
    """Some answers as a list, as teachers often write them."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", answer) if s.strip()]
    if len(sentences) < 4:
        return answer
    return f"**In short:** {sentences[0]}\n\n" + "\n".join(f"- {s}" for s in sentences[1:])


GUIDELINE_TOOL = {"type": "function", "function": {
    "name": "lookup_guideline", "description": "The clinical guideline's text for a topic.",
    "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}


def as_conversation(question: str, answer: str, leaf: str) -> list[dict]:
    """The item as a tool-calling conversation: the answer read from a guideline the assistant looks up."""
    result = json.dumps({"topic": leaf, "source": "guideline", "sections": [answer] * 3})
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": "", "reasoning": f"Check the guideline on {leaf} before answering.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "lookup_guideline", "arguments": {"topic": leaf}}}]},
            {"role": "tool", "content": result, "tool_call_id": "call_1", "name": "lookup_guideline"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "And when should I see a doctor?"},
            {"role": "assistant", "content": "If it gets worse or does not improve within a few days."}]


def make_dataset(directory: Path, items: int, seed: int = 0, conversations: bool = False) -> None:
    rng = random.Random(seed)
    seeds = []
    for path in sorted((ROOT / "seeds" / "medical").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seeds.append((path.stem, json.loads(line)))
    rows = []
    for i in range(items):
        branch, s = seeds[i % len(seeds)]
        leaf = f"{branch}/{s.get('axes', {}).get('question_type', 'general')}"
        answer = as_markdown(s["answer"]) if rng.random() < 0.4 else s["answer"]
        question = s["question"] + ("" if i < len(seeds) else f" (variant {i})")
        turns = as_conversation(question, answer, leaf) if conversations else [
            {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rows.append({"id": f"bench-{i:04d}", "messages": [{"role": "system", "content": SYSTEM}, *turns],
            **({"tools": [GUIDELINE_TOOL]} if conversations else {}),
            "meta": {"taxonomy": "medical", "taxonomy_path": leaf, "teacher": "openai:gpt-4o-mini",
                     "seed_ids": [s["id"]], "axes": s.get("axes", {}), "task": "qa", "plan_item_id": f"bench-{i:04d}"}})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def start_server(directory: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "review", str(directory), "--serve", "--port", "0",
                             "--reviewer", "bench"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "300"})
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the server did not start: {proc.stderr.read()}")
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if found:
            return proc, found.group(1)


def run_pace(page, cards: int, pause_s: float) -> list[dict]:
    page.evaluate("window.distillTimings = []")
    for _ in range(cards):
        before = page.evaluate("document.body.dataset.cardId")
        page.keyboard.press("a")
        page.wait_for_function("id => document.body.dataset.cardId !== id", arg=before, timeout=30_000)
        if pause_s:
            time.sleep(pause_s)
    page.wait_for_timeout(200)
    return page.evaluate("window.distillTimings")


def describe(name: str, timings: list[dict]) -> None:
    for key in ("layout", "frame"):
        values = sorted(t[key] for t in timings)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:8s} {key:6s}: median {statistics.median(values):6.1f} ms, p90 {p90:6.1f} ms, "
              f"max {values[-1]:6.1f} ms over {len(values)} cards")
    cached = sum(t["cached"] for t in timings) / len(timings)
    print(f"{name:8s} preloaded: {cached:.0%} of cards were already in the page when the key was pressed")


def screenshot(page, directory: Path, path: Path) -> None:
    """A card mid-review: a few decisions made, a Markdown answer with a risk signal on screen."""
    from distill.records import Decision
    from distill.review.ledger import ReviewLedger
    from distill.review.state import ReviewState

    with ReviewLedger.open(directory) as ledger:
        state = ReviewState.load(ledger)
        items = list(state.items.values())
        for k, item in enumerate(items[:24]):
            verdict = "reject" if k in (3, 11) else "accept"
            ledger.add_decision(Decision(item_id=item.item_id, reviewer="bench", verdict=verdict, seconds=8.0 + k % 5,
                                         reasons=["wrong"] if verdict == "reject" else []))
    listed = [i for i in items[24:] if "**In short:**" in i.item.example.response] or items[24:]
    target = next((i for i in listed if i.item.signals), listed[0])
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    for _ in range(len(items)):  # the page opens on the next item to review; step to the target
        if page.evaluate("document.body.dataset.cardId") == target.item_id:
            break
        before = page.evaluate("document.body.dataset.cardId")
        page.keyboard.press("j")
        page.wait_for_function("id => document.body.dataset.cardId !== id", arg=before)
    page.wait_for_timeout(300)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--queue", type=int, default=300)
    parser.add_argument("--cards", type=int, default=150, help="cards per pace")
    parser.add_argument("--pause", type=float, default=0.8, help="seconds on each card at the reading pace")
    parser.add_argument("--conversations", action="store_true", help="tool-calling conversations, not Q&A")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/distill-bench-review"))
    args = parser.parse_args()

    import shutil

    from playwright.sync_api import sync_playwright

    from distill.review.model import ReviewSettings
    from distill.review.queue import build_queue

    shutil.rmtree(args.dir, ignore_errors=True)
    make_dataset(args.dir, args.items, conversations=args.conversations)
    build_queue(args.dir, ReviewSettings(size=args.queue, seed=1))
    proc, url = start_server(args.dir)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    try:
        with sync_playwright() as playwright:
            chromium = os.environ.get("DISTILL_CHROMIUM", "/usr/bin/chromium")
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            if args.screenshot:
                screenshot(page, args.dir, args.screenshot)
            rapid = run_pace(page, args.cards, 0.0)
            reading = run_pace(page, min(args.cards, 100), args.pause)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    describe("rapid", rapid)
    describe("reading", reading)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
