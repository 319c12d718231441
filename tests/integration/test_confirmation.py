"""Issue 3 end to end: confirm and push race; exactly one completion, always acknowledged."""

from __future__ import annotations

import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from kustom_app.signing import callback_token
from tests.conftest import CALLBACK_SECRET, make_render, signed_headers
from tests.domain import cart_store
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

    return cart_store(redis.Redis.from_url(redis_server.url))


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


def complete_calls(commerce, order_id: str) -> list[dict]:
    """The `POST /carts/<id>/complete` requests the commerce double answered for an order."""
    return [
        c
        for c in commerce.calls_for("complete")
        if (c["json"] or {}).get("kustomOrderId") == order_id
    ]


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
        # The double itself refuses a second order per cart, so count requests too: only
        # the claim keeps the other nine callers from calling the commerce backend at all.
        calls = complete_calls(commerce, order)
        assert len(calls) == 1, f"{cart}: {len(calls)} completion requests"
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


@pytest.fixture(scope="module")
def own_stack(service_env):
    """A private Redis, web app and worker (the capture tests' stack), so a worker can be
    SIGKILLed without touching the session's; completion leases of 3 s."""
    from tests.integration.test_ordermanagement import PaymentsStack

    stack = PaymentsStack({**service_env, "COMPLETION_LEASE_SECONDS": "3"}, "confirm-kill")
    try:
        stack.start_worker()
        yield stack
    finally:
        stack.close()


def kill_worker_inside_the_completion(stack, commerce, cart: str, order: str) -> int:
    """Push; once the worker holds the claim and is inside its commerce call (the double
    holds the request), SIGKILL it. Returns when the claim's lease ends (epoch ms)."""
    (worker,) = stack.workers
    commerce.set_delay("complete", 1.5)
    try:
        assert push(stack.http, stack.web, cart, order).status_code == 200
        cart_key = f"kustom:cart:{cart}"
        wait_until(lambda: stack.redis.hget(cart_key, "state") == b"completing", timeout=10)
        time.sleep(0.3)  # the worker is waiting for the commerce backend's answer
        worker.kill()
        stack.workers.remove(worker)
    finally:
        commerce.set_delay("complete", 0.0)
    assert stack.redis.hget(cart_key, "completion_path") == b"push"
    return int(stack.redis.hget(cart_key, "completion_lease_until"))


def test_worker_killed_holding_the_claim_before_commerce_has_the_order_push_takes_over(
    own_stack, kustom, commerce
):
    stack = own_stack
    cart, order = stack.open_cart(kustom)
    kustom.complete_order(order)
    # The held request is then refused without acting, as if it never arrived: the worker
    # died before the commerce backend had the order.
    commerce.fail_next("complete", [503], only_for=cart)
    lease_until = kill_worker_inside_the_completion(stack, commerce, cart, order)
    commerce.wait_for(lambda: complete_calls(commerce, order), timeout=10)
    assert commerce.orders_for(cart) == []
    assert stack.redis.hget(f"kustom:cart:{cart}", "state") == b"completing", "orphaned"
    # Its message is lost with it (else the broker would redeliver it after the visibility
    # timeout, and the same task id re-claims its own claim): only a later push remains.
    stack.redis.delete("unacked", "unacked_index")

    stack.start_worker("-after-kill")
    assert push(stack.http, stack.web, cart, order).status_code == 200  # Kustom's next push
    wait_until(lambda: acknowledged(kustom, order), timeout=30)

    orders = commerce.orders_for(cart)
    assert len(orders) == 1 and orders[0]["idempotencyKey"] == f"kustom-complete-{order}"
    calls = complete_calls(commerce, order)
    assert calls[0]["status"] == 503
    created = [c for c in calls if c["status"] in (200, 201)]
    assert created and min(c["at"] for c in created) * 1000 >= lease_until, "after the lease"
    assert kustom.stored_order(order)["acknowledge_count"] == 1
    final = confirm(stack.http, stack.web, cart).json()
    assert final["orderNumber"] == orders[0]["orderNumber"]


def test_worker_killed_while_commerce_creates_the_order_confirm_takes_over(
    own_stack, kustom, commerce
):
    stack = own_stack
    cart, order = stack.open_cart(kustom)
    kustom.complete_order(order)
    # The held request goes on to create the order; its answer never reaches the worker.
    lease_until = kill_worker_inside_the_completion(stack, commerce, cart, order)
    assert confirm(stack.http, stack.web, cart).status_code == 202, "the live claim is respected"

    done = wait_until(
        lambda: (r := confirm(stack.http, stack.web, cart)).status_code == 200 and r.json(),
        timeout=15,
    )
    orders = commerce.orders_for(cart)
    assert len(orders) == 1 and done["orderNumber"] == orders[0]["orderNumber"]
    calls = complete_calls(commerce, order)
    assert len(calls) == 2 and calls[1]["at"] * 1000 >= lease_until
    assert {c["headers"]["Idempotency-Key"] for c in calls} == {f"kustom-complete-{order}"}
    assert not acknowledged(kustom, order), "no worker yet to acknowledge"

    stack.start_worker("-after-kill")
    wait_until(lambda: acknowledged(kustom, order), timeout=30)
    assert len(commerce.orders_for(cart)) == 1
    assert kustom.stored_order(order)["acknowledge_count"] == 1


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
    commerce.fail_next("complete", [503] * 6, only_for=cart)
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


def test_fraud_decision_is_recorded_at_once_and_forwarded_after_a_commerce_outage(
    http, web, worker, kustom, commerce, store
):
    cart, order = open_paid_cart(http, web, commerce, kustom, fraud_status="PENDING")
    assert confirm(http, web, cart).status_code == 200
    commerce.fail_next("fraud_decision", [503, 503, 503], only_for=cart)
    response = http.post(
        f"{web.url}/kustom/notification",
        params={"order_id": order, "cart": cart, "token": callback_token(CALLBACK_SECRET, cart)},
        json={"order_id": order, "event_type": "FRAUD_RISK_STOPPED"},
    )
    assert response.status_code == 200
    assert store.load(cart).fields["fraud_decision"] == "FRAUD_RISK_STOPPED", "at once"

    decision = commerce.wait_for(
        lambda: [d for d in commerce.fraud_decisions if d["cartId"] == cart], timeout=20
    )
    assert decision == [{"cartId": cart, "kustomOrderId": order, "decision": "FRAUD_RISK_STOPPED"}]
    failed = [c for c in commerce.calls_for("fraud_decision") if c["status"] == 503]
    assert len(failed) >= 3
    wait_until(lambda: store.load(cart).fields.get("fraud_decision_forwarded"))


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
    unknown = str(uuid.uuid4())
    assert push(http, web, cart, unknown).status_code == 200  # unknown order: task refuses
    wait_until(
        lambda: any(
            json.loads(e).get("order") == unknown
            for e in store.redis.lrange("kustom:deadletter", 0, 100)
        )
    )
    assert commerce.orders_for(cart) == []
    assert store.load(cart).cart_state == "open"
    assert not acknowledged(kustom, order)


def test_mismatch_bookkeeping_runs_on_a_real_redis(store):
    """finish_completion.lua's cjson and clear_mismatch's WATCH transaction, on redis-server."""
    from kustom_app.payload import build_order_payload, payload_hash
    from kustom_app.render import load_render

    carts = [f"cart-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    for cart in carts:
        payload = build_order_payload(load_render(make_render(cart, 1)))
        store.record_render(cart, 1, make_render(cart, 1), payload_hash(payload), payload)
        store.record_order(cart, f"order-{cart}", payload_hash(payload), payload)
    settled, other, dismissed = carts
    store.record_mismatch(settled, f"order-{settled}", ["lagging"])
    store.record_mismatch(other, "order-older", ["a stale order"])
    store.record_mismatch(dismissed, f"order-{dismissed}", ["another currency"])

    store.finish_completion(settled, f"order-{settled}", "SO-1", "push")
    store.finish_completion(other, f"order-{other}", "SO-2", "push")
    assert store.clear_mismatch(dismissed, dismissed={"reason": "cancelled"}) is not None

    still_open = {cart for cart, _ in store.open_mismatches()}
    assert other in still_open and settled not in still_open and dismissed not in still_open
    assert "mismatch" not in store.load(settled).fields
    assert "cancelled" in store.load(dismissed).fields["mismatch_dismissed"]
    assert store.redis.zscore(store.open_orders_key, dismissed) is None
    store.clear_mismatch(other)
