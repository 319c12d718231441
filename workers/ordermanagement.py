"""Order-management tasks: captures, refunds, cancels, and their results (issue 5).

Thin, like the rest of workers/: the exactly-once logic lives in
``kustom_app.ordermanagement``. Every task here is idempotent (an operation runs at most
once, a result is marked delivered once), so all are ``acks_late`` +
``reject_on_worker_lost``: a worker lost mid-capture gets the message redelivered, and the
redelivered task sends Kustom the same idempotency key. Arguments are ids only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from celery import Task

from kustom_app.commerce import CommerceRejected, CommerceUnavailable
from kustom_app.kustom import KustomUnavailable
from kustom_app.logs import event_log
from kustom_app.ordermanagement import (
    CANCEL,
    CAPTURE,
    REFUND,
    CancelDeferred,
    OperationBusy,
    PaymentOperations,
)
from kustom_app.services import process_services
from workers.celery_app import idempotent_task
from workers.retry import retrying, wait_out

log = event_log(__name__)

# A busy lease is held by a live task for at most its lease (PAYMENT_LEASE_SECONDS); this
# bounds the waiting.
BUSY_RETRY_LIMIT = 50


def payment_operations() -> PaymentOperations:
    """This process's `PaymentOperations`."""
    return process_services().payment_operations


def _wait_for_the_twin(
    task: Task, error: OperationBusy, context: dict[str, Any], _: Mapping[str, Any]
) -> Any:
    """A twin (the sweeper's, or a redelivery) holds the lease: let it finish first."""

    def countdown() -> float:
        ceiling = process_services().settings.retry_max_seconds
        return min(error.retry_after_ms / 1000 + random.uniform(0.1, 0.5), ceiling)

    raise wait_out(task, error, context, limit=BUSY_RETRY_LIMIT, countdown=countdown) from error


@retrying(
    context=("kind", "id"),
    waits_on={OperationBusy: _wait_for_the_twin},
    retry_on={
        CancelDeferred: {"waitingFor": "waiting_for"},
        KustomUnavailable: {"status": "status", "correlationId": "correlation_id"},
    },
)
def _run_operation(task: Task, kind: str, op_id: str) -> str:
    outcome = payment_operations().execute(kind, op_id, token=task.request.id or "")
    if outcome.deliver:
        deliver_payment_result.enqueue(kind, op_id)
    log.info(
        f"kustom.{kind}.task",
        id=op_id,
        outcome=outcome.status,
        task=task.request.id,
        retries=task.request.retries,
    )
    return outcome.status


@idempotent_task("captureKustomOrder", shown_as="(capture={!r})")
def capture_kustom_order(self: Task, capture_id: str) -> str:
    """Capture on the cart's Kustom order, once per captureId; then deliver the result."""
    return _run_operation(self, CAPTURE, capture_id)


@idempotent_task("refundKustomOrder", shown_as="(refund={!r})")
def refund_kustom_order(self: Task, refund_id: str) -> str:
    """Refund on the cart's Kustom order, once per refundId; then deliver the result."""
    return _run_operation(self, REFUND, refund_id)


@idempotent_task("cancelKustomOrder", shown_as="(cancel={!r})")
def cancel_kustom_order(self: Task, cart_id: str) -> str:
    """Cancel the order if nothing was captured, else release the rest of the authorization."""
    return _run_operation(self, CANCEL, cart_id)


@idempotent_task("deliverPaymentResult", shown_as="(kind={!r}, id={!r})")
@retrying(
    context=("kind", "id"),
    retry_on={CommerceUnavailable: {"status": "status"}},
    give_up_on={CommerceRejected: {"status": "status", "code": "error_code"}},
    gave_up="refused",
)
def deliver_payment_result(self: Task, kind: str, op_id: str) -> str:
    """POST a capture's or refund's result to the commerce backend until it has it."""
    return payment_operations().deliver_result(kind, op_id)


# The task that runs each kind of payment operation.
OPERATION_TASKS = {
    CAPTURE: capture_kustom_order,
    REFUND: refund_kustom_order,
    CANCEL: cancel_kustom_order,
}
