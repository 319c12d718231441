"""Idempotent checkout: one usable Kustom order per cart.

While the cart's order is usable (Kustom still returns it and it is younger than its 48 h
life) every call returns that order. When Kustom answers 4xx/5xx for it, or it is too old,
a new order is created from the newest cart render. Creation is serialised per cart so
concurrent calls never create two orders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.errors import Refusal
from kustom_app.kustom import KustomClient, KustomError
from kustom_app.logs import event_log
from kustom_app.render import load_render
from kustom_app.signing import callback_token
from kustom_app.state import CartState, CartStore, now_ms
from kustom_app.sync import UNPAYABLE_PREFIX, ingest_render, prepare_render

log = event_log(__name__)


class CheckoutError(Refusal):
    code = "checkout_error"


class CartNotFound(CheckoutError):
    status, code = 404, "cart_not_found"


class CartCompleted(CheckoutError):
    status, code = 409, "cart_completed"


# The checkout's answers for conditions other modules raise: `payload.CartNotPayable`
# (why the cart cannot be paid) and the clients' `KustomUnavailable` / `CommerceUnavailable`
# (a call failed) become these refusals, each an HTTP status and code for the storefront.
class CartNotPayableRefusal(CheckoutError):
    status, code = 422, "cart_not_payable"


class KustomUnavailableRefusal(CheckoutError):
    status, code = 502, "kustom_unavailable"


class CommerceUnavailableRefusal(CheckoutError):
    status, code = 502, "commerce_unavailable"


class CheckoutBusy(CheckoutError):
    status, code = 503, "checkout_busy"


@dataclass(frozen=True)
class StorefrontUrls:
    terms: str
    checkout: str
    confirmation: str


@dataclass(frozen=True)
class CheckoutResult:
    order_id: str
    html_snippet: str
    syncing: bool
    created: bool
    enqueue_sync: bool = False


def callbacks_allowed(public_base_url: str, kustom_api_url: str) -> bool:
    """Kustom insists on https for server callbacks; a local double does not."""
    if urlsplit(public_base_url).scheme == "https":
        return True
    host = urlsplit(kustom_api_url).hostname or ""
    return not (host == "kustom.co" or host.endswith(".kustom.co"))


def merchant_urls(
    public_base_url: str,
    callback_secret: str,
    cart_id: str,
    urls: StorefrontUrls,
    *,
    include_server_callbacks: bool = True,
) -> dict[str, str]:
    """The merchant_urls of a new order; every callback carries the cart and its token."""
    query = urlencode({"cart": cart_id, "token": callback_token(callback_secret, cart_id)})
    base = public_base_url.rstrip("/")
    result = {
        "terms": urls.terms,
        "checkout": urls.checkout,
        "confirmation": urls.confirmation,
        # Kustom substitutes the placeholder itself; it must stay unescaped.
        "push": f"{base}/kustom/push?order_id={{checkout.order.id}}&{query}",
        "notification": f"{base}/kustom/notification?order_id={{checkout.order.id}}&{query}",
    }
    if include_server_callbacks:
        result.update(
            {
                "validation": f"{base}/kustom/validate?{query}",
                "address_update": f"{base}/kustom/address-update?{query}",
                "country_change": f"{base}/kustom/country-change?{query}",
                "shipping_option_update": f"{base}/kustom/shipping-option-update?{query}",
            }
        )
    return result


class CheckoutService:
    def __init__(
        self,
        store: CartStore,
        kustom: KustomClient,
        commerce: CommerceClient | None,
        *,
        public_base_url: str,
        callback_secret: str,
        kustom_api_url: str,
        order_max_age_seconds: int,
    ) -> None:
        self.store = store
        self.kustom = kustom
        self.commerce = commerce
        self.public_base_url = public_base_url
        self.callback_secret = callback_secret
        self.include_server_callbacks = callbacks_allowed(public_base_url, kustom_api_url)
        if not self.include_server_callbacks:
            log.warning(
                "kustom.checkout.server_callbacks_off",
                public_base_url=public_base_url,
                reason="Kustom requires https for the validation, address, country and shipping"
                " callbacks, so new orders are created without them (no OnKustomValidation rules)",
            )
        self.order_max_age_ms = order_max_age_seconds * 1000

    def _fetch_render(self, cart_id: str) -> CartState:
        if self.commerce is None:
            raise CartNotFound(f"No cart render has been received for cart {cart_id}.")
        try:
            raw = self.commerce.get_cart(cart_id)
        except CommerceRejected as e:
            if e.status == 404:
                raise CartNotFound(f"The commerce backend does not know cart {cart_id}.") from e
            raise CommerceUnavailableRefusal(
                f"The commerce backend refused to return cart {cart_id}.",
                {"status": e.status},
            ) from e
        except CommerceUnavailable as e:
            raise CommerceUnavailableRefusal("The commerce backend is unavailable.") from e
        try:
            render = load_render(raw if isinstance(raw, dict) else {})
        except Exception as e:
            raise CommerceUnavailableRefusal(
                f"The commerce backend returned an invalid render for cart {cart_id}."
            ) from e
        if render["cartId"] != cart_id:
            raise CommerceUnavailableRefusal("The commerce backend returned a different cart.")
        ingest_render(self.store, render, kustom_adds_shipping=self.kustom_adds_shipping)
        state = self.store.load(cart_id)
        if state is None:  # pragma: no cover - just written
            raise CartNotFound(f"Cart {cart_id} vanished while being stored.")
        return state

    def _usable(self, state: CartState, now: int) -> bool:
        if not state.order_usable or state.order_id is None:
            return False
        touched = max(state.order_created_at or 0, state.order_updated_at or 0)
        return now - touched < self.order_max_age_ms

    @property
    def kustom_adds_shipping(self) -> bool:
        """Orders go without the shipping_option_update callback, so Kustom adds the
        selected shipping option's price itself (see `build_order_payload`)."""
        return not self.include_server_callbacks

    def _payable(self, state: CartState) -> tuple[str, dict[str, Any]]:
        """The stored render's payload hash and payload; 422 `cart_not_payable` when the
        cart cannot be paid for as it stands (the message names the line that is off)."""
        assert state.render is not None
        prepared = prepare_render(
            load_render(state.render), kustom_adds_shipping=self.kustom_adds_shipping
        )
        if prepared.payload is None:
            error = prepared.not_payable
            raise CartNotPayableRefusal(
                error.message if error else "The cart cannot be paid for.",
                error.details if error else {},
            )
        return prepared.hash, prepared.payload

    def _existing(self, state: CartState) -> CheckoutResult | None:
        """Kustom's current view of the cart's order, or None if it must be re-created."""
        if state.order_id is None:
            return None
        try:
            order = self.kustom.get_order(state.order_id, cart=state.cart_id)
        except KustomError as e:
            if e.status is None:
                # No answer at all (timeout, connection): the order may be fine, and a new
                # one would orphan it. The storefront retries; Kustom decides then.
                raise KustomUnavailableRefusal(
                    "Kustom did not answer while reading the cart's order.",
                    {"status": None, "correlationId": None},
                ) from e
            log.info(
                "kustom.checkout.order_unusable",
                cart=state.cart_id,
                order=state.order_id,
                status=e.status,
            )
            self.store.mark_order_unusable(state.cart_id, state.order_id)
            return None
        return CheckoutResult(
            state.order_id, order.get("html_snippet") or "", state.syncing, created=False
        )

    def open(self, cart_id: str, urls: StorefrontUrls) -> CheckoutResult:
        """Return the cart's usable Kustom order, creating it when there is none."""
        state = self.store.load(cart_id)
        if state is None or state.render is None:
            state = self._fetch_render(cart_id)
        if state.cart_state == "completed":
            raise CartCompleted(f"Cart {cart_id} is already completed.")
        if (state.pending_hash or "").startswith(UNPAYABLE_PREFIX):
            # Its order may exist, but the shopper must not pay for this cart as it stands.
            self._payable(state)
        now = int(time.time() * 1000)
        if self._usable(state, now):
            existing = self._existing(state)
            if existing is not None:
                return existing
        elif state.order_usable and state.order_id:
            self.store.mark_order_unusable(cart_id, state.order_id)  # older than 48 h
        lock = self.store.creation_lock(cart_id)
        if not lock.acquire():
            raise CheckoutBusy("Another checkout call for this cart is still creating its order.")
        try:
            return self._create(cart_id, urls)
        finally:
            try:
                lock.release()
            except Exception:  # lock expired: harmless, creation is finished
                log.warning("kustom.checkout.lock_expired", cart=cart_id)

    def _create(self, cart_id: str, urls: StorefrontUrls) -> CheckoutResult:
        state = self.store.load(cart_id)
        if state is None or state.render is None:
            raise CartNotFound(f"Cart {cart_id} is unknown.")
        if state.cart_state == "completed":
            raise CartCompleted(f"Cart {cart_id} is already completed.")
        if self._usable(state, int(time.time() * 1000)):
            # A concurrent call created the order while we waited for the lock.
            existing = self._existing(state)
            if existing is not None:
                return existing
        payload_hash, payload = self._payable(state)
        body = dict(payload)
        body["merchant_urls"] = merchant_urls(
            self.public_base_url,
            self.callback_secret,
            cart_id,
            urls,
            include_server_callbacks=self.include_server_callbacks,
        )
        try:
            order = self.kustom.create_order(body, cart=cart_id)
        except KustomError as e:
            details: dict[str, Any] = {"status": e.status, "correlationId": e.correlation_id}
            if hasattr(e, "error_code"):
                details["kustomErrorCode"] = e.error_code
            raise KustomUnavailableRefusal(
                "Kustom could not create the checkout order.", details
            ) from e
        order_id = str(order["order_id"])
        needs_sync = self.store.record_order(cart_id, order_id, payload_hash, payload)
        self.store.timeline.record(
            cart_id,
            "order.created",
            at=now_ms(),
            order=order_id,
            hash=payload_hash,
            syncNeeded=needs_sync or None,
        )
        log.info("kustom.checkout.created", cart=cart_id, order=order_id, hash=payload_hash)
        after = self.store.load(cart_id)
        return CheckoutResult(
            order_id,
            order.get("html_snippet") or "",
            bool(after and after.syncing) or needs_sync,
            created=True,
            enqueue_sync=needs_sync,
        )
