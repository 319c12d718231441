"""Bad bodies on the real stack (real redis-server, the web over HTTP, a real worker): every
JSON endpoint answers a deeply nested body, and the notification an odd ``event_type``,
with a 400 that changes nothing in Redis and leaves no task behind."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis

from kustom_app.signing import callback_token
from tests.conftest import CALLBACK_SECRET, make_render, signed_headers
from tests.webhooks.nested_json import HUGE_NESTED_BODIES, NESTED_BODIES

pytestmark = pytest.mark.integration

KUSTOM_READ = ("validate", "address-update", "country-change", "shipping-option-update")


def snapshot(client: redis.Redis, cart: str) -> dict[bytes, Any]:
    """Everything Redis holds about ``cart``: its own keys whole, and its entries in the
    shared ones (indexes, the broker's queues). Other tests' carts may change meanwhile."""
    mine = cart.encode()
    state: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            value: Any = client.get(key)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            continue
        if mine in key:
            state[key] = value
        elif mine in repr(value).encode():
            state[key] = [item for item in _items(value) if mine in repr(item).encode()]
    return state


def _items(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return sorted(value.items())
    if isinstance(value, list | set):
        return sorted(value, key=repr)
    return [value]


@pytest.fixture
def store(redis_server, web, worker):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def cart(http, web) -> str:
    """A cart the service knows, so refusals are not just 'unknown cart'."""
    cart_id = f"cart-{uuid.uuid4().hex[:12]}"
    body = json.dumps(make_render(cart_id, 1)).encode()
    answer = http.post(f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert answer.status_code == 202
    return cart_id


def endpoints(cart: str) -> list[tuple[str, dict[str, str], bool]]:
    """(path with query, headers for the body, whether Kustom reads the answer)."""
    query = f"cart={cart}&token={callback_token(CALLBACK_SECRET, cart)}"
    return [
        (f"/carts/{cart}/kustom", {}, False),
        ("/commerce/cart-mutation", {"signed": "1"}, False),
        ("/commerce/payment-capture", {"signed": "1"}, False),
        ("/commerce/payment-refund", {"signed": "1"}, False),
        ("/commerce/order-cancel", {"signed": "1"}, False),
        (f"/kustom/notification?order_id=o-1&{query}", {}, False),
        *[(f"/kustom/{name}?{query}", {}, True) for name in KUSTOM_READ],
    ]


def post(http, web, path: str, signed: bool, body: bytes):
    headers = signed_headers(body) if signed else {"Content-Type": "application/json"}
    return http.post(f"{web.url}{path}", data=body, headers=headers, timeout=30)


@pytest.mark.parametrize("name", sorted(NESTED_BODIES) + sorted(HUGE_NESTED_BODIES))
def test_nested_json_is_a_400_on_every_json_endpoint_and_changes_nothing(
    http, web, store, cart, name
):
    body = {**NESTED_BODIES, **HUGE_NESTED_BODIES}[name]
    before = snapshot(store, cart)
    assert before, "the cart's render is in Redis"
    for path, headers, kustom_reads in endpoints(cart):
        answer = post(http, web, path, bool(headers), body)
        if answer.status_code == 413:  # a small endpoint refuses a huge body unread
            assert name in HUGE_NESTED_BODIES and not kustom_reads, path
            continue
        assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
        refusal = answer.json()
        if kustom_reads:
            assert refusal["error_type"] == "approval_failed", path
        else:
            assert refusal["error"]["code"] == "invalid_json", path
    assert snapshot(store, cart) == before


@pytest.mark.parametrize(
    ("event_type", "status"),
    [(["FRAUD_RISK_ACCEPTED"], 400), ({"a": 1}, 400), (7, 400), (None, 400),
     ("FRAUD_RISK_SOMETHING_NEW", 200)],
)  # fmt: skip
def test_odd_notifications_change_nothing(http, web, store, cart, event_type, status):
    before = snapshot(store, cart)
    query = f"cart={cart}&token={callback_token(CALLBACK_SECRET, cart)}"
    body = json.dumps({"order_id": "o-1", "event_type": event_type}).encode()
    answer = post(http, web, f"/kustom/notification?order_id=o-1&{query}", False, body)
    assert answer.status_code == status, answer.text
    assert snapshot(store, cart) == before


def test_a_genuine_render_does_change_the_snapshot(http, web, store, cart):
    """The control for the two tests above: the snapshot sees what a request records."""
    before = snapshot(store, cart)
    body = json.dumps(make_render(cart, 2, quantity=3)).encode()
    answer = post(http, web, "/commerce/cart-mutation", True, body)
    assert answer.status_code == 202, answer.text
    assert snapshot(store, cart) != before
