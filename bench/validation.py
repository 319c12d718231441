"""Latency of Kustom's validation callback, ``POST /kustom/validate``, beside a bare endpoint.

    python -m bench validation [--calls 2000]

One process, a real redis-server, the app served over real HTTP on 127.0.0.1. Rows:

* ``bare``: ``POST /_bench/bare`` on the same app (registered here only, never in the
  production app): Flask, the WSGI server and the HTTP round trip, nothing else;
* ``validate, stored render``: no commerce backend, decided on the render in Redis;
* ``validate, fake backend``: a commerce backend on another local server answers the
  fresh-render fetch at once (one more HTTP round trip);
* ``validate, 3 rules``: stored render plus the reference's three example rules.

Every validate call carries a valid token and an order equal to the cart, so every answer
is a 200 after the full path (integrity rule, hook input, rules).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from flask import Flask, jsonify, request

from bench.latency import Row, report, time_calls
from bench.node import quiet_logs, redis_server, served
from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from kustom_app.settings import Settings
from kustom_app.signing import callback_token
from kustom_app.sync import ingest_render

CART_ID = "bench-cart-1"
SECRET = "bench-callback-secret"  # noqa: S105  (local benchmark only)

# The contract's example cart (CONTRACT section 4), under the bench's own cart id.
RENDER: dict[str, Any] = {
    **json.loads(
        (Path(__file__).parents[1] / "tests/fixtures/renders/sek_contract.json").read_text()
    ),
    "cartId": CART_ID,
    "version": 1,
}


class _NoQueue:
    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        return None


def _fake_commerce(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps(RENDER).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _app(settings: Settings) -> Flask:
    from webhooks.app import create_app

    app = create_app({"SETTINGS": settings, "TASK_QUEUE": _NoQueue()})
    quiet_logs()  # create_app installs the service's INFO logging; the bench measures, not logs

    # The baseline: same app, same server, same body, parsed; no work beyond that.
    @app.post("/_bench/bare")
    def _bare() -> Any:
        request.get_json(force=True)
        return jsonify({})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench validation")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per row")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    quiet_logs()

    order = {
        **build_order_payload(load_render(RENDER)),
        "order_id": "bench-order-1",
        "status": "checkout_incomplete",
        "merchant_urls": {"checkout": "https://shop.test/checkout"},
    }
    body = json.dumps(order).encode()
    headers = {"Content-Type": "application/json"}
    path = f"/kustom/validate?cart={CART_ID}&token={callback_token(SECRET, CART_ID)}"

    with redis_server() as redis, served(_fake_commerce) as commerce_url:
        settings = Settings(
            redis_url=redis.url,
            celery_broker_url=redis.url,
            kustom_username="bench",
            kustom_password="bench",  # noqa: S106
            callback_secret=SECRET,
        )
        plain = _app(settings)
        with_backend = _app(replace(settings, commerce_api_url=commerce_url))
        os.environ.setdefault("KUSTOM_MIN_ORDER_TOTAL", "100")
        os.environ.setdefault("KUSTOM_ALLOWED_CHANNELS", "retail-se,retail-no")
        with_rules = _app(
            replace(
                settings,
                validation_rules=(
                    "kustom_app.rules:stock_available",
                    "kustom_app.rules:minimum_order_total",
                    "kustom_app.rules:allowed_channels",
                ),
            )
        )
        ingest_render(plain.extensions["kustom"].store, load_render(RENDER))

        session = requests.Session()
        rows: list[Row] = []
        with (
            served(plain) as url,
            served(with_backend) as url_backend,
            served(with_rules) as url_rules,
        ):
            cases = [
                ("bare", f"{url}/_bench/bare"),
                ("validate, stored render", url + path),
                ("validate, fake backend", url_backend + path),
                ("validate, 3 rules", url_rules + path),
            ]
            for name, target in cases:
                samples, statuses = time_calls(
                    lambda target=target: session.post(target, data=body, headers=headers),
                    args.calls,
                    warmup=args.warmup,
                    expect=200,
                )
                rows.append(Row(name, samples, statuses))
    report(
        "validation",
        rows,
        baseline="bare",
        meta={"server": "werkzeug ServerThread (threaded)", "redis": "redis-server, local"},
    )
    return 0
