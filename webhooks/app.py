"""The Flask application factory (gunicorn: ``webhooks.app:create_app()``)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from flask import Flask

from kustom_app.services import Services
from kustom_app.settings import Settings
from webhooks import commerce, events, kustom_callbacks, kustom_confirm, ops, payments, storefront
from webhooks.errors import register_error_handlers


class TaskQueue(Protocol):
    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None: ...
    def complete(self, cart_id: str, order_id: str, path: str) -> None: ...
    def acknowledge(self, cart_id: str, order_id: str) -> None: ...
    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None: ...


class CeleryTaskQueue:
    """Enqueues through the Celery app; imported lazily so the web can start without it."""

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        from workers.tasks import enqueue_sync

        enqueue_sync(cart_id, payload_hash, payload)

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        from workers.tasks import enqueue_completion

        enqueue_completion(cart_id, order_id, path)

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        from workers.tasks import enqueue_acknowledge

        enqueue_acknowledge(cart_id, order_id)

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        from workers.tasks import enqueue_fraud_decision

        enqueue_fraud_decision(cart_id, order_id, event_type)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``config`` overrides.

    ``config`` may carry ``SETTINGS`` (a `Settings`), ``REDIS`` (a client, e.g. fakeredis
    in unit tests) and ``TASK_QUEUE`` (something with the `TaskQueue` methods).
    """
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    services = Services(settings)
    if "REDIS" in config:
        services.__dict__["redis"] = config.pop("REDIS")
    app.extensions["kustom"] = services
    app.extensions["kustom.enqueue"] = config.pop("TASK_QUEUE", None) or CeleryTaskQueue()
    app.config.update(config)

    register_error_handlers(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(storefront.bp)
    app.register_blueprint(commerce.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(kustom_confirm.bp)
    app.register_blueprint(kustom_callbacks.bp)
    app.register_blueprint(events.bp)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    return app
