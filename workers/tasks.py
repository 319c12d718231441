"""Celery tasks: thin. Load state, call kustom_app, retry what is transient.

Task names are part of the contract (CONTRACT section 7) and are what Flower shows.
Arguments are ids and the prepared payload only; ``argsrepr`` keeps Flower readable.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from celery import Task

from kustom_app.kustom import KustomRejected, KustomUnavailable
from kustom_app.services import process_services
from kustom_app.sync import SyncBusy, sync_cart
from workers.celery_app import app

log = logging.getLogger(__name__)

DEAD_LETTER_LIMIT = 1000


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped below the visibility timeout."""
    settings = process_services().settings
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * (2**retries))
    return random.uniform(ceiling / 2, ceiling)


def record_dead_letter(task: Task, error: BaseException, context: dict[str, Any]) -> None:
    """Keep a failed task (after its last retry, or rejected) for operators and the sweeper."""
    services = process_services()
    entry = json.dumps(
        {
            "task": task.name,
            "taskId": task.request.id,
            "at": int(time.time()),
            "error": f"{type(error).__name__}: {error}",
            **context,
        }
    )
    key = f"{services.settings.key_prefix}:deadletter"
    pipe = services.redis.pipeline()
    pipe.lpush(key, entry)
    pipe.ltrim(key, 0, DEAD_LETTER_LIMIT - 1)
    pipe.expire(key, services.settings.cart_ttl_seconds)
    pipe.execute()
    log.error("kustom.task.dead_letter task=%s id=%s %s", task.name, task.request.id, context)


@app.task(
    name="syncKustomOrder",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def sync_kustom_order(
    self: Task, cart_id: str, payload_hash: str | None = None, payload: Any = None
) -> str:
    """Push the cart's newest pending payload to its Kustom order.

    ``payload_hash``/``payload`` are what was pending when the job was queued (shown in
    Flower); the job always pushes what is pending when it runs, so it is never stale.
    """
    services = process_services()
    settings = services.settings
    try:
        result = sync_cart(services.store, services.kustom, cart_id)
    except SyncBusy as e:
        # The lease holder pushes what is pending now; come back once its lease is over
        # in case it died. Bounded by the lease, so this cannot loop for long.
        if self.request.retries >= 50:
            raise
        raise self.retry(countdown=e.retry_after_ms / 1000 + random.uniform(0.1, 0.5)) from e
    except KustomUnavailable as e:
        if self.request.retries >= settings.max_retries:
            record_dead_letter(self, e, {"cart": cart_id})
            raise
        raise self.retry(countdown=backoff_seconds(self.request.retries), exc=e) from e
    except KustomRejected as e:
        record_dead_letter(
            self,
            e,
            {"cart": cart_id, "kustomErrorCode": e.error_code, "correlationId": e.correlation_id},
        )
        return "rejected"
    if result.outcome == "requeue":
        enqueue_sync(cart_id, result.hash, None)
    log.info(
        "kustom.sync.finished cart=%s outcome=%s pushes=%s hash=%s task=%s",
        cart_id,
        result.outcome,
        result.pushes,
        result.hash,
        self.request.id,
    )
    return result.outcome


@app.task(name="reconcileKustomOrders", bind=True, acks_late=True)
def reconcile_kustom_orders(self: Task) -> dict[str, int]:
    """Periodic sweeper: finish what crashes and outages interrupted."""
    services = process_services()
    settings = services.settings
    stale = services.store.stale_syncing(settings.sync_stale_seconds * 1000, settings.reconcile_batch)
    resynced = 0
    for cart_id in stale:
        state = services.store.load(cart_id)
        if state is None or not state.syncing:
            services.store.forget_syncing(cart_id)
            continue
        enqueue_sync(cart_id, state.pending_hash, None)
        resynced += 1
    counts = {"stale_syncs": len(stale), "resynced": resynced}
    log.info("kustom.reconcile.run %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def enqueue_sync(cart_id: str, payload_hash: str | None, payload: Any) -> None:
    """Queue a sync for the cart (called by the web layer and by tasks)."""
    sync_kustom_order.apply_async(
        args=(cart_id, payload_hash, payload),
        argsrepr=f"(cart={cart_id!r}, hash={payload_hash!r})",
    )
