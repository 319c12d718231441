"""An in-process double of Kustom's Checkout v3 and Order Management APIs.

It behaves like Kustom (the former Klarna Checkout v3 API) for the calls kustom-app makes:
HTTP Basic auth, Kustom-shaped error bodies and a ``Klarna-Correlation-Id`` header on every
response, Kustom's order arithmetic (``BAD_VALUE`` naming each bad field), empty-body 404s for
unknown or expired checkout orders, ``READ_ONLY_ORDER`` once completed, and the order
management rules for captures, refunds, cancel and release, including
``Klarna-Idempotency-Key`` replay.

The checkout order's rules are in :mod:`playground.kustom_rules`, each with its source:
the OpenAPI limits and line types, the ±1 tax check on every line, the US ``sales_tax``
form (``order_tax_amount`` = the ``sales_tax`` line's ``total_amount``, as Klarna's
tax-handling pages and krokedil's request recorded against Kustom's playground show),
absolute http(s) URLs, lengths in UTF-16 code units, and the shipping-option price rule:
an order that offers ``shipping_options`` without a ``merchant_urls.shipping_option_update``
gets the selected option added by Kustom as a ``shipping_fee`` line, its price and tax added
to ``order_amount`` and ``order_tax_amount`` (https://docs.kustom.co/contents/checkout/use-cases/shipping);
with that URL the merchant's lines and callback answers carry shipping and nothing is added.
Either way the order records ``selected_shipping_option``.

Everything lives in memory in one :class:`KustomDoubleState` (``app.extensions["kustom_double"]``)
behind one lock. Tests drive it either over HTTP through the ``/_double/...`` endpoints (no auth)
or directly through the state object's methods.

Run it locally (the "Kustom playground")::

    python -m playground.kustom --host 127.0.0.1 --port 8710 [--latency 0.05] [--push-delay 2]
        [--update-delay 1]

The html snippet's iframe is a small shopper UI (``/playground/checkout/<order_id>``): the
order as the double has it, a shipping choice that calls the merchant's
``shipping_option_update`` callback (without one, the double swaps its own shipping line,
as Kustom does), an address form and a Pay button that runs the
``validation`` callback, completes the order, sends the shopper to the confirmation URL and
pushes ``--push-delay`` seconds later. ``--update-delay`` makes the answer to the merchant's
order updates (``POST /checkout/v3/orders/{id}``) that much slower, so that a person sees
the iframe suspended while kustom-app syncs (``scripts/run`` sets 1 s).
"""

from __future__ import annotations

import argparse
import copy
import hmac
import html
import json
import os
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import requests
from flask import Flask, Response, current_app, g, request

from playground.kustom_rules import (
    MAX_ORDER_LINES,
    check_string,
    validate_order,
    with_kustom_shipping,
)
from playground.kustom_rules import validate_order_line as validate_order_line

EXTENSION_KEY = "kustom_double"
CORRELATION_HEADER = "Klarna-Correlation-Id"
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"

#: Operation names used in the call log, for faults and in ``/_double/...``.
OPERATIONS: tuple[str, ...] = (
    "create_order",
    "get_order",
    "update_order",
    "om_get",
    "acknowledge",
    "merchant_references",
    "capture",
    "refund",
    "cancel",
    "release",
    "get_capture",
    "get_refund",
    "extend_authorization",
)
CHECKOUT_OPERATIONS = frozenset({"create_order", "get_order", "update_order"})

MAX_OM_AMOUNT = 200_000_000
AUTHORIZATION_DAYS = 28
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
DEFAULT_PUSH_DELAY_SECONDS = 2.0
PUSH_DELAY_ENV = "KUSTOM_PLAYGROUND_PUSH_DELAY"
UPDATE_DELAY_ENV = "KUSTOM_PLAYGROUND_UPDATE_DELAY"
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
FAULT_ERROR_CODES = {
    400: "BAD_VALUE",
    401: "UNAUTHORIZED",
    403: "NOT_ALLOWED",
    404: "NO_SUCH_ORDER",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime | None = None) -> str:
    """Kustom's format: ``yyyy-mm-ddThh:mm:ssZ``."""
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _short_reference() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(7))


class KustomError(Exception):
    """An API error answer, shaped like Kustom's.

    ``empty_body`` reproduces Kustom's bodiless answers (a 404 for an unknown or expired
    checkout order).
    """

    def __init__(
        self,
        status: int,
        error_code: str | None = None,
        error_messages: Iterable[str] = (),
        *,
        empty_body: bool = False,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_messages = list(error_messages)
        self.empty_body = empty_body
        super().__init__(f"{status} {error_code or ''} {self.error_messages}".strip())

    def body(self, correlation_id: str) -> dict[str, Any] | None:
        if self.empty_body:
            return None
        return {
            "error_code": self.error_code,
            "error_messages": self.error_messages,
            "correlation_id": correlation_id,
        }


class DoubleError(Exception):
    """Misuse of the test-control API (unknown order, wrong state, bad input)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


def _bad_value(fields: Iterable[str]) -> KustomError:
    return KustomError(400, "BAD_VALUE", [f"Bad value: {name}" for name in fields])


# --------------------------------------------------------------------------------------------
# Validation: the checkout order's rules live in playground.kustom_rules; these are the
# order management bodies' (kustom-order-management-api.yml).
# --------------------------------------------------------------------------------------------


def _validate_om_amount(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    return [] if _is_int(value) and 1 <= value <= MAX_OM_AMOUNT else [name]


def _validate_om_extras(body: Mapping[str, Any], *, shipping_info: bool) -> list[str]:
    bad: list[str] = []
    for name in ("reference", "description"):
        if name in body and not check_string(body[name], max_length=255):
            bad.append(name)
    lines = body.get("order_lines")
    if lines is not None and not (
        isinstance(lines, list)
        and len(lines) <= MAX_ORDER_LINES
        and all(isinstance(line, dict) for line in lines)
    ):
        bad.append("order_lines")
    if shipping_info:
        info = body.get("shipping_info")
        if info is not None and not (
            isinstance(info, list)
            and len(info) <= 500
            and all(isinstance(item, dict) for item in info)
        ):
            bad.append("shipping_info")
    return bad


# --------------------------------------------------------------------------------------------
# The html snippet
# --------------------------------------------------------------------------------------------

_SNIPPET_SCRIPT = """(function (w, d) {
  function frame() { return d.getElementById("klarna-checkout-iframe"); }
  function overlay() { return d.getElementById("klarna-checkout-overlay"); }
  function origin(f) {
    try { return new URL(f.src, d.baseURI).origin; } catch (e) { return null; }
  }
  function tell(type) {
    var f = frame(), o = f && origin(f);
    if (f && o && f.contentWindow) {
      f.contentWindow.postMessage({ source: "kustom-playground", type: type }, o);
    }
  }
  if (typeof w._klarnaCheckout === "function") { return; }
  var handlers = {};
  var api = {
    suspend: function () {
      var f = frame(), o = overlay();
      if (f) { f.setAttribute("data-suspended", "true"); }
      if (o) { o.style.display = "flex"; }
      tell("suspend");
    },
    resume: function () {
      var f = frame(), o = overlay();
      if (f) { f.removeAttribute("data-suspended"); }
      if (o) { o.style.display = "none"; }
      tell("resume");
    },
    on: function (events) {
      for (var name in events) {
        if (Object.prototype.hasOwnProperty.call(events, name)) { handlers[name] = events[name]; }
      }
    }
  };
  w._klarnaCheckout = function (callback) { callback(api); };
  w._klarnaCheckout.handlers = handlers;
  w.addEventListener("message", function (event) {
    var f = frame();
    if (!f || event.source !== f.contentWindow || event.origin !== origin(f)) { return; }
    var m = event.data || {};
    if (m.source !== "kustom-playground") { return; }
    if (m.type === "resize" && m.height > 0) {
      f.style.height = Math.ceil(m.height) + "px";
    } else if (m.type === "redirect" && /^https?:[/][/]/.test(String(m.url))) {
      w.location.assign(m.url);
    } else if (m.type === "event" && typeof handlers[m.name] === "function") {
      handlers[m.name](m.data || {});
    }
  });
})(window, document);"""

_OVERLAY_STYLE = (
    "display: none; position: absolute; inset: 0; z-index: 10; align-items: center; "
    "justify-content: center; background: rgba(235, 235, 235, 0.8); color: #333; "
    "font: 600 18px/1.4 system-ui, sans-serif; cursor: progress;"
)


def html_snippet(base_url: str, order_id: str) -> str:
    """The checkout's embeddable HTML: the shopper iframe, its overlay and ``_klarnaCheckout``.

    ``suspend()`` greys the iframe out (overlay with "Updating…") and tells the iframe to
    block input; ``resume()`` removes the overlay and tells the iframe to re-read the order.
    The iframe asks the page (postMessage) to resize it and to send the shopper on to the
    confirmation page.
    """
    src = html.escape(f"{base_url.rstrip('/')}/playground/checkout/{order_id}", quote=True)
    return (
        '<div id="klarna-checkout-container" style="overflow-x: hidden; position: relative;">'
        f'<iframe id="klarna-checkout-iframe" name="klarna-checkout-iframe" src="{src}" '
        'title="Kustom Checkout (playground)" '
        'style="width: 100%; min-height: 600px; border: 0; display: block;" frameborder="0" '
        'scrolling="no"></iframe>'
        f'<div id="klarna-checkout-overlay" role="status" aria-live="polite" '
        f'style="{_OVERLAY_STYLE}">Updating\u2026</div>'
        f'<script type="text/javascript">{_SNIPPET_SCRIPT}</script>'
        "</div>"
    )


def _default_address(country: str) -> dict[str, str]:
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


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


class KustomDoubleState:
    """All of the double's state, in memory, behind one lock (``self.lock``).

    Kustom-API methods (``create_order``, ``capture``, ...) raise :class:`KustomError` like the
    API would answer; test-control methods (``complete_order``, ``expire_order``, ...) raise
    :class:`DoubleError`. The Python methods act directly: they neither log calls nor apply
    latency, faults or idempotency — only HTTP requests do.
    """

    def __init__(
        self,
        *,
        username: str = "playground",
        password: str = "playground",  # noqa: S107 - the playground's public dummy login
        latency_seconds: float = 0.0,
        base_url: str | None = None,
        push_delay_seconds: float = DEFAULT_PUSH_DELAY_SECONDS,
        update_delay_seconds: float = 0.0,
    ) -> None:
        self.username = username
        self.password = password
        self.base_url = base_url.rstrip("/") if base_url else None
        self.push_timeout_seconds = 10.0
        # The shopper UI's Pay sends the push this long after completing (Kustom: seconds).
        self.push_delay_seconds = float(push_delay_seconds)
        # Each HTTP order update (the merchant's sync) answers this much later, not under the
        # lock: long enough and a person sees the iframe suspended, as with a slow Kustom.
        self.update_delay_seconds = float(update_delay_seconds)
        self.merchant_callback_timeout_seconds = 10.0  # Kustom waits up to 10 s
        self._initial_latency = float(latency_seconds)
        # A Condition over an RLock: `with state.lock:` guards state, waiters get notified.
        self.lock = threading.Condition(threading.RLock())
        self._generation = 0
        self._reset_locked()

    # ---------------------------------------------------------------- bookkeeping

    def _reset_locked(self) -> None:
        self.latency_seconds = self._initial_latency
        self._orders: dict[str, dict[str, Any]] = {}
        self._calls: list[dict[str, Any]] = []
        self._faults: dict[str, deque[dict[str, Any]]] = {}
        self._idempotency: dict[str, ApiResponse] = {}
        self._callbacks: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget orders, calls, faults, idempotency keys and callbacks; restore latency."""
        with self.lock:
            self._generation += 1
            self._reset_locked()
            self.lock.notify_all()

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise DoubleError(400, "latency must be >= 0")
        with self.lock:
            self.latency_seconds = float(seconds)

    def _record_call(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._calls.append(entry)
            self.lock.notify_all()

    def calls(
        self, operation: str | None = None, *, order_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The call log: ``{method, path, operation, status, idempotency_key, json, at, ...}``."""
        with self.lock:
            return [
                copy.deepcopy(call)
                for call in self._calls
                if (operation is None or call["operation"] == operation)
                and (order_id is None or call["order_id"] == order_id)
            ]

    def callbacks(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Push / notification requests the double sent to the merchant, with their outcome."""
        with self.lock:
            return [
                copy.deepcopy(item)
                for item in self._callbacks
                if kind is None or item["kind"] == kind
            ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` (evaluated under the lock) is truthy; return its value."""
        with self.lock:
            result = self.lock.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"condition not met within {timeout}s")
        return result

    def wait_for_calls(
        self, operation: str, count: int = 1, *, timeout: float = 5.0, **filters: Any
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` calls of ``operation`` were answered; return them."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.calls(operation, **filters)
            return found if len(found) >= count else None

        found: list[dict[str, Any]] = self.wait_for(enough, timeout)
        return found

    def wait_for_callbacks(
        self, kind: str = "push", count: int = 1, *, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            found = self.callbacks(kind)
            return found if len(found) >= count else None

        found: list[dict[str, Any]] = self.wait_for(enough, timeout)
        return found

    # ---------------------------------------------------------------- faults

    def add_faults(
        self,
        operation: str,
        statuses: Iterable[int | Mapping[str, Any]] | None = None,
        *,
        delay_seconds: float | None = None,
        count: int | None = None,
    ) -> None:
        """Make the next calls of ``operation`` fail and/or be slow.

        ``statuses``: one entry per call, an int status (Kustom-shaped body, e.g. 503
        ``SERVICE_UNAVAILABLE``) or ``{"status", "error_code"?, "error_messages"?}``; faulted
        calls do not act. ``delay_seconds`` without ``statuses`` slows the next ``count``
        (default 1) calls, which then act normally; with ``statuses`` each fault is delayed.
        """
        if operation not in OPERATIONS:
            raise DoubleError(400, f"unknown operation {operation!r}; one of {OPERATIONS}")
        if delay_seconds is not None and (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or delay_seconds < 0
        ):
            raise DoubleError(400, "delay_seconds must be a number >= 0")
        delay = float(delay_seconds or 0.0)
        entries: list[dict[str, Any]] = []
        if statuses is not None:
            for item in statuses:
                spec: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {"status": item}
                status = spec.get("status")
                if not _is_int(status) or not 400 <= status <= 599:
                    raise DoubleError(400, f"fault status must be an int 400..599: {item!r}")
                spec["delay_seconds"] = delay
                entries.append(spec)
        else:
            if delay_seconds is None:
                raise DoubleError(400, "give statuses and/or delay_seconds")
            n = 1 if count is None else count
            if not _is_int(n) or n < 1:
                raise DoubleError(400, "count must be an int >= 1")
            entries = [{"status": None, "delay_seconds": delay} for _ in range(n)]
        with self.lock:
            self._faults.setdefault(operation, deque()).extend(entries)

    def clear_faults(self, operation: str | None = None) -> None:
        with self.lock:
            if operation is None:
                self._faults.clear()
            else:
                self._faults.pop(operation, None)

    def pending_faults(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {op: [dict(f) for f in q] for op, q in self._faults.items() if q}

    def _take_fault(self, operation: str) -> dict[str, Any] | None:
        with self.lock:
            queue = self._faults.get(operation)
            if not queue:
                return None
            fault = queue.popleft()
            if not queue:
                del self._faults[operation]
            return fault

    # ---------------------------------------------------------------- idempotency

    def _idempotent_response(self, key: str) -> ApiResponse | None:
        with self.lock:
            return self._idempotency.get(key)

    def _remember_response(self, key: str, response: ApiResponse) -> None:
        with self.lock:
            self._idempotency[key] = copy.deepcopy(response)

    # ---------------------------------------------------------------- lookups

    def _live_record(self, order_id: str) -> dict[str, Any] | None:
        record = self._orders.get(order_id)
        if record is None or record["expired"]:
            return None
        return record

    def _checkout_record(self, order_id: str) -> dict[str, Any]:
        record = self._live_record(order_id)
        if record is None:
            raise KustomError(404, empty_body=True)
        return record

    def _om_record(self, order_id: str, *, not_found: str = "NO_SUCH_ORDER") -> dict[str, Any]:
        record = self._live_record(order_id)
        if record is None or record["om"] is None:
            raise KustomError(404, not_found, [f"No such order: {order_id}"])
        return record

    def _admin_record(self, order_id: str) -> dict[str, Any]:
        record = self._orders.get(order_id)
        if record is None:
            raise DoubleError(404, f"unknown order {order_id}")
        return record

    def order_ids(self) -> list[str]:
        with self.lock:
            return list(self._orders)

    def stored_order(self, order_id: str) -> dict[str, Any] | None:
        """Everything stored for an order, internal fields included (a copy), or None."""
        with self.lock:
            record = self._orders.get(order_id)
            if record is None:
                return None
            om = record["om"]
            return copy.deepcopy(
                {
                    "order_id": order_id,
                    "checkout": record["order"],
                    "order_management": om,
                    "status": record["order"]["status"],
                    "om_status": om["status"] if om else None,
                    "expired": record["expired"],
                    "update_count": record["update_count"],
                    "acknowledged": record["acknowledged"],
                    "acknowledge_count": record["acknowledge_count"],
                    "authorization_extensions": record["authorization_extensions"],
                    "captures": om["captures"] if om else [],
                    "refunds": om["refunds"] if om else [],
                    "base_url": record["base_url"],
                }
            )

    # ---------------------------------------------------------------- Checkout v3

    def create_order(self, payload: Any, *, base_url: str | None = None) -> dict[str, Any]:
        """``POST /checkout/v3/orders``: the created order (a copy).

        The merchant's body is checked as sent (``validate_order``); what Kustom adds itself
        (the selected shipping option, see ``with_kustom_shipping``) comes after.
        """
        if not isinstance(payload, dict):
            raise _bad_value(["body"])
        order = {k: copy.deepcopy(v) for k, v in payload.items() if k not in READ_ONLY_ORDER_FIELDS}
        errors = validate_order(order)
        if errors:
            raise _bad_value(errors)
        merchant = copy.deepcopy(order)
        held = with_kustom_shipping(merchant, None)
        base = (self.base_url or base_url or "http://127.0.0.1").rstrip("/")
        order_id = str(uuid.uuid4())
        now = _timestamp()
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
                raise _bad_value(["body"])
            changes = {
                key: copy.deepcopy(value)
                for key, value in payload.items()
                if key not in READ_ONLY_ORDER_FIELDS
            }
            merchant = {**copy.deepcopy(record["merchant_order"]), **changes}
            errors = validate_order(merchant)
            if errors:
                raise _bad_value(errors)
            merged = self._held_order(record, merchant, changes, record["shopper_choice"])
            country = merged["purchase_country"]
            for name in ("billing_address", "shipping_address"):
                address = merged.setdefault(name, {})
                if name not in payload and set(address) <= {"country"}:
                    address["country"] = country
            merged["options"] = {**DEFAULT_OPTIONS, **merged.get("options", {})}
            merged["last_modified_at"] = _timestamp()
            record["order"] = merged
            record["merchant_order"] = merchant
            record["update_count"] += 1
            record["revision"] = record.get("revision", 0) + 1
            return copy.deepcopy(merged)

    @staticmethod
    def _held_order(
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

    # ---------------------------------------------------------------- Order management

    def om_order(self, order_id: str) -> dict[str, Any]:
        """``GET /ordermanagement/v1/orders/{id}``."""
        with self.lock:
            return copy.deepcopy(self._om_record(order_id)["om"])

    def acknowledge(self, order_id: str) -> None:
        with self.lock:
            record = self._om_record(order_id)
            record["acknowledged"] = True
            record["acknowledge_count"] += 1

    def update_merchant_references(self, order_id: str, payload: Any) -> None:
        with self.lock:
            record = self._om_record(order_id)
            if not isinstance(payload, dict):
                raise _bad_value(["body"])
            bad = [
                name
                for name in ("merchant_reference1", "merchant_reference2")
                if name in payload and not check_string(payload[name], max_length=255)
            ]
            if bad:
                raise _bad_value(bad)
            om = record["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Can not update a cancelled order"])
            for name in ("merchant_reference1", "merchant_reference2"):
                if name in payload:
                    om[name] = payload[name]

    def capture(self, order_id: str, payload: Any) -> dict[str, Any]:
        """``POST .../captures``: the new capture (a copy)."""
        with self.lock:
            record = self._om_record(order_id)
            if not isinstance(payload, dict):
                raise _bad_value(["body"])
            bad = _validate_om_amount(payload, "captured_amount")
            bad += _validate_om_extras(payload, shipping_info=True)
            if bad:
                raise _bad_value(bad)
            om = record["om"]
            amount = payload["captured_amount"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Order is cancelled"])
            if om["fraud_status"] != "ACCEPTED":
                raise KustomError(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    [f"Capture not allowed: fraud_status is {om['fraud_status']}"],
                )
            if amount > om["remaining_authorized_amount"]:
                raise KustomError(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    [
                        "Captured amount is higher than the remaining authorized amount "
                        f"({om['remaining_authorized_amount']})"
                    ],
                )
            capture = {
                "capture_id": str(uuid.uuid4()),
                "klarna_reference": f"{om['klarna_reference']}-{len(om['captures']) + 1}",
                "captured_amount": amount,
                "captured_at": _timestamp(),
                "description": payload.get("description", ""),
                "order_lines": copy.deepcopy(payload.get("order_lines", [])),
                "refunded_amount": 0,
                "billing_address": copy.deepcopy(om["billing_address"]),
                "shipping_address": copy.deepcopy(om["shipping_address"]),
                "shipping_info": copy.deepcopy(payload.get("shipping_info", [])),
            }
            if "reference" in payload:
                capture["reference"] = payload["reference"]
            om["captures"].append(capture)
            om["captured_amount"] += amount
            om["remaining_authorized_amount"] -= amount
            om["status"] = "CAPTURED" if om["remaining_authorized_amount"] == 0 else "PART_CAPTURED"
            record["acknowledged"] = True  # capturing also acknowledges
            return copy.deepcopy(capture)

    def get_capture(self, order_id: str, capture_id: str) -> dict[str, Any]:
        with self.lock:
            om = self._om_record(order_id)["om"]
            for capture in om["captures"]:
                if capture["capture_id"] == capture_id:
                    return copy.deepcopy(capture)
            raise KustomError(404, "NO_SUCH_CAPTURE", [f"No such capture: {capture_id}"])

    def refund(self, order_id: str, payload: Any) -> dict[str, Any]:
        """``POST .../refunds``: the new refund (a copy)."""
        with self.lock:
            record = self._om_record(order_id, not_found="NOT_FOUND")
            if not isinstance(payload, dict):
                raise _bad_value(["body"])
            bad = _validate_om_amount(payload, "refunded_amount")
            bad += _validate_om_extras(payload, shipping_info=False)
            if bad:
                raise _bad_value(bad)
            om = record["om"]
            amount = payload["refunded_amount"]
            refundable = om["captured_amount"] - om["refunded_amount"]
            if amount > refundable:
                raise KustomError(
                    403,
                    "REFUND_NOT_ALLOWED",
                    [f"Refunded amount is higher than the refundable amount ({refundable})"],
                )
            refund = {
                "refund_id": str(uuid.uuid4()),
                "refunded_amount": amount,
                "refunded_at": _timestamp(),
                "description": payload.get("description", ""),
                "order_lines": copy.deepcopy(payload.get("order_lines", [])),
            }
            if "reference" in payload:
                refund["reference"] = payload["reference"]
            om["refunds"].append(refund)
            om["refunded_amount"] += amount
            left = amount
            for capture in om["captures"]:  # allocate to captures, oldest first
                take = min(left, capture["captured_amount"] - capture["refunded_amount"])
                capture["refunded_amount"] += take
                left -= take
            return copy.deepcopy(refund)

    def get_refund(self, order_id: str, refund_id: str) -> dict[str, Any]:
        with self.lock:
            om = self._om_record(order_id, not_found="NOT_FOUND")["om"]
            for refund in om["refunds"]:
                if refund["refund_id"] == refund_id:
                    return copy.deepcopy(refund)
            raise KustomError(404, "NOT_FOUND", [f"No such refund: {refund_id}"])

    def cancel(self, order_id: str) -> None:
        with self.lock:
            om = self._om_record(order_id)["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "CANCEL_NOT_ALLOWED", ["Order is already cancelled"])
            if om["captured_amount"] > 0:
                raise KustomError(403, "CANCEL_NOT_ALLOWED", ["Order has captures"])
            om["status"] = "CANCELLED"
            om["remaining_authorized_amount"] = 0

    def release_remaining_authorization(self, order_id: str) -> None:
        """Spec: refused (403 NOT_ALLOWED) when the order is cancelled or has no captures."""
        with self.lock:
            om = self._om_record(order_id)["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Order is cancelled"])
            if not om["captures"]:
                raise KustomError(403, "NOT_ALLOWED", ["Order has no captures"])
            om["remaining_authorized_amount"] = 0
            om["status"] = "CAPTURED"

    def extend_authorization_time(self, order_id: str) -> None:
        with self.lock:
            record = self._om_record(order_id)
            om = record["om"]
            if om["status"] in ("CANCELLED", "EXPIRED", "CLOSED"):
                raise KustomError(403, "NOT_ALLOWED", [f"Order is {om['status'].lower()}"])
            om["expires_at"] = _timestamp(_now() + timedelta(days=AUTHORIZATION_DAYS))
            record["authorization_extensions"] += 1

    # ---------------------------------------------------------------- test control

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
                **_default_address(country),
                **order.get("billing_address", {}),
                **(billing_address or {}),
            }
            shipping = {**billing, **order.get("shipping_address", {}), **(shipping_address or {})}
            now = _now()
            order.update(
                status="checkout_complete",
                completed_at=_timestamp(now),
                last_modified_at=_timestamp(now),
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
                "klarna_reference": _short_reference(),
                "billing_address": copy.deepcopy(billing),
                "shipping_address": copy.deepcopy(shipping),
                "customer": copy.deepcopy(order["customer"]),
                "created_at": _timestamp(now),
                "expires_at": _timestamp(now + timedelta(days=AUTHORIZATION_DAYS)),
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

    def send_push(self, order_id: str, *, delay_seconds: float = 0.0) -> None:
        """POST the merchant's push URL (empty body) from a background thread."""
        with self.lock:
            record = self._admin_record(order_id)
            url_template = record["order"]["merchant_urls"]["push"]
        self._post_callback(
            "push", order_id, url_template, json_body=None, delay_seconds=delay_seconds
        )

    # ---------------------------------------------------------------- the shopper (iframe UI)

    def shopper_view(self, order_id: str) -> dict[str, Any]:
        """What the checkout iframe shows: the order as Kustom has it now."""
        with self.lock:
            record = self._live_record(order_id)
            if record is None:
                raise DoubleError(404, "This checkout has expired or does not exist.")
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
                        **_default_address(country),
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

    def _call_merchant(
        self, kind: str, order_id: str, url: str, body: Any
    ) -> tuple[int | None, Any, Mapping[str, str]]:
        """POST a synchronous callback (validation, shipping option) and log it like a push."""
        status: int | None = None
        answer: Any = None
        headers: Mapping[str, str] = {}
        error: str | None = None
        started = time.time()
        with self.lock:
            generation = self._generation
        try:
            response = requests.post(
                url,
                json=body,
                timeout=self.merchant_callback_timeout_seconds,
                allow_redirects=False,
            )
            status, headers = response.status_code, response.headers
            try:
                answer = response.json() if response.content else None
            except ValueError:
                answer = None
        except requests.RequestException as exc:
            error = repr(exc)
        with self.lock:
            if generation == self._generation:
                self._callbacks.append(
                    {
                        "kind": kind,
                        "order_id": order_id,
                        "url": url,
                        "json": copy.deepcopy(body),
                        "status": status,
                        "error": error,
                        "answer": copy.deepcopy(answer),
                        "at": started,
                    }
                )
                self.lock.notify_all()
        return status, answer, headers

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
            record = self._live_record(order_id)
            if record is None:
                raise DoubleError(404, "This checkout has expired or does not exist.")
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
            changes = {
                name: answer[name]
                for name in ("order_amount", "order_tax_amount", "order_lines", "shipping_options")
                if name in answer
            }
        with self.lock:
            record = self._live_record(order_id)
            if record is None or record["order"]["status"] != "checkout_incomplete":
                raise DoubleError(409, "This order can no longer be changed.")
            merchant = {**copy.deepcopy(record["merchant_order"]), **copy.deepcopy(changes)}
            errors = validate_order(merchant)
            if errors:
                return {
                    **self.shopper_view(order_id),
                    "error": "The shop answered with amounts that do not add up: "
                    + ", ".join(errors),
                }
            merged = self._held_order(record, merchant, changes, option_id)
            merged["last_modified_at"] = _timestamp()
            record["order"] = merged
            record["merchant_order"] = merchant
            record["shopper_choice"] = option_id
            record["revision"] = record.get("revision", 0) + 1
            self.lock.notify_all()
        return self.shopper_view(order_id)

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
            record = self._live_record(order_id)
            if record is None:
                raise DoubleError(404, "This checkout has expired or does not exist.")
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
            status, answer, headers = self._call_merchant(
                "validation", order_id, validation_url, body
            )
            if status == 303 and headers.get("Location"):
                return {"redirect": headers["Location"], "rejected": True}
            if status is not None and 400 <= status < 500:
                text = answer.get("error_text") if isinstance(answer, dict) else None
                return {"error": text or "The shop did not accept the order.", "rejected": True}
            if status != 200 and must_answer:
                return {"error": "The shop could not be reached. Please try again."}
            # Kustom: a validation that times out or fails with 5xx does not stop the
            # purchase unless options.require_validate_callback_success is set.
        with self.lock:
            record = self._live_record(order_id)
            if (
                record is None
                or record["order"]["status"] != "checkout_incomplete"
                or record.get("revision", 0) != seen
            ):
                return {"error": UPDATED_TEXT, "reload": True}
            self.complete_order(order_id, billing_address=billing, shipping_address=billing)
        self.send_push(order_id, delay_seconds=self.push_delay_seconds)
        return {"redirect": confirmation, "order_id": order_id}

    def _post_callback(
        self,
        kind: str,
        order_id: str,
        url_template: str,
        *,
        json_body: Any,
        delay_seconds: float,
    ) -> None:
        url = url_template.replace("{checkout.order.id}", order_id)
        with self.lock:
            generation = self._generation

        def run() -> None:
            if delay_seconds > 0:
                time.sleep(delay_seconds)
            with self.lock:
                if generation != self._generation:
                    return  # reset since: drop it
            status: int | None = None
            error: str | None = None
            started = time.time()
            try:
                if json_body is None:
                    answer = requests.post(url, timeout=self.push_timeout_seconds)
                else:
                    answer = requests.post(url, json=json_body, timeout=self.push_timeout_seconds)
                status = answer.status_code
            except requests.RequestException as exc:
                error = repr(exc)
            with self.lock:
                if generation != self._generation:
                    return
                self._callbacks.append(
                    {
                        "kind": kind,
                        "order_id": order_id,
                        "url": url,
                        "json": json_body,
                        "status": status,
                        "error": error,
                        "at": started,
                    }
                )
                self.lock.notify_all()

        threading.Thread(target=run, name=f"kustom-double-{kind}", daemon=True).start()


# --------------------------------------------------------------------------------------------
# Flask app
# --------------------------------------------------------------------------------------------


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    if body is None:
        response = Response(b"", status=status)
        del response.headers["Content-Type"]
    else:
        response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _request_json() -> tuple[bool, Any]:
    """(ok, parsed body); an empty body parses as None."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return True, None
    try:
        return True, json.loads(raw)
    except ValueError:
        return False, None


def _state() -> KustomDoubleState:
    state: KustomDoubleState = current_app.extensions[EXTENSION_KEY]
    return state


def _authorized(state: KustomDoubleState) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), state.username.encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), state.password.encode())
    return user_ok and password_ok


def _fault_response(operation: str, fault: Mapping[str, Any], correlation_id: str) -> ApiResponse:
    status = int(fault["status"])
    if status == 404 and operation in CHECKOUT_OPERATIONS and "error_code" not in fault:
        return ApiResponse(404)  # Kustom's bodiless checkout 404
    code = fault.get("error_code") or FAULT_ERROR_CODES.get(status, "ERROR")
    messages = fault.get("error_messages") or [f"Injected fault: {status} {code}"]
    return ApiResponse(
        status,
        {"error_code": code, "error_messages": list(messages), "correlation_id": correlation_id},
    )


Handler = Callable[..., ApiResponse]


def _dispatch(
    operation: str, handler: Handler, kwargs: dict[str, Any], idempotent: bool
) -> Response:
    state = _state()
    correlation_id = str(uuid.uuid4())
    g.correlation_id = correlation_id
    parsed_ok, body = _request_json()
    key = request.headers.get(IDEMPOTENCY_HEADER) if idempotent else None
    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "operation": operation,
        "status": None,
        "idempotency_key": key,
        "json": copy.deepcopy(body),
        "at": time.time(),
        "order_id": kwargs.get("order_id"),
        "replayed": False,
        "fault": False,
    }
    latency = state.latency_seconds
    if operation == "update_order":
        latency += state.update_delay_seconds
    if latency > 0:
        time.sleep(latency)
    answer: ApiResponse
    if not _authorized(state):
        answer = ApiResponse(
            401,
            {
                "error_code": "UNAUTHORIZED",
                "error_messages": ["Unauthorized"],
                "correlation_id": correlation_id,
            },
            {"WWW-Authenticate": 'Basic realm="Kustom"'},
        )
    else:
        fault = state._take_fault(operation)
        if fault is not None and fault.get("delay_seconds"):
            time.sleep(fault["delay_seconds"])
        if fault is not None and fault.get("status") is not None:
            answer = _fault_response(operation, fault, correlation_id)
            entry["fault"] = True
        elif not parsed_ok:
            answer = ApiResponse(
                400,
                {
                    "error_code": "BAD_VALUE",
                    "error_messages": ["Bad value: body (malformed JSON)"],
                    "correlation_id": correlation_id,
                },
            )
        else:
            with state.lock:  # replay check, action and storing the answer are atomic
                stored = state._idempotent_response(key) if key else None
                if stored is not None:
                    answer = copy.deepcopy(stored)
                    entry["replayed"] = True
                    # Same answer, but this HTTP response's own correlation id.
                    if isinstance(answer.body, dict) and "correlation_id" in answer.body:
                        answer.body["correlation_id"] = correlation_id
                else:
                    try:
                        answer = handler(state, body=body, **kwargs)
                    except KustomError as exc:
                        answer = ApiResponse(exc.status, exc.body(correlation_id))
                    if key:
                        state._remember_response(key, answer)
    entry["status"] = answer.status
    state._record_call(entry)
    headers = {**answer.headers, CORRELATION_HEADER: correlation_id}
    return _json_response(answer.status, answer.body, headers)


def _base_url(state: KustomDoubleState) -> str:
    return state.base_url or request.host_url.rstrip("/")


def _om_url(state: KustomDoubleState, order_id: str, *parts: str) -> str:
    return "/".join([_base_url(state), "ordermanagement/v1/orders", order_id, *parts])


# Handlers: (state, body=..., **path params) -> ApiResponse; they may raise KustomError.


def _h_create_order(state: KustomDoubleState, body: Any) -> ApiResponse:
    order = state.create_order(body, base_url=_base_url(state))
    location = f"{_base_url(state)}/checkout/v3/orders/{order['order_id']}"
    return ApiResponse(201, order, {"Location": location})


def _h_get_order(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return ApiResponse(200, state.read_order(order_id))


def _h_update_order(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return ApiResponse(200, state.update_order(order_id, body))


def _h_om_get(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return ApiResponse(200, state.om_order(order_id))


def _h_acknowledge(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.acknowledge(order_id)
    return ApiResponse(204)


def _h_merchant_references(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.update_merchant_references(order_id, body)
    return ApiResponse(204)


def _h_capture(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    capture = state.capture(order_id, body)
    capture_id = capture["capture_id"]
    return ApiResponse(
        201,
        None,
        {"Location": _om_url(state, order_id, "captures", capture_id), "Capture-Id": capture_id},
    )


def _h_get_capture(
    state: KustomDoubleState, body: Any, order_id: str, capture_id: str
) -> ApiResponse:
    return ApiResponse(200, state.get_capture(order_id, capture_id))


def _h_refund(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    refund = state.refund(order_id, body)
    refund_id = refund["refund_id"]
    return ApiResponse(
        201,
        None,
        {"Location": _om_url(state, order_id, "refunds", refund_id), "Refund-Id": refund_id},
    )


def _h_get_refund(
    state: KustomDoubleState, body: Any, order_id: str, refund_id: str
) -> ApiResponse:
    return ApiResponse(200, state.get_refund(order_id, refund_id))


def _h_cancel(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.cancel(order_id)
    return ApiResponse(204)


def _h_release(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.release_remaining_authorization(order_id)
    return ApiResponse(204)


def _h_extend_authorization(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.extend_authorization_time(order_id)
    return ApiResponse(204)


_OM = "/ordermanagement/v1/orders/<order_id>"
# (rule, methods, operation, handler, idempotent)
_API_ROUTES: tuple[tuple[str, str, str, Handler, bool], ...] = (
    ("/checkout/v3/orders", "POST", "create_order", _h_create_order, False),
    ("/checkout/v3/orders/<order_id>", "GET", "get_order", _h_get_order, False),
    ("/checkout/v3/orders/<order_id>", "POST", "update_order", _h_update_order, False),
    (_OM, "GET", "om_get", _h_om_get, False),
    (f"{_OM}/acknowledge", "POST", "acknowledge", _h_acknowledge, True),
    (f"{_OM}/merchant-references", "PATCH", "merchant_references", _h_merchant_references, True),
    (f"{_OM}/captures", "POST", "capture", _h_capture, True),
    (f"{_OM}/captures/<capture_id>", "GET", "get_capture", _h_get_capture, False),
    (f"{_OM}/refunds", "POST", "refund", _h_refund, True),
    (f"{_OM}/refunds/<refund_id>", "GET", "get_refund", _h_get_refund, False),
    (f"{_OM}/cancel", "POST", "cancel", _h_cancel, True),
    (f"{_OM}/release-remaining-authorization", "POST", "release", _h_release, True),
    (
        f"{_OM}/extend-authorization-time",
        "POST",
        "extend_authorization",
        _h_extend_authorization,
        True,
    ),
)


def _admin_json() -> dict[str, Any]:
    ok, body = _request_json()
    if not ok:
        raise DoubleError(400, "malformed JSON")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise DoubleError(400, "expected a JSON object")
    return body


def _register_admin(app: Flask) -> None:
    @app.errorhandler(DoubleError)
    def _double_error(exc: DoubleError) -> Response:
        return _json_response(exc.status, {"error": str(exc)})

    @app.get("/_double/calls")
    def _calls() -> Response:
        operation = request.args.get("operation") or None
        order_id = request.args.get("order_id") or None
        return _json_response(200, _state().calls(operation, order_id=order_id))

    @app.get("/_double/callbacks")
    def _callbacks() -> Response:
        return _json_response(200, _state().callbacks(request.args.get("kind") or None))

    @app.post("/_double/reset")
    def _reset() -> Response:
        _state().reset()
        return _json_response(204, None)

    @app.get("/_double/faults")
    def _faults() -> Response:
        return _json_response(200, _state().pending_faults())

    @app.post("/_double/faults")
    def _add_faults() -> Response:
        body = _admin_json()
        operation = body.get("operation")
        if not isinstance(operation, str):
            raise DoubleError(400, "operation is required")
        statuses = body.get("statuses")
        if statuses is not None and not isinstance(statuses, list):
            raise DoubleError(400, "statuses must be a list")
        state = _state()
        state.add_faults(
            operation,
            statuses,
            delay_seconds=body.get("delay_seconds"),
            count=body.get("count"),
        )
        return _json_response(200, state.pending_faults())

    @app.delete("/_double/faults")
    def _clear_faults() -> Response:
        _state().clear_faults(request.args.get("operation") or None)
        return _json_response(204, None)

    @app.get("/_double/latency")
    def _get_latency() -> Response:
        return _json_response(200, {"seconds": _state().latency_seconds})

    @app.post("/_double/latency")
    def _set_latency() -> Response:
        seconds = _admin_json().get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise DoubleError(400, "seconds must be a number")
        _state().set_latency(seconds)
        return _json_response(200, {"seconds": _state().latency_seconds})

    @app.get("/_double/orders")
    def _orders() -> Response:
        state = _state()
        return _json_response(200, [state.stored_order(oid) for oid in state.order_ids()])

    @app.get("/_double/orders/<order_id>")
    def _order(order_id: str) -> Response:
        stored = _state().stored_order(order_id)
        if stored is None:
            raise DoubleError(404, f"unknown order {order_id}")
        return _json_response(200, stored)

    @app.post("/_double/orders/<order_id>/complete")
    def _complete(order_id: str) -> Response:
        body = _admin_json()
        delay = body.get("push_delay_seconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise DoubleError(400, "push_delay_seconds must be a number >= 0")
        stored = _state().complete_order(
            order_id,
            fraud_status=body.get("fraud_status", "ACCEPTED"),
            billing_address=body.get("billing_address"),
            shipping_address=body.get("shipping_address"),
            customer=body.get("customer"),
            push=bool(body.get("push", False)),
            push_delay_seconds=float(delay),
        )
        return _json_response(200, stored)

    @app.post("/_double/orders/<order_id>/expire")
    def _expire(order_id: str) -> Response:
        _state().expire_order(order_id)
        return _json_response(204, None)

    @app.post("/_double/orders/<order_id>/push")
    def _push(order_id: str) -> Response:
        delay = _admin_json().get("delay_seconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise DoubleError(400, "delay_seconds must be a number >= 0")
        _state().send_push(order_id, delay_seconds=float(delay))
        return _json_response(202, None)

    @app.post("/_double/orders/<order_id>/fraud-status")
    def _fraud_status(order_id: str) -> Response:
        body = _admin_json()
        stored = _state().set_fraud_status(
            order_id, str(body.get("fraud_status")), notify=bool(body.get("notify", False))
        )
        return _json_response(200, stored)


_SHOPPER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kustom Checkout (playground)</title>
<style>
  :root { color-scheme: light; --ink: #17120f; --muted: #6b625c; --line: #e6e1dc;
          --accent: #0b051d; --pink: #ffa8cd; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--ink); background: #fff; }
  main { padding: 18px 20px 22px; max-width: 640px; margin: 0 auto; }
  header { display: flex; align-items: center; justify-content: space-between; gap: 8px;
           padding-bottom: 10px; border-bottom: 1px solid var(--line); }
  header strong { font-size: 17px; letter-spacing: .2px; }
  .badge { font-size: 12px; background: var(--pink); border-radius: 999px; padding: 2px 9px; }
  h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted);
       margin: 18px 0 8px; }
  table { width: 100%; border-collapse: collapse; }
  td, th { padding: 5px 0; text-align: left; font-weight: normal; }
  td:last-child, th:last-child { text-align: right; white-space: nowrap; }
  tbody tr { border-bottom: 1px solid var(--line); }
  tr.shipping_fee td { color: var(--muted); }
  tfoot .total th, tfoot .total td { font-weight: 700; font-size: 17px; padding-top: 9px; }
  tfoot .tax th, tfoot .tax td { color: var(--muted); font-size: 13px; }
  .options label { display: flex; justify-content: space-between; gap: 10px; padding: 9px 11px;
                   border: 1px solid var(--line); border-radius: 8px; margin-bottom: 6px;
                   cursor: pointer; }
  .options label:has(input:checked) { border-color: var(--accent);
                                       box-shadow: 0 0 0 1px var(--accent); }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
  .grid .wide { grid-column: 1 / -1; }
  .grid label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
  input[type=text], input[type=email], input[type=tel] { font: inherit; color: var(--ink);
        padding: 7px 9px; border: 1px solid #cfc8c1; border-radius: 6px; margin-top: 2px; }
  #kco-error { background: #fdecec; color: #8a1010; border-radius: 6px; padding: 8px 10px; }
  #kco-pay { width: 100%; margin-top: 14px; padding: 12px; font: 600 16px system-ui, sans-serif;
             color: #fff; background: var(--accent); border: 0; border-radius: 8px;
             cursor: pointer; }
  #kco-pay:disabled { opacity: .45; cursor: not-allowed; }
  .fine { font-size: 12px; color: var(--muted); margin: 10px 0 0; }
  main.suspended { filter: grayscale(1); opacity: .6; }
</style>
</head>
<body>
<main id="kco">
  <header>
    <strong>Kustom Checkout</strong>
    <span class="badge">playground &middot; local stand-in</span>
  </header>
  <section aria-labelledby="kco-h-order">
    <h2 id="kco-h-order">Your order</h2>
    <table id="kco-lines">
      <tbody></tbody>
      <tfoot>
        <tr class="total"><th>Total</th><td id="kco-total"></td></tr>
        <tr class="tax"><th>of which VAT</th><td id="kco-tax"></td></tr>
      </tfoot>
    </table>
  </section>
  <section id="kco-shipping-section" aria-labelledby="kco-h-shipping" hidden>
    <h2 id="kco-h-shipping">Delivery</h2>
    <div id="kco-shipping" class="options"></div>
  </section>
  <section aria-labelledby="kco-h-address">
    <h2 id="kco-h-address">Your details</h2>
    <form id="kco-form" class="grid" novalidate>
      <label>First name
        <input type="text" name="given_name" id="kco-given-name" autocomplete="given-name">
      </label>
      <label>Last name
        <input type="text" name="family_name" id="kco-family-name" autocomplete="family-name">
      </label>
      <label class="wide">E-mail
        <input type="email" name="email" id="kco-email" autocomplete="email">
      </label>
      <label class="wide">Street address
        <input type="text" name="street_address" id="kco-street" autocomplete="street-address">
      </label>
      <label>Postal code
        <input type="text" name="postal_code" id="kco-postal-code" autocomplete="postal-code">
      </label>
      <label>City
        <input type="text" name="city" id="kco-city" autocomplete="address-level2">
      </label>
      <label class="wide">Phone
        <input type="tel" name="phone" id="kco-phone" autocomplete="tel">
      </label>
    </form>
  </section>
  <p id="kco-error" role="alert" hidden></p>
  <button id="kco-pay" type="submit" form="kco-form">Pay</button>
  <p class="fine">By paying you accept the shop's
    <a id="kco-terms" target="_top" href="#">terms</a>.
    Nothing is charged: this is the local Kustom playground.</p>
</main>
<script type="application/json" id="kco-initial">__INITIAL__</script>
<script>
(function () {
  "use strict";
  var base = location.pathname.replace(/[/]+$/, "");
  var order = JSON.parse(document.getElementById("kco-initial").textContent);
  var suspended = false, busy = false, paid = false, prefilled = false;
  function $(id) { return document.getElementById(id); }
  function toParent(message) {
    message.source = "kustom-playground";
    if (window.parent !== window) { window.parent.postMessage(message, "*"); }
  }
  function money(minor) {
    var exp = order.currency_exponent, unit = Math.pow(10, exp), v = Math.abs(minor);
    var frac = exp ? "." + String(v % unit).padStart(exp, "0") : "";
    return (minor < 0 ? "-" : "") + Math.floor(v / unit) + frac + " " + order.purchase_currency;
  }
  function resize() { toParent({ type: "resize", height: document.documentElement.scrollHeight }); }
  function showError(message) {
    var box = $("kco-error");
    box.textContent = message || "";
    box.hidden = !message;
    resize();
  }
  function controls() {
    return Array.prototype.slice.call(document.querySelectorAll("#kco input, #kco-pay"));
  }
  function updateDisabled() {
    var off = suspended || busy || paid || order.status !== "checkout_incomplete";
    controls().forEach(function (el) { el.disabled = off; });
    $("kco").classList.toggle("suspended", suspended);
  }
  function render() {
    var body = $("kco-lines").tBodies[0];
    body.replaceChildren();
    order.order_lines.forEach(function (line) {
      var row = document.createElement("tr"), name = document.createElement("td"),
          total = document.createElement("td");
      row.className = "line " + (line.type || "physical");
      var count = line.type === "shipping_fee" ? "" : line.quantity + " \u00d7 ";
      name.textContent = count + line.name;
      total.textContent = money(line.total_amount);
      row.append(name, total);
      body.append(row);
    });
    $("kco-total").textContent = money(order.order_amount);
    $("kco-total").dataset.amount = String(order.order_amount);
    $("kco-tax").textContent = money(order.order_tax_amount);
    var box = $("kco-shipping");
    box.replaceChildren();
    order.shipping_options.forEach(function (option) {
      var label = document.createElement("label"), left = document.createElement("span"),
          input = document.createElement("input"), price = document.createElement("span");
      input.type = "radio"; input.name = "shipping"; input.value = option.id;
      input.checked = option.id === order.selected_shipping_option;
      input.addEventListener("change", function () { chooseShipping(option.id); });
      left.append(input, " " + option.name);
      price.textContent = money(option.price);
      label.append(left, price);
      box.append(label);
    });
    $("kco-shipping-section").hidden = order.shipping_options.length === 0;
    if (!prefilled) {
      prefilled = true;
      Object.keys(order.billing_address).forEach(function (name) {
        var input = document.querySelector('#kco-form [name="' + name + '"]');
        if (input && !input.value) { input.value = order.billing_address[name]; }
      });
    }
    if (order.terms_url) { $("kco-terms").href = order.terms_url; }
    $("kco-pay").textContent = order.status === "checkout_incomplete"
      ? "Pay " + money(order.order_amount) : "Paid";
    updateDisabled();
    resize();
  }
  function call(method, path, body) {
    var init = { method: method, cache: "no-store", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, body: json || {} };
      });
    }, function () {
      return { status: 0, body: { error: "The connection failed. Please try again." } };
    });
  }
  function reload() {
    return call("GET", "/data").then(function (answer) {
      if (answer.status === 200) { order = answer.body; render(); }
      else { showError(answer.body.error || "This checkout has expired."); }
    });
  }
  function chooseShipping(id) {
    busy = true; updateDisabled(); showError("");
    call("POST", "/shipping-option", { id: id }).then(function (answer) {
      busy = false;
      if (answer.body.order_id) { order = answer.body; }
      render();
      showError(answer.body.error);
    });
  }
  $("kco-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (suspended || busy || paid) { return; }
    var address = {};
    new FormData($("kco-form")).forEach(function (value, name) { address[name] = value; });
    busy = true; updateDisabled(); showError("");
    $("kco-pay").textContent = "Paying\u2026";
    call("POST", "/pay", { address: address, revision: order.revision }).then(function (answer) {
      busy = false;
      if (answer.body.redirect) {
        paid = !answer.body.rejected;
        $("kco-pay").textContent = paid ? "Paid \u2713" : "Redirecting\u2026";
        updateDisabled();
        var url = answer.body.redirect;
        toParent({ type: "redirect", url: url });
        // Only if the page did not act on the message (an old snippet, or no parent).
        setTimeout(function () {
          try { window.top.location.href = url; } catch (e) { location.href = url; }
        }, window.parent === window ? 0 : 2500);
        return;
      }
      showError(answer.body.error || "The payment failed. Please try again.");
      if (answer.body.reload) { reload(); } else { render(); }
    });
  });
  window.addEventListener("message", function (event) {
    var message = event.data || {};
    if (event.source !== window.parent || message.source !== "kustom-playground") { return; }
    if (message.type === "suspend") { suspended = true; updateDisabled(); }
    if (message.type === "resume") { suspended = false; reload(); }
  });
  if (typeof ResizeObserver === "function") { new ResizeObserver(resize).observe(document.body); }
  render();
})();
</script>
</body>
</html>
"""

_GONE_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    "<title>Kustom Checkout (playground)</title></head>"
    "<body style='font: 15px system-ui, sans-serif; padding: 20px'>"
    "<p>This checkout has expired or does not exist. Please reload the shop's checkout page."
    "</p></body></html>"
)


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _register_shopper_ui(app: Flask) -> None:
    """The page inside the snippet's iframe, and the calls it makes (as a shopper, no auth)."""
    prefix = "/playground/checkout/<order_id>"

    @app.get(prefix)
    def _checkout_page(order_id: str) -> Response:
        try:
            view = _state().shopper_view(order_id)
        except DoubleError:
            return Response(_GONE_PAGE, status=404, mimetype="text/html")
        page = _SHOPPER_PAGE.replace("__INITIAL__", _script_json(view))
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get(f"{prefix}/data")
    def _checkout_data(order_id: str) -> Response:
        return _json_response(200, _state().shopper_view(order_id), {"Cache-Control": "no-store"})

    @app.post(f"{prefix}/shipping-option")
    def _checkout_shipping(order_id: str) -> Response:
        option_id = _admin_json().get("id")
        if not isinstance(option_id, str) or not option_id:
            raise DoubleError(400, "id is required")
        return _json_response(200, _state().shopper_select_shipping(order_id, option_id))

    @app.post(f"{prefix}/pay")
    def _checkout_pay(order_id: str) -> Response:
        body = _admin_json()
        address = body.get("address")
        revision = body.get("revision")
        if not isinstance(address, dict):
            raise DoubleError(400, "address must be an object")
        if revision is not None and not _is_int(revision):
            raise DoubleError(400, "revision must be an integer")
        return _json_response(200, _state().shopper_pay(order_id, address, revision=revision))


def create_app(
    *,
    username: str = "playground",
    password: str = "playground",  # noqa: S107 - the playground's public dummy login
    latency_seconds: float = 0.0,
    base_url: str | None = None,
    push_delay_seconds: float = DEFAULT_PUSH_DELAY_SECONDS,
    update_delay_seconds: float = 0.0,
) -> Flask:
    """The Kustom double as a Flask app; its state is ``app.extensions["kustom_double"]``.

    ``base_url`` (default: the request's host URL) prefixes the ``Location`` headers and the
    iframe URL of the html snippet. ``push_delay_seconds`` is how long after the shopper's
    Pay the push is sent (Kustom pushes seconds after the redirect to the confirmation).
    ``update_delay_seconds`` is added to every order update's answer.
    """
    app = Flask("playground.kustom")
    app.extensions[EXTENSION_KEY] = KustomDoubleState(
        username=username,
        password=password,
        latency_seconds=latency_seconds,
        base_url=base_url,
        push_delay_seconds=push_delay_seconds,
        update_delay_seconds=update_delay_seconds,
    )

    for rule, method, operation, handler, idempotent in _API_ROUTES:

        def view(
            _operation: str = operation,
            _handler: Handler = handler,
            _idempotent: bool = idempotent,
            **kwargs: Any,
        ) -> Response:
            return _dispatch(_operation, _handler, kwargs, _idempotent)

        app.add_url_rule(rule, endpoint=operation, view_func=view, methods=[method])

    _register_admin(app)
    _register_shopper_ui(app)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return _json_response(404, None)

    @app.errorhandler(405)
    def _method_not_allowed(_exc: Exception) -> Response:
        return _json_response(
            405,
            {
                "error_code": "METHOD_NOT_ALLOWED",
                "error_messages": [f"Method {request.method} not allowed"],
                "correlation_id": getattr(g, "correlation_id", None) or str(uuid.uuid4()),
            },
        )

    @app.after_request
    def _correlation(response: Response) -> Response:
        if CORRELATION_HEADER not in response.headers:
            response.headers[CORRELATION_HEADER] = getattr(g, "correlation_id", None) or str(
                uuid.uuid4()
            )
        return response

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playground.kustom",
        description="Serve the in-memory Kustom Checkout v3 / Order Management double.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to API calls")
    parser.add_argument("--username", default="playground")
    parser.add_argument("--password", default="playground")
    parser.add_argument("--base-url", default=None, help="public URL, if not http://host:port")
    parser.add_argument(
        "--push-delay",
        type=float,
        default=float(os.environ.get(PUSH_DELAY_ENV) or DEFAULT_PUSH_DELAY_SECONDS),
        help=f"seconds from Pay to the push (env {PUSH_DELAY_ENV}; default 2)",
    )
    parser.add_argument(
        "--update-delay",
        type=float,
        default=float(os.environ.get(UPDATE_DELAY_ENV) or 0.0),
        help=f"seconds added to each order update's answer (env {UPDATE_DELAY_ENV}; default 0)",
    )
    args = parser.parse_args(argv)
    if args.push_delay < 0:
        parser.error("--push-delay must be >= 0")
    if args.update_delay < 0:
        parser.error("--update-delay must be >= 0")

    from werkzeug.serving import make_server

    from playground.server import serve_until_interrupted

    app = create_app(
        username=args.username,
        password=args.password,
        latency_seconds=args.latency,
        base_url=args.base_url,
        push_delay_seconds=args.push_delay,
        update_delay_seconds=args.update_delay,
    )
    server = make_server(args.host, args.port, app, threaded=True)
    url = args.base_url or f"http://{args.host}:{server.server_port}"
    print(f"Kustom playground double listening on {url}", flush=True)
    print(
        f"  KUSTOM_API_URL={url} KUSTOM_USERNAME={args.username} KUSTOM_PASSWORD={args.password}",
        flush=True,
    )
    print(f"  test control: {url}/_double/calls, {url}/_double/orders/<id>/complete", flush=True)
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
