"""The worker's and beat's logging: the service's format (`kustom_app.logs`), and the cart
and task of the job being run on every line of it, Celery's own lines included.

- ``setup_logging``: Celery leaves its handlers alone and uses the service's (one root
  handler, ``LOG_FORMAT``), in the worker, its pool processes and beat.
- ``task_prerun``/``task_postrun``: the task id, and the cart when the task's first
  argument is one (``shown_as`` starts ``(cart=``), are bound for the task's run.
- ``Task ...[id] received`` is logged before any task code runs: its cart is read from the
  task's ``argsrepr`` (our own ``shown_as``, ids only).
- With ``LOG_FORMAT=json`` the start-up banners (plain text printed to stdout) are off, so
  every line a worker or beat writes is one JSON object.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, setup_logging, task_postrun, task_prerun

from kustom_app.logs import bind_cart, bind_task, configure_logging, current_context, unbind
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


@setup_logging.connect
def _use_the_service_format(loglevel: Any = None, **_: object) -> None:
    level = loglevel if isinstance(loglevel, int) else logging.INFO
    configure_logging(log_format(), level, filters=[ReceivedTaskCart()])


@celeryd_init.connect
def _no_text_banner_in_json(instance: Any = None, **_: object) -> None:
    if instance is not None and log_format() == "json":
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
