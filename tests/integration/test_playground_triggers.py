"""``kustom-playground trigger ...`` against the real service: what a backend team's CI does.

The service (web in this process, a real Celery worker, a real redis-server) runs against
the Kustom double; the triggers are the command line, talking to the double over HTTP, and
the callbacks go to the service's own merchant_urls. What is checked is what the backend
team would see: the cart completes once at the commerce backend and Kustom's order is
acknowledged; an outage is retried through; an expired order is replaced; fraud decisions,
address and shipping changes reach the commerce backend and come back into Kustom's order.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from playground.cli import main
from tests.conftest import make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


@pytest.fixture
def playground_url(kustom_double) -> str:
    url: str = kustom_double[0].url
    return url


@pytest.fixture(autouse=True)
def _no_trouble_left(kustom_double):
    state = kustom_double[1]
    state.end_trouble()
    state.clear_faults()
    yield
    state.end_trouble()
    state.clear_faults()


def trigger(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> dict[str, Any]:
    """Run ``kustom-playground trigger ... --json``; its report (the command must succeed)."""
    status = main(["trigger", *argv, "--url", url, "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    report: dict[str, Any] = json.loads(out.out)
    return report


def open_checkout(http, web, commerce, *, quantity: int = 2) -> tuple[str, str]:
    """A cart the commerce backend and the service know, with its Kustom order."""
    cart = f"cart-{uuid.uuid4().hex[:12]}"
    render = make_render(cart, 1, quantity=quantity)
    commerce.put_cart(render)
    body = json.dumps(render).encode()
    posted = http.post(f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert posted.status_code == 202, posted.text
    answer = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS)
    assert answer.status_code == 200, answer.text
    order_id: str = answer.json()["kustomOrderId"]
    return cart, order_id


def status(http, web, cart: str) -> dict[str, Any]:
    answer: dict[str, Any] = http.get(f"{web.url}/carts/{cart}/kustom/status").json()
    return answer


def test_pay_then_push_completes_the_cart_once_through_the_worker(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart, order_id = open_checkout(http, web, commerce)
    paid = trigger(capsys, playground_url, "pay", order_id)
    assert paid["completed"] is True
    validation, push = paid["callbacks"]
    assert (validation["kind"], validation["status"]) == ("validation", 200), validation
    assert (push["kind"], push["status"]) == ("push", 200), push
    wait_until(lambda: kustom.stored_order(order_id)["acknowledged"], timeout=30)
    orders = commerce.orders_for(cart)
    assert len(orders) == 1
    assert orders[0]["request"]["kustomOrderId"] == order_id

    again = trigger(capsys, playground_url, "push", order_id)  # Kustom pushes until acked
    assert again["callbacks"][0]["status"] == 200
    wait_until(lambda: status(http, web, cart)["cartState"] == "completed")
    assert len(commerce.orders_for(cart)) == 1, "a repeated push makes no second order"


def test_a_validation_the_service_refuses_stops_the_payment(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart, order_id = open_checkout(http, web, commerce)
    # The commerce backend's cart changed behind the order's back: the service must refuse.
    changed = make_render(cart, 2, quantity=5)
    commerce.put_cart(changed)
    paid = trigger(capsys, playground_url, "pay", order_id)
    assert paid["completed"] is False, paid
    assert paid["callbacks"][0]["kind"] == "validation"
    assert paid["callbacks"][0]["status"] in (303, 400)
    assert kustom.stored_order(order_id)["status"] == "checkout_incomplete"
    assert commerce.orders_for(cart) == []


def test_fail_count_2_makes_the_next_two_updates_503_and_the_sync_lands(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart, order_id = open_checkout(http, web, commerce)
    # Fenced to this order's updates: other tests' sync jobs still running in the shared
    # worker cannot use them up (a full run saw [503, 200]).
    outage = trigger(
        capsys, playground_url, "fail", "--status", "503", "--count", "2", "--operation",
        "update_order", "--order", order_id,
    )  # fmt: skip
    assert outage["outage"]["remaining"] == 2
    body = json.dumps(make_render(cart, 2, quantity=5)).encode()
    posted = http.post(f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body))
    assert posted.json()["syncing"] is True
    wait_until(lambda: status(http, web, cart)["syncHash"] == posted.json()["pendingHash"])
    attempts = [c["status"] for c in kustom.calls("update_order", order_id=order_id)]
    assert attempts == [503, 503, 200]
    assert kustom.stored_order(order_id)["checkout"]["order_amount"] == 5 * 25000 + 4900


def test_fail_for_every_call_makes_checkout_answer_unavailable_then_recover(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart = f"cart-{uuid.uuid4().hex[:12]}"
    render = make_render(cart, 1)
    commerce.put_cart(render)
    body = json.dumps(render).encode()
    http.post(f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body))
    trigger(capsys, playground_url, "fail", "--status", "503", "--for", "600")
    down = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS)
    assert 500 <= down.status_code < 600 and down.status_code != 500, down.text
    trigger(capsys, playground_url, "recover")
    up = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS)
    assert up.status_code == 200, up.text


def test_expire_makes_checkout_create_a_new_order(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart, first = open_checkout(http, web, commerce)
    assert trigger(capsys, playground_url, "expire", first)["order"]["expired"] is True
    second = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).json()["kustomOrderId"]
    assert second != first
    assert kustom.stored_order(second)["status"] == "checkout_incomplete"


def test_fraud_decision_reaches_the_commerce_backend(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    cart, order_id = open_checkout(http, web, commerce)
    trigger(capsys, playground_url, "pay", order_id, "--pending")
    wait_until(lambda: commerce.orders_for(cart), timeout=30)
    assert commerce.orders_for(cart)[0]["request"]["fraudStatus"] == "PENDING"
    decided = trigger(capsys, playground_url, "fraud", order_id, "--decision", "ACCEPTED")
    assert decided["callbacks"][0]["status"] == 200
    decision = commerce.wait_for(
        lambda: [d for d in commerce.fraud_decisions if d["cartId"] == cart], timeout=30
    )
    assert decision == [
        {"cartId": cart, "kustomOrderId": order_id, "decision": "FRAUD_RISK_ACCEPTED"}
    ]


def test_address_update_goes_through_the_service_to_the_commerce_backend(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    _cart, order_id = open_checkout(http, web, commerce)
    report = trigger(
        capsys, playground_url, "address-update", order_id, "--address", "postal_code=41104"
    )
    assert report["callbacks"][0]["status"] == 200, report
    assert report["applied"] is True
    # The service passes Kustom's address object on as it is.
    forwarded = [
        c["json"]["shippingAddress"]
        for c in commerce.calls_for("address")
        if ((c["json"] or {}).get("shippingAddress") or {}).get("postal_code") == "41104"
    ]
    assert len(forwarded) == 1
    held = kustom.stored_order(order_id)["checkout"]
    assert held["shipping_address"]["postal_code"] == "41104"


def test_shipping_option_update_reprices_kustoms_order(
    http, web, worker, kustom, commerce, playground_url, capsys
):
    _cart, order_id = open_checkout(http, web, commerce)
    before = kustom.stored_order(order_id)["checkout"]["order_amount"]
    report = trigger(
        capsys, playground_url, "shipping-option-update", order_id, "--option", "express"
    )
    assert report["callbacks"][0]["status"] == 200, report
    assert report["applied"] is True
    held = kustom.stored_order(order_id)["checkout"]
    express_minus_postnord = int((Decimal("99.00") - Decimal("49.00")) * 100)
    assert held["order_amount"] == before + express_minus_postnord
    assert held["selected_shipping_option"]["id"] == "express"
