"""The purchase in the Kustom double: the shopper in the iframe, completion, fraud, expiry.

The shopper page (:mod:`playground.kustom.shopper_page`) drives ``shopper_view``,
``shopper_select_shipping`` and ``shopper_pay``: the shipping choice calls the merchant's
``shipping_option_update`` (or, without one, swaps Kustom's own shipping line), Pay runs
the ``validation`` callback, completes the order and pushes ``push_delay_seconds`` later.
Tests take the same steps directly: ``complete_order`` (an AUTHORIZED order-management
order), ``set_fraud_status`` (with its notification), ``expire_order`` (Kustom's 48 h).
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from playground.kustom.answers import DoubleError, now, timestamp
from playground.kustom.callbacks import MerchantCallbacks
from playground.kustom.checkout import held_order
from playground.kustom.ordermanagement import AUTHORIZATION_DAYS
from playground.kustom.rules import validate_order

# ISO 4217 exponents other than 2, for showing amounts to the shopper.
CURRENCY_EXPONENTS = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0,
    "TND": 3, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip
ADDRESS_FIELDS = (
    "given_name", "family_name", "email", "street_address", "postal_code", "city", "phone",
)  # fmt: skip
REQUIRED_ADDRESS_FIELDS = frozenset(ADDRESS_FIELDS) - {"phone"}
UPDATED_TEXT = "Your order was just updated. Please check it and press Pay again."
FRAUD_STATUSES = frozenset({"ACCEPTED", "PENDING", "REJECTED"})
FRAUD_EVENTS = {"ACCEPTED": "FRAUD_RISK_ACCEPTED", "REJECTED": "FRAUD_RISK_REJECTED"}


def short_reference() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(7))


def default_address(country: str) -> dict[str, str]:
    return {
        "given_name": "Test",
        "family_name": "Person",
        "email": "test.person@example.com",
        "street_address": "Teststreet 1",
        "postal_code": "12345",
        "city": "Testcity",
        "phone": "+46700000000",
        "country": country,
    }


UPDATE_ANSWER_FIELDS = ("order_amount", "order_tax_amount", "order_lines", "shipping_options")


def update_answer_changes(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``shipping_service_response`` Kustom applies to the order
    (kustom-checkout-callbacks.yml: "The order will be updated according to the response")."""
    return {name: answer[name] for name in UPDATE_ANSWER_FIELDS if name in answer}


def validation_refusal(
    status: int | None, answer: Any, headers: Mapping[str, str], *, must_answer: bool
) -> dict[str, Any] | None:
    """What the shopper sees when the merchant's validation answer stops the purchase, or
    None when it goes on.

    A 303 with a Location sends the shopper there; a 4xx shows its ``error_text``; a
    timeout or 5xx does not stop the purchase unless the order asked for
    ``options.require_validate_callback_success``
    (https://docs.kustom.co/v3/checkout/use-cases/validate-order,
    https://docs.kustom.co/contents/api/checkout-callback/other/validate.md).
    """
    if status == 303 and headers.get("Location"):
        return {"redirect": headers["Location"], "rejected": True}
    if status is not None and 400 <= status < 500:
        text = answer.get("error_text") if isinstance(answer, dict) else None
        return {"error": text or "The shop did not accept the order.", "rejected": True}
    if status != 200 and must_answer:
        return {"error": "The shop could not be reached. Please try again."}
    return None


class Purchase(MerchantCallbacks):
    """What happens to a checkout order between the shopper and Kustom's decisions."""

    def complete_order(
        self,
        order_id: str,
        *,
        fraud_status: str = "ACCEPTED",
        billing_address: Mapping[str, Any] | None = None,
        shipping_address: Mapping[str, Any] | None = None,
        customer: Mapping[str, Any] | None = None,
        push: bool = False,
        push_delay_seconds: float = 0.0,
    ) -> dict[str, Any]:
        """The shopper completes the purchase: ``checkout_complete`` and an AUTHORIZED OM order.

        With ``push=True`` the merchant's push URL is POSTed from a background thread after
        ``push_delay_seconds``. Returns :meth:`stored_order`.
        """
        if fraud_status not in ("ACCEPTED", "PENDING"):
            raise DoubleError(400, "fraud_status must be ACCEPTED or PENDING")
        for name, value in (
            ("billing_address", billing_address),
            ("shipping_address", shipping_address),
            ("customer", customer),
        ):
            if value is not None and not isinstance(value, Mapping):
                raise DoubleError(400, f"{name} must be an object")
        with self.lock:
            record = self._admin_record(order_id)
            if record["expired"]:
                raise DoubleError(409, "order is expired")
            order = record["order"]
            if order["status"] != "checkout_incomplete":
                raise DoubleError(409, f"order is {order['status']}")
            country = order["purchase_country"]
            billing = {
                **default_address(country),
                **order.get("billing_address", {}),
                **(billing_address or {}),
            }
            shipping = {**billing, **order.get("shipping_address", {}), **(shipping_address or {})}
            completed = now()
            order.update(
                status="checkout_complete",
                completed_at=timestamp(completed),
                last_modified_at=timestamp(completed),
                billing_address=billing,
                shipping_address=shipping,
                customer={**order.get("customer", {}), **(customer or {})},
            )
            record["om"] = {
                "order_id": order_id,
                "status": "AUTHORIZED",
                "fraud_status": fraud_status,
                "order_amount": order["order_amount"],
                "original_order_amount": order["order_amount"],
                "captured_amount": 0,
                "refunded_amount": 0,
                "remaining_authorized_amount": order["order_amount"],
                "purchase_currency": order["purchase_currency"],
                "purchase_country": country,
                "locale": order["locale"],
                "order_lines": copy.deepcopy(order["order_lines"]),
                "merchant_reference1": order.get("merchant_reference1", ""),
                "merchant_reference2": order.get("merchant_reference2", ""),
                "klarna_reference": short_reference(),
                "billing_address": copy.deepcopy(billing),
                "shipping_address": copy.deepcopy(shipping),
                "customer": copy.deepcopy(order["customer"]),
                "created_at": timestamp(completed),
                "expires_at": timestamp(completed + timedelta(days=AUTHORIZATION_DAYS)),
                "initial_payment_method": {"type": "INVOICE", "description": "Pay later"},
                "shipping_info": [],
                "captures": [],
                "refunds": [],
            }
            if "merchant_data" in order:
                record["om"]["merchant_data"] = order["merchant_data"]
            selected = order.get("selected_shipping_option")
            if isinstance(selected, dict):  # the shopper's choice in the iframe
                record["om"]["selected_shipping_option"] = {
                    name: copy.deepcopy(selected[name])
                    for name in ("id", "name", "price", "tax_amount", "tax_rate", "method")
                    if name in selected
                }
            self.lock.notify_all()
        if push:
            self.send_push(order_id, delay_seconds=push_delay_seconds)
        result = self.stored_order(order_id)
        assert result is not None
        return result

    def expire_order(self, order_id: str) -> None:
        """The order answers 404 everywhere from now on (Kustom's 48 h expiry)."""
        with self.lock:
            self._admin_record(order_id)["expired"] = True

    def set_fraud_status(
        self, order_id: str, fraud_status: str, *, notify: bool = False
    ) -> dict[str, Any]:
        """Resolve a pending order (REJECTED also cancels it); optionally POST the
        ``merchant_urls.notification`` URL with ``{"order_id", "event_type"}``."""
        if fraud_status not in FRAUD_STATUSES:
            raise DoubleError(400, f"fraud_status must be one of {sorted(FRAUD_STATUSES)}")
        with self.lock:
            record = self._admin_record(order_id)
            om = record["om"]
            if om is None:
                raise DoubleError(409, "order is not completed")
            om["fraud_status"] = fraud_status
            if fraud_status == "REJECTED" and om["captured_amount"] == 0:
                om["status"] = "CANCELLED"
                om["remaining_authorized_amount"] = 0
            url_template = record["order"]["merchant_urls"].get("notification")
        if notify and fraud_status in FRAUD_EVENTS:
            if not url_template:
                raise DoubleError(409, "order has no merchant_urls.notification")
            self._post_callback(
                "notification",
                order_id,
                url_template,
                json_body={"order_id": order_id, "event_type": FRAUD_EVENTS[fraud_status]},
                delay_seconds=0.0,
            )
        result = self.stored_order(order_id)
        assert result is not None
        return result

    def _shopper_record(self, order_id: str) -> dict[str, Any]:
        record = self._live_record(order_id)
        if record is None:
            raise DoubleError(404, "This checkout has expired or does not exist.")
        return record

    def shopper_view(self, order_id: str) -> dict[str, Any]:
        """What the checkout iframe shows: the order as Kustom has it now."""
        with self.lock:
            record = self._shopper_record(order_id)
            order = record["order"]
            country = order["purchase_country"]
            options = order.get("shipping_options") or []
            selected = (order.get("selected_shipping_option") or {}).get("id") or next(
                (o.get("id") for o in options if o.get("preselected")), None
            )
            currency = str(order["purchase_currency"]).upper()
            return copy.deepcopy(
                {
                    "order_id": order_id,
                    "status": order["status"],
                    "revision": record.get("revision", 0),
                    "purchase_country": country,
                    "purchase_currency": currency,
                    "currency_exponent": CURRENCY_EXPONENTS.get(currency, 2),
                    "locale": order["locale"],
                    "order_amount": order["order_amount"],
                    "order_tax_amount": order["order_tax_amount"],
                    "order_lines": order["order_lines"],
                    "shipping_options": options,
                    "selected_shipping_option": selected,
                    "billing_address": {
                        **default_address(country),
                        **(order.get("billing_address") or {}),
                    },
                    "terms_url": order["merchant_urls"].get("terms"),
                }
            )

    def _callback_body(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Kustom's ``shipping_service_request`` for the update callbacks."""
        body = {
            name: copy.deepcopy(order[name])
            for name in (
                "order_amount",
                "order_tax_amount",
                "order_lines",
                "purchase_currency",
                "locale",
                "billing_address",
                "shipping_address",
                "customer",
                "merchant_reference1",
                "merchant_reference2",
                "merchant_data",
            )
            if name in order
        }
        return body

    def shopper_select_shipping(self, order_id: str, option_id: str) -> dict[str, Any]:
        """The shopper picks a shipping option in the iframe.

        With ``merchant_urls.shipping_option_update`` Kustom calls the merchant, and the
        merchant's 200 answer (``order_amount``, ``order_tax_amount``, ``order_lines``,
        ``shipping_options``) is checked like an order update and applied as is: nothing is
        added for shipping (the merchant's lines carry it); a 4xx answer's ``error_text``
        is shown. Without that URL Kustom prices shipping itself: its own ``shipping_fee``
        line is swapped for the new option's (docs.kustom.co checkout/use-cases/shipping).
        Returns :meth:`shopper_view`, with ``error`` when nothing changed.
        """
        with self.lock:
            record = self._shopper_record(order_id)
            order = record["order"]
            if order["status"] != "checkout_incomplete":
                raise DoubleError(409, "This order is already paid.")
            option = next(
                (o for o in order.get("shipping_options") or [] if o.get("id") == option_id),
                None,
            )
            if option is None:
                raise DoubleError(400, "That shipping option is not offered.")
            url = order["merchant_urls"].get("shipping_option_update")
            body = {**self._callback_body(order), "selected_shipping_option": copy.deepcopy(option)}
        changes: dict[str, Any] = {}
        if url:
            status, answer, _ = self._call_merchant("shipping_option_update", order_id, url, body)
            if status != 200 or not isinstance(answer, dict):
                text = answer.get("error_text") if isinstance(answer, dict) else None
                return {
                    **self.shopper_view(order_id),
                    "error": text or "The shop could not update the shipping. Please try again.",
                }
            changes = update_answer_changes(answer)
        error = self.apply_merchant_changes(order_id, changes, option_id)
        if error:
            return {**self.shopper_view(order_id), "error": error}
        return self.shopper_view(order_id)

    def apply_merchant_changes(
        self,
        order_id: str,
        changes: Mapping[str, Any],
        option_id: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Apply a merchant's 200 answer to an update callback, checked like an order update;
        ``extra`` (the shopper's new addresses) goes in unchecked. The error text when the
        answer does not add up (nothing changes then), else None."""
        with self.lock:
            current = self._live_record(order_id)
            if current is None or current["order"]["status"] != "checkout_incomplete":
                raise DoubleError(409, "This order can no longer be changed.")
            merchant = {**copy.deepcopy(current["merchant_order"]), **copy.deepcopy(changes)}
            errors = validate_order(merchant)
            if errors:
                return "The shop answered with amounts that do not add up: " + ", ".join(errors)
            choice = option_id if option_id is not None else current["shopper_choice"]
            merged = held_order(current, merchant, changes, choice)
            merged.update(copy.deepcopy(dict(extra or {})))
            merged["last_modified_at"] = timestamp()
            current["order"] = merged
            current["merchant_order"] = merchant
            current["shopper_choice"] = choice
            current["revision"] = current.get("revision", 0) + 1
            self._touch(current)
            self.lock.notify_all()
        return None

    def shopper_pay(
        self, order_id: str, address: Mapping[str, Any], *, revision: int | None = None
    ) -> dict[str, Any]:
        """The shopper presses Pay: validation callback, completion, push, confirmation.

        ``revision`` is the one the shopper looked at; if the order changed since, nothing
        is paid and the page reloads (a shopper pays for what they saw). Answers
        ``{"redirect": url}`` (the confirmation page, or the merchant's 303 target) or
        ``{"error": text}`` (the merchant's ``error_text`` on a rejected validation).
        """
        missing = [
            name
            for name in sorted(REQUIRED_ADDRESS_FIELDS)
            if not isinstance(address.get(name), str) or not address[name].strip()
        ]
        if missing:
            return {"error": "Please fill in: " + ", ".join(n.replace("_", " ") for n in missing)}
        with self.lock:
            record = self._shopper_record(order_id)
            order = record["order"]
            urls = order["merchant_urls"]
            confirmation = urls["confirmation"].replace("{checkout.order.id}", order_id)
            if order["status"] != "checkout_incomplete":
                return {"redirect": confirmation, "order_id": order_id}  # a second click
            seen = record.get("revision", 0)
            if revision is not None and revision != seen:
                return {"error": UPDATED_TEXT, "reload": True}
            given = {
                name: str(address[name]).strip()
                for name in ADDRESS_FIELDS
                if isinstance(address.get(name), str) and address[name].strip()
            }
            billing = {**given, "country": order["purchase_country"]}
            body = copy.deepcopy(order)
            body.pop("html_snippet", None)
            body["billing_address"] = dict(billing)
            body["shipping_address"] = dict(billing)
            validation_url = urls.get("validation")
            must_answer = bool(
                (order.get("options") or {}).get("require_validate_callback_success")
            )
        if validation_url:
            refusal = validation_refusal(
                *self._call_merchant("validation", order_id, validation_url, body),
                must_answer=must_answer,
            )
            if refusal is not None:
                return refusal
        with self.lock:
            current = self._live_record(order_id)
            if (
                current is None
                or current["order"]["status"] != "checkout_incomplete"
                or current.get("revision", 0) != seen
            ):
                return {"error": UPDATED_TEXT, "reload": True}
            self.complete_order(order_id, billing_address=billing, shipping_address=billing)
        self.send_push(order_id, delay_seconds=self.push_delay_seconds)
        return {"redirect": confirmation, "order_id": order_id}
