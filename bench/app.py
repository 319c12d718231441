"""The app the benchmarks serve: the production app plus a bare baseline endpoint.

gunicorn runs it exactly like the Procfile's web line, with only the app spec swapped::

    gunicorn ... 'bench.app:create_app()'

``POST /_bench/bare`` reads the request body (the same bytes the measured endpoint gets)
and answers a small JSON object: Flask, the app's request hooks (metrics), the gunicorn
worker and the HTTP round trip, and nothing else. It exists only here, never in
``webhooks.app``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

BARE_PATH = "/_bench/bare"


def add_bare_endpoint(app: Flask) -> Flask:
    """Register the baseline endpoint on ``app`` (returns it)."""

    @app.post(BARE_PATH)
    def _bench_bare() -> Any:
        body = request.get_data(cache=False)
        response = jsonify({"received": len(body)})
        response.status_code = 202
        return response

    return app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """``webhooks.app.create_app`` (settings from the environment) plus the bare endpoint."""
    from webhooks.app import create_app as create_production_app

    return add_bare_endpoint(create_production_app(config))


__all__ = ["BARE_PATH", "add_bare_endpoint", "create_app"]
