"""Northwind's order system, as the support agent's tools see it: a fixture (store.json) read, never written.

Every tool is a plain function of its arguments and the fixture: the same call gives the same result, so a
resumed run replays a conversation exactly. A refund or a cancellation is an answer, not a change to the file:
what changes lives only in the conversation. A lookup of something that does not exist raises LookupError, which
distill records as the tool's error for the agent to read.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

STORE = Path(__file__).resolve().parent / "store.json"
REASONS = ("damaged", "wrong_item", "not_received", "changed_mind")


@cache
def _store() -> dict[str, Any]:
    return json.loads(STORE.read_text(encoding="utf-8"))


def _today() -> date:
    return date.fromisoformat(_store()["today"])


def _order(order_id: str) -> dict[str, Any]:
    wanted = order_id.strip().upper()
    for order in _store()["orders"]:
        if order["id"] == wanted:
            return order
    raise LookupError(f"no order {order_id!r} (order numbers look like NW-50121)")


def _days_since(day: str) -> int:
    return (_today() - date.fromisoformat(day)).days


def _lost(order: dict[str, Any]) -> bool:
    scans = order.get("scans") or []
    limit = _store()["policy"]["lost_after_days_without_scan"]
    return order["status"] == "shipped" and bool(scans) and _days_since(scans[-1]["date"]) >= limit


def lookup_customer(email: str) -> dict[str, Any]:
    """A customer by the email on their account, with their order numbers."""
    wanted = email.strip().lower()
    for customer in _store()["customers"]:
        if customer["email"] == wanted:
            orders = [o["id"] for o in _store()["orders"] if o["customer_id"] == customer["id"]]
            return {**customer, "orders": orders}
    raise LookupError(f"no customer with the email {email!r}")


def lookup_order(order_id: str) -> dict[str, Any]:
    """An order: its items, total, status and dates."""
    order = _order(order_id)
    customer = next(c for c in _store()["customers"] if c["id"] == order["customer_id"])
    return {"order_id": order["id"], "customer": customer["name"], "status": order["status"],
            "placed": order["placed"], "delivered": order["delivered"], "total": order["total"],
            "items": [{k: item[k] for k in ("sku", "name", "qty", "price", "final_sale")} for item in order["items"]]}


def track_shipment(order_id: str) -> dict[str, Any]:
    """Where an order's parcel is: the carrier's scans, the expected delivery, whether it is lost."""
    order = _order(order_id)
    if order["status"] in ("processing", "cancelled"):
        return {"order_id": order["id"], "status": order["status"], "shipped": False,
                "message": "not shipped yet" if order["status"] == "processing" else "the order was cancelled"}
    return {"order_id": order["id"], "status": order["status"], "shipped": True, "carrier": order["carrier"],
            "tracking_number": order["tracking"], "scans": order["scans"], "delivered": order["delivered"],
            "estimated_delivery": order.get("estimated_delivery"), "lost": _lost(order)}


def cancel_order(order_id: str) -> dict[str, Any]:
    """Cancel an order that has not shipped yet; its payment is refunded in full."""
    order = _order(order_id)
    if order["status"] == "processing":
        return {"order_id": order["id"], "cancelled": True, "refund_amount": order["total"],
                "refund_to": "original payment method"}
    why = {"shipped": "it has already shipped: the customer can refuse the delivery or return it once delivered",
           "delivered": "it was delivered: a return and refund applies instead (refund_order)",
           "cancelled": "it is already cancelled"}[order["status"]]
    return {"order_id": order["id"], "cancelled": False, "reason": why}


def refund_order(order_id: str, reason: str, skus: list[str] | None = None) -> dict[str, Any]:
    """Refund an order's items (all of them, or those in `skus`) as the refund policy allows."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    order = _order(order_id)
    policy = _store()["policy"]
    items = [i for i in order["items"] if skus is None or i["sku"] in skus]
    if not items:
        raise LookupError(f"none of {skus} is in order {order['id']}")

    def refused(why: str) -> dict[str, Any]:
        return {"order_id": order["id"], "refunded": False, "amount": 0.0, "reason": why}

    def refunded(chosen: list[dict[str, Any]], note: str) -> dict[str, Any]:
        amount = round(sum(i["price"] * i["qty"] for i in chosen), 2)
        return {"order_id": order["id"], "refunded": True, "amount": amount, "items": [i["sku"] for i in chosen],
                "refund_to": "original payment method", "policy": note}

    if order["status"] == "cancelled":
        return refused("the order was cancelled; nothing was charged")
    if order["status"] == "processing":
        return refused("the order has not shipped: cancel it instead (cancel_order)")
    if order["status"] == "shipped":
        if reason == "not_received" and _lost(order):
            return refunded(items, f"no tracking scan for {policy['lost_after_days_without_scan']} days: lost")
        return refused(f"still on its way (expected {order.get('estimated_delivery')}); refund once delivered or "
                       "when the parcel is lost")
    age = _days_since(order["delivered"])
    if reason == "not_received":
        return refused(f"marked delivered on {order['delivered']}: check with neighbours, then a carrier claim")
    if reason in ("damaged", "wrong_item"):
        if age > policy["damaged_or_wrong_window_days"]:
            return refused(f"delivered {age} days ago; damaged or wrong items within "
                           f"{policy['damaged_or_wrong_window_days']} days")
        return refunded(items, "damaged or wrong items are refunded in full")
    if age > policy["return_window_days"]:
        return refused(f"delivered {age} days ago; returns within {policy['return_window_days']} days")
    allowed = [i for i in items if not i["final_sale"] or policy["final_sale_refundable"]]
    if not allowed:
        return refused("final-sale items are not refunded for a change of mind")
    return refunded(allowed, f"change-of-mind return within {policy['return_window_days']} days")
