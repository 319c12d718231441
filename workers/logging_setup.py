"""The worker's and beat's logging: the service's format (`kustom_app.logs`), and the cart
and task of the job being run on every line of it, Celery's own lines included.

- ``setup_logging``: Celery leaves its handlers alone and uses the service's (one root
  handler, ``LOG_FORMAT``), in the worker, its pool processes and beat.
- ``task_prerun``/``task_postrun``: the task id, and the cart when the task's first
  argument is one (``shown_as`` starts ``(cart=``), are bound for the task's run.
- ``Task ...[id] received`` is logged before any task code runs: its cart is read from the
  task's ``argsrepr`` (our own ``shown_as``, ids only).
- With ``LOG_FORMAT=json`` the start-up banners (plain text printed to stdout) are off and
  the worker's shutdown notices are JSON too, so every line a worker or beat writes is one
  JSON object.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, setup_logging, task_postrun, task_prerun

from kustom_app.logs import (
    bind_cart,
    bind_task,
    configure_logging,
    current_context,
    redact,
    unbind,
)
from kustom_app.settings import Settings

# ``shown_as="(cart={!r}, ...)"`` rendered: the cart id is the first quoted value.
_ARGSREPR_CART = re.compile(r"^\(cart='([^'\\]+)'")


def log_format() -> str:
    return Settings.from_env().log_format


class ReceivedTaskCart(logging.Filter):
    """Puts the cart on Celery's "Task ...[id] received" line, from the ids-only argsrepr
    the task was queued with (`workers.celery_app.KustomTask.enqueue`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict) and isinstance(data.get("args"), str):
            match = _ARGSREPR_CART.match(data["args"])
            if match:
                record.kustom_context = {**current_context(), "cart": match.group(1)}
        return True


def configure_worker_logging(level: int = logging.INFO) -> str:
    """The service's log format on this worker's or beat's root logger; returns it."""
    chosen = log_format()
    configure_logging(chosen, level, filters=[ReceivedTaskCart()])
    if chosen == "json":
        import celery.apps.worker

        celery.apps.worker.safe_say = say_as_json
    return chosen


def say_as_json(msg: str, f: Any = sys.__stderr__) -> None:
    """Celery's notices from its signal handlers ("worker: Warm shutdown (MainProcess)"),
    written around logging (no lock may be taken there), as JSON lines: one os.write."""
    line = json.dumps(
        {
            "ts": datetime.now(UTC).isoformat(),
            "level": "warning",
            "logger": "celery.apps.worker",
            "msg": redact(str(msg).strip()),
        }
    )
    with contextlib.suppress(AttributeError, OSError, ValueError):  # never stop a shutdown
        os.write(f.fileno(), f"{line}\n".encode())


@setup_logging.connect
def _use_the_service_format(loglevel: Any = None, **_: object) -> None:
    configure_worker_logging(loglevel if isinstance(loglevel, int) else logging.INFO)


@celeryd_init.connect
def _service_format_from_the_start(instance: Any = None, **_: object) -> None:
    # Before Celery's own setup: its start-up checks warn (running as root, ...) first.
    log_format = configure_worker_logging()
    if instance is not None and log_format == "json":
        instance.quiet = True


def quiet_beat_in_json(app: Celery) -> None:
    """``celery beat`` prints its banner before any signal: its class is told here."""
    base = app.Beat

    class Beat(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, quiet: bool = False, **kwargs: Any) -> None:
            super().__init__(*args, quiet=quiet or log_format() == "json", **kwargs)

    app.Beat = Beat


def _task_cart(task: Any, args: Any) -> str | None:
    shown_as = getattr(task, "shown_as", "")
    if shown_as.startswith("(cart=") and args and isinstance(args[0], str):
        return str(args[0])
    return None


@task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, args: Any = None, **_: object) -> None:
    unbind()
    bind_task(task_id)
    bind_cart(_task_cart(task, args))


@task_postrun.connect
def _unbind_task(**_: object) -> None:
    unbind()
