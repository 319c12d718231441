"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from kustom_app.metrics import render_metrics
from webhooks import extension
from webhooks.errors import error_response

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up (no dependencies checked)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to serve: Redis answers."""
    try:
        extension.services().redis.ping()
    except Exception as e:
        return error_response(
            503, "redis_unavailable", "Redis does not answer.", {"error": type(e).__name__}
        )
    return jsonify({"status": "ready"})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition: every web and worker process of this node, plus Redis gauges."""
    services = extension.services()
    body, content_type = render_metrics(services.redis, services.settings.key_prefix)
    return Response(body, content_type=content_type)
