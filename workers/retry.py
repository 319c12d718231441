"""What a task does when it fails: retry with backoff, wait, or give up into a dead letter.

Each task declares it with `retrying` (in the spirit of sentry's ``@retry(on=…)``):
``retry_on`` the transient errors (an outage: retried with backoff and jitter at most
TASK_MAX_RETRIES times, then kept as a dead letter), ``give_up_on`` the errors no retry
mends (a 4xx: a dead letter at once, and the task returns ``gave_up``), ``waits_on`` the
errors that say when to come back (a lease held, an answer still pending: the task says
how it waits). Any other error fails the task, and the failure hook below keeps that as a
dead letter too: every give-up ends in ``{prefix}:deadletter``, for operators and the
sweeper.
"""

from __future__ import annotations

import collections
import functools
import inspect
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from celery import Task
from celery.signals import task_failure

from kustom_app.logs import event_log
from kustom_app.metrics import DEAD_LETTERS
from kustom_app.services import process_services

# Dead letters are logged under the name they always had (log filters may rely on it).
log = event_log("workers.tasks")

DEAD_LETTER_LIMIT = 1000

Fun = TypeVar("Fun", bound=Callable[..., Any])
# A dead letter's fields read from the error: field name -> the error's attribute.
ErrorFields = Mapping[str, str]
Errors = tuple[type[Exception], ...] | Mapping[type[Exception], ErrorFields]
# How a task waits out an error: (task, error, dead-letter context, the task's arguments
# by name) -> the task's result; or it raises (a retry, or the error after the last one).
Wait = Callable[[Task, Any, dict[str, Any], Mapping[str, Any]], Any]


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
    cart = context.get("cart")
    services.store.dead_letters.record(
        entry, keep=DEAD_LETTER_LIMIT, cart_id=str(cart) if cart else None
    )
    DEAD_LETTERS.labels(task.name).inc()
    log.error("kustom.task.dead_letter", task=task.name, id=task_id, context=context)
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
            "kustom.task.dead_letter_lost",
            task=sender.name,
            id=task_id,
            error=type(exception).__name__,
            recording=type(e).__name__,
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


def wait_out(
    task: Task,
    error: Exception,
    context: dict[str, Any],
    *,
    limit: int,
    countdown: Callable[[], float],
) -> Exception:
    """Come back in ``countdown()`` seconds, at most ``limit`` times: what the task waits
    for (a live job's lease) ends by itself, so this is no failure and no backoff. After
    the last time keep the task in the dead-letter list. Returns what the caller raises."""
    if task.request.retries >= limit:
        record_dead_letter(task, error, context)
        return error
    return task.retry(countdown=countdown())


def retrying(
    *,
    context: tuple[str, ...],
    retry_on: Errors = (),
    give_up_on: Errors = (),
    gave_up: str | None = None,
    waits_on: Mapping[type[Exception], Wait] | None = None,
) -> Callable[[Fun], Fun]:
    """Declare what a task (or a function it runs, the task its first argument) retries
    and what it gives up on, so its body is only what it does.

    ``context`` names the leading arguments after the task as its dead letters show them;
    an error's own fields follow, as ``retry_on``/``give_up_on`` map them (field name ->
    the error's attribute). The errors are matched in the order waits_on, retry_on,
    give_up_on, each in the order given.
    """
    policy = _Policy(context, _by_error(retry_on), _by_error(give_up_on), gave_up, waits_on or {})

    def declare(fun: Fun) -> Fun:
        signature = inspect.signature(fun)
        if len(context) >= len(signature.parameters):
            raise TypeError(f"{fun.__name__} has fewer arguments than {context}")
        errors = policy.errors

        @functools.wraps(fun)
        def run(task: Task, *args: Any, **kwargs: Any) -> Any:
            try:
                return fun(task, *args, **kwargs)
            except errors as error:
                arguments = signature.bind(task, *args, **kwargs)
                arguments.apply_defaults()
                return policy.handle(task, error, arguments.arguments)

        # Celery checks a job's arguments against the task's own signature.
        run.__signature__ = signature  # type: ignore[attr-defined]
        return cast(Fun, run)

    return declare


@dataclass(frozen=True)
class _Policy:
    context: tuple[str, ...]
    retry_on: Mapping[type[Exception], ErrorFields]
    give_up_on: Mapping[type[Exception], ErrorFields]
    gave_up: str | None
    waits_on: Mapping[type[Exception], Wait]

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        return (*self.waits_on, *self.retry_on, *self.give_up_on)

    def handle(self, task: Task, error: Exception, arguments: Mapping[str, Any]) -> Any:
        leading = list(arguments.values())[1:]  # after the task
        context = dict(zip(self.context, leading, strict=False))
        for kind, wait in self.waits_on.items():
            if isinstance(error, kind):
                return wait(task, error, context, arguments)
        for kind, fields in self.retry_on.items():
            if isinstance(error, kind):
                raise retry_transient(task, error, {**context, **_read(error, fields)}) from error
        for kind, fields in self.give_up_on.items():
            if isinstance(error, kind):
                record_dead_letter(task, error, {**context, **_read(error, fields)})
                return self.gave_up
        raise error  # not reached: only the errors above are caught


def _by_error(errors: Errors) -> Mapping[type[Exception], ErrorFields]:
    return errors if isinstance(errors, Mapping) else {error: {} for error in errors}


def _read(error: Exception, fields: ErrorFields) -> dict[str, Any]:
    return {name: getattr(error, attribute) for name, attribute in fields.items()}
