"""Kustom's push and fraud notifications (CONTRACT section 6). Answer at once; work in tasks."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from webhooks.callback_auth import verified_callback_cart
from webhooks.errors import ApiError, parse_json_object

bp = Blueprint("kustom_confirm", __name__, url_prefix="/kustom")

FRAUD_EVENTS = {"FRAUD_RISK_ACCEPTED", "FRAUD_RISK_REJECTED", "FRAUD_RISK_STOPPED"}
MAX_ORDER_ID = 255


def _order_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ORDER_ID:
        raise ApiError(400, "missing_order_id", "The Kustom order id is missing or malformed.")
    return value


@bp.post("/push")
def push() -> Response:
    """Kustom's push (empty body, order id in the query): complete in a task, answer 200."""
    cart_id = verified_callback_cart()
    order_id = _order_id(request.args.get("order_id"))
    current_app.extensions["kustom.enqueue"].complete(cart_id, order_id, "push")
    return jsonify({"status": "accepted"})


@bp.post("/notification")
def notification() -> Response:
    """A fraud decision on a pending order: recorded on the cart, then forwarded to the
    commerce backend by a task (with retries)."""
    cart_id = verified_callback_cart()
    body = parse_json_object()
    event_type = body.get("event_type")
    if event_type not in FRAUD_EVENTS:
        raise ApiError(
            400,
            "unknown_event_type",
            "event_type must be one of " + ", ".join(sorted(FRAUD_EVENTS)) + ".",
        )
    order_id = _order_id(body.get("order_id") or request.args.get("order_id"))
    # Kept on the cart as it arrives, whatever the commerce backend's state; only for the
    # cart's own order (the task checks with Kustom before it forwards anything).
    current_app.extensions["kustom"].store.record_fraud_decision(cart_id, order_id, event_type)
    current_app.extensions["kustom.enqueue"].fraud_decision(cart_id, order_id, event_type)
    return jsonify({"status": "accepted"})
