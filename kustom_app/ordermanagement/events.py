"""A commerce backend's payment event (CONTRACT section 4) made a `PaymentRequest`.

The web schema has checked the event's shape; here its money is made minor units within
Kustom's limits and its lines and shipping info Kustom's, or the event is refused (400)
before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kustom_app.money import NotRepresentable, to_major, to_minor
from kustom_app.ordermanagement.errors import refuse
from kustom_app.ordermanagement.kinds import CANCEL, CAPTURE, EVENT_ID_FIELD, REFUND
from kustom_app.ordermanagement.lines import (
    MAX_OM_AMOUNT,
    kustom_order_lines,
    kustom_shipping_info,
)


@dataclass(frozen=True)
class PaymentRequest:
    """A checked payment event, amounts in minor units, ready to be recorded."""

    kind: str
    op_id: str
    cart_id: str
    amount: int | None = None
    currency: str | None = None
    kustom_body: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """What must be equal for a repeated id to be the same event (money, not wording)."""
        basis = json.dumps([self.kind, self.cart_id, self.amount, self.currency])
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


def _minor_amount(amount: Decimal, currency: str, what: str) -> int:
    try:
        minor = to_minor(amount, currency, what=what)
    except NotRepresentable as e:
        raise refuse("amount_not_representable", e.message, field=what) from e
    if not 1 <= minor <= MAX_OM_AMOUNT:
        raise refuse(
            "invalid_amount",
            f"{what} must be above zero and at most {to_major(MAX_OM_AMOUNT, currency)} "
            f"{currency}.",
            field=what,
        )
    return minor


def _extras(event: dict[str, Any], amount: int, *, shipping: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if event.get("description"):
        body["description"] = event["description"]
    if event.get("lines"):
        body["order_lines"] = kustom_order_lines(event["lines"], event["currencyCode"], amount)
    if shipping and event.get("shippingInfo"):
        body["shipping_info"] = kustom_shipping_info(event["shippingInfo"])
    return body


def prepare_capture(event: dict[str, Any]) -> PaymentRequest:
    """A capture event (as the web schema loads it: Decimal amount) → a `PaymentRequest`."""
    return _money_request(CAPTURE, event, shipping=True)


def prepare_refund(event: dict[str, Any]) -> PaymentRequest:
    """A refund event → a `PaymentRequest` (no shipping info: Kustom takes none)."""
    return _money_request(REFUND, event, shipping=False)


def _money_request(kind: str, event: dict[str, Any], *, shipping: bool) -> PaymentRequest:
    currency = event["currencyCode"]
    amount = _minor_amount(event["amount"], currency, "amount")
    return PaymentRequest(
        kind,
        event[EVENT_ID_FIELD[kind]],
        event["cartId"],
        amount,
        currency,
        _extras(event, amount, shipping=shipping),
    )


def prepare_cancel(cart_id: str) -> PaymentRequest:
    """A cancel is keyed by the cart: one Kustom order, one cancel (or release)."""
    return PaymentRequest(CANCEL, cart_id, cart_id)
