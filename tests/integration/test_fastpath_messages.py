"""Sync jobs queued by the render's Lua script (workers/fastpath_messages.py) are real Celery
jobs.

The web queues syncKustomOrder by handing record_render.lua a ready broker message. These
tests hold that message to what Celery itself publishes, and run it on a real worker, so a
Celery or kombu upgrade that changes the message format fails here instead of in a shop.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis

from kustom_app.payload import build_order_payload, canonical_json, payload_hash
from kustom_app.render import load_render
from tests.conftest import make_render
from tests.domain import cart_store
from tests.integration.conftest import wait_until
from tests.integration.test_checkout_and_sync import (
    checkout,
    new_cart,
    order_updates,
    post_render,
    status,
)
from workers.fastpath_messages import SyncJobMessages

pytestmark = pytest.mark.integration

PARITY_QUEUE = "kustom.sync.parity-test"  # no worker consumes it


def decoded(raw: bytes | str) -> dict[str, Any]:
    """A broker message with its body parsed (kombu's base64 or, from the script, JSON text)."""
    message: dict[str, Any] = json.loads(raw)
    body = message["body"]
    if message["properties"].pop("body_encoding", None) == "base64":
        body = base64.b64decode(body)
    message["body"] = json.loads(body)
    return message


def without_ids(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
    properties = {
        k: v
        for k, v in message["properties"].items()
        if k not in ("correlation_id", "delivery_tag")
    }
    properties["delivery_info"] = {**properties["delivery_info"], "routing_key": "(queue)"}
    return {**message, "headers": headers, "properties": properties}


def test_the_scripts_message_is_the_one_celery_would_publish(celery_in_process, redis_server):
    from workers.tasks import sync_kustom_order

    client = redis.Redis.from_url(redis_server.url)
    client.delete(PARITY_QUEUE, "parity:cart:cart-parity")
    # Text that JSON escapes, twice over (the body is JSON text inside the message's JSON):
    # quotes, a backslash, a slash, non-ASCII, an emoji, a control character.
    data = make_render("cart-parity", 3, quantity=2)
    data["lines"][0]["description"] = 'Röd "T" \\ 1/2 \U0001f455 \t'
    render = load_render(data)
    payload = build_order_payload(render)
    text = canonical_json(payload)

    sync_kustom_order.apply_async(
        args=("cart-parity", payload_hash(payload), payload),
        argsrepr=sync_kustom_order.shown_as.format("cart-parity", payload_hash(payload)),
        queue=PARITY_QUEUE,
    )
    (published,) = client.lrange(PARITY_QUEUE, 0, -1)
    client.delete(PARITY_QUEUE)
    # Our message as the render script completes and queues it.
    store = cart_store(client, key_prefix="parity")
    store.record_render("cart-parity", 1, {}, "h-old", {"old": True})
    store.record_order("cart-parity", "order-parity", "h-old", {"old": True})
    job = (
        PARITY_QUEUE,
        SyncJobMessages(sync_kustom_order).build("cart-parity", payload_hash(payload)),
    )
    outcome = store.record_render("cart-parity", 3, {}, payload_hash(payload), text, job=job)
    assert outcome.enqueued
    (ours,) = client.lrange(PARITY_QUEUE, 0, -1)

    celery_message, our_message = decoded(published), decoded(ours)
    assert our_message["properties"]["delivery_info"]["routing_key"] == "kustom.sync"
    assert our_message["headers"]["id"] == our_message["properties"]["correlation_id"]
    assert our_message["headers"]["id"] != celery_message["headers"]["id"]
    assert without_ids(our_message) == without_ids(celery_message)
    # The body is the task's arguments exactly: cart id, hash, and the payload itself.
    assert our_message["body"][0] == ["cart-parity", payload_hash(payload), payload]
    client.delete(PARITY_QUEUE)


def test_the_web_queues_sync_jobs_from_the_script_when_the_broker_is_its_redis(
    http, web, worker, kustom_double
):
    """The production path: the job arrives through the Lua script and a real worker runs it."""
    from workers.enqueue import CeleryJobs

    state = kustom_double[1]
    late_app = web_app(web)
    queue = late_app.extensions["kustom.enqueue"]
    assert isinstance(queue, CeleryJobs)
    assert queue.sync_job("cart-x", "h") is not None, "script path not in use"

    cart = new_cart()
    post_render(http, web, make_render(cart, 1, quantity=1))
    order_id = checkout(http, web, cart)["kustomOrderId"]
    before = len(order_updates(state, order_id))
    answer = post_render(http, web, make_render(cart, 2, quantity=5))
    assert answer["syncing"] is True
    want = payload_hash(build_order_payload(load_render(make_render(cart, 2, quantity=5))))
    wait_until(lambda: (s := status(http, web, cart))["syncHash"] == want and not s["syncing"])
    updates = order_updates(state, order_id)[before:]
    assert len(updates) == 1
    assert (
        updates[0]["json"]["order_amount"]
        == build_order_payload(load_render(make_render(cart, 2, quantity=5)))["order_amount"]
    )


def test_a_job_queued_by_the_script_is_acknowledged_not_left_on_the_queue(
    http, web, worker, redis_server
):
    cart = new_cart()
    post_render(http, web, make_render(cart, 1, quantity=1))
    checkout(http, web, cart)
    post_render(http, web, make_render(cart, 2, quantity=2))
    wait_until(lambda: not status(http, web, cart)["syncing"])
    client = redis.Redis.from_url(redis_server.url)

    def lingering() -> list[bytes]:
        """This cart's messages still queued, or delivered and not acknowledged (kombu
        keeps those in "unacked"). Other tests' jobs may wait there for their countdown."""
        messages = client.lrange("kustom.sync", 0, -1) + client.hvals("unacked")
        return [m for m in messages if cart.encode() in m]

    wait_until(lambda: not lingering())


def web_app(web: Any) -> Any:
    """The Flask app behind the session's web server (tests/integration/conftest.LateApp)."""
    return web.app.app
