"""`kustom_app.jobs.Jobs` through this Celery app: the one way the web and the sweeper
queue the worker's tasks.

The tasks are imported on first use, so the web starts (and its unit tests run) without
loading Celery; only a process that queues a job pays for it.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from kustom_app.ordermanagement import CANCEL, CAPTURE, REFUND

if TYPE_CHECKING:
    from workers.fastpath_messages import SyncJobMessages


class CeleryJobs:
    """``state_redis_url`` is the Redis the cart state lives in: when the broker is that
    same database, and ``fast_paths`` (KUSTOM_FAST_PATHS) is on, sync jobs are queued by
    the cart's Lua script (`sync_job`, workers/fastpath_messages.py); otherwise by
    ``apply_async`` (`sync`)."""

    def __init__(self, state_redis_url: str | None = None, *, fast_paths: bool = True) -> None:
        self._state_redis_url = state_redis_url if fast_paths else None

    @cached_property
    def _messages(self) -> SyncJobMessages | None:
        """The message builder, or None when the script cannot queue jobs (the broker is
        not the state Redis, or the fast paths are off)."""
        from workers.fastpath_messages import SyncJobMessages
        from workers.tasks import sync_kustom_order

        if self._state_redis_url is None or not SyncJobMessages.usable_with(
            sync_kustom_order.app, self._state_redis_url
        ):
            return None
        return SyncJobMessages(sync_kustom_order)

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        from workers.tasks import sync_kustom_order

        sync_kustom_order.enqueue(cart_id, payload_hash, payload)

    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None:
        messages = self._messages
        if messages is None:
            return None
        return messages.queue, messages.build(cart_id, payload_hash)

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        from workers.tasks import complete_kustom_order

        complete_kustom_order.enqueue(cart_id, order_id, path)

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        from workers.tasks import acknowledge_kustom_order

        acknowledge_kustom_order.enqueue(cart_id, order_id)

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        from workers.tasks import forward_fraud_decision

        forward_fraud_decision.enqueue(cart_id, order_id, event_type)

    def payment(self, kind: str, op_id: str) -> None:
        from workers.ordermanagement import OPERATION_TASKS

        OPERATION_TASKS[kind].enqueue(op_id)

    def capture(self, capture_id: str) -> None:
        self.payment(CAPTURE, capture_id)

    def refund(self, refund_id: str) -> None:
        self.payment(REFUND, refund_id)

    def cancel(self, cart_id: str) -> None:
        self.payment(CANCEL, cart_id)

    def deliver(self, kind: str, op_id: str) -> None:
        from workers.ordermanagement import deliver_payment_result

        deliver_payment_result.enqueue(kind, op_id)
