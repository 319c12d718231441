"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from kustom_app.metrics import QueueDepthCollector, RedisStateCollector, render_metrics
from kustom_app.metrics_directory import node_directory, node_process_directories
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
    """Prometheus exposition: every process of this node that shares its metrics directory
    (web, and worker and beat on one host), plus the Redis gauges and the queue depths."""
    from workers.metrics_server import broker_queue_lists

    services = extension.services()
    body, content_type = render_metrics(
        [node_directory(), *node_process_directories()],
        state=RedisStateCollector(services.redis, services.settings.key_prefix),
        queue_depth=QueueDepthCollector(services.broker_redis, broker_queue_lists()),
    )
    return Response(body, content_type=content_type)
