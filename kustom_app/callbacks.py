"""Kustom's order-update callbacks: address update, country change, shipping option update.

Kustom calls these while the shopper edits the checkout and applies our 200 answer
(``order_amount``, ``order_tax_amount``, ``order_lines``, ``shipping_options``) to its own
order, so the answer's payload is recorded as both pending and synced
(`CartStore.record_applied_render`) and no sync job is needed. A refusal is a
`CallbackRefused`, answered 400 ``{"error_type", "error_text"}`` with one of Kustom's codes.

With a commerce backend (CONTRACT section 5) the change goes to it and its new render is
the answer:

* address update → ``POST /carts/<id>/address`` ``{"shippingAddress", "billingAddress"}``;
* country change → the same ``/address`` call: a new billing country is an address change
  for the backend (taxes, shipping prices), and section 5 has no separate endpoint;
* shipping option → ``POST /carts/<id>/shipping-option`` ``{"shippingOptionId"}``.

A backend 422 ``{"error": {"code": "unsupported_shipping_address"|"address_error",
"message"}}`` is passed on with that code; anything else that goes wrong (backend down or
slow, another 4xx, an invalid or unpayable render) refuses with ``approval_failed``: we do
not let Kustom go on with amounts nobody has confirmed.

Without a backend, an address or country change answers the current render's amounts, and
a shipping option is chosen from the render's ``shippingOptions`` locally: the shipping
line is replaced, the totals move by the price (and tax) difference and the version goes
up by one. An id the render does not offer refuses with ``approval_failed`` (Kustom has no
code for a bad shipping option; ``unsupported_shipping_address`` would blame the address).
The next render from the backend replaces such a local choice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.logs import event_log
from kustom_app.money import as_decimal
from kustom_app.render import load_render
from kustom_app.state import CartStore, now_ms
from kustom_app.sync import prepare_render
from kustom_app.validation import APPROVAL_FAILED, NOT_PAYABLE_TEXT, thread_pool

log = event_log(__name__)

ADDRESS_ERROR = "address_error"
UNSUPPORTED_SHIPPING_ADDRESS = "unsupported_shipping_address"
BACKEND_ERROR_CODES = frozenset({ADDRESS_ERROR, UNSUPPORTED_SHIPPING_ADDRESS})

# Kustom shows the shopper a spinner while it waits for us, and gives a callback 3 s. The
# backend's answer is awaited at most this long, whatever the socket does (a backend that
# trickles bytes would keep a plain read timeout alive); later is treated as down.
UPDATE_BUDGET = 2.5
_MAX_STALE_RETRIES = 3

DEFAULT_TEXT = {
    ADDRESS_ERROR: "Please check the address.",
    UNSUPPORTED_SHIPPING_ADDRESS: "We don't ship to this address.",
    APPROVAL_FAILED: "We could not update your order right now. Please try again.",
}
UNKNOWN_OPTION_TEXT = "The selected shipping option is not available."

# Fields of the built payload that Kustom's callback answer carries
# (components/schemas/shipping_service_response of the callbacks OpenAPI description).
_ANSWER_FIELDS = (
    "order_amount",
    "order_tax_amount",
    "order_lines",
    "shipping_options",
    "purchase_currency",
)

__all__ = [
    "CallbackAnswer",
    "CallbackRefused",
    "UnknownShippingOption",
    "apply_render",
    "change_country",
    "kustom_answer",
    "select_shipping_option",
    "update_address",
    "update_shipping_option",
]


class CallbackRefused(Exception):
    """Tell Kustom no: 400 ``{"error_type": code, "error_text": text}``."""

    def __init__(self, code: str, text: str | None = None, *, reason: str = "") -> None:
        self.code = code
        self.text = text or DEFAULT_TEXT.get(code, code)
        self.reason = reason or code  # for logs only
        super().__init__(f"{self.code}: {self.reason}")

    def body(self) -> dict[str, str]:
        return {"error_type": self.code, "error_text": self.text}


class UnknownShippingOption(CallbackRefused):
    def __init__(self, option_id: str) -> None:
        super().__init__(APPROVAL_FAILED, UNKNOWN_OPTION_TEXT, reason="unknown_shipping_option")
        self.option_id = option_id


@dataclass(frozen=True)
class CallbackAnswer:
    body: dict[str, Any]  # Kustom's shipping_service_response
    payload_hash: str  # recorded as pending and synced
    version: int


def kustom_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """The 200 answer of an update callback, from a payload `build_order_payload` made."""
    return {name: payload[name] for name in _ANSWER_FIELDS if name in payload}


def apply_render(store: CartStore, cart_id: str, render: dict[str, Any]) -> CallbackAnswer:
    """Record ``render`` (loaded) as applied by Kustom and build the answer that applies it.

    When a newer render was stored in the meantime, that one is newer than what the shopper
    changed (the backend numbers its renders), so it becomes the answer instead.
    Refuses ``approval_failed`` when the render cannot be paid for.
    """
    for _ in range(_MAX_STALE_RETRIES):
        prepared = prepare_render(render)
        if prepared.payload is None:
            raise CallbackRefused(APPROVAL_FAILED, NOT_PAYABLE_TEXT, reason="cart_not_payable")
        version = int(render["version"])
        if store.record_applied_render(
            cart_id, version, prepared.render_json, prepared.hash, prepared.payload
        ):
            log.info("kustom.callback.applied", cart=cart_id, version=version, hash=prepared.hash)
            return CallbackAnswer(kustom_answer(prepared.payload), prepared.hash, version)
        state = store.load(cart_id)
        if state is None or state.render is None:
            break
        log.info(
            "kustom.callback.newer_render", cart=cart_id, answered=version, stored=state.version
        )
        render = load_render(state.render)
    raise CallbackRefused(APPROVAL_FAILED, reason="render_race")


def _open_render(store: CartStore, cart_id: str) -> dict[str, Any] | None:
    """The stored render (loaded), None if there is none; refuses a cart no longer open."""
    state = store.load(cart_id)
    if state is None:
        return None
    if state.cart_state != "open":
        raise CallbackRefused(APPROVAL_FAILED, NOT_PAYABLE_TEXT, reason=f"cart_{state.cart_state}")
    return load_render(state.render) if state.render is not None else None


def _forward(
    commerce: CommerceClient, operation: str, cart_id: str, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST a change to the backend and return the new render it answers (loaded)."""
    future = thread_pool("work").submit(
        commerce.post,
        operation,
        f"/carts/{quote(cart_id, safe='')}/{path}",
        body,
        # The socket's read timeout a little past the budget: the budget decides, so a slow
        # backend is always "backend_slow" (the two firing together made it a race).
        timeout=(1.0, UPDATE_BUDGET + 0.5),
    )
    try:
        _, answer = future.result(timeout=UPDATE_BUDGET)
    except FutureTimeout as e:
        log.warning(
            "kustom.callback.backend_slow",
            op=operation,
            cart=cart_id,
            waited_ms=UPDATE_BUDGET * 1000,
        )
        raise CallbackRefused(APPROVAL_FAILED, reason="backend_slow") from e
    except CommerceRejected as e:
        code = e.error_code
        error = e.body.get("error") if isinstance(e.body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        text = message if isinstance(message, str) and message.strip() else None
        if e.status == 422 and code in BACKEND_ERROR_CODES:
            raise CallbackRefused(code, text, reason=f"backend_{code}") from e
        log.warning(
            "kustom.callback.backend_refused",
            op=operation,
            cart=cart_id,
            status=e.status,
            code=code,
        )
        raise CallbackRefused(APPROVAL_FAILED, reason=f"backend_{e.status}") from e
    except CommerceUnavailable as e:
        log.warning(
            "kustom.callback.backend_unavailable", op=operation, cart=cart_id, status=e.status
        )
        raise CallbackRefused(APPROVAL_FAILED, reason="backend_unavailable") from e
    try:
        render = load_render(answer if isinstance(answer, dict) else {})
    except Exception as e:
        log.warning("kustom.callback.invalid_render", op=operation, cart=cart_id)
        raise CallbackRefused(APPROVAL_FAILED, reason="invalid_render") from e
    if render["cartId"] != cart_id:
        log.warning("kustom.callback.other_cart", op=operation, cart=cart_id)
        raise CallbackRefused(APPROVAL_FAILED, reason="other_cart")
    return render


def update_address(
    store: CartStore,
    commerce: CommerceClient | None,
    cart_id: str,
    *,
    shipping_address: dict[str, Any] | None,
    billing_address: dict[str, Any] | None,
    operation: str = "address_update",
) -> CallbackAnswer:
    """The shopper changed an address: the backend reprices, Kustom gets the new amounts.

    The addresses are Kustom's address objects, passed on as they are (never logged).
    Without a backend the current render's amounts are the answer.
    """

    def change() -> CallbackAnswer:
        current = _open_render(store, cart_id)
        if commerce is None:
            if current is None:
                raise CallbackRefused(APPROVAL_FAILED, NOT_PAYABLE_TEXT, reason="unknown_cart")
            return apply_render(store, cart_id, current)
        render = _forward(
            commerce,
            operation,
            cart_id,
            "address",
            {"shippingAddress": shipping_address, "billingAddress": billing_address},
        )
        return apply_render(store, cart_id, render)

    return _on_timeline(store, cart_id, operation, change)


def change_country(
    store: CartStore,
    commerce: CommerceClient | None,
    cart_id: str,
    *,
    shipping_address: dict[str, Any] | None,
    billing_address: dict[str, Any] | None,
) -> CallbackAnswer:
    """The shopper changed the billing country: the same as an address update (see above)."""
    return update_address(
        store,
        commerce,
        cart_id,
        shipping_address=shipping_address,
        billing_address=billing_address,
        operation="country_change",
    )


def update_shipping_option(
    store: CartStore, commerce: CommerceClient | None, cart_id: str, option_id: str
) -> CallbackAnswer:
    """The shopper picked a shipping option: the backend (or we) reprice the order."""

    def change() -> CallbackAnswer:
        current = _open_render(store, cart_id)
        if commerce is not None:
            render = _forward(
                commerce,
                "shipping_option_update",
                cart_id,
                "shipping-option",
                {"shippingOptionId": option_id},
            )
            return apply_render(store, cart_id, render)
        if current is None:
            raise CallbackRefused(APPROVAL_FAILED, NOT_PAYABLE_TEXT, reason="unknown_cart")
        return apply_render(store, cart_id, select_shipping_option(current, option_id))

    return _on_timeline(store, cart_id, "shipping_option_update", change)


def _on_timeline(
    store: CartStore, cart_id: str, operation: str, change: Callable[[], CallbackAnswer]
) -> CallbackAnswer:
    """Run an update callback's ``change`` and put what it answered on the cart's
    timeline: the version and hash applied, or the refusal's code (never an address)."""
    try:
        answer = change()
    except CallbackRefused as e:
        store.timeline.record(
            cart_id, f"callback.{operation}.refused", at=now_ms(), code=e.code, reason=e.reason
        )
        raise
    store.timeline.record(
        cart_id,
        f"callback.{operation}",
        at=now_ms(),
        version=answer.version,
        hash=answer.payload_hash,
    )
    return answer


def select_shipping_option(render: dict[str, Any], option_id: str) -> dict[str, Any]:
    """A copy of the render (loaded) with ``option_id`` from its shippingOptions selected.

    The shipping line becomes the option, ``cartTotal`` moves by the price difference and
    ``cartTaxTotal`` by the tax difference (for ``taxIncluded: false`` carts the tax is on
    top of the total, so ``cartTotal`` moves by both), and the version goes up by one. The
    render comes back unchanged (same version) when the option is already selected.
    Raises `UnknownShippingOption` for an id the render does not offer.
    """
    options = render.get("shippingOptions") or []
    option = next((o for o in options if o["id"] == option_id), None)
    if option is None:
        raise UnknownShippingOption(option_id)
    current = render.get("shipping")
    if current is not None and current["id"] == option_id and _same_price(current, option):
        return render

    def amount(shipping: dict[str, Any] | None, name: str) -> Decimal:
        return as_decimal(shipping[name]) if shipping is not None else Decimal(0)

    price_change = amount(option, "price") - amount(current, "price")
    tax_change = amount(option, "taxTotal") - amount(current, "taxTotal")
    total_change = price_change if render["taxIncluded"] else price_change + tax_change
    selected = copy.deepcopy(render)
    selected["shipping"] = copy.deepcopy(option)
    selected["cartTotal"] = as_decimal(render["cartTotal"]) + total_change
    selected["cartTaxTotal"] = as_decimal(render["cartTaxTotal"]) + tax_change
    selected["version"] = int(render["version"]) + 1
    return selected


def _same_price(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(as_decimal(a[name]) == as_decimal(b[name]) for name in ("price", "taxTotal"))
