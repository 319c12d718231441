"""The completion routine's refusals, with Kustom and commerce faked at HTTP level."""

from __future__ import annotations

import copy
import json

import pytest
import responses

from kustom_app.completion import (
    CompletionService,
    KustomOrderUnknown,
    completion_body,
    order_mismatches,
)
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from tests.conftest import FIXTURES, make_render
from tests.domain import commerce_client, kustom_client

KUSTOM = "https://kustom.test"
COMMERCE = "https://commerce.test"
CART, ORDER = "cart-1", "order-1"


@pytest.fixture
def payload():
    return build_order_payload(load_render(make_render(CART, 1)))


@pytest.fixture
def service(store, payload):
    store.record_render(CART, 1, make_render(CART, 1), payload_hash(payload), payload)
    store.record_order(CART, ORDER, payload_hash(payload), payload)
    return CompletionService(store, kustom_client(KUSTOM), commerce_client(COMMERCE, "secret"))


def om_order(payload, **changes):
    order = {
        "order_id": ORDER,
        "status": "AUTHORIZED",
        "fraud_status": "ACCEPTED",
        "order_amount": payload["order_amount"],
        "original_order_amount": payload["order_amount"],
        "purchase_currency": payload["purchase_currency"],
        "order_lines": copy.deepcopy(payload["order_lines"]),
        "merchant_reference1": CART,
        "billing_address": {"country": "SE"},
        "shipping_address": {"country": "SE"},
    }
    order.update(changes)
    return order


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_matching_order_completes_once_with_idempotency_key(service, store, payload, http):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    first = service.complete(CART, ORDER, path="confirm", token="t1")
    second = service.complete(CART, ORDER, path="push", token="t2")
    assert (first.status, first.order_number, first.newly_completed) == ("completed", "SO-1", True)
    assert (second.status, second.order_number, second.newly_completed) == (
        "completed",
        "SO-1",
        False,
    )
    commerce_calls = [c for c in http.calls if c.request.url.startswith(COMMERCE)]
    assert len(commerce_calls) == 1
    assert commerce_calls[0].request.headers["Idempotency-Key"] == f"kustom-complete-{ORDER}"
    assert store.completed_order(CART)["orderNumber"] == "SO-1"


def test_already_completed_409_counts_as_done(service, payload, http):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", json=om_order(payload))
    http.post(
        f"{COMMERCE}/carts/{CART}/complete",
        status=409,
        json={"error": {"code": "already_completed"}, "orderNumber": "SO-7"},
    )
    assert service.complete(CART, ORDER, path="push", token="t").order_number == "SO-7"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"original_order_amount": 1, "order_amount": 1}, "amount"),
        ({"merchant_reference1": "cart-2"}, "belongs to cart"),
        ({"purchase_currency": "NOK"}, "NOK"),
    ],
)
def test_mismatch_completes_nothing(service, store, payload, http, changes, reason):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", json=om_order(payload, **changes))
    outcome = service.complete(CART, ORDER, path="push", token="t")
    assert outcome.status == "mismatch"
    assert any(reason in r for r in outcome.reasons)
    assert not [c for c in http.calls if c.request.url.startswith(COMMERCE)]
    state = store.load(CART)
    assert state.cart_state == "open" and "mismatch" in state.fields


def test_changed_lines_are_a_mismatch(payload):
    order = om_order(payload)
    order["order_lines"][0]["quantity"] += 1
    assert order_mismatches(order, payload, CART) == ["the order lines differ from the cart's"]
    assert order_mismatches(om_order(payload), payload, CART) == []


def test_not_yet_complete_order_is_incomplete(service, http):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", status=404)
    http.get(f"{KUSTOM}/checkout/v3/orders/{ORDER}", json={"status": "checkout_incomplete"})
    assert service.complete(CART, ORDER, path="confirm", token="t").status == "incomplete"


def test_unknown_order_is_refused(service, http):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", status=404)
    http.get(f"{KUSTOM}/checkout/v3/orders/{ORDER}", status=404)
    with pytest.raises(KustomOrderUnknown):
        service.complete(CART, ORDER, path="push", token="t")


def test_second_payment_for_a_completed_cart_is_flagged_not_completed(
    service, store, payload, http
):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    service.complete(CART, ORDER, path="confirm", token="t")
    outcome = service.complete(CART, "order-2", path="push", token="t")
    assert outcome.status == "mismatch" and "second payment" in outcome.reasons[0]


def test_commerce_body_is_minor_units_and_addresses(payload):
    body = completion_body(ORDER, om_order(payload))
    assert body["orderAmount"] == 54900 and body["orderTaxAmount"] == 10980
    assert body["currencyCode"] == "SEK" and body["fraudStatus"] == "ACCEPTED"
    assert set(body) == {
        "kustomOrderId",
        "orderAmount",
        "orderTaxAmount",
        "currencyCode",
        "billingAddress",
        "shippingAddress",
        "customer",
        "selectedShippingOption",
        "fraudStatus",
    }


def test_finishing_closes_a_mismatch_of_the_same_order_only(service, store, payload, http):
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}", json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    store.record_mismatch(CART, "order-old", ["an older order, paid at a stale amount"])
    service.complete(CART, ORDER, path="confirm", token="t")
    assert "order-old" in store.load(CART).fields["mismatch"], "another order stays open"
    assert store.redis.zscore(store.mismatches_key, CART) is not None

    store.clear_mismatch(CART)
    store.redis.hdel(store.cart_key(CART), "state")  # back to open, to finish again
    store.record_mismatch(CART, ORDER, ["Kustom's order management lagged"])
    store.finish_completion(CART, ORDER, "SO-1", "push")
    assert "mismatch" not in store.load(CART).fields
    assert store.redis.zscore(store.mismatches_key, CART) is None


# Typed lines and shipping Kustom added itself ------------------------------------------------


def typed_payload(**options):
    data = load_render(json.loads((FIXTURES / "renders" / "eur_typed_lines.json").read_text()))
    return build_order_payload(data, **options)


def test_an_order_with_coupon_gift_card_and_fee_lines_matches_its_cart():
    payload = typed_payload()
    order = om_order(payload, merchant_reference1="cart-de-3003")
    assert order_mismatches(order, payload, "cart-de-3003") == []


def test_an_order_whose_coupon_line_kustom_lost_does_not_match():
    payload = typed_payload()
    order = om_order(payload, merchant_reference1="cart-de-3003")
    order["order_lines"] = [line for line in order["order_lines"] if line["type"] != "discount"]
    order["order_amount"] += 1000
    assert order_mismatches(order, payload, "cart-de-3003") == [
        "the order amount 7989 differs from the cart's 6989",
        "the order lines differ from the cart's",
    ]


def test_a_coupon_flattened_to_a_physical_line_does_not_match():
    payload = typed_payload()
    order = om_order(payload, merchant_reference1="cart-de-3003")
    for line in order["order_lines"]:
        if line["type"] == "discount":
            line["type"] = "physical"
    assert order_mismatches(order, payload, "cart-de-3003") == [
        "the order lines differ from the cart's"
    ]


def kustom_shipping_line(option, reference=None):
    return {
        "type": "shipping_fee", "reference": reference or option["id"], "name": option["name"],
        "quantity": 1, "unit_price": option["price"], "tax_rate": option["tax_rate"],
        "total_amount": option["price"], "total_discount_amount": 0,
        "total_tax_amount": option["tax_amount"],
    }  # fmt: skip


@pytest.mark.parametrize("chosen", [0, 1])
@pytest.mark.parametrize("reference", [None, "kustom-own-ref"])
def test_without_the_callback_the_option_kustom_added_is_the_carts_shipping(chosen, reference):
    payload = typed_payload(kustom_adds_shipping=True)
    option = payload["shipping_options"][chosen]  # the shopper may pick another in the iframe
    order = om_order(payload, merchant_reference1="cart-de-3003")
    order["order_lines"].append(kustom_shipping_line(option, reference))
    order["order_amount"] += option["price"]
    assert order_mismatches(order, payload, "cart-de-3003") == []


def test_shipping_counted_twice_is_a_mismatch():
    payload = typed_payload()  # with the callback: the merchant's shipping line is in
    order = om_order(payload, merchant_reference1="cart-de-3003")
    order["order_lines"].append(kustom_shipping_line(payload["shipping_options"][0]))
    order["order_amount"] += payload["shipping_options"][0]["price"]
    assert order_mismatches(order, payload, "cart-de-3003") == [
        "the order amount 7479 differs from the cart's 6989",
        "the order lines differ from the cart's",
    ]


def test_an_added_shipping_line_at_a_price_not_on_offer_is_a_mismatch():
    payload = typed_payload(kustom_adds_shipping=True)
    option = dict(payload["shipping_options"][0], price=payload["shipping_options"][0]["price"] - 1)
    order = om_order(payload, merchant_reference1="cart-de-3003")
    order["order_lines"].append(kustom_shipping_line(option))
    order["order_amount"] += option["price"]
    assert "the order lines differ from the cart's" in order_mismatches(
        order, payload, "cart-de-3003"
    )
