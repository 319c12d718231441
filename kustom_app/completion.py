"""Completing a cart once Kustom has authorized the payment — exactly once.

The browser's confirm call and Kustom's push race; both run `CompletionService.complete`:

1. fetch the order from Kustom (never trust the caller) and check it is this cart's, in
   this currency, with the amount and lines of the payload Kustom was last synced with;
   on mismatch complete nothing and keep the reasons for an operator;
2. claim the completion in Redis (one Lua compare-and-set, with a token and a lease);
3. create the shop order at the commerce backend with the idempotency key
   ``kustom-complete-<kustomOrderId>``, so even a claim holder that stalled past its
   lease cannot create a second order;
4. record ``completed`` with the order number. Acknowledging the Kustom order is queued
   by the caller afterwards — never before the commerce backend has the order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.errors import Refusal
from kustom_app.kustom import KustomClient, KustomRejected
from kustom_app.logs import event_log
from kustom_app.metrics import COMPLETION_MISMATCHES, COMPLETIONS
from kustom_app.order_match import same_order_lines, with_kustom_added_shipping
from kustom_app.state import CartState, CartStore, now_ms

log = event_log(__name__)


class CompletionError(Refusal):
    code = "completion_error"


class CartUnknown(CompletionError):
    status, code = 404, "cart_not_found"


class KustomOrderUnknown(CompletionError):
    status, code = 404, "kustom_order_not_found"


class CommerceNotConfigured(CompletionError):
    status, code = 503, "commerce_not_configured"


class CompletionRefusedByCommerce(CompletionError):
    """The commerce backend answered the completion with a 4xx (`CommerceRejected`)."""

    status, code = 502, "commerce_rejected"


@dataclass(frozen=True)
class CompletionOutcome:
    status: str  # completed | incomplete | in_progress | mismatch
    order_id: str
    order_number: str | None = None
    newly_completed: bool = False
    reasons: list[str] = field(default_factory=list)
    retry_after_ms: int = 0


def order_mismatches(
    order: dict[str, Any], expected: dict[str, Any] | None, cart_id: str
) -> list[str]:
    """Why Kustom's completed order is not the cart it was synced with (empty: it is)."""
    if expected is None:
        return ["no synced cart payload is known for this cart"]
    expected = with_kustom_added_shipping(expected, order.get("order_lines") or ())
    reasons = []
    if order.get("merchant_reference1") != cart_id:
        reasons.append(
            f"the order belongs to cart {order.get('merchant_reference1')!r}, not {cart_id!r}"
        )
    currency = str(order.get("purchase_currency") or "").upper()
    if currency != expected.get("purchase_currency"):
        cart_currency = expected.get("purchase_currency")
        reasons.append(f"the order is in {currency or 'no currency'}, the cart in {cart_currency}")
    # The amount authorized now: an operator may have lowered it to the cart's since the
    # purchase (original_order_amount keeps what the shopper first authorized).
    amount = order.get("order_amount", order.get("original_order_amount"))
    if amount != expected.get("order_amount"):
        reasons.append(
            f"the order amount {amount} differs from the cart's {expected.get('order_amount')}"
        )
    if not same_order_lines(order.get("order_lines") or (), expected.get("order_lines") or ()):
        reasons.append("the order lines differ from the cart's")
    return reasons


def completion_body(order_id: str, order: dict[str, Any]) -> dict[str, Any]:
    """What the commerce backend receives (CONTRACT section 5), amounts in minor units."""
    lines = order.get("order_lines") or []
    return {
        "kustomOrderId": order_id,
        "orderAmount": order.get("order_amount", order.get("original_order_amount")),
        "orderTaxAmount": order.get(
            "order_tax_amount", sum(int(line.get("total_tax_amount") or 0) for line in lines)
        ),
        "currencyCode": str(order.get("purchase_currency") or "").upper(),
        "billingAddress": order.get("billing_address"),
        "shippingAddress": order.get("shipping_address"),
        "customer": order.get("customer"),
        "selectedShippingOption": order.get("selected_shipping_option"),
        "fraudStatus": order.get("fraud_status"),
    }


class CompletionService:
    def __init__(
        self,
        store: CartStore,
        kustom: KustomClient,
        commerce: CommerceClient | None,
    ) -> None:
        # The completion lease and the order record's TTL are the store's (its settings).
        self.store = store
        self.kustom = kustom
        self.commerce = commerce

    def fetch_completed_order(self, cart_id: str, order_id: str) -> dict[str, Any] | None:
        """The order from order management, or None while Kustom has not completed it.

        Raises `KustomOrderUnknown` when Kustom knows the order under neither API.
        """
        try:
            return self.kustom.get_om_order(order_id, cart=cart_id)
        except KustomRejected as e:
            if e.status != 404:
                raise
        try:
            checkout = self.kustom.get_order(order_id, cart=cart_id)
        except KustomRejected as e:
            if e.status == 404:
                raise KustomOrderUnknown(f"Kustom does not know order {order_id}.") from e
            raise
        log.info(
            "kustom.completion.not_complete",
            cart=cart_id,
            order=order_id,
            status=checkout.get("status"),
        )
        return None

    def _wait_for_winner(self, cart_id: str, order_id: str, seconds: float) -> CompletionOutcome:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.store.load(cart_id)
            if state and state.cart_state == "completed":
                return CompletionOutcome("completed", order_id, state.order_number)
            if state is None or state.cart_state == "open":
                break
            time.sleep(0.05)
        return CompletionOutcome("in_progress", order_id)

    def complete(
        self,
        cart_id: str,
        order_id: str,
        *,
        path: str,
        token: str,
        wait_seconds: float = 0.0,
        release_on_outage: bool = True,
    ) -> CompletionOutcome:
        """Complete the cart from Kustom order ``order_id`` unless someone already did.

        Raises `CommerceUnavailable`/`KustomUnavailable` for outages (retry later) and
        `CompletionError` subclasses for refusals.
        """
        state = self.store.load(cart_id)
        if state is None:
            raise CartUnknown(f"Nothing is known about cart {cart_id}.")
        if state.cart_state == "completed":
            if state.completion_order_id in (None, order_id):
                return CompletionOutcome("completed", order_id, state.order_number)
            reasons = [
                f"cart {cart_id} was already completed with Kustom order "
                f"{state.completion_order_id}; this is a second payment"
            ]
            self._mismatch(state, order_id, path, reasons)
            return CompletionOutcome("mismatch", order_id, reasons=reasons)
        order = self.fetch_completed_order(cart_id, order_id)
        if order is None:
            return CompletionOutcome("incomplete", order_id)
        reasons = order_mismatches(order, state.sync_payload, cart_id)
        if reasons:
            self._mismatch(state, order_id, path, reasons)
            return CompletionOutcome("mismatch", order_id, reasons=reasons)
        if self.commerce is None:
            raise CommerceNotConfigured(
                "COMMERCE_API_URL is not set; the cart cannot be completed."
            )

        claim = self.store.claim_completion(cart_id, token, order_id, path)
        if claim.action == "completed":
            return CompletionOutcome("completed", order_id, claim.order_number)
        if claim.action == "busy":
            outcome = self._wait_for_winner(cart_id, order_id, wait_seconds)
            if outcome.status != "completed":
                return CompletionOutcome(
                    "in_progress", order_id, retry_after_ms=claim.retry_after_ms
                )
            return outcome
        if claim.action == "unknown":
            raise CartUnknown(f"Cart {cart_id} expired while being completed.")

        try:
            order_number = self._create_shop_order(cart_id, order_id, order)
        except CommerceUnavailable:
            if release_on_outage:
                self.store.release_completion(cart_id, token, {"error": "commerce_unavailable"})
            raise
        except CommerceRejected as e:
            self.store.release_completion(
                cart_id, token, {"error": "commerce_rejected", "status": e.status, "body": e.body}
            )
            log.error(
                "kustom.completion.commerce_rejected", cart=cart_id, order=order_id, status=e.status
            )
            raise CompletionRefusedByCommerce(
                "The commerce backend refused to complete the cart.",
                {"status": e.status, "code": e.error_code},
            ) from e
        finished = self.store.finish_completion(
            cart_id,
            order_id,
            order_number,
            path,
            fraud_status=str(order.get("fraud_status") or ""),
        )
        if finished.action == "completed":
            COMPLETIONS.labels(path).inc()
        log.info(
            "kustom.completion."
            + ("completed" if finished.action == "completed" else "already_completed"),
            cart=cart_id,
            order=order_id,
            number=finished.order_number,
            path=path,
        )
        return CompletionOutcome(
            "completed",
            order_id,
            finished.order_number,
            newly_completed=finished.action == "completed",
        )

    def _create_shop_order(self, cart_id: str, order_id: str, order: dict[str, Any]) -> str:
        assert self.commerce is not None
        try:
            _, body = self.commerce.post(
                "complete_cart",
                f"/carts/{cart_id}/complete",
                completion_body(order_id, order),
                headers={"Idempotency-Key": f"kustom-complete-{order_id}"},
            )
        except CommerceRejected as e:
            if e.status == 409 and e.error_code == "already_completed":
                number = e.body.get("orderNumber") if isinstance(e.body, dict) else None
                if number:
                    return str(number)
            raise
        number = body.get("orderNumber") if isinstance(body, dict) else None
        if not number:
            raise CommerceUnavailable(
                "the commerce backend answered without an orderNumber", operation="complete_cart"
            )
        return str(number)

    def _mismatch(self, state: CartState, order_id: str, path: str, reasons: list[str]) -> None:
        cart_id = state.cart_id
        dismissed = _json_field(state, "mismatch_dismissed")
        if dismissed and dismissed.get("kustomOrderId") == order_id:
            # An operator already handled this order outside (e.g. cancelled it at Kustom);
            # Kustom's further pushes for it must not reopen the alert.
            log.warning(
                "kustom.completion.mismatch_already_dismissed",
                cart=cart_id,
                order=order_id,
                path=path,
            )
            return
        self.store.record_mismatch(cart_id, order_id, reasons)
        COMPLETION_MISMATCHES.labels(path).inc()
        log.critical(
            "kustom.completion.amount_mismatch",
            cart=cart_id,
            order=order_id,
            path=path,
            reasons="; ".join(reasons),
        )


def _json_field(state: CartState, name: str) -> dict[str, Any] | None:
    raw = state.fields.get(name)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# Operators: open mismatches and their resolution (`flask kustom mismatches|resolve`) --------


class MismatchNotOpen(CompletionError):
    status, code = 404, "mismatch_not_open"


class MismatchNotRetryable(CompletionError):
    status, code = 409, "mismatch_not_retryable"


@dataclass(frozen=True)
class OpenMismatch:
    cart_id: str
    order_id: str | None
    reasons: list[str]
    at_ms: int | None
    cart_state: str | None  # None: the cart expired

    @classmethod
    def of(
        cls, cart_id: str, entry: dict[str, Any] | None, state: CartState | None
    ) -> OpenMismatch:
        """From the cart's recorded ``mismatch`` entry (None when gone) and its state."""
        entry = entry or {}
        return cls(
            cart_id,
            entry.get("kustomOrderId"),
            list(entry.get("reasons") or []),
            entry.get("at"),
            state.cart_state if state else None,
        )


def open_mismatches(store: CartStore) -> list[OpenMismatch]:
    """The completions refused for a mismatch that no operator has resolved, oldest first."""
    return [
        OpenMismatch.of(cart_id, entry, store.load(cart_id) if entry else None)
        for cart_id, entry in store.open_mismatches()
    ]


def resolve_mismatch(
    store: CartStore, cart_id: str, *, retry: bool, reason: str | None = None
) -> OpenMismatch:
    """Close the cart's open mismatch; returns it. The caller queues the completion again
    when ``retry`` (the Kustom order was corrected to match the cart); otherwise it was
    dismissed: the operator handled the order outside (cancelled or refunded it at Kustom).

    Raises `MismatchNotOpen` when the cart has none, `MismatchNotRetryable` when retrying
    cannot complete it (the cart expired, or it is completed with another order).
    """
    state = store.load(cart_id)
    entry = _json_field(state, "mismatch") if state else None
    listed = store.redis.zscore(store.mismatches_key, cart_id) is not None
    if entry is None and not listed:
        raise MismatchNotOpen(f"Cart {cart_id} has no open mismatch.")
    mismatch = OpenMismatch.of(cart_id, entry, state)
    if retry:
        if state is None or not mismatch.order_id:
            raise MismatchNotRetryable(
                f"Cart {cart_id} expired; nothing can complete it. Dismiss the mismatch."
            )
        if state.cart_state == "completed":
            raise MismatchNotRetryable(
                f"Cart {cart_id} is completed with Kustom order {state.completion_order_id}; "
                f"order {mismatch.order_id} is a second payment: cancel or refund it at "
                "Kustom, then dismiss."
            )
        store.clear_mismatch(cart_id)
        store.timeline.record(
            cart_id, "operator.mismatch_retry", at=now_ms(), order=mismatch.order_id
        )
        log.warning(
            "kustom.completion.mismatch_retry",
            cart=cart_id,
            order=mismatch.order_id,
            reason=reason or "",
        )
        return mismatch
    if not reason:
        raise CompletionError("A dismissal needs a reason.", status=400, code="reason_required")
    store.clear_mismatch(
        cart_id,
        dismissed={"kustomOrderId": mismatch.order_id, "reason": reason, "at": now_ms()},
    )
    store.timeline.record(
        cart_id, "operator.mismatch_dismissed", at=now_ms(), order=mismatch.order_id
    )
    log.warning(
        "kustom.completion.mismatch_dismissed", cart=cart_id, order=mismatch.order_id, reason=reason
    )
    return mismatch
