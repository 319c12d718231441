"""The jobs the service leaves to its worker, as the domain asks for them.

One port for "queue this job": the web (cart events, callbacks, payment events) and the
sweeper both hand work over through it. ``workers.enqueue.CeleryJobs`` is the
implementation (task names: CONTRACT section 7); the web's unit tests record instead.
Arguments are ids, plus the prepared payload of a sync, so a job always reads the state
as it is when it runs.
"""

from __future__ import annotations

from typing import Any, Protocol

import redis


class JobsUnavailable(redis.ConnectionError):
    """A job could not be queued: the broker (a Redis) is unreachable.

    A Redis error on purpose: whoever asked for the job fails the way a state-store outage
    fails it, the web with a 503 ``redis_unavailable`` its caller retries (a commerce
    backend, Kustom's push), a task with its retry. Celery raises kombu's
    ``OperationalError`` there, which no Redis handler would see.
    """


class Jobs(Protocol):
    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        """Push the cart's pending payload to its Kustom order (``syncKustomOrder``)."""
        ...

    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None:
        """The broker message of a sync job, so the render's Lua script can queue it in
        the same atomic call that decides it is needed (one round trip per cart event).

        ``(queue key, message)``, or None when jobs cannot be queued from Redis directly
        (a separate broker): the caller then queues it with `sync`. The message has
        `kustom_app.state.JOB_PAYLOAD_MARKER` where the script puts the payload's JSON
        text, escaped as a JSON string."""
        ...

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        """Complete the cart from its Kustom order (``completeKustomOrder``); ``path``
        says who asked (push, confirm, sweeper, operator)."""
        ...

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        """Acknowledge a completed order at Kustom (``acknowledgeKustomOrder``)."""
        ...

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        """Forward Kustom's fraud decision to the commerce backend (``forwardFraudDecision``)."""
        ...

    def payment(self, kind: str, op_id: str) -> None:
        """Run a payment operation of ``kind``: capture, refund or cancel (the sweeper goes
        by kind; the web asks by name, below)."""
        ...

    def capture(self, capture_id: str) -> None:
        """``payment("capture", capture_id)`` (``captureKustomOrder``)."""
        ...

    def refund(self, refund_id: str) -> None:
        """``payment("refund", refund_id)`` (``refundKustomOrder``)."""
        ...

    def cancel(self, cart_id: str) -> None:
        """``payment("cancel", cart_id)`` (``cancelKustomOrder``)."""
        ...

    def deliver(self, kind: str, op_id: str) -> None:
        """Deliver an operation's result to the commerce backend (``deliverPaymentResult``)."""
        ...
