"""The Flask application factory (gunicorn: ``webhooks.app:create_app()``)."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask, Response, g, request

from kustom_app.logs import configure_logging
from kustom_app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from kustom_app.services import Services
from kustom_app.settings import Settings
from webhooks import commerce, events, kustom_callbacks, kustom_confirm, ops, payments, storefront
from webhooks.body_limits import register_body_limits
from webhooks.errors import register_error_handlers
from webhooks.operators import cli as operator_commands

if TYPE_CHECKING:
    from workers.messages import SyncJobMessages


class TaskQueue(Protocol):
    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None: ...
    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None: ...
    def complete(self, cart_id: str, order_id: str, path: str) -> None: ...
    def acknowledge(self, cart_id: str, order_id: str) -> None: ...
    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None: ...
    def capture(self, capture_id: str) -> None: ...
    def refund(self, refund_id: str) -> None: ...
    def cancel(self, cart_id: str) -> None: ...


class CeleryTaskQueue:
    """Enqueues through the Celery app; imported lazily so the web can start without it.

    ``state_redis_url`` is the Redis the cart state lives in: when the broker is that same
    database, sync jobs are queued by the cart's Lua script (`sync_job`).
    """

    def __init__(self, state_redis_url: str | None = None) -> None:
        self._state_redis_url = state_redis_url

    @cached_property
    def _messages(self) -> SyncJobMessages | None:
        """The message builder, or None when the broker is not the state Redis."""
        from workers.messages import SyncJobMessages
        from workers.tasks import sync_kustom_order

        if self._state_redis_url is None or not SyncJobMessages.usable_with(
            sync_kustom_order.app, self._state_redis_url
        ):
            return None
        return SyncJobMessages(sync_kustom_order)

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        from workers.tasks import enqueue_sync

        enqueue_sync(cart_id, payload_hash, payload)

    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None:
        messages = self._messages
        if messages is None:
            return None
        return messages.queue, messages.build(cart_id, payload_hash)

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        from workers.tasks import enqueue_completion

        enqueue_completion(cart_id, order_id, path)

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        from workers.tasks import enqueue_acknowledge

        enqueue_acknowledge(cart_id, order_id)

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        from workers.tasks import enqueue_fraud_decision

        enqueue_fraud_decision(cart_id, order_id, event_type)

    def capture(self, capture_id: str) -> None:
        from workers.ordermanagement import enqueue_capture

        enqueue_capture(capture_id)

    def refund(self, refund_id: str) -> None:
        from workers.ordermanagement import enqueue_refund

        enqueue_refund(refund_id)

    def cancel(self, cart_id: str) -> None:
        from workers.ordermanagement import enqueue_cancel

        enqueue_cancel(cart_id)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``config`` overrides.

    ``config`` may carry ``SETTINGS`` (a `Settings`), ``REDIS`` (a client, e.g. fakeredis
    in unit tests) and ``TASK_QUEUE`` (something with the `TaskQueue` methods).
    """
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(
        JSON_SORT_KEYS=False,
        KUSTOM_EVENTS_MAX_STREAMS=settings.events_max_streams,
    )
    services = Services(settings)
    own_redis = "REDIS" not in config  # a given client (tests) is not the broker's Redis
    if not own_redis:
        services.__dict__["redis"] = config.pop("REDIS")
    app.extensions["kustom"] = services
    app.extensions["kustom.enqueue"] = config.pop("TASK_QUEUE", None) or CeleryTaskQueue(
        settings.redis_url if own_redis else None
    )
    app.config.update(config)

    register_error_handlers(app)
    register_body_limits(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(storefront.bp)
    app.register_blueprint(commerce.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(kustom_confirm.bp)
    app.register_blueprint(kustom_callbacks.bp)
    app.register_blueprint(events.bp)
    app.cli.add_command(operator_commands)
    register_request_metrics(app)
    if not app.testing:
        configure_logging()
    return app


def register_request_metrics(app: Flask) -> None:
    """Count and time every request, labelled by route (not by raw path: ids would explode)."""

    @app.before_request
    def _start_timer() -> None:
        g.kustom_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("kustom_started", None)
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        if started is not None and not response.is_streamed:
            HTTP_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response
