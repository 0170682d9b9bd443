"""The review page in a real browser: Debian's Chromium driven by Playwright, keyboard only.

Needs /usr/bin/chromium (`bash scripts/setup.sh --tests` installs it); without it these tests fail, they
do not skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from sources_helpers import ALSO_SUPPORTING, SUPPORTING, documents_run, fridge_item

from distill.records import read_jsonl
from distill.review.ledger import ReviewLedger
from distill.review.server import ReviewServer
from review_helpers import conversation_row, example_row, leaf_ids, make_dataset, queue_ids, wait_for_decisions

CHROMIUM = os.environ.get("DISTILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE_QUESTION = 'Is <script>window.__pwned = "script"</script> a safe dose?'
HOSTILE_ANSWER = ('Take <img src=x onerror="window.__pwned = \'img\'"> twice daily. '
                  '[Read the leaflet](javascript:window.__pwned=\'link\') or '
                  '<a href="javascript:window.__pwned=\'anchor\'">this</a>.\n\n'
                  '**Bold advice** and the [NHS page](https://www.nhs.uk/conditions/asthma/).\n\n'
                  '- first step\n- second step\n\n```\n<b>not bold</b>\n```')
ORDER = ["planted"] + leaf_ids("respiratory/asthma", 4) + leaf_ids("cardiology/arrhythmias", 4)


@pytest.fixture(scope="module")
def chromium():
    """Playwright's sync API, for this module only: a session-long Playwright (pytest-playwright's fixtures)
    keeps its event loop marked running, and every later `asyncio.run()` in the session then fails."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def review(tmp_path):
    planted = example_row("planted", "respiratory/asthma", HOSTILE_QUESTION, HOSTILE_ANSWER)
    directory = make_dataset(tmp_path / "run", per_leaf=4, extra=[planted])
    queue_ids(directory, ORDER)
    server = ReviewServer(directory, port=0, owner="kim").start()
    yield directory, server
    server.stop()


def open_page(page, server):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    return errors


def card_id(page) -> str:
    return page.evaluate("document.body.dataset.cardId")


def press_and_wait(page, *keys: str) -> str:
    before = card_id(page)
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function("id => document.body.dataset.cardId !== id", arg=before)
    return card_id(page)


@pytest.mark.slow
def test_keyboard_accept_reject_edit_undo_skip(page, review, tmp_path):
    directory, server = review
    errors = open_page(page, server)
    assert card_id(page) == ORDER[0]
    assert "a accept" in page.inner_text("#keys") and page.inner_text("#reviewer") == "· kim"

    assert press_and_wait(page, "a") == ORDER[1]
    assert press_and_wait(page, "r", "1", "4", "Enter") == ORDER[2]
    page.keyboard.press("e")
    page.wait_for_selector("textarea[data-role=assistant]:focus")
    page.keyboard.press("Control+a")
    page.keyboard.type("Edited with the keyboard alone.")
    assert press_and_wait(page, "Control+Enter") == ORDER[3]
    found = wait_for_decisions(directory, 3)
    assert [(d.item_id, d.verdict, d.reasons) for d in found] == [
        (ORDER[0], "accept", []), (ORDER[1], "reject", ["wrong", "format"]), (ORDER[2], "edit", [])]
    assert found[2].messages[-1].content == "Edited with the keyboard alone."
    # The edit changed the answer only: the question is the item's own, as the dataset has it.
    question = next(row for row in read_jsonl(directory / "dataset.jsonl") if row["id"] == ORDER[2])["messages"][1]
    assert found[2].messages[1].content == question["content"] and found[0].seconds > 0

    # Undo takes back the edit (a new decision) and brings its card back.
    assert press_and_wait(page, "u") == ORDER[2]
    undo = wait_for_decisions(directory, 4)[3]
    assert undo.verdict == "undo" and undo.undoes == found[2].id
    assert "Edited with the keyboard alone." not in page.inner_text("#card")
    assert press_and_wait(page, "s") == ORDER[3]
    assert wait_for_decisions(directory, 5)[4].verdict == "skip"
    page.wait_for_function("() => document.getElementById('progress-text').textContent.startsWith('2 of 9 done')")

    # Navigation and the reason filter.
    assert press_and_wait(page, "k") == ORDER[2] and press_and_wait(page, "j") == ORDER[3]
    page.select_option("#filter-reason", "format")
    page.wait_for_function("id => document.body.dataset.cardId === id", arg=ORDER[1])
    assert "you rejected (wrong or hallucinated, format)" in page.inner_text("#card")
    page.screenshot(path=str(tmp_path / "review.png"))
    assert (tmp_path / "review.png").stat().st_size > 10_000
    assert errors == []


def test_teacher_text_renders_as_text_and_runs_nothing(page, review):
    directory, server = review
    errors = open_page(page, server)
    assert card_id(page) == "planted"
    card = page.locator("#card")
    text = card.inner_text()
    assert "<script>window.__pwned = \"script\"</script>" in text
    assert "<img src=x onerror=" in text and "[Read the leaflet](javascript:" in text
    assert '<a href="javascript:' in text and "<b>not bold</b>" in text
    for selector in ("script", "img", "iframe", "a[href^='javascript']", "[onerror]", "b"):
        assert card.locator(selector).count() == 0, selector
    # Markdown still works for what is safe: bold, lists, code, and an https link that cannot leak the token.
    assert card.locator("strong").inner_text() == "Bold advice"
    assert card.locator("li").all_inner_texts() == ["first step", "second step"]
    link = card.locator("a")
    assert link.count() == 1 and link.get_attribute("href") == "https://www.nhs.uk/conditions/asthma/"
    assert "noreferrer" in link.get_attribute("rel")
    # Editing shows the raw text in a textarea: still nothing runs.
    page.keyboard.press("e")
    page.wait_for_selector("textarea[data-role=user]")
    assert page.input_value("textarea[data-role=user]") == HOSTILE_QUESTION
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert errors == []


@pytest.mark.slow
def test_a_second_reviewers_page_skips_the_cards_another_has_open(chromium, page, review):
    """kim's page shows the first card; bob, opening the page next, starts on a card nobody has open."""
    directory, server = review
    with ReviewLedger.open(directory) as ledger:
        token = ledger.add_reviewer("bob")
    errors = open_page(page, server)
    assert card_id(page) == ORDER[0]
    other = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        bob = other.new_page()
        bob.on("pageerror", lambda exc: errors.append(str(exc)))
        bob.goto(f"{server.base_url}?token={token}")
        bob.wait_for_selector("body[data-ready='1']")
        assert bob.inner_text("#reviewer") == "· bob"
        assert card_id(bob) not in (None, ORDER[0])  # not the card on kim's screen
    finally:
        other.close()
    assert errors == []


@pytest.mark.slow
def test_a_decision_run_db_cannot_take_is_shown_and_pressing_again_saves_it(page, review):
    directory, server = review
    errors = open_page(page, server)
    server.session.ledger.db.execute("PRAGMA busy_timeout = 300")  # the server's wait for a lock, 10 s, cut short
    holder = sqlite3.connect(directory / "run.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds run.db's write lock
    try:
        assert press_and_wait(page, "a") == ORDER[1]
        page.wait_for_function("() => document.getElementById('toast').textContent.includes('busy')", timeout=10_000)
        assert page.inner_text("#toast") == (f"{ORDER[0]}: the run is busy (another process holds run.db's lock): "
                                             "your decision was not saved; press again")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert wait_for_decisions(directory, 1, timeout=1) == []
    assert press_and_wait(page, "k") == ORDER[0]
    assert press_and_wait(page, "a") == ORDER[1]
    assert [(d.item_id, d.verdict) for d in wait_for_decisions(directory, 1)] == [(ORDER[0], "accept")]
    assert errors == []


HOSTILE_ORDER = 'A-1 <img src=x onerror="window.__pwned = \'args\'">'
HOSTILE_NOTE = '<script>window.__pwned = "result"</script> leave it with the neighbour'
BROKEN_ARGUMENTS = '{"order_id": "A-2", <b>oops</b>'
HOSTILE_REASONING = 'Look it up first. <img src=x onerror="window.__pwned = \'reasoning\'">'


@pytest.fixture
def conversations(tmp_path):
    planted = conversation_row("conv", "support/orders", order_id=HOSTILE_ORDER, result_note=HOSTILE_NOTE,
                               reasoning=HOSTILE_REASONING)
    broken = conversation_row("conv-2", "support/orders")
    broken["messages"][2]["tool_calls"][0]["function"]["arguments"] = BROKEN_ARGUMENTS  # bad JSON, kept as written
    directory = make_dataset(tmp_path / "run", per_leaf=1, extra=[planted, broken])
    queue_ids(directory, ["conv", "conv-2", "asthma-000"])
    server = ReviewServer(directory, port=0, owner="kim").start()
    yield directory, server, planted
    server.stop()


@pytest.mark.slow
def test_a_conversation_shows_its_turns_tool_calls_and_folded_results_and_one_turn_is_reviewed(page, conversations):
    directory, server, planted = conversations
    errors = open_page(page, server)
    assert card_id(page) == "conv"
    card = page.locator("#card")
    turns = card.locator(".chat > .msg")
    assert turns.count() == 7
    assert page.text_content(".msg[data-turn='3'] .role").startswith("3 · assistant")
    assert page.text_content(".msg[data-turn='4'] .role").startswith("4 · tool · lookup_order")
    # The call: its tool's name and its arguments as indented JSON, the teacher's markup as text.
    assert page.inner_text(".msg[data-turn='3'] .tool-name") == "lookup_order"
    arguments = json.dumps({"order_id": HOSTILE_ORDER}, indent=2)
    assert page.inner_text(".msg[data-turn='3'] .tool-args") == arguments
    # The teacher's reasoning, folded and marked as such.
    reasoning = page.locator(".msg[data-turn='3'] details.reasoning")
    assert reasoning.locator("summary").inner_text() == f"teacher's reasoning · {len(HOSTILE_REASONING)} characters"
    assert not reasoning.locator(".reasoning-text").is_visible()
    # The tool's result, folded until clicked, then its JSON indented.
    result = page.locator(".msg[data-turn='4'] details.tool-result")
    content = planted["messages"][3]["content"]
    assert result.get_attribute("open") is None and not result.locator("pre").is_visible()
    assert result.locator("summary").inner_text() == f"result of lookup_order (call_1) · {len(content)} characters"
    result.locator("summary").click()
    assert result.locator("pre").is_visible()
    assert result.locator("pre").inner_text() == json.dumps(json.loads(content), indent=2)
    reasoning.locator("summary").click()
    assert reasoning.locator(".reasoning-text").inner_text() == HOSTILE_REASONING
    # Planted markup in the arguments, the result and the reasoning made no element and ran nothing.
    for selector in ("script", "img", "[onerror]"):
        assert card.locator(selector).count() == 0, selector
    assert "<script>window.__pwned" in result.inner_text() and '<img src=x onerror=' in card.inner_text()
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None

    # Edit one turn alone (its own button): the decision carries every other turn as it was.
    page.click(".msg[data-turn='5'] .turn-edit")
    page.wait_for_selector("textarea[data-index='4']:focus")
    assert card.locator("textarea").count() == 1
    page.keyboard.press("Control+a")
    page.keyboard.type("It has shipped and should arrive on Thursday.")
    assert press_and_wait(page, "Control+Enter") == "conv-2"
    edit = wait_for_decisions(directory, 1)[0]
    assert edit.verdict == "edit" and edit.messages[4].content == "It has shipped and should arrive on Thursday."
    call = edit.messages[2]
    assert call.tool_calls[0].function.arguments == {"order_id": HOSTILE_ORDER} and call.reasoning == HOSTILE_REASONING
    assert (edit.messages[3].tool_call_id, edit.messages[3].name, edit.messages[3].content) == ("call_1", "lookup_order",
                                                                                               content)

    # Arguments the teacher wrote as bad JSON: shown as written, and said to be.
    assert page.inner_text(".msg[data-turn='3'] .tool-args") == BROKEN_ARGUMENTS
    assert "not a JSON object" in page.inner_text(".msg[data-turn='3'] .tool-call-head")
    assert card.locator("b").count() == 0
    # Reject the next conversation for one turn (its own button): the reject's note names it.
    page.click(".msg[data-turn='7'] .turn-reject")
    page.wait_for_selector("#reasons:not([hidden])")
    assert page.input_value("#reason-turn") == "7"
    assert press_and_wait(page, "1", "Enter") == "asthma-000"
    reject = wait_for_decisions(directory, 2)[1]
    assert (reject.item_id, reject.reasons, reject.note) == ("conv-2", ["wrong"], "turn 7 (assistant)")
    # A single-turn item keeps its plain card: no numbers, no turn buttons, no turn to pick.
    assert card.locator(".turn-no, .turn-actions").count() == 0
    page.keyboard.press("r")
    page.wait_for_selector("#reasons:not([hidden])")
    assert page.locator("#reason-turn-label").is_hidden()
    assert errors == []


PLANTED_MARKUP = 'countersigned <img src=x onerror="window.__pwned = \'passage\'"> every Friday'


@pytest.fixture
def sourced(tmp_path):
    """A run generated from the shipped documents, its fridge passage (as documents.json keeps it) carrying markup
    in its supporting sentence: a user's document is data, whatever it holds."""
    run = documents_run(tmp_path)
    record = json.loads((run / "documents.json").read_text())
    record["passages"] = {k: v.replace("countersigned every Friday", PLANTED_MARKUP)
                          for k, v in record["passages"].items()}
    (run / "documents.json").write_text(json.dumps(record))
    server = ReviewServer(run, port=0, owner="kim").start()
    yield run, server, Path(record["folder"])
    server.stop()


FETCH = """async (href) => {
  const response = await fetch(href);
  const bytes = await response.arrayBuffer();
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
  return {status: response.status, type: response.headers.get("content-type"),
          sha256: digest.map((b) => b.toString(16).padStart(2, "0")).join(""),
          text: response.ok ? "" : new TextDecoder().decode(bytes)};
}"""


@pytest.mark.slow  # a run generated from the documents first
def test_the_source_passage_beside_the_answer_with_its_support_marked_and_a_link_to_its_page(page, sourced):
    run, server, folder = sourced
    fridge = fridge_item(run)["id"]
    errors = open_page(page, server)
    if card_id(page) != fridge:
        assert press_and_wait(page, "j") == fridge
    source = page.locator("#card .with-source aside.source")
    answer = page.locator("#card .with-source .msg.assistant")
    assert source.is_visible() and answer.is_visible()
    # Beside the answer: to its right, overlapping it in height.
    a, s = answer.bounding_box(), source.bounding_box()
    assert s["x"] >= a["x"] + a["width"] and s["y"] < a["y"] + a["height"]
    assert "protocols.pdf, page 3" in source.inner_text() and "Medication storage" in source.inner_text()
    # The supporting sentences inside <mark> elements, the passage's markup as text: no element, nothing run.
    marks = [text for text in source.locator("mark").all_text_contents()]
    assert marks == [ALSO_SUPPORTING, SUPPORTING.replace("countersigned every Friday", PLANTED_MARKUP)]
    assert source.locator("img, script, [onerror]").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None

    link = source.locator("a.source-link")
    assert link.get_attribute("href") == "/documents/protocols.pdf#page=3"
    assert link.inner_text() == "open page 3 of protocols.pdf"
    pdf = page.evaluate(FETCH, link.get_attribute("href"))
    original = (folder / "protocols.pdf").read_bytes()
    assert (pdf["status"], pdf["type"], pdf["sha256"]) == (200, "application/pdf", hashlib.sha256(original).hexdigest())
    (folder / "protocols.pdf").write_bytes(original + b"\n% edited since the run\n")
    changed = page.evaluate(FETCH, link.get_attribute("href"))
    assert changed["status"] == 409 and "protocols.pdf has changed since the run" in changed["text"]

    # The example not made from a passage: its card as before, no source beside it.
    press_and_wait(page, "j")
    assert page.locator("#card .msg.assistant").is_visible()
    assert page.locator("#card .with-source, #card .source").count() == 0
    assert errors == []
