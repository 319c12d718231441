"""What a task does when it fails: retry with backoff, or give up into a dead letter.

Transient errors (an outage) are retried with backoff and jitter at most TASK_MAX_RETRIES
times, then kept as a dead letter; any error a task does not handle fails it, and the
failure hook below keeps that as a dead letter too: every give-up ends in
``{prefix}:deadletter``, for operators and the sweeper.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import time
from typing import Any

from celery import Task
from celery.signals import task_failure

from kustom_app.metrics import DEAD_LETTERS
from kustom_app.services import process_services

# Dead letters are logged under the name they always had (log filters may rely on it).
log = logging.getLogger("workers.tasks")

DEAD_LETTER_LIMIT = 1000


class RetriesExhausted(Exception):
    """A task gave up after its last retry without an error of its own to record."""


def backoff_seconds(retries: int) -> float:
    """Exponential backoff, each delay drawn between half and all of its step (jitter that
    spreads retries out but never retries at once), capped by TASK_RETRY_MAX_SECONDS."""
    settings = process_services().settings
    # (2**64 seconds is past any cap; a bigger power would not even convert to a float)
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** min(retries, 64))
    return random.uniform(ceiling / 2, ceiling)


def record_dead_letter(
    task: Task, error: BaseException, context: dict[str, Any], *, task_id: str | None = None
) -> None:
    """Keep a failed task (after its last retry, or rejected) for operators and the sweeper."""
    services = process_services()
    task_id = task_id or task.request.id
    entry = json.dumps(
        {
            "task": task.name,
            "taskId": task_id,
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
    DEAD_LETTERS.labels(task.name).inc()
    log.error("kustom.task.dead_letter task=%s id=%s %s", task.name, task_id, context)
    # The failure handler below then skips this task. (By id: Celery may hand the handler
    # a pickleable copy of the exception rather than the one raised.)
    _dead_lettered.append(task_id)


# Task ids this process dead-lettered lately; a task fails right after its own record.
_dead_lettered: collections.deque[str | None] = collections.deque(maxlen=256)


@task_failure.connect
def dead_letter_unhandled_failure(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    """A task of ours that fails on an error it does not handle itself (Redis down, its
    soft time limit, a bug) is kept like every other give-up. Its message is acknowledged
    (Celery acks a failed task), so the sweeper's indexes are what bring the work back."""
    if sender is None or exception is None or sender.name.startswith("celery."):
        return
    if task_id in _dead_lettered:
        return  # the task recorded it before raising
    ids = [a for a in (args or ()) if isinstance(a, str | int) and len(str(a)) <= 255]
    ids += [v for k, v in (kwargs or {}).items() if k != "payload" and isinstance(v, str | int)]
    try:
        record_dead_letter(sender, exception, {"args": ids[:4]}, task_id=task_id)
    except Exception as e:  # Redis itself may be what failed: the log is all there is
        log.error(
            "kustom.task.dead_letter_lost task=%s id=%s error=%s recording=%s",
            sender.name,
            task_id,
            type(exception).__name__,
            type(e).__name__,
        )


def retry_transient(
    task: Task, error: Exception, context: dict[str, Any], *, at_least: float = 0.0
) -> Exception:
    """Retry with backoff (not sooner than ``at_least`` seconds); after the last retry keep
    the task in the dead-letter list. Returns what the caller raises."""
    if task.request.retries >= process_services().settings.max_retries:
        record_dead_letter(task, error, context)
        return error
    countdown = max(at_least, backoff_seconds(task.request.retries))
    return task.retry(countdown=countdown, exc=error)
