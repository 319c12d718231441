"""Issue 3 end to end: confirm and push race; exactly one completion, always acknowledged."""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from kustom_app.signing import callback_token
from kustom_app.state import CartStore, now_ms
from tests.conftest import CALLBACK_SECRET, make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


@pytest.fixture
def kustom(kustom_double):
    return kustom_double[1]


@pytest.fixture
def commerce(commerce_double):
    return commerce_double[1]


@pytest.fixture
def store(redis_server):
    import redis

    return CartStore(redis.Redis.from_url(redis_server.url))


def open_paid_cart(http, web, commerce, kustom, *, fraud_status="ACCEPTED") -> tuple[str, str]:
    """A cart with a Kustom order the shopper has paid for (no push sent)."""
    cart = f"cart-{uuid.uuid4().hex[:12]}"
    render = make_render(cart, 1, quantity=random.randint(1, 4))
    commerce.put_cart(render)
    body = json.dumps(render).encode()
    assert (
        http.post(
            f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
        ).status_code
        == 202
    )
    order_id = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).json()["kustomOrderId"]
    kustom.complete_order(order_id, fraud_status=fraud_status)
    return cart, order_id


def confirm(http, web, cart):
    return http.post(f"{web.url}/carts/{cart}/kustom/confirm")


def push(http, web, cart, order_id, token=None):
    token = token or callback_token(CALLBACK_SECRET, cart)
    return http.post(
        f"{web.url}/kustom/push", params={"order_id": order_id, "cart": cart, "token": token}
    )


def acknowledged(kustom, order_id) -> bool:
    return kustom.stored_order(order_id)["acknowledged"]


def test_fifty_carts_confirm_and_push_race_to_exactly_one_completion_each(
    http, web, worker, kustom, commerce
):
    carts = [open_paid_cart(http, web, commerce, kustom) for _ in range(50)]
    calls = [
        (kind, cart, order) for cart, order in carts for kind in ["confirm"] * 5 + ["push"] * 5
    ]
    random.shuffle(calls)

    def fire(call):
        kind, cart, order = call
        response = confirm(http, web, cart) if kind == "confirm" else push(http, web, cart, order)
        return kind, cart, response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fire, calls))
    assert {status for kind, _, status, _ in results if kind == "push"} == {200}
    assert {status for kind, _, status, _ in results if kind == "confirm"} <= {200, 202}

    # every confirm eventually answers 200 with the one order number
    for cart, order in carts:
        final = wait_until(
            lambda cart=cart: (r := confirm(http, web, cart)).status_code == 200 and r.json()
        )
        assert final["status"] == "checkout_complete" and final["cartState"] == "completed"
        orders = commerce.orders_for(cart)
        assert len(orders) == 1, f"{cart}: {len(orders)} shop orders"
        assert final["orderNumber"] == orders[0]["orderNumber"]
        assert orders[0]["idempotencyKey"] == f"kustom-complete-{order}"
        for _, c, status, body in results:
            if c == cart and status == 200 and "orderNumber" in body:
                assert body["orderNumber"] == orders[0]["orderNumber"]
    assert len(commerce.orders_for()) >= 50
    wait_until(lambda: all(acknowledged(kustom, order) for _, order in carts), timeout=30)
    for cart, order in carts:
        refs = kustom.stored_order(order)["order_management"]
        assert refs["merchant_reference2"] == commerce.orders_for(cart)[0]["orderNumber"]


def test_dead_claim_holder_is_taken_over_after_its_lease(
    http, web, worker, kustom, commerce, store
):
    cart, order = open_paid_cart(http, web, commerce, kustom)
    # A completer claimed and died before calling the commerce backend.
    assert (
        store.claim_completion(cart, "dead-holder", order, "push", lease_ms=6000).action
        == "claimed"
    )
    first = confirm(http, web, cart)
    assert first.status_code == 202, "the live claim is respected"
    assert commerce.orders_for(cart) == []
    done = wait_until(
        lambda: (r := confirm(http, web, cart)).status_code == 200 and r.json(), timeout=15
    )
    assert len(commerce.orders_for(cart)) == 1
    assert done["orderNumber"] == commerce.orders_for(cart)[0]["orderNumber"]
    # a push arriving afterwards changes nothing
    push(http, web, cart, order)
    wait_until(lambda: acknowledged(kustom, order))
    assert len(commerce.orders_for(cart)) == 1


def test_stalled_holder_that_finishes_late_creates_no_second_order(
    http, web, worker, kustom, commerce, store
):
    """The lease expired while the first completer was still calling commerce."""
    cart, order = open_paid_cart(http, web, commerce, kustom)
    commerce.set_delay("complete", 4.0)  # longer than the 3 s lease
    try:
        push(http, web, cart, order)
        wait_until(lambda: store.load(cart).cart_state == "completing", timeout=10)
        commerce.set_delay("complete", 0.0)
        result = wait_until(
            lambda: (r := confirm(http, web, cart)).status_code == 200 and r.json(), timeout=20
        )
    finally:
        commerce.set_delay("complete", 0.0)
    wait_until(
        lambda: len(commerce.calls_for("complete")) >= 2 and acknowledged(kustom, order), timeout=20
    )
    assert len(commerce.orders_for(cart)) == 1
    assert result["orderNumber"] == commerce.orders_for(cart)[0]["orderNumber"]


def test_commerce_down_then_up_completes_and_acknowledges_after(
    http, web, worker, kustom, commerce, store
):
    cart, order = open_paid_cart(http, web, commerce, kustom)
    # Six failures with backoff from 0.2 s: the outage outlasts the confirm call's 1 s wait.
    commerce.fail_next("complete", [503] * 6)
    assert push(http, web, cart, order).status_code == 200
    commerce.wait_for(  # the push task has tried once and holds the claim
        lambda: [
            c
            for c in commerce.calls_for("complete")
            if (c["json"] or {}).get("kustomOrderId") == order
        ]
    )
    assert confirm(http, web, cart).status_code == 202, "in progress while commerce is down"
    wait_until(lambda: acknowledged(kustom, order), timeout=30)
    orders = commerce.orders_for(cart)
    assert len(orders) == 1
    created_at = max(c["at"] for c in commerce.calls_for("complete") if c["status"] in (200, 201))
    acks = [c for c in kustom.calls("acknowledge", order_id=order) if c["status"] == 204]
    assert acks and min(c["at"] for c in acks) >= created_at, (
        "acknowledged only after the shop has the order"
    )
    assert confirm(http, web, cart).json()["orderNumber"] == orders[0]["orderNumber"]


def test_pending_fraud_status_is_passed_on_and_decision_forwarded(
    http, web, worker, kustom, commerce
):
    cart, order = open_paid_cart(http, web, commerce, kustom, fraud_status="PENDING")
    assert confirm(http, web, cart).status_code == 200
    assert commerce.orders_for(cart)[0]["request"]["fraudStatus"] == "PENDING"
    token = callback_token(CALLBACK_SECRET, cart)
    response = http.post(
        f"{web.url}/kustom/notification",
        params={"order_id": order, "cart": cart, "token": token},
        json={"order_id": order, "event_type": "FRAUD_RISK_ACCEPTED"},
    )
    assert response.status_code == 200
    decision = commerce.wait_for(
        lambda: [d for d in commerce.fraud_decisions if d["cartId"] == cart]
    )
    assert (
        decision[0]["decision"] == "FRAUD_RISK_ACCEPTED" and decision[0]["kustomOrderId"] == order
    )


def test_checkout_of_a_completed_cart_is_409(http, web, worker, kustom, commerce):
    cart, _ = open_paid_cart(http, web, commerce, kustom)
    assert confirm(http, web, cart).status_code == 200
    response = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "cart_completed"
    assert http.get(f"{web.url}/carts/{cart}/kustom/status").json()["cartState"] == "completed"


def test_push_with_tampered_token_or_unknown_order_completes_nothing(
    http, web, worker, kustom, commerce, store
):
    cart, order = open_paid_cart(http, web, commerce, kustom)
    bad = push(http, web, cart, order, token="0" * 64)
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"
    other = f"cart-{uuid.uuid4().hex[:8]}"
    assert (
        push(http, web, cart, order, token=callback_token(CALLBACK_SECRET, other)).status_code
        == 401
    )
    missing = http.post(
        f"{web.url}/kustom/push",
        params={"cart": cart, "token": callback_token(CALLBACK_SECRET, cart)},
    )
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_order_id"
    assert (
        push(http, web, cart, str(uuid.uuid4())).status_code == 200
    )  # unknown order: task refuses
    before = now_ms()
    wait_until(
        lambda: any(
            json.loads(e)["order"] != order and json.loads(e)["at"] * 1000 >= before - 1000
            for e in store.redis.lrange("kustom:deadletter", 0, 20)
        )
    )
    assert commerce.orders_for(cart) == []
    assert store.load(cart).cart_state == "open"
    assert not acknowledged(kustom, order)
