"""KUSTOM_FAST_PATHS=off end to end: the plain library way for every fast path.

This module runs its own web (gunicorn, as the Procfile does) and worker with the fast paths
off, on its own Redis database (state and broker, as by default), sharing the session's
redis-server and the Kustom and commerce doubles (tests/integration/conftest.py). A cart
goes through it as through the production default: checkout, a render whose sync job is
queued and pushed, payment, completion and acknowledgement.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn
from harness.redis_server import free_port
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from kustom_app.signing import callback_token
from tests.conftest import CALLBACK_SECRET, make_render
from tests.integration import test_checkout_and_sync as cart_flow
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

STATE_DB = 8  # this module's Redis database: state and broker


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    redis: redis.Redis


@pytest.fixture(scope="module")
def stack(redis_server, service_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis_url = redis_server.url_for(STATE_DB)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    port = free_port()
    env = {
        **service_env,  # the session's doubles and short timeouts
        "KUSTOM_FAST_PATHS": "off",
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    log = Path(tmp_path_factory.mktemp("fast-paths-off")) / "gunicorn.log"
    web = Gunicorn(env, app_spec="webhooks.app:create_app()", port=port, log_path=log)
    try:
        web.start()
        yield Stack(web.url, env, client)
    finally:
        web.stop()
        client.flushdb()


def queued_sync_jobs(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(m) for m in client.lrange("kustom.sync", 0, -1)]


def test_a_cart_syncs_completes_and_is_acknowledged_with_the_fast_paths_off(
    http, stack, kustom, commerce
):
    cart = cart_flow.new_cart()
    first, second = make_render(cart, 1, quantity=1), make_render(cart, 2, quantity=4)
    commerce.put_cart(first)
    cart_flow.post_render(http, stack, first)
    order_id = cart_flow.checkout(http, stack, cart)["kustomOrderId"]

    # No worker yet: the job waits on the broker, as the web queued it.
    commerce.put_cart(second)
    assert cart_flow.post_render(http, stack, second)["syncing"] is True
    payload = build_order_payload(load_render(second))
    want = payload_hash(payload)
    (job,) = queued_sync_jobs(stack.redis)
    # Published by kombu (apply_async: a base64 body), not pushed by the render's script
    # (workers/fastpath_messages.py: a JSON text body).
    assert job["properties"]["body_encoding"] == "base64"
    assert job["headers"]["task"] == "syncKustomOrder"
    assert job["headers"]["argsrepr"] == f"(cart={cart!r}, hash={want!r})"
    assert json.loads(base64.b64decode(job["body"]))[0] == [cart, want, payload]

    with CeleryWorker(stack.env, name="fast-paths-off", concurrency=2):
        wait_until(
            lambda: (
                (s := cart_flow.status(http, stack, cart))["syncHash"] == want and not s["syncing"]
            ),
            timeout=30,
        )
        (update,) = cart_flow.order_updates(kustom, order_id)
        assert update["json"]["order_amount"] == payload["order_amount"]
        assert update["json"]["order_lines"] == payload["order_lines"]

        # The shopper pays; Kustom's push completes the cart, once, and it is acknowledged.
        kustom.complete_order(order_id)
        token = callback_token(CALLBACK_SECRET, cart)
        pushed = http.post(
            f"{stack.url}/kustom/push", params={"order_id": order_id, "cart": cart, "token": token}
        )
        assert pushed.status_code == 200
        confirmed = wait_until(
            lambda: (
                (r := http.post(f"{stack.url}/carts/{cart}/kustom/confirm")).status_code == 200
                and r.json()
            ),
            timeout=30,
        )
        (order,) = commerce.orders_for(cart)
        assert confirmed["orderNumber"] == order["orderNumber"]
        assert confirmed["cartState"] == "completed"
        wait_until(lambda: kustom.stored_order(order_id)["acknowledged"], timeout=30)
    assert queued_sync_jobs(stack.redis) == []
