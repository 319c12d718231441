"""Kustom's push and fraud notifications (CONTRACT section 6). Answer at once; work in tasks."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from kustom_app.logs import event_log
from kustom_app.metrics import NOTIFICATIONS
from webhooks import extension
from webhooks.callback_auth import verified_callback_cart
from webhooks.errors import ApiError, parse_json_object

log = event_log(__name__)

bp = Blueprint("kustom_confirm", __name__, url_prefix="/kustom")

FRAUD_EVENTS = {"FRAUD_RISK_ACCEPTED", "FRAUD_RISK_REJECTED", "FRAUD_RISK_STOPPED"}
MAX_ORDER_ID = 255
UNKNOWN_EVENT = "unknown"  # the metric label of every event type not in FRAUD_EVENTS
_LOGGED_EVENT_TYPE_LENGTH = 64


def _order_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ORDER_ID:
        raise ApiError(400, "missing_order_id", "The Kustom order id is missing or malformed.")
    return value


@bp.post("/push")
def push() -> Response:
    """Kustom's push (empty body, order id in the query): complete in a task, answer 200."""
    cart_id = verified_callback_cart()
    order_id = _order_id(request.args.get("order_id"))
    extension.jobs().complete(cart_id, order_id, "push")
    return jsonify({"status": "accepted"})


@bp.post("/notification")
def notification() -> Response:
    """A fraud decision on a pending order: recorded on the cart, then forwarded to the
    commerce backend by a task (with retries). Any other event is answered and ignored."""
    cart_id = verified_callback_cart()
    body = parse_json_object()
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise ApiError(
            400,
            "invalid_event_type",
            "event_type must be a string naming the event, such as FRAUD_RISK_ACCEPTED.",
        )
    if event_type not in FRAUD_EVENTS:
        return _ignored(cart_id, event_type)
    order_id = _order_id(body.get("order_id") or request.args.get("order_id"))
    # Kept on the cart as it arrives, whatever the commerce backend's state; only for the
    # cart's own order (the task checks with Kustom before it forwards anything).
    extension.services().store.record_fraud_decision(cart_id, order_id, event_type)
    extension.jobs().fraud_decision(cart_id, order_id, event_type)
    NOTIFICATIONS.labels(event_type).inc()
    return jsonify({"status": "accepted"})


def _ignored(cart_id: str, event_type: str) -> Response:
    """An event we do not act on: 200, so that Kustom counts it delivered and does not
    send it again.

    The documented events are FRAUD_RISK_ACCEPTED, _REJECTED and _STOPPED
    (https://docs.klarna.com/order-management/get-started/pending-orders/), but the list
    has changed before: Klarna's older page also names ORDER_ACCEPTED / ORDER_REJECTED
    (https://developers.klarna.com/en/gb/kco-v3/pending-orders). Refusing a new name
    would change nothing but its retries. The raw name is logged (cut short), never used
    as a metric label.
    """
    log.warning(
        "kustom.notification.unknown_event_type",
        cart=cart_id,
        event_type=event_type[:_LOGGED_EVENT_TYPE_LENGTH],
    )
    NOTIFICATIONS.labels(UNKNOWN_EVENT).inc()
    return jsonify({"status": "ignored"})
