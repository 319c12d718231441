"""Checkout v3 orders in the Kustom double: create, read, update.

The merchant's body is checked as sent (:func:`playground.kustom.rules.validate_order`);
then Kustom's own additions are applied (the selected shipping option and, when Kustom
prices shipping itself, its ``shipping_fee`` line: ``with_kustom_shipping``). Fields Kustom
sets are ignored when a merchant sends them; a completed order is ``READ_ONLY_ORDER``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from playground.kustom.answers import KustomError, bad_value, timestamp
from playground.kustom.rules import validate_order, with_kustom_shipping
from playground.kustom.snippet import html_snippet
from playground.kustom.store import DoubleStore

# Fields of the checkout order that Kustom sets; ignored when a merchant sends them.
READ_ONLY_ORDER_FIELDS = frozenset(
    {
        "order_id",
        "name",
        "status",
        "html_snippet",
        "started_at",
        "completed_at",
        "last_modified_at",
        "recurring_token",
        "recurring_description",
        # Kustom records the shopper's choice (or the preselected option) itself.
        "selected_shipping_option",
    }
)
DEFAULT_OPTIONS = {
    "allow_separate_shipping_address": False,
    "date_of_birth_mandatory": False,
    "require_validate_callback_success": False,
}


def held_order(
    record: Mapping[str, Any],
    merchant: Mapping[str, Any],
    changes: Mapping[str, Any],
    shopper_choice: str | None,
) -> dict[str, Any]:
    """The stored order with the merchant's ``changes`` applied and Kustom's additions
    (selected shipping option, its line and amounts) derived from ``merchant``."""
    held = with_kustom_shipping(merchant, shopper_choice)
    merged = copy.deepcopy(record["order"])
    merged.update(copy.deepcopy(dict(changes)))
    for name in ("order_lines", "order_amount", "order_tax_amount"):
        merged[name] = held[name]
    merged.pop("selected_shipping_option", None)
    if "selected_shipping_option" in held:
        merged["selected_shipping_option"] = held["selected_shipping_option"]
    return merged


class CheckoutOrders(DoubleStore):
    """``/checkout/v3/orders``: the merchant's side of a checkout order."""

    def create_order(self, payload: Any, *, base_url: str | None = None) -> dict[str, Any]:
        """``POST /checkout/v3/orders``: the created order (a copy).

        The merchant's body is checked as sent (``validate_order``); what Kustom adds itself
        (the selected shipping option, see ``with_kustom_shipping``) comes after.
        """
        if not isinstance(payload, dict):
            raise bad_value(["body"])
        order = {k: copy.deepcopy(v) for k, v in payload.items() if k not in READ_ONLY_ORDER_FIELDS}
        errors = validate_order(order)
        if errors:
            raise bad_value(errors)
        merchant = copy.deepcopy(order)
        held = with_kustom_shipping(merchant, None)
        base = (self.base_url or base_url or "http://127.0.0.1").rstrip("/")
        order_id = str(uuid.uuid4())
        now = timestamp()
        country = order["purchase_country"]
        built: dict[str, Any] = {
            "order_id": order_id,
            "status": "checkout_incomplete",
            "purchase_country": country,
            "purchase_currency": order["purchase_currency"],
            "locale": order["locale"],
            "billing_address": {"country": country, **order.pop("billing_address", {})},
            "customer": order.pop("customer", {}),
            "shipping_address": {"country": country, **order.pop("shipping_address", {})},
            "order_amount": held["order_amount"],
            "order_tax_amount": held["order_tax_amount"],
            "order_lines": held["order_lines"],
            "merchant_urls": order["merchant_urls"],
            "html_snippet": html_snippet(base, order_id),
            "started_at": now,
            "last_modified_at": now,
            "options": {**DEFAULT_OPTIONS, **order.pop("options", {})},
            "external_payment_methods": order.pop("external_payment_methods", []),
            "external_checkouts": order.pop("external_checkouts", []),
        }
        if "selected_shipping_option" in held:
            built["selected_shipping_option"] = held["selected_shipping_option"]
        for key, value in order.items():
            built.setdefault(key, value)
        with self.lock:
            self._orders[order_id] = {
                "order": built,
                # The merchant's order as sent and merged, without what Kustom added: the
                # base that updates merge into and that Kustom's additions are re-applied to.
                "merchant_order": merchant,
                "shopper_choice": None,  # the shipping option id the shopper picked
                "om": None,
                "expired": False,
                "update_count": 0,
                "revision": 0,  # every change the shopper could see: merchant or shopper
                "acknowledged": False,
                "acknowledge_count": 0,
                "authorization_extensions": 0,
                "base_url": base,
            }
            self._touch(self._orders[order_id])
            return copy.deepcopy(built)

    def read_order(self, order_id: str) -> dict[str, Any]:
        """``GET /checkout/v3/orders/{id}``."""
        with self.lock:
            return copy.deepcopy(self._checkout_record(order_id)["order"])

    def update_order(self, order_id: str, payload: Any) -> dict[str, Any]:
        """``POST /checkout/v3/orders/{id}``: merge, re-validate, bump ``last_modified_at``.

        The body merges into the merchant's previous order (not into what Kustom added),
        is checked as sent, and then Kustom's additions are re-applied: the still-selected
        shipping option's line when Kustom prices shipping itself.
        """
        with self.lock:
            record = self._checkout_record(order_id)
            order = record["order"]
            if order["status"] != "checkout_incomplete":
                raise KustomError(403, "READ_ONLY_ORDER", ["Resource is read-only"])
            if not isinstance(payload, dict):
                raise bad_value(["body"])
            changes = {
                key: copy.deepcopy(value)
                for key, value in payload.items()
                if key not in READ_ONLY_ORDER_FIELDS
            }
            merchant = {**copy.deepcopy(record["merchant_order"]), **changes}
            errors = validate_order(merchant)
            if errors:
                raise bad_value(errors)
            merged = held_order(record, merchant, changes, record["shopper_choice"])
            country = merged["purchase_country"]
            for name in ("billing_address", "shipping_address"):
                address = merged.setdefault(name, {})
                if name not in payload and set(address) <= {"country"}:
                    address["country"] = country
            merged["options"] = {**DEFAULT_OPTIONS, **merged.get("options", {})}
            merged["last_modified_at"] = timestamp()
            record["order"] = merged
            record["merchant_order"] = merchant
            record["update_count"] += 1
            record["revision"] = record.get("revision", 0) + 1
            self._touch(record)
            return copy.deepcopy(merged)
