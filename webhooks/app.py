"""The Flask application factory (gunicorn: ``webhooks.app:create_app()``): the web's
entry module."""

from __future__ import annotations

from kustom_app.metrics_directory import share_metrics_directory
from kustom_app.settings import Settings

# prometheus_client chooses multiprocess mode when it is first imported (kustom_app.metrics,
# through the imports below), so the web's entry module points it at the node's metrics
# directory first. gunicorn.conf.py has done so in gunicorn's master already; this covers
# the app served any other way (flask run, an image without gunicorn.conf.py); under
# gunicorn a worker keeps its master's directory.
share_metrics_directory("web")

import time  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask, Response, g, request  # noqa: E402

from kustom_app.jobs import Jobs  # noqa: E402
from kustom_app.logs import configure_logging  # noqa: E402
from kustom_app.metrics import HTTP_LATENCY, HTTP_REQUESTS  # noqa: E402
from kustom_app.services import Services  # noqa: E402
from webhooks import (  # noqa: E402
    commerce,
    events,
    home,
    kustom_callbacks,
    kustom_confirm,
    ops,
    payments,
    storefront,
)
from webhooks.body_limits import register_body_limits  # noqa: E402
from webhooks.errors import register_error_handlers  # noqa: E402
from webhooks.extension import install  # noqa: E402
from webhooks.openapi import require_event_schemas  # noqa: E402
from webhooks.operators import cli as operator_commands  # noqa: E402
from webhooks.request_logging import register_request_logging  # noqa: E402
from workers.enqueue import CeleryJobs  # noqa: E402


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: its settings (``SETTINGS``, else the environment), the domain objects
    built from them, then ``config`` overrides.

    ``config`` may carry ``SETTINGS`` (a `Settings`), ``REDIS`` (a client, e.g. fakeredis
    in unit tests) and ``TASK_QUEUE`` (a `kustom_app.jobs.Jobs`, e.g. one that records).
    """
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(JSON_SORT_KEYS=False)
    own_redis = "REDIS" not in config  # a given client (tests) is not the broker's Redis
    services = Services(settings, config.pop("REDIS", None))
    jobs: Jobs = config.pop("TASK_QUEUE", None) or CeleryJobs(
        settings.redis_url if own_redis else None, fast_paths=settings.fast_paths
    )
    install(app, services, jobs)
    # The merchant rules load now: a bad KUSTOM_VALIDATION_RULES stops the process at start.
    services.validator  # noqa: B018 (built for what building it checks)
    require_event_schemas()
    app.config.update(config)

    register_error_handlers(app)
    register_body_limits(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(storefront.bp)
    app.register_blueprint(commerce.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(kustom_confirm.bp)
    app.register_blueprint(kustom_callbacks.bp)
    app.register_blueprint(events.bp)
    app.cli.add_command(operator_commands)
    register_request_metrics(app)
    register_request_logging(app)
    if not app.testing:
        configure_logging(settings.log_format)
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
