"""Celery tasks: thin. Load state, call kustom_app; each declares what it retries.

Task names are part of the contract (CONTRACT section 7) and are what Flower shows.
Arguments are ids and the prepared payload only; ``shown_as`` keeps Flower readable.
What a task retries, waits out and gives up on is declared with `workers.retry.retrying`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from celery import Task

from kustom_app.commerce import CommerceRejected, CommerceUnavailable
from kustom_app.completion import CompletionError
from kustom_app.kustom import KustomRejected, KustomUnavailable, idempotency_key
from kustom_app.logs import event_log
from kustom_app.services import process_services
from kustom_app.settings import SYNC_BUSY_JITTER_SECONDS
from kustom_app.sync import SyncBusy, SyncOutcomeUnknown, sync_cart
from workers.celery_app import KustomTask, app, idempotent_task
from workers.retry import (
    RetriesExhausted,
    backoff_seconds,
    record_dead_letter,
    retry_transient,
    retrying,
    wait_out,
)

log = event_log(__name__)

# A busy sync lease is held by a live job for at most its lease; this bounds the waiting.
SYNC_BUSY_RETRY_LIMIT = 50


def _wait_for_the_lease(
    task: Task, error: SyncBusy, context: dict[str, Any], arguments: Mapping[str, Any]
) -> Any:
    """The lease holder pushes what is pending now; come back once its lease is over in
    case it died. Or (SyncUncertain) an update without an answer may still land: come back
    when it no longer can. Bounded by the lease or Kustom's request lifetime, so this
    cannot loop for long."""
    context = {**context, "hash": arguments["payload_hash"]}
    raise wait_out(
        task,
        error,
        context,
        limit=SYNC_BUSY_RETRY_LIMIT,
        countdown=lambda: _sync_wait_seconds(error.retry_after_ms),
    ) from error


def _retry_after_the_unknown_outcome(
    task: Task, error: SyncOutcomeUnknown, context: dict[str, Any], _: Mapping[str, Any]
) -> Any:
    """An outage like any other, but not retried before the update can no longer land."""
    context = {**context, "hash": error.pushed_hash, "outcome": "unknown"}
    at_least = _sync_wait_seconds(error.retry_after_ms)
    raise retry_transient(task, error.error, context, at_least=at_least) from error


@idempotent_task("syncKustomOrder", shown_as="(cart={!r}, hash={!r})")
@retrying(
    context=("cart",),
    waits_on={SyncBusy: _wait_for_the_lease, SyncOutcomeUnknown: _retry_after_the_unknown_outcome},
    retry_on=(KustomUnavailable,),
    give_up_on={
        KustomRejected: {"kustomErrorCode": "error_code", "correlationId": "correlation_id"}
    },
    gave_up="rejected",
)
def sync_kustom_order(
    self: KustomTask, cart_id: str, payload_hash: str | None = None, payload: Any = None
) -> str:
    """Push the cart's newest pending payload to its Kustom order.

    ``payload_hash``/``payload`` are what was pending when the job was queued (shown in
    Flower); the job always pushes what is pending when it runs, so it is never stale.
    An update without an answer is retried like an outage, but not before it can no longer
    land at Kustom (the retry reads the order back first).
    """
    services = process_services()
    lifetime_ms = int(services.settings.kustom_request_lifetime_seconds * 1000)
    result = sync_cart(services.store, services.kustom, cart_id, request_lifetime_ms=lifetime_ms)
    if result.outcome == "requeue":
        self.enqueue(cart_id, result.hash, None)
    log.info(
        "kustom.sync.finished",
        cart=cart_id,
        outcome=result.outcome,
        pushes=result.pushes,
        hash=result.hash,
        task=self.request.id,
    )
    return result.outcome


def _sync_wait_seconds(retry_after_ms: int) -> float:
    """The countdown of a sync job waiting for a lease or an unknown outcome to end: at most
    a lease (a longer wait is done in steps, each job coming back to look), plus jitter
    that spreads the jobs waiting for the same moment. Settings keeps a lease plus the
    jitter plus a run below the broker's visibility timeout."""
    lease = process_services().settings.sync_lease_seconds
    return min(retry_after_ms / 1000, lease) + random.uniform(0.1, SYNC_BUSY_JITTER_SECONDS)


@idempotent_task("completeKustomOrder", shown_as="(cart={!r}, order={!r}, path={!r})")
@retrying(
    context=("cart", "order"),
    retry_on=(KustomUnavailable, CommerceUnavailable),
    give_up_on=(CompletionError, KustomRejected),
    gave_up="refused",
)
def complete_kustom_order(self: Task, cart_id: str, order_id: str, path: str = "push") -> str:
    """Complete the cart from Kustom's order unless the confirm path already did; then ack.

    The task id is the claim token, so a retried task re-claims its own completion.
    """
    services = process_services()
    if path == "push":
        services.store.record_callback_seen(cart_id, "last_push_at", order_id=order_id)
    outcome = services.completion.complete(
        cart_id, order_id, path=path, token=self.request.id or "", release_on_outage=False
    )
    if outcome.status == "completed":
        state = services.store.load(cart_id)
        if state is None or not state.acknowledged:
            acknowledge_kustom_order.enqueue(cart_id, order_id)
    elif outcome.status in ("incomplete", "in_progress"):
        # Kustom pushes only after completion, but order management can lag a moment; a
        # busy claim belongs to the confirm path and is checked again after its lease.
        if self.request.retries >= services.settings.max_retries:
            error = RetriesExhausted(
                f"order still {outcome.status} after {self.request.retries} retries"
            )
            record_dead_letter(self, error, {"cart": cart_id, "order": order_id, "path": path})
            return outcome.status
        countdown = max(outcome.retry_after_ms / 1000, backoff_seconds(self.request.retries))
        raise self.retry(countdown=min(countdown, services.settings.retry_max_seconds))
    log.info(
        "kustom.completion.task",
        cart=cart_id,
        order=order_id,
        outcome=outcome.status,
        path=path,
        task=self.request.id,
    )
    return outcome.status


@idempotent_task("acknowledgeKustomOrder", shown_as="(cart={!r}, order={!r})")
@retrying(
    context=("cart", "order"),
    retry_on=(KustomUnavailable,),
    give_up_on={KustomRejected: {"kustomErrorCode": "error_code"}},
    gave_up="rejected",
)
def acknowledge_kustom_order(self: Task, cart_id: str, order_id: str) -> str:
    """Record our order number on the Kustom order, then acknowledge it (pushes stop).

    Only ever queued after the commerce backend created the shop order.
    """
    services = process_services()
    state = services.store.load(cart_id)
    if state is None or state.cart_state != "completed" or state.completion_order_id != order_id:
        log.warning("kustom.ack.skipped", cart=cart_id, order=order_id, reason="not_completed")
        return "not_completed"
    # The shop's number first, the acknowledgement last: once Kustom counts the order
    # as acknowledged, everything this task does is done.
    if state.order_number:
        try:
            services.kustom.update_merchant_references(
                order_id,
                {"merchant_reference1": cart_id, "merchant_reference2": state.order_number},
                idempotency_key("merchant-references", f"{order_id}:{state.order_number}"),
                cart=cart_id,
            )
        except KustomRejected as e:  # a missing reference must not block the ack
            context = {"cart": cart_id, "order": order_id, "kustomErrorCode": e.error_code}
            record_dead_letter(self, e, context)
    services.kustom.acknowledge_order(
        order_id, idempotency_key("acknowledge", order_id), cart=cart_id
    )
    services.store.record_acknowledged(cart_id, order_id)
    log.info("kustom.ack.done", cart=cart_id, order=order_id, task=self.request.id)
    return "acknowledged"


FRAUD_DECISIONS = {"FRAUD_RISK_ACCEPTED", "FRAUD_RISK_REJECTED", "FRAUD_RISK_STOPPED"}


@app.task(
    name="forwardFraudDecision",
    base=KustomTask,
    shown_as="(cart={!r}, order={!r}, decision={!r})",
    bind=True,
    acks_late=True,
    max_retries=None,
)
@retrying(
    context=("cart", "order", "decision"),
    retry_on=(KustomUnavailable, CommerceUnavailable),
    give_up_on=(KustomRejected, CommerceRejected),
    gave_up="rejected",
)
def forward_fraud_decision(self: Task, cart_id: str, order_id: str, event_type: str) -> str:
    """Pass Kustom's fraud decision on a pending order to the commerce backend (the web
    recorded it on the cart when it arrived; this records that it was forwarded)."""
    services = process_services()
    context = {"cart": cart_id, "order": order_id, "decision": event_type}
    if services.commerce is None:
        record_dead_letter(self, RuntimeError("COMMERCE_API_URL is not set"), context)
        return "not_configured"
    # Never trust the callback body: the order must exist and belong to the cart.
    order = services.kustom.get_om_order(order_id, cart=cart_id)
    if order.get("merchant_reference1") != cart_id:
        record_dead_letter(self, RuntimeError("order belongs to another cart"), context)
        return "wrong_cart"
    services.commerce.post(
        "fraud_decision",
        f"/carts/{cart_id}/fraud-decision",
        {"kustomOrderId": order_id, "decision": event_type},
    )
    services.store.record_callback_seen(
        cart_id, "fraud_decision_forwarded", event_type, order_id=order_id
    )
    return "forwarded"
