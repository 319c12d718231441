"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

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
        current_app.extensions["kustom"].redis.ping()
    except Exception as e:
        return error_response(
            503, "redis_unavailable", "Redis does not answer.", {"error": type(e).__name__}
        )
    return jsonify({"status": "ready"})
