"""Scaling out: two Celery worker processes on one Redis keep the invariants.

Everything here is this module's own (not the session fixtures of conftest.py): a
redis-server, the Kustom and commerce doubles, the web app served by gunicorn exactly as
the Procfile's web line runs it (its own processes, so this process's Celery app is left
alone), and two workers with concurrency 2 each: four task processes race for every
cart's sync and completion jobs.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn
from harness.redis_server import RedisServer, free_port
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from kustom_app.signing import callback_token
from playground.commerce import create_app as create_commerce_double
from playground.kustom import create_app as create_kustom_double
from playground.server import ServerThread
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET, make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


@dataclass
class Node:
    url: str
    kustom: Any  # KustomDoubleState
    commerce: Any  # CommerceDoubleState
    workers: list[CeleryWorker]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    kustom_app = create_kustom_double(latency_seconds=0.02)  # pushes overlap the renders
    commerce_app = create_commerce_double(secret=COMMERCE_SECRET)
    port = free_port()
    with (
        RedisServer(appendonly=False) as redis_server,
        ServerThread(kustom_app, name="scale-kustom") as kustom,
        ServerThread(commerce_app, name="scale-commerce") as commerce,
    ):
        env = {
            "REDIS_URL": redis_server.url,
            "KUSTOM_API_URL": kustom.url,
            "KUSTOM_USERNAME": "playground",
            "KUSTOM_PASSWORD": "playground",
            "COMMERCE_API_URL": commerce.url,
            "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
            "CALLBACK_SECRET": CALLBACK_SECRET,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "COMPLETION_LEASE_SECONDS": "3",
            "CONFIRM_WAIT_SECONDS": "1",
            "TASK_RETRY_BASE_SECONDS": "0.2",
            "TASK_RETRY_MAX_SECONDS": "2",
            "CELERY_VISIBILITY_TIMEOUT": "60",  # above a busy sync's 20.5 s + the 25 s run
            "SYNC_LEASE_SECONDS": "20",
            "PAYMENT_LEASE_SECONDS": "20",
            "TASK_TIME_LIMIT_SECONDS": "25",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
            "RECONCILE_INTERVAL_SECONDS": "3600",
        }
        log = Path(tmp_path_factory.mktemp("scale-out")) / "gunicorn.log"
        web = Gunicorn(env, app_spec="webhooks.app:create_app()", port=port, log_path=log)
        workers = [CeleryWorker(env, name=f"scale{i}", concurrency=2) for i in (1, 2)]
        try:
            web.start()
            for worker in workers:
                worker.start(timeout=60)
            yield Node(
                web.url,
                kustom_app.extensions["kustom_double"],
                commerce_app.extensions["commerce_double"],
                workers,
            )
        finally:
            for worker in workers:
                worker.stop()
            web.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post_render(http: requests.Session, node: Node, render: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(render).encode()
    response = http.post(
        f"{node.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def checkout(http: requests.Session, node: Node, cart_id: str) -> str:
    response = http.post(f"{node.url}/carts/{cart_id}/kustom", json=URLS)
    assert response.status_code == 200, response.text
    order_id: str = response.json()["kustomOrderId"]
    return order_id


def status(http: requests.Session, node: Node, cart_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = http.get(f"{node.url}/carts/{cart_id}/kustom/status").json()
    return answer


def test_out_of_order_bursts_for_many_carts_end_on_the_highest_version(
    node: Node, http: requests.Session
) -> None:
    carts = [f"scale-{uuid.uuid4().hex[:10]}" for _ in range(12)]
    orders = {}
    for cart_id in carts:
        post_render(http, node, make_render(cart_id, 1, quantity=1))
        orders[cart_id] = checkout(http, node, cart_id)
    top = 16
    # quantity = version: every version is another payload, and amounts rise with versions.
    renders = [make_render(c, v, quantity=v) for c in carts for v in range(2, top + 1)]
    random.shuffle(renders)
    sessions = [requests.Session() for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda item: post_render(sessions[item[0] % 16], node, item[1]),
                enumerate(renders),
            )
        )

    final = {c: build_order_payload(load_render(make_render(c, top, quantity=top))) for c in carts}
    for cart_id in carts:
        want = payload_hash(final[cart_id])
        wait_until(
            lambda c=cart_id, w=want: (
                (s := status(http, node, c))["syncHash"] == w and not s["syncing"]
            ),
            timeout=30,
        )
    for cart_id in carts:
        stored = node.kustom.stored_order(orders[cart_id])["checkout"]
        assert stored["order_amount"] == final[cart_id]["order_amount"]
        assert stored["order_lines"] == final[cart_id]["order_lines"]
        pushes = [
            c
            for c in node.kustom.calls("update_order", order_id=orders[cart_id])
            if c["status"] == 200
        ]
        amounts = [c["json"]["order_amount"] for c in pushes]
        # In the order Kustom applied them: never backwards, never the same payload twice.
        assert amounts == sorted(set(amounts)), f"{cart_id}: pushes out of order: {amounts}"
        assert amounts[-1] == final[cart_id]["order_amount"]
    for worker in node.workers:
        assert "syncKustomOrder" in worker.log_path.read_text(), f"{worker.name} did no sync"


def test_confirm_and_push_race_across_two_workers_completes_each_cart_once(
    node: Node, http: requests.Session
) -> None:
    carts = []
    for index in range(20):
        cart_id = f"scale-race-{uuid.uuid4().hex[:10]}"
        render = make_render(cart_id, 1, quantity=1 + index % 4)
        node.commerce.put_cart(render)
        post_render(http, node, render)
        order_id = checkout(http, node, cart_id)
        node.kustom.complete_order(order_id)
        carts.append((cart_id, order_id))
    calls = [(kind, c, o) for c, o in carts for kind in ["confirm"] * 3 + ["push"] * 3]
    random.shuffle(calls)
    sessions = [requests.Session() for _ in range(16)]

    def fire(item: tuple[int, tuple[str, str, str]]) -> tuple[str, int]:
        index, (kind, cart_id, order_id) = item
        session = sessions[index % 16]
        if kind == "confirm":
            response = session.post(f"{node.url}/carts/{cart_id}/kustom/confirm")
        else:
            token = callback_token(CALLBACK_SECRET, cart_id)
            response = session.post(
                f"{node.url}/kustom/push",
                params={"order_id": order_id, "cart": cart_id, "token": token},
            )
        return kind, response.status_code

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fire, enumerate(calls)))
    assert {code for kind, code in results if kind == "push"} == {200}
    assert {code for kind, code in results if kind == "confirm"} <= {200, 202}

    for cart_id, order_id in carts:
        final = wait_until(
            lambda c=cart_id: (
                (r := http.post(f"{node.url}/carts/{c}/kustom/confirm")).status_code == 200
                and r.json()
            ),
            timeout=20,
        )
        shop_orders = node.commerce.orders_for(cart_id)
        assert len(shop_orders) == 1, f"{cart_id}: {len(shop_orders)} shop orders"
        assert shop_orders[0]["idempotencyKey"] == f"kustom-complete-{order_id}"
        assert final["orderNumber"] == shop_orders[0]["orderNumber"]
    wait_until(
        lambda: all(node.kustom.stored_order(o)["acknowledged"] for _, o in carts), timeout=20
    )
    for cart_id, order_id in carts:
        references = node.kustom.stored_order(order_id)["order_management"]
        assert (
            references["merchant_reference2"] == node.commerce.orders_for(cart_id)[0]["orderNumber"]
        )
