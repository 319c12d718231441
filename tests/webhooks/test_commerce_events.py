"""POST /commerce/cart-mutation: signature first, schema next, then state."""

from __future__ import annotations

import json
import time

import pytest

from kustom_app.json_text import MAX_JSON_DEPTH
from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from tests.conftest import RecordingQueue, make_render, signed_headers
from tests.domain import cart_store
from tests.webhooks.nested_json import HUGE_NESTED_BODIES, NESTED_BODIES, nested_arrays
from webhooks.body_limits import MAX_RENDER_JSON_BYTES


def state_keys(fake_redis) -> list[bytes]:
    return sorted(fake_redis.keys("*"))


def test_accepted_render_without_order_is_in_sync(post_render, task_queue):
    response = post_render(make_render("cart-a", 1))
    assert response.status_code == 202
    body = response.get_json()
    assert body["cartId"] == "cart-a"
    assert body["pendingHash"] == body["syncHash"] and body["syncing"] is False
    assert task_queue.syncs == [], "no Kustom order yet: nothing to sync"


def test_hash_is_stable_for_equal_carts_and_changes_with_the_cart(post_render):
    a = post_render(make_render("cart-a", 1)).get_json()["pendingHash"]
    b = post_render(make_render("cart-b", 1)).get_json()["pendingHash"]
    c = post_render(make_render("cart-a", 2, quantity=3)).get_json()["pendingHash"]
    reordered = dict(reversed(list(make_render("cart-a", 3).items())))
    d = post_render(reordered).get_json()["pendingHash"]
    assert a != b, "merchant_reference1 is the cart id, so carts differ"
    assert a != c
    assert d == a, "same cart content hashes the same whatever the key order"


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"X-Commerce-Signature": "t=1,v1=deadbeef", "Content-Type": "application/json"},
    ],
)
def test_bad_signature_is_401_and_stores_nothing(client, fake_redis, headers):
    body = json.dumps(make_render()).encode()
    response = client.post("/commerce/cart-mutation", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert state_keys(fake_redis) == []


def test_stale_signature_is_refused(client, fake_redis):
    body = json.dumps(make_render()).encode()
    headers = signed_headers(body, timestamp=int(time.time()) - 301)
    response = client.post("/commerce/cart-mutation", data=body, headers=headers)
    assert response.status_code == 401
    assert state_keys(fake_redis) == []


def test_signature_over_other_bytes_is_refused(client, fake_redis):
    body = json.dumps(make_render()).encode()
    headers = signed_headers(body)
    response = client.post(
        "/commerce/cart-mutation", data=body.replace(b"549", b"548"), headers=headers
    )
    assert response.status_code == 401
    assert state_keys(fake_redis) == []


def test_without_secret_commerce_events_answer_503(settings, fake_redis, task_queue):
    from dataclasses import replace

    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, commerce_webhook_secret=None),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    body = json.dumps(make_render()).encode()
    response = app.test_client().post(
        "/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "commerce_not_configured"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("cartId"), "cartId"),
        (lambda r: r.update(version="seven"), "version"),
        (lambda r: r.update(cartTotal="lots"), "cartTotal"),
        (lambda r: r["lines"][0].update(quantity=1.5), "lines"),
        (lambda r: r.update(taxIncluded="yes"), "taxIncluded"),
        (lambda r: r.update(lines="none"), "lines"),
    ],
)
def test_schema_errors_are_400_with_field_and_store_nothing(post_render, fake_redis, mutate, field):
    render = make_render()
    mutate(render)
    response = post_render(render)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]
    assert state_keys(fake_redis) == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"", *NESTED_BODIES.values(), *HUGE_NESTED_BODIES.values()],
    ids=["broken", "array", "empty", *NESTED_BODIES, *HUGE_NESTED_BODIES],
)
def test_malformed_json_is_400(client, fake_redis, body):
    response = client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert state_keys(fake_redis) == []


def test_a_render_nested_to_the_depth_limit_is_accepted(client, task_queue):
    # The render itself is level 1: an extra field holding 31 arrays reaches the limit.
    render = json.dumps(make_render("cart-deep")).encode()
    body = render[:-1] + b', "extra": ' + nested_arrays(MAX_JSON_DEPTH - 1) + b"}"
    response = client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert response.status_code == 202
    assert response.get_json()["cartId"] == "cart-deep"


def test_a_lone_surrogate_escape_is_400_and_stores_nothing(client, fake_redis):
    # "\ud800" alone is valid JSON but not Unicode: it could be neither stored nor sent on.
    body = json.dumps(make_render()).replace('"Red T-Shirt', '"Red T-Shirt \\ud800', 1).encode()
    assert b"\\ud800" in body
    response = client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_json"
    assert "surrogate" in error["message"]
    assert state_keys(fake_redis) == []


def test_an_escaped_surrogate_pair_is_text_like_any_other(client, task_queue):
    # An emoji escaped as a pair, as some JSON writers do, is one ordinary character.
    body = json.dumps(make_render()).replace('"Red T-Shirt', '"Red T-Shirt \\ud83d\\ude00', 1)
    response = client.post(
        "/commerce/cart-mutation", data=body.encode(), headers=signed_headers(body.encode())
    )
    assert response.status_code == 202


def test_oversized_body_is_413(client, fake_redis):
    body = b'{"pad": "' + b"x" * MAX_RENDER_JSON_BYTES + b'"}'
    response = client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert state_keys(fake_redis) == []


def test_bad_cart_id_is_refused(post_render, fake_redis):
    response = post_render(make_render("cart with spaces"))
    assert response.status_code == 400
    assert state_keys(fake_redis) == []


def test_lower_version_is_ignored(post_render, fake_redis, settings):
    first = post_render(make_render("cart-v", 5, quantity=1)).get_json()
    second = post_render(make_render("cart-v", 4, quantity=3))
    assert second.status_code == 202
    assert second.get_json()["pendingHash"] == first["pendingHash"]
    state = cart_store(fake_redis, key_prefix=settings.key_prefix).load("cart-v")
    assert state.version == 5 and state.render["lines"][0]["quantity"] == 1


def test_unpayable_render_is_stored_and_shown_as_not_in_sync_once_an_order_exists(
    post_render, fake_redis, settings
):
    store = cart_store(fake_redis, key_prefix=settings.key_prefix)
    post_render(make_render("cart-u", 1))
    state = store.load("cart-u")
    store.record_order("cart-u", "order-u", state.pending_hash, {}, now=1)
    broken = make_render("cart-u", 2)
    broken["cartTotal"] = "548.00"
    body = post_render(broken).get_json()
    assert body["syncing"] is True, "the iframe stays suspended while the cart cannot be paid"
    assert store.load("cart-u").version == 2


def test_a_render_queues_its_sync_job_inside_the_state_script(settings, fake_redis):
    """When the broker is the state Redis, the job is pushed by record_render.lua itself."""
    from webhooks.app import create_app

    queue = RecordingQueue(script_queue="jobs")
    app = create_app({"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": queue})
    client = app.test_client()

    def post(render):
        body = json.dumps(render).encode()
        return client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body))

    store = cart_store(fake_redis, key_prefix=settings.key_prefix)
    post(make_render("cart-j", 1))
    state = store.load("cart-j")
    store.record_order("cart-j", "order-j", state.pending_hash, state.sync_payload or {}, now=1)
    changed = post(make_render("cart-j", 2, quantity=3)).get_json()
    coalesced = post(make_render("cart-j", 3, quantity=4)).get_json()
    assert changed["syncing"] and coalesced["syncing"]
    assert queue.syncs == [], "nothing left for the web to enqueue"
    (message,) = [json.loads(m) for m in fake_redis.lrange("jobs", 0, -1)]
    assert (message["cart"], message["hash"]) == ("cart-j", changed["pendingHash"])
    # The job carries the payload it was queued for (CONTRACT section 7); it pushes
    # whatever is pending when it runs.
    want = build_order_payload(load_render(make_render("cart-j", 2, 3)))
    assert json.loads(message["payload"]) == want
    assert store.load("cart-j").fields["sync_queued_at"]


def test_redis_outage_is_503_so_the_backend_retries(settings, task_queue):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from webhooks.app import create_app

    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    app = create_app({"SETTINGS": settings, "REDIS": dead, "TASK_QUEUE": task_queue})
    body = json.dumps(make_render()).encode()
    response = app.test_client().post(
        "/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "redis_unavailable"
    assert task_queue.syncs == []
    assert app.test_client().get("/readyz").status_code == 503
    assert app.test_client().get("/healthz").status_code == 200


def test_an_amount_beyond_any_decimal_is_a_400_not_a_500(post_render):
    # Found by schemathesis (tests/integration/test_openapi_conformance.py).
    render = make_render("cart-huge", 1)
    render["shippingOptions"][0]["taxTotal"] = "+.19402e4078156493443208556"
    response = post_render(render)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
