"""The Celery application: the worker's, beat's and Flower's entry point.

Every choice here is deliberate (see "Celery settings" in docs/operations.md):

- ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered again;
  every task is idempotent, so running twice is safe, losing one is not.
- ``worker_prefetch_multiplier = 1``: a busy worker does not hoard messages.
- ``visibility_timeout`` above every retry countdown, lease and time limit (enforced in
  Settings), so a delayed retry or a long run is never handed to a second worker while
  the first still holds it.
- No result backend: tasks report through Redis state and the commerce backend.
- The broker transport reuses its Redis client per channel (workers/fastpath_broker.py):
  enqueueing is on the hot path of every cart event. Not with ``KUSTOM_FAST_PATHS=off``.

The settings are read when the configuration is first needed (a worker or beat starting, a
job queued), not when this module is imported.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init, worker_ready, worker_shutdown
from kombu.exceptions import OperationalError

from kustom_app.jobs import JobsUnavailable
from kustom_app.metrics_directory import share_metrics_directory
from kustom_app.redis_connection import sentinel_master_name
from kustom_app.settings import Settings
from workers import broker, fastpath_broker, metrics_server
from workers.logging_setup import quiet_beat_in_json
from workers.processes import process_kind


def transport_for(broker_url: str, *, fast_paths: bool = True) -> str | None:
    """The kombu transport for ``broker_url``: ours, which rides out a Redis restart
    (workers/broker.py), for Redis and Sentinel URLs, with the fast path's shared client on
    plain Redis (workers/fastpath_broker.py) unless ``KUSTOM_FAST_PATHS=off``; None
    (kombu's choice) for anything else."""
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        return fastpath_broker.TRANSPORT if fast_paths else broker.TRANSPORT
    if scheme == "sentinel":
        return broker.SENTINEL_TRANSPORT
    return None


def master_name_option(broker_url: str) -> dict[str, str]:
    name = sentinel_master_name(broker_url)
    return {"master_name": name} if name else {}


def broker_url_for_kombu(broker_url: str) -> str:
    """kombu takes URL query parameters as connection arguments; Sentinel's master name
    goes into the transport options instead (Celery's documented form)."""
    if not broker_url.startswith("sentinel://"):
        return broker_url
    return ";".join(part.split("?", 1)[0] for part in broker_url.split(";"))


SYNC_QUEUE = "kustom.sync"
ORDERS_QUEUE = "kustom.orders"
# What the worker imports: every module that defines tasks.
TASK_MODULES = ["workers.tasks", "workers.ordermanagement", "workers.sweeper"]


def make_celery(settings: Settings | None = None) -> Celery:
    """The Celery app, configured from ``settings``, or by default from the process's
    environment when its configuration is first read (`process_configuration`)."""
    app = Celery("kustom_app", include=TASK_MODULES)
    # A callable is a promise: Celery calls it when the configuration is first read.
    app.add_defaults(process_configuration if settings is None else lambda: configuration(settings))
    return app


def process_configuration() -> dict[str, Any]:
    """The configuration of this worker's or beat's process, from its environment.

    Celery reads it before it imports the task modules (``include``), and so before
    anything there imports prometheus_client: the metrics directory is set up first
    (`python -m workers`, the Procfile's entry, has done so already).
    """
    kind = process_kind(sys.argv)
    if kind != "flower":  # Flower's own metrics stay in its process (workers/__main__.py)
        share_metrics_directory(kind or "celery")
    return configuration(Settings.from_env(), flower=kind == "flower")


def configuration(settings: Settings, *, flower: bool = False) -> dict[str, Any]:
    """The app's Celery settings, from the service's. Flower gets kombu's own transport:
    it reads the broker from the URL's scheme (its Broker page, ``/api/queues/length``),
    and a custom transport's URL names no scheme it knows."""
    return dict(
        broker_url=broker_url_for_kombu(settings.celery_broker_url),
        broker_transport=(
            None
            if flower
            else transport_for(settings.celery_broker_url, fast_paths=settings.fast_paths)
        ),
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # A running worker looks for a dead worker's messages every ~10 s instead of
            # ~100 s (kombu's default throttle of 10 scan intervals).
            "unacked_restore_throttle": 1,
            # ... and every 5 s (kombu: 10 s) it refreshes its own entry among the
            # consumers and restores the messages of a worker unseen for 20 s
            # (workers/broker.py: a SIGKILLed worker's jobs run again within ~30 s).
            "unacked_restore_interval": 5,
            **master_name_option(settings.celery_broker_url),
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_default_queue=ORDERS_QUEUE,
        task_routes={"syncKustomOrder": {"queue": SYNC_QUEUE}},
        worker_send_task_events=True,
        # Flower sees tasks from the worker's events (received/started/...); the "sent"
        # event would cost every cart event another Redis publish in the web request.
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reconcile-kustom-orders": {
                "task": "reconcileKustomOrders",
                "schedule": settings.reconcile_interval_seconds,
                "options": {"expires": settings.reconcile_interval_seconds},
            }
        },
    )


# The worker's (once its pool is up) and beat's own /metrics and /healthz.
worker_ready.connect(lambda **_: metrics_server.serve_process_metrics("worker"), weak=False)
beat_init.connect(lambda **_: metrics_server.serve_process_metrics("beat"), weak=False)
worker_shutdown.connect(lambda **_: metrics_server.stop_process_metrics(), weak=False)


app = make_celery()
quiet_beat_in_json(app)  # and the service's log format: workers/logging_setup.py


class KustomTask(Task):
    """A task of this service, queued with `enqueue` (by workers/enqueue.py, the one
    implementation of `kustom_app.jobs.Jobs`, and by a task for its follow-up).

    ``shown_as`` formats a job's arguments for Flower: ids only, never the payload.
    """

    shown_as: str  # given by the task's decorator

    def enqueue(self, *args: Any) -> None:
        try:
            self.apply_async(args=args, argsrepr=self.shown_as.format(*args))
        except OperationalError as e:  # the broker is unreachable (after kombu's retries)
            raise JobsUnavailable(f"{self.name} not queued: {e}") from e


def idempotent_task(name: str, *, shown_as: str, **options: Any) -> Any:
    """A task safe to run twice: acknowledged late, redelivered if its worker is lost.

    Retries are declared by each task (`workers.retry.retrying`) and bounded
    (``TASK_MAX_RETRIES``, then dead-lettered).
    """
    return app.task(
        name=name,
        base=KustomTask,
        shown_as=shown_as,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=None,
        **options,
    )
