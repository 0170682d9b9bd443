"""A competent fake for taxonomies/support-agent.yaml: a support agent that calls the right tool with the right
arguments, and a customer that writes as the task's simulated user, both over the shipped fixture.

Deterministic (the same request, the same answer) and correct by construction: the agent reads the order number
or email from what the customer wrote, picks the tool the request needs, and answers from the tool's result;
the customer writes its situation from the task's prompt, gives its order number or email when asked, and ends
with the end marker once answered. It is the teacher of a measured recipe, so it must stay right, not clever.

`Faults(agent=support_agent, user=support_user)` puts both in the loopback server.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .agent import AgentReply, AgentView

ORDER = re.compile(r"\bNW-\d{5}\b", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CUSTOMER = "role-playing a Northwind customer"  # in the task's user system prompt: the requests the fake user answers
END = "[END]"
ASK = "Could you give me your order number (it looks like NW-50121) or the email on your account?"


def intent(text: str) -> str:
    """What a customer's words ask for, as the tool that serves it."""
    lower = text.lower()
    if "cancel" in lower:
        return "cancel_order"
    if any(word in lower for word in ("refund", "money back", "return", "pieces", "broken", "damaged", "wrong")):
        return "refund_order"
    if any(word in lower for word in ("arrive", "tracking", "deliver", "where is", "late")):
        return "track_shipment"
    if any(word in lower for word in ("what was in", "cost", "details", "what i ordered")):
        return "lookup_order"
    return "lookup_customer" if EMAIL.search(text) else "lookup_order"


def refund_reason(text: str) -> str:
    lower = text.lower()
    if any(word in lower for word in ("pieces", "broken", "damaged", "cracked")):
        return "damaged"
    if "wrong" in lower:
        return "wrong_item"
    if any(word in lower for word in ("never arrived", "never came", "not received", "lost")):
        return "not_received"
    return "changed_mind"


def support_agent(view: AgentView) -> AgentReply:
    """Call the tool the customer's request needs, once per customer turn, then answer from its result."""
    done = view.since_last_user()
    results = [turn for turn in done if turn.role == "tool"]
    if results:
        called = next((turn.calls[-1][0] for turn in reversed(done) if turn.calls), "")
        return AgentReply(content=explain(called, results[-1].content))
    said = [turn.content for turn in view.turns if turn.role == "user"]
    latest = said[-1] if said else ""
    orders = [m.upper() for text in said for m in ORDER.findall(text)]
    emails = [m.lower() for text in said for m in EMAIL.findall(text)]
    # The latest turn says what is wanted; an earlier one when the latest only answers a question ("NW-50121").
    wanted = intent(latest) if not ORDER.fullmatch(latest.strip(" .")) else None
    if wanted in (None, "lookup_order") and len(said) > 1 and not _asks_details(latest):
        wanted = intent(" ".join(said[:-1]))
    if wanted == "lookup_customer" or (not orders and emails):
        if not emails:
            return AgentReply(content=ASK)
        return AgentReply(calls=[("lookup_customer", {"email": emails[-1]})], reasoning="Find the account by email.")
    if not orders:
        return AgentReply(content=ASK)
    order = orders[-1]
    arguments: dict[str, Any] = {"order_id": order}
    if wanted == "refund_order":
        arguments["reason"] = refund_reason(" ".join(said))
    tool = wanted or "lookup_order"
    return AgentReply(calls=[(tool, arguments)], reasoning=f"The customer needs {tool} for {order}.")


def _asks_details(text: str) -> bool:
    return intent(text) == "lookup_order" and any(w in text.lower() for w in ("what was in", "cost", "details"))


def explain(tool: str, content: str) -> str:
    """The agent's answer from a tool's result, in plain words."""
    try:
        result = json.loads(content)
    except json.JSONDecodeError:
        return f"Here is what I found: {content[:200]}"
    if "error" in result:
        message = result["error"].get("message", "") if isinstance(result["error"], dict) else str(result["error"])
        return f"I could not find that ({message}). {ASK}"
    order = result.get("order_id", "")
    if tool == "refund_order":
        if result.get("refunded"):
            return (f"I have refunded ${result['amount']:.2f} for order {order}; it goes back to your original "
                    "payment method within 5 business days.")
        return f"I am sorry, I cannot refund order {order}: {result.get('reason')}."
    if tool == "cancel_order":
        if result.get("cancelled"):
            return f"Order {order} is cancelled, and ${result['refund_amount']:.2f} goes back to your original payment method."
        return f"I could not cancel order {order}: {result.get('reason')}."
    if tool == "track_shipment":
        if not result.get("shipped"):
            return f"Order {order} has not shipped yet ({result.get('message')})."
        last = (result.get("scans") or [{}])[-1]
        if result.get("lost"):
            return (f"Order {order} looks lost: {result['carrier']} last scanned it ({last.get('event')}) on "
                    f"{last.get('date')}. I can refund it for you as not received.")
        if result.get("delivered"):
            return f"Order {order} was delivered on {result['delivered']} by {result['carrier']}."
        return (f"Order {order} is with {result['carrier']} (tracking {result['tracking_number']}): "
                f"{last.get('event')} on {last.get('date')}, expected {result.get('estimated_delivery')}.")
    if tool == "lookup_customer":
        return (f"I found your account, {result.get('name')}. Your orders are: {', '.join(result.get('orders') or [])}.")
    items = ", ".join(f"{i['qty']} x {i['name']}" for i in result.get("items") or [])
    return (f"Order {order} ({result.get('status')}), placed {result.get('placed')}: {items}; "
            f"total ${result.get('total', 0):.2f}.")


def support_user(request: dict[str, Any]) -> str | None:
    """The customer's next message for a request the support-agent task's user prompt made; None for others."""
    messages = request.get("messages") or []
    system = request.get("system") or ""
    if isinstance(system, list):
        system = " ".join(part.get("text", "") for part in system)
    if messages and messages[0].get("role") == "system":
        system, messages = str(messages[0].get("content") or ""), messages[1:]
    if CUSTOMER not in system or not messages:
        return None
    prompt = _text(messages[0])
    situation = re.search(r"Your situation \([^)]*\): (.*)", prompt)
    order = re.search(r"Your order number: (\S+)", prompt)
    email = re.search(r"The email on your account: (\S+)", prompt)
    persona = re.search(r"Who you are: ([\w-]+)", system)
    mine = [m for m in messages[1:] if m.get("role") == "assistant"]  # the customer's own earlier turns
    who = persona.group(1) if persona else "calm"
    # The request's sampling seed (one per plan item) picks the wording, as a sampled teacher would vary it.
    pick = int(request.get("seed") or 0)
    if not mine:
        opening = first_person(situation.group(1) if situation else "I need help with my order.")
        greeting = _choose(GREETINGS.get(who, [""]), pick)
        if who == "confused-first-time-buyer":
            return f"{greeting} {opening}"  # no number: the agent must ask for it
        if order:
            opening += _choose([" My order number is {}.", " The order is {}.", " Order {}."], pick // 7).format(
                order.group(1))
        elif email:
            opening += _choose([" My email is {}.", " The account email is {}."], pick // 7).format(email.group(1))
        return f"{greeting} {opening}".strip()
    agent = _text(messages[-1])
    if ("order number" in agent or "email" in agent.lower()) and "?" in agent:
        if order:
            return _choose(["It is {}.", "Sure, it's {}.", "{}"], pick).format(order.group(1))
        if email:
            return _choose(["My email is {}.", "It's {}."], pick).format(email.group(1))
    if len(mine) == 1 and persona and persona.group(1) == "calm" and order and "total $" not in agent:
        return "Thank you. Could you also tell me what was in that order and what it cost?"
    return END


GREETINGS = {
    "calm": ["Hi.", "Hello there.", "Good morning.", "Hi, hope you are well."],
    "angry": ["", "This is not good enough.", "I am really annoyed.", "Seriously?"],
    "in-a-hurry": ["", "Quick one:", "Hi -"],
    "confused-first-time-buyer": ["Hello, I am not sure how this works.", "Hi, sorry, this is my first order with you.",
                                  "Hello, I hope this is the right place to ask."],
}


def _choose(options: list[str], pick: int) -> str:
    return options[pick % len(options)]


def first_person(text: str) -> str:
    """The task's second-person situation as the customer says it."""
    swaps = [(r"\bYou are\b", "I am"), (r"\byou are\b", "I am"), (r"\bYour\b", "My"), (r"\byour\b", "my"),
             (r"\bYou\b", "I"), (r"\byou\b", "I")]
    for pattern, repl in swaps:
        text = re.sub(pattern, repl, text)
    return text


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)
