"""Captures, refunds and cancels on completed Kustom orders — each one exactly once.

The commerce backend sends an event (CONTRACT section 4); the web layer checks it and
records it as an *operation* keyed by the backend's own id (``captureId``,
``refundId``, or the cart id for a cancel). Recording is one Lua compare-and-set, so a
repeated event finds the existing operation and reaches Kustom never again. A task then
runs the operation against Kustom's order-management API:

1. take the operation's lease (a redelivered task keeps its id, so it re-takes its own);
2. read the order from Kustom: an earlier attempt may already have landed (a capture or
   refund whose ``reference`` is our id), and what is asked must fit what is left
   (``remaining_authorized_amount`` for a capture, captured minus refunded for a refund),
   in the order's currency — otherwise the operation fails up front, Kustom is not asked;
3. POST with ``Klarna-Idempotency-Key`` derived from the id (UUIDv5), identical on every
   retry and every redelivery, so one event makes at most one capture even when a worker
   dies between Kustom's answer and our bookkeeping;
4. record the outcome once, and queue its result for the commerce backend
   (``POST /captures/<id>/result``, ``/refunds/<id>/result``), resent until delivered.

The events are made requests in `events`, recorded in `store`; this module accepts them
(web side) and runs them (worker side).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.kustom import KustomClient, KustomRejected, idempotency_key
from kustom_app.logs import bind_cart, event_log
from kustom_app.metrics import PAYMENT_OPERATIONS
from kustom_app.money import to_major
from kustom_app.ordermanagement.errors import CancelDeferred, OperationBusy, PaymentEventError
from kustom_app.ordermanagement.events import PaymentRequest
from kustom_app.ordermanagement.kinds import (
    CANCEL,
    CANCELLED,
    CAPTURE,
    CAPTURED,
    EVENT_ID_FIELD,
    FAILED,
    KUSTOM_ID_FIELD,
    QUEUED,
    REFUND,
    REFUNDED,
    RELEASED,
)
from kustom_app.ordermanagement.store import PaymentRecord, PaymentStore
from kustom_app.state import CartStore, now_ms

# The package's name, as before the split: log lines keep the logger they had.
log = event_log("kustom_app.ordermanagement")

# Order states in which Kustom takes no more captures.
CLOSED_ORDER_STATES = frozenset({"CANCELLED", "EXPIRED", "CLOSED"})


@dataclass(frozen=True)
class OperationOutcome:
    status: str
    newly_finished: bool
    deliver: bool  # a result for the commerce backend was just recorded


@dataclass(frozen=True)
class Accepted:
    kind: str
    op_id: str
    status: str
    enqueue: bool

    def answer(self) -> dict[str, Any]:
        return {EVENT_ID_FIELD[self.kind]: self.op_id, "status": self.status}


def _kustom_error(e: KustomRejected) -> dict[str, Any]:
    return {
        "code": e.error_code or f"kustom_http_{e.status}",
        "message": "; ".join(e.error_messages) or str(e),
        "kustomStatus": e.status,
        "correlationId": e.correlation_id,
    }


def _by_reference(items: Any, id_field: str, reference: str) -> str | None:
    for item in items or []:
        if isinstance(item, dict) and item.get("reference") == reference and item.get(id_field):
            return str(item[id_field])
    return None


def _money(record: PaymentRecord, minor: int) -> str:
    currency = record.currency or ""
    return f"{to_major(minor, currency)} {currency}"


def _capture_limit(record: PaymentRecord, order: dict[str, Any]) -> tuple[str, str] | None:
    """A capture must fit what is left of the authorization, on an order still open."""
    state = str(order.get("status") or "").upper()
    if state in CLOSED_ORDER_STATES:
        return "order_not_capturable", f"The Kustom order is {state}; nothing can be captured."
    amount = record.amount or 0
    remaining = int(order.get("remaining_authorized_amount") or 0)
    if amount > remaining:
        return (
            "capture_exceeds_authorization",
            f"The capture of {_money(record, amount)} exceeds the remaining "
            f"authorized amount of {_money(record, remaining)}.",
        )
    return None


def _refund_limit(record: PaymentRecord, order: dict[str, Any]) -> tuple[str, str] | None:
    """A refund must fit what is captured and not yet refunded."""
    amount = record.amount or 0
    refundable = int(order.get("captured_amount") or 0) - int(order.get("refunded_amount") or 0)
    if amount > refundable:
        return (
            "refund_exceeds_captured",
            f"The refund of {_money(record, amount)} exceeds what is captured and not "
            f"yet refunded, {_money(record, max(refundable, 0))}.",
        )
    return None


@dataclass(frozen=True)
class _MoneyMove:
    """What tells a capture from a refund; running either is otherwise the same."""

    succeeded: str  # the outcome's status
    listed_in: str  # the order's list of earlier ones, each with its ``reference``
    id_field: str  # Kustom's id of one in that list
    amount_field: str  # the amount in the POST body
    # The client's POST (it knows the path and the header with the new id).
    create: Callable[[KustomClient], Callable[..., str]]
    # (code, message) when the amount does not fit the order, else None.
    limit: Callable[[PaymentRecord, dict[str, Any]], tuple[str, str] | None]


_MONEY_MOVES = {
    CAPTURE: _MoneyMove(
        CAPTURED,
        "captures",
        "capture_id",
        "captured_amount",
        lambda kustom: kustom.create_capture,
        _capture_limit,
    ),
    REFUND: _MoneyMove(
        REFUNDED,
        "refunds",
        "refund_id",
        "refunded_amount",
        lambda kustom: kustom.create_refund,
        _refund_limit,
    ),
}


class PaymentOperations:
    """Accepts payment events and runs them against Kustom, once each.

    ``lease_ms`` is how long a task running an operation holds it (PAYMENT_LEASE_SECONDS);
    a repeated event re-queues an operation whose task has not started for
    ``stuck_queued_ms`` (PAYMENT_REQUEUE_AFTER_SECONDS).
    """

    def __init__(
        self,
        store: CartStore,
        payments: PaymentStore,
        kustom: KustomClient,
        commerce: CommerceClient | None,
        *,
        lease_ms: int,
        stuck_queued_ms: int,
    ) -> None:
        self.store = store
        self.payments = payments
        self.kustom = kustom
        self.commerce = commerce
        self.lease_ms = lease_ms
        self.stuck_queued_ms = stuck_queued_ms

    # Web side ----------------------------------------------------------------------------

    def accept(self, request: PaymentRequest) -> Accepted:
        """Record the event's operation once; a repeat answers the existing status.

        Raises `PaymentEventError`: 404 ``cart_not_found``, 409 ``cart_not_completed`` (no
        completed Kustom order for the cart yet), 409 ``idempotency_conflict`` (the id was
        used for another cart, amount or currency).
        """
        existing = self.payments.load(request.kind, request.op_id)
        if existing is not None:
            self._same_event(existing.fingerprint, request)
            if not (request.kind == CANCEL and existing.status == FAILED):
                return Accepted(
                    request.kind, request.op_id, existing.status, enqueue=self._stuck(existing)
                )
        order = self.store.completed_order(request.cart_id)
        if order is None:
            if self.store.load(request.cart_id) is None:
                raise PaymentEventError(
                    404, "cart_not_found", f"Nothing is known about cart {request.cart_id}."
                )
            raise PaymentEventError(
                409,
                "cart_not_completed",
                f"Cart {request.cart_id} has no completed Kustom order yet.",
            )
        action, status, fingerprint = self.payments.claim(
            request, str(order["kustomOrderId"]), requeue_failed=request.kind == CANCEL
        )
        if action == "exists":
            self._same_event(fingerprint, request)
        else:
            self.store.timeline.record(
                request.cart_id,
                f"payment.{request.kind}.accepted",
                at=now_ms(),
                ttl_seconds=self.payments.ttl,
                id=request.op_id,
                order=order["kustomOrderId"],
                amount=request.amount,
                currency=request.currency,
                status=status,
            )
        log.info(
            f"kustom.{request.kind}.accepted",
            id=request.op_id,
            cart=request.cart_id,
            order=order["kustomOrderId"],
            amount=request.amount,
            currency=request.currency,
            action=action,
        )
        return Accepted(request.kind, request.op_id, status, enqueue=action != "exists")

    def _stuck(self, record: PaymentRecord) -> bool:
        """Queued long ago and never started: its task was likely lost (say, the broker
        refused the first enqueue). The repeated event queues it again: twins are safe."""
        if record.status != QUEUED or record.fields.get("started_at"):
            return False
        return now_ms() - int(record.fields.get("queued_at") or 0) > self.stuck_queued_ms

    @staticmethod
    def _same_event(fingerprint: str, request: PaymentRequest) -> None:
        if fingerprint and fingerprint != request.fingerprint:
            raise PaymentEventError(
                409,
                "idempotency_conflict",
                f"{EVENT_ID_FIELD[request.kind]} {request.op_id} was already used for another "
                "cart, amount or currency.",
            )

    # Worker side -------------------------------------------------------------------------

    def execute(self, kind: str, op_id: str, token: str) -> OperationOutcome:
        """Run a queued operation against Kustom (no-op once it has an outcome).

        Raises `OperationBusy`, `CancelDeferred`, and `KustomUnavailable` (retry later with
        the same idempotency key). Kustom's refusals become a ``failed`` outcome.
        """
        action, detail = self.payments.begin(kind, op_id, token, lease_ms=self.lease_ms)
        if action == "gone":
            log.warning(f"kustom.{kind}.gone", id=op_id)
            return OperationOutcome("gone", False, False)
        if action == "done":
            return OperationOutcome(detail, False, False)
        if action == "busy":
            raise OperationBusy(int(detail or 0))
        record = self.payments.load(kind, op_id)
        if record is None:  # pragma: no cover - expired between two reads
            return OperationOutcome("gone", False, False)
        bind_cart(record.cart_id)  # the task's lines from here on (Celery's too) name it
        move = _MONEY_MOVES.get(kind)
        if move is None:
            return self._cancel(record)
        return self._move_money(record, move)

    def _finish(
        self,
        record: PaymentRecord,
        status: str,
        *,
        kustom_id: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> OperationOutcome:
        action, final = self.payments.finish(
            record.kind, record.op_id, status, kustom_id=kustom_id, error=error
        )
        newly = action == "finished"
        if newly:
            PAYMENT_OPERATIONS.labels(record.kind, status).inc()
            self.store.timeline.record(
                record.cart_id,
                f"payment.{record.kind}.{status}",
                at=now_ms(),
                ttl_seconds=self.payments.ttl,
                id=record.op_id,
                order=record.order_id,
                amount=record.amount,
                kustomId=kustom_id,
                error=(error or {}).get("code"),
            )
        log_fn = log.info if status != FAILED else log.warning
        log_fn(
            f"kustom.{record.kind}.{status}",
            id=record.op_id,
            cart=record.cart_id,
            order=record.order_id,
            amount=record.amount,
            kustom_id=kustom_id,
            error=(error or {}).get("code"),
            recorded=action,
        )
        return OperationOutcome(final or status, newly, newly and record.kind in KUSTOM_ID_FIELD)

    def _fail(self, record: PaymentRecord, code: str, message: str) -> OperationOutcome:
        return self._finish(record, FAILED, error={"code": code, "message": message})

    def _om_order(self, record: PaymentRecord) -> dict[str, Any] | OperationOutcome:
        try:
            return self.kustom.get_om_order(
                record.order_id, cart=record.cart_id, **{record.kind: record.op_id}
            )
        except KustomRejected as e:
            if e.status == 404:
                return self._fail(
                    record,
                    "order_not_found",
                    f"Kustom does not know order {record.order_id} (or it has expired).",
                )
            return self._finish(record, FAILED, error=_kustom_error(e))

    def _check_currency(self, record: PaymentRecord, order: dict[str, Any]) -> str | None:
        currency = str(order.get("purchase_currency") or "").upper()
        if currency != record.currency:
            return f"The order is in {currency or 'no currency'}, the event in {record.currency}."
        return None

    def _move_money(self, record: PaymentRecord, move: _MoneyMove) -> OperationOutcome:
        """A capture or a refund: what differs between the two is in ``move``."""
        order = self._om_order(record)
        if isinstance(order, OperationOutcome):
            return order
        landed = _by_reference(order.get(move.listed_in), move.id_field, record.op_id)
        if landed:  # an earlier attempt reached Kustom; its answer never reached us
            return self._finish(record, move.succeeded, kustom_id=landed)
        mismatch = self._check_currency(record, order)
        if mismatch:
            return self._fail(record, "currency_mismatch", mismatch)
        beyond = move.limit(record, order)
        if beyond:
            return self._fail(record, *beyond)
        amount = record.amount or 0
        body = {move.amount_field: amount, "reference": record.op_id, **record.kustom_body}
        try:
            kustom_id = move.create(self.kustom)(
                record.order_id,
                body,
                idempotency_key(record.kind, record.op_id),
                cart=record.cart_id,
                **{record.kind: record.op_id},
            )
        except KustomRejected as e:
            return self._finish(record, FAILED, error=_kustom_error(e))
        return self._finish(record, move.succeeded, kustom_id=kustom_id)

    def _cancel(self, record: PaymentRecord) -> OperationOutcome:
        waiting = self.payments.queued_for_cart(record.cart_id, [CAPTURE])
        if waiting:
            raise CancelDeferred(waiting)
        order = self._om_order(record)
        if isinstance(order, OperationOutcome):
            return order
        state = str(order.get("status") or "").upper()
        if state == "CANCELLED":
            return self._finish(record, CANCELLED)
        # A new attempt after a failed one needs a new key: Kustom would replay the refusal.
        attempt = f"{record.order_id}:{record.attempt}"
        try:
            if int(order.get("captured_amount") or 0) == 0:
                self.kustom.cancel_order(
                    record.order_id, idempotency_key(CANCEL, attempt), cart=record.cart_id
                )
                return self._finish(record, CANCELLED)
            if int(order.get("remaining_authorized_amount") or 0) > 0:
                self.kustom.release_remaining_authorization(
                    record.order_id, idempotency_key("release", attempt), cart=record.cart_id
                )
        except KustomRejected as e:
            return self._finish(record, FAILED, error=_kustom_error(e))
        return self._finish(record, RELEASED)

    def deliver_result(self, kind: str, op_id: str) -> str:
        """POST the operation's result to the commerce backend unless it already has it.

        Raises `CommerceUnavailable` (retry) and `CommerceRejected` (recorded as refused:
        not resent, kept for an operator).
        """
        record = self.payments.load(kind, op_id)
        if record is None:
            return "gone"
        bind_cart(record.cart_id)
        if not record.finished:
            return "not_finished"
        if record.result_delivered or kind not in KUSTOM_ID_FIELD:
            return "already_delivered"
        if self.commerce is None:
            raise CommerceUnavailable("COMMERCE_API_URL is not set", operation=f"{kind}_result")
        path = f"/{kind}s/{quote(op_id, safe='')}/result"
        try:
            self.commerce.post(
                f"{kind}_result",
                path,
                record.result_body(),
                headers={"Idempotency-Key": f"kustom-{kind}-result-{op_id}"},
            )
        except CommerceRejected as e:
            self.payments.settle_result(
                kind, op_id, "refused", {"status": e.status, "code": e.error_code}
            )
            log.error(f"kustom.{kind}.result_refused", id=op_id, status=e.status, code=e.error_code)
            raise
        self.payments.settle_result(kind, op_id, "delivered")
        log.info(f"kustom.{kind}.result_delivered", id=op_id, status=record.status)
        return "delivered"
