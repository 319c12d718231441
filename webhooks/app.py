"""The Flask application factory (gunicorn: ``webhooks.app:create_app()``)."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, request

from kustom_app.jobs import Jobs
from kustom_app.logs import configure_logging
from kustom_app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from kustom_app.services import Services
from kustom_app.settings import Settings
from webhooks import commerce, events, kustom_callbacks, kustom_confirm, ops, payments, storefront
from webhooks.body_limits import register_body_limits
from webhooks.errors import register_error_handlers
from webhooks.operators import cli as operator_commands
from workers.enqueue import CeleryJobs


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``config`` overrides.

    ``config`` may carry ``SETTINGS`` (a `Settings`), ``REDIS`` (a client, e.g. fakeredis
    in unit tests) and ``TASK_QUEUE`` (a `kustom_app.jobs.Jobs`, e.g. one that records).
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
    jobs: Jobs = config.pop("TASK_QUEUE", None) or CeleryJobs(
        settings.redis_url if own_redis else None, fast_paths=settings.fast_paths
    )
    app.extensions["kustom.enqueue"] = jobs
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
