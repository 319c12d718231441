"""``kustom-playground trigger ...``: make the double do what Kustom does in production.

Each trigger acts on one order as Kustom would and sends the callback Kustom sends, to the
order's own ``merchant_urls`` (``{checkout.order.id}`` replaced), synchronously, so that the
answer can be reported: ``{"trigger", "order_id", "callbacks": [{kind, url, json, status,
answer, error}], "order": {status, om_status, fraud_status, expired}, ...}``. The request
formats, each from Kustom's documentation:

* push: ``POST`` with an empty body to ``merchant_urls.push``, once the purchase is
  complete (https://docs.kustom.co/v3/checkout/additional-resources/confirm-purchase);
* validation: ``POST`` of the whole checkout order to ``merchant_urls.validation`` before
  the purchase completes; 200 goes on, 303 + Location or 4xx ``{"error_type",
  "error_text"}`` stop it (https://docs.kustom.co/contents/api/checkout-callback/other/validate.md,
  https://docs.kustom.co/v3/checkout/use-cases/validate-order);
* address update, country change, shipping option update: ``POST`` of a
  ``shipping_service_request`` (amounts, lines, addresses, the selected shipping option);
  a 200 answer's amounts, lines and options become the order's
  (https://docs.kustom.co/contents/api/checkout-callback/other/updateaddress.md,
  .../countrychange.md, .../updateshippingoption.md,
  https://docs.kustom.co/contents/checkout/additional-resources/server-side-callbacks);
* notification: ``POST {"order_id", "event_type"}`` to ``merchant_urls.notification`` with
  ``FRAUD_RISK_ACCEPTED``, ``FRAUD_RISK_REJECTED`` or ``FRAUD_RISK_STOPPED``
  (https://docs.klarna.com/order-management/get-started/pending-orders/; Kustom took the
  Checkout v3 API over from Klarna unchanged);
* expiry: an order untouched for 48 h answers 404 everywhere
  (https://docs.kustom.co/v3/checkout/additional-resources/errors).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from playground.kustom.answers import DoubleError
from playground.kustom.purchase import (
    Purchase,
    default_address,
    update_answer_changes,
    validation_refusal,
)

FRAUD_DECISIONS = ("ACCEPTED", "REJECTED", "STOPPED")
# The fraud_status Kustom's order management shows after each decision. A stopped order is
# one Kustom will not let the merchant ship (it is no longer ACCEPTED): REJECTED is our
# reading, the documentation names the event only.
FRAUD_STATUS_AFTER = {"ACCEPTED": "ACCEPTED", "REJECTED": "REJECTED", "STOPPED": "REJECTED"}


def _location(sent: Mapping[str, Any]) -> dict[str, str]:
    return {"Location": sent["location"]} if sent.get("location") else {}


def _order_url(template: str, order_id: str) -> str:
    return template.replace("{checkout.order.id}", order_id)


class Triggers(Purchase):
    """The double's trigger actions; each returns its report (see the module docstring)."""

    # ------------------------------------------------------------------ helpers

    def _order_summary(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            record = self._admin_record(order_id)
            self._live_record(order_id)  # marks a 48 h old unpaid order expired
            om = record["om"]
            return {
                "status": record["order"]["status"],
                "om_status": om["status"] if om else None,
                "fraud_status": om["fraud_status"] if om else None,
                "expired": record["expired"],
                "order_amount": record["order"]["order_amount"],
            }

    def _merchant_url(self, order_id: str, kind: str) -> str:
        with self.lock:
            template = self._admin_record(order_id)["order"]["merchant_urls"].get(kind)
        if not template:
            raise DoubleError(409, f"order {order_id} has no merchant_urls.{kind}")
        return _order_url(template, order_id)

    def _send(self, kind: str, order_id: str, body: Any) -> dict[str, Any]:
        """POST one callback now; its log entry (status, answer, error, location)."""
        url = self._merchant_url(order_id, kind)
        entry, _headers = self._deliver(kind, order_id, url, body)
        return entry

    def _live_checkout(self, order_id: str) -> dict[str, Any]:
        """The unpaid, unexpired checkout order (a copy), or a 409 saying why not."""
        with self.lock:
            self._admin_record(order_id)
            record = self._live_record(order_id)
            if record is None:
                raise DoubleError(409, f"order {order_id} is expired")
            if record["order"]["status"] != "checkout_incomplete":
                raise DoubleError(409, f"order {order_id} is {record['order']['status']}")
            return copy.deepcopy(record["order"])

    def _report(self, trigger: str, order_id: str, **more: Any) -> dict[str, Any]:
        return {"trigger": trigger, "order_id": order_id, **more}

    # ------------------------------------------------------------------ the purchase

    def trigger_pay(
        self,
        order_id: str,
        *,
        validate: bool = True,
        push: bool = True,
        fraud_status: str = "ACCEPTED",
        address: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The shopper presses Pay: the validation callback (if the order has one), then
        ``checkout_complete`` with an AUTHORIZED order-management order, then the push."""
        if fraud_status not in ("ACCEPTED", "PENDING"):
            raise DoubleError(400, "fraud_status must be ACCEPTED or PENDING")
        if address is not None and not isinstance(address, Mapping):
            raise DoubleError(400, "address must be an object")
        order = self._live_checkout(order_id)
        billing = {
            **default_address(order["purchase_country"]),
            **{k: v for k, v in (order.get("billing_address") or {}).items() if v},
            **dict(address or {}),
        }
        callbacks: list[dict[str, Any]] = []
        if validate and order["merchant_urls"].get("validation"):
            body = copy.deepcopy(order)
            body.pop("html_snippet", None)
            body["billing_address"] = dict(billing)
            body["shipping_address"] = dict(billing)
            sent = self._send("validation", order_id, body)
            callbacks.append(sent)
            must_answer = bool(
                (order.get("options") or {}).get("require_validate_callback_success")
            )
            refusal = validation_refusal(
                sent["status"], sent["answer"], _location(sent), must_answer=must_answer
            )
            if refusal is not None:
                return self._report(
                    "pay",
                    order_id,
                    completed=False,
                    refusal=refusal,
                    callbacks=callbacks,
                    order=self._order_summary(order_id),
                )
        self.complete_order(
            order_id,
            fraud_status=fraud_status,
            billing_address=billing,
            shipping_address=billing,
        )
        if push:
            callbacks.append(self._send("push", order_id, None))
        confirmation = _order_url(order["merchant_urls"]["confirmation"], order_id)
        return self._report(
            "pay",
            order_id,
            completed=True,
            confirmation_url=confirmation,
            callbacks=callbacks,
            order=self._order_summary(order_id),
        )

    def trigger_push(self, order_id: str) -> dict[str, Any]:
        """Kustom's push, once more (Kustom repeats it until the order is acknowledged)."""
        summary = self._order_summary(order_id)
        sent = self._send("push", order_id, None)
        note = None
        if summary["status"] != "checkout_complete":
            note = "Kustom pushes only completed orders; this one is " + summary["status"]
        return self._report(
            "push",
            order_id,
            note=note,
            callbacks=[sent],
            order=self._order_summary(order_id),
        )

    def trigger_validation(
        self, order_id: str, *, address: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The validation callback alone: what the merchant answers; the order is unchanged."""
        with self.lock:
            order = copy.deepcopy(self._admin_record(order_id)["order"])
        order.pop("html_snippet", None)
        billing = {
            **default_address(order["purchase_country"]),
            **{k: v for k, v in (order.get("billing_address") or {}).items() if v},
            **dict(address or {}),
        }
        order["billing_address"] = billing
        order["shipping_address"] = dict(billing)
        sent = self._send("validation", order_id, order)
        must_answer = bool((order.get("options") or {}).get("require_validate_callback_success"))
        refusal = validation_refusal(
            sent["status"], sent["answer"], _location(sent), must_answer=must_answer
        )
        return self._report(
            "validation",
            order_id,
            approved=refusal is None,
            refusal=refusal,
            callbacks=[sent],
            order=self._order_summary(order_id),
        )

    # ------------------------------------------------------------------ order updates

    def _update_callback(
        self,
        trigger: str,
        kind: str,
        order_id: str,
        body: dict[str, Any],
        *,
        option_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        sent = self._send(kind, order_id, body)
        answer = sent.get("answer")
        applied, error = False, None
        if sent["status"] == 200 and isinstance(answer, dict):
            error = self.apply_merchant_changes(
                order_id, update_answer_changes(answer), option_id, extra
            )
            applied = error is None
        elif isinstance(answer, dict):
            error = answer.get("error_text")
        return self._report(
            trigger,
            order_id,
            applied=applied,
            error=error,
            callbacks=[sent],
            order=self._order_summary(order_id),
        )

    def trigger_address_update(
        self, order_id: str, address: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The shopper enters a shipping address: ``address_update`` with it."""
        order = self._live_checkout(order_id)
        new = {
            **default_address(order["purchase_country"]),
            **{k: v for k, v in (order.get("shipping_address") or {}).items() if v},
            **dict(address or {}),
        }
        body = {
            **self._callback_body(order),
            "billing_address": dict(new),
            "shipping_address": dict(new),
        }
        if order.get("selected_shipping_option"):
            body["selected_shipping_option"] = copy.deepcopy(order["selected_shipping_option"])
        extra = {"billing_address": dict(new), "shipping_address": dict(new)}
        return self._update_callback(
            "address-update", "address_update", order_id, body, extra=extra
        )

    def trigger_country_change(self, order_id: str, country: str) -> dict[str, Any]:
        """The shopper picks another billing country: ``country_change`` with it."""
        if not isinstance(country, str) or len(country) != 2 or not country.isalpha():
            raise DoubleError(400, "country must be an ISO 3166 alpha-2 code, such as DE")
        order = self._live_checkout(order_id)
        address = {**(order.get("billing_address") or {}), "country": country.upper()}
        body = {
            **self._callback_body(order),
            "billing_address": dict(address),
            "shipping_address": {
                **(order.get("shipping_address") or {}),
                "country": country.upper(),
            },
        }
        extra = {
            "billing_address": body["billing_address"],
            "shipping_address": body["shipping_address"],
        }
        return self._update_callback(
            "country-change", "country_change", order_id, body, extra=extra
        )

    def trigger_shipping_option_update(
        self, order_id: str, option_id: str | None = None
    ) -> dict[str, Any]:
        """The shopper picks a shipping option: ``shipping_option_update`` with it (the
        first option not selected now, unless ``option_id`` says which)."""
        order = self._live_checkout(order_id)
        options = order.get("shipping_options") or []
        if not options:
            raise DoubleError(409, f"order {order_id} offers no shipping_options")
        current = (order.get("selected_shipping_option") or {}).get("id")
        if option_id is None:
            option_id = next((o["id"] for o in options if o.get("id") != current), current)
        option = next((o for o in options if o.get("id") == option_id), None)
        if option is None:
            offered = ", ".join(str(o.get("id")) for o in options)
            raise DoubleError(400, f"order {order_id} offers no option {option_id!r} ({offered})")
        if not order["merchant_urls"].get("shipping_option_update"):
            # Without the callback Kustom prices the option itself (the shopper's page).
            view = self.shopper_select_shipping(order_id, str(option_id))
            return self._report(
                "shipping-option-update",
                order_id,
                applied="error" not in view,
                error=view.get("error"),
                note="no merchant_urls.shipping_option_update: Kustom priced the option itself",
                callbacks=[],
                order=self._order_summary(order_id),
            )
        body = {**self._callback_body(order), "selected_shipping_option": copy.deepcopy(option)}
        return self._update_callback(
            "shipping-option-update",
            "shipping_option_update",
            order_id,
            body,
            option_id=str(option_id),
        )

    # ------------------------------------------------------------------ Kustom's decisions

    def trigger_expire(self, order_id: str) -> dict[str, Any]:
        """The order is past its 48 h: 404 on every API call from now on."""
        self.expire_order(order_id)
        return self._report("expire", order_id, callbacks=[], order=self._order_summary(order_id))

    def trigger_fraud(self, order_id: str, decision: str) -> dict[str, Any]:
        """Kustom's fraud decision on a completed order, and its notification callback."""
        if decision not in FRAUD_DECISIONS:
            raise DoubleError(400, f"decision must be one of {', '.join(FRAUD_DECISIONS)}")
        url = self._merchant_url(order_id, "notification")
        with self.lock:
            record = self._admin_record(order_id)
            om = record["om"]
            if om is None:
                raise DoubleError(409, f"order {order_id} is not completed (trigger pay first)")
            om["fraud_status"] = FRAUD_STATUS_AFTER[decision]
            if om["fraud_status"] == "REJECTED" and om["captured_amount"] == 0:
                om["status"] = "CANCELLED"
                om["remaining_authorized_amount"] = 0
        body = {"order_id": order_id, "event_type": f"FRAUD_RISK_{decision}"}
        sent, _headers = self._deliver("notification", order_id, url, body)
        return self._report(
            "fraud", order_id, callbacks=[sent], order=self._order_summary(order_id)
        )
