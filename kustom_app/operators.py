"""What the operator commands (`kustom-app …`, webhooks/operators.py) read and change, so an
operator never needs redis-cli: one cart's story, and the dead letters.

`cart_report` gathers everything the service keeps about a cart (its state, its Kustom
order, the completion, the payments, an open mismatch, its dead letters and its timeline)
as JSON-ready data. `requeue_dead_letter` hands a dead letter's job back to the worker
through `kustom_app.jobs.Jobs`, by its task name (CONTRACT section 7).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kustom_app.dead_letters import DeadLetter
from kustom_app.jobs import Jobs
from kustom_app.ordermanagement import PaymentStore, split_member
from kustom_app.redis_scripts import as_text
from kustom_app.state import CartState, CartStore, now_ms


class DeadLetterNotRetryable(Exception):
    """The dead letter's task cannot be queued again from what the entry holds."""


def _ms_field(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name)
    return int(value) if value and value.isdigit() else None


def _json_field(fields: dict[str, str], name: str) -> Any:
    raw = fields.get(name)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw


def _kustom_order(state: CartState, now: int) -> dict[str, Any] | None:
    if not state.order_id:
        return None
    created = state.order_created_at
    return {
        "id": state.order_id,
        "createdAt": created,
        "ageSeconds": (now - created) // 1000 if created else None,
        "usable": state.order_usable,
        "readOnly": state.kustom_read_only,
    }


def _completion(state: CartState) -> dict[str, Any]:
    f = state.fields
    claim = None
    if state.cart_state == "completing" or f.get("completion_lease_until"):
        claim = {
            "orderId": state.completion_order_id,
            "path": f.get("completion_path") or None,
            "leaseUntil": _ms_field(f, "completion_lease_until"),
        }
    return {
        "claim": claim,
        "orderId": state.completion_order_id,
        "orderNumber": state.order_number,
        "completedAt": _ms_field(f, "completed_at"),
        "completedBy": f.get("completed_by") or None,
        "fraudStatus": f.get("fraud_status") or None,
        "acknowledged": state.acknowledged,
        "acknowledgedAt": _ms_field(f, "acknowledged_at"),
        "error": _json_field(f, "completion_error"),
    }


def _payments(payments: PaymentStore, cart_id: str) -> list[dict[str, Any]]:
    members = sorted(as_text(m) or "" for m in payments.redis.smembers(payments.cart_key(cart_id)))
    found = []
    for member in members:
        kind, op_id = split_member(member)
        record = payments.load(kind, op_id)
        if record is None:
            continue
        found.append(
            {
                "kind": kind,
                "id": op_id,
                "status": record.status,
                "amount": record.amount,
                "currency": record.currency,
                "kustomId": record.kustom_id,
                "error": (record.error or {}).get("code"),
                "resultDelivered": record.result_delivered,
                "queuedAt": _ms_field(record.fields, "queued_at"),
            }
        )
    return found


def dead_letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as the operator commands show it: id, task, cart, error, when (s)."""
    entry = letter.entry
    ids = {k: v for k, v in entry.items() if k not in ("task", "taskId", "error", "at", "cart")}
    return {
        "id": letter.id,
        "task": letter.task,
        "cart": letter.cart_id,
        "error": entry.get("error"),
        "at": entry.get("at"),
        "ids": ids,
    }


def cart_report(
    store: CartStore, payments: PaymentStore, cart_id: str, *, now: int | None = None
) -> dict[str, Any] | None:
    """Everything kept about ``cart_id``, or None when nothing is (never seen, or expired
    with every record of it)."""
    now = now_ms() if now is None else now
    state = store.load(cart_id)
    timeline = store.timeline.entries(cart_id)
    completed = store.completed_order(cart_id)
    cart_payments = _payments(payments, cart_id)
    if state is None and not timeline and completed is None and not cart_payments:
        return None
    ids = {cart_id} | {p["id"] for p in cart_payments}
    letters = [
        dead_letter_summary(letter)
        for letter in store.dead_letters.all()
        if letter.cart_id == cart_id or letter.mentions(ids)
    ]
    report: dict[str, Any] = {"cartId": cart_id, "expired": state is None}
    if state is not None:
        report.update(
            {
                "state": state.cart_state,
                "version": state.version,
                "pendingHash": state.pending_hash,
                "syncHash": state.sync_hash,
                "syncing": state.syncing,
                "kustomOrder": _kustom_order(state, now),
                "completion": _completion(state),
                "mismatch": _json_field(state.fields, "mismatch"),
                "mismatchDismissed": _json_field(state.fields, "mismatch_dismissed"),
            }
        )
    report.update(
        {
            "completedOrder": completed,
            "payments": cart_payments,
            "deadLetters": letters,
            "timeline": timeline,
        }
    )
    return report


# Each task's dead letter back to its job: the entry's named ids (its task's ``context``,
# workers/tasks.py), else its positional ``args`` (a failure the task did not handle).
_REQUEUE: dict[str, tuple[tuple[str, ...], Callable[[Jobs, list[Any]], None]]] = {
    "syncKustomOrder": (("cart",), lambda jobs, a: jobs.sync(a[0], None, None)),
    "completeKustomOrder": (
        ("cart", "order"),
        lambda jobs, a: jobs.complete(a[0], a[1], "operator"),
    ),
    "acknowledgeKustomOrder": (("cart", "order"), lambda jobs, a: jobs.acknowledge(a[0], a[1])),
    "forwardFraudDecision": (
        ("cart", "order", "decision"),
        lambda jobs, a: jobs.fraud_decision(a[0], a[1], a[2]),
    ),
    "captureKustomOrder": (("id",), lambda jobs, a: jobs.capture(a[0])),
    "refundKustomOrder": (("id",), lambda jobs, a: jobs.refund(a[0])),
    "cancelKustomOrder": (("id",), lambda jobs, a: jobs.cancel(a[0])),
    "deliverPaymentResult": (("kind", "id"), lambda jobs, a: jobs.deliver(a[0], a[1])),
}


def requeue_dead_letter(store: CartStore, letter: DeadLetter, jobs: Jobs) -> list[str]:
    """Queue the dead letter's job again, then take it off the list; returns the job's ids.

    Every task is idempotent (CONTRACT section 7), so a job that in fact finished meanwhile
    does nothing. Raises `DeadLetterNotRetryable` when the entry does not hold what its
    task needs (the entry stays).
    """
    known = _REQUEUE.get(letter.task)
    if known is None:
        raise DeadLetterNotRetryable(f"{letter.task} is not a job that can be queued again")
    names, queue = known
    args = list(letter.entry.get("args") or [])
    values = [
        letter.entry.get(name) if letter.entry.get(name) is not None else _at(args, i)
        for i, name in enumerate(names)
    ]
    if any(v is None or v == "" for v in values):
        missing = [n for n, v in zip(names, values, strict=True) if v is None or v == ""]
        raise DeadLetterNotRetryable(f"the entry does not say its {', '.join(missing)}")
    ids = [str(v) for v in values]
    # Written before the job is queued: a worker may run it before this command goes on, and
    # the timeline must show the retry before what the job did.
    if letter.cart_id:
        store.timeline.record(
            letter.cart_id,
            "operator.deadletter_retry",
            at=now_ms(),
            task=letter.task,
            id=letter.id,
        )
    queue(jobs, ids)
    store.dead_letters.remove(letter)
    return ids


def drop_dead_letter(store: CartStore, letter: DeadLetter) -> bool:
    """Take the dead letter off the list without running it (it was handled outside)."""
    removed = store.dead_letters.remove(letter)
    if removed and letter.cart_id:
        store.timeline.record(
            letter.cart_id,
            "operator.deadletter_drop",
            at=now_ms(),
            task=letter.task,
            id=letter.id,
        )
    return removed


def _at(values: list[Any], index: int) -> Any:
    return values[index] if index < len(values) else None
