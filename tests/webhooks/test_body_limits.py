"""Each endpoint's body limit (webhooks/body_limits.py), tried at its edge.

A body of exactly the limit is read (the endpoint answers as it does for that body's
content); one byte more is refused before it is read, 413 ``payload_too_large`` in the
contract's shape, or 400 ``approval_failed`` in Kustom's shape on the callbacks Kustom
reads; either way nothing changes. Bodies are valid JSON padded with whitespace, so only
their size differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from kustom_app.payload import MAX_ORDER_JSON_BYTES
from kustom_app.validation import NOT_PAYABLE_TEXT
from tests.conftest import make_render, signed_headers
from tests.webhooks.large_bodies import ASTRAL_TEXT, BMP_TEXT, costly_json, large_render, padded
from tests.webhooks.test_kustom_callbacks import (
    assert_valid_refusal,
    kustom_order,
    query,
    snapshot,
    update_request,
)
from webhooks.body_limits import (
    BODY_LIMITS,
    MAX_PAYMENT_EVENT_BYTES,
    MAX_RENDER_JSON_BYTES,
    SMALL_BODY_BYTES,
)
from webhooks.kustom_callbacks import UNREADABLE_TEXT

CART = "cart-edge"
URLS = {
    "termsUrl": "https://shop.test/terms",
    "checkoutUrl": "https://shop.test/checkout",
    "confirmationUrl": "https://shop.test/confirmation",
}
# Endpoints that take no body at all: what one carries is never read, so never limited.
BODILESS = {"storefront.confirm", "kustom_confirm.push", "storefront._preflight"}
OLD_LIMIT = 1024 * 1024  # the one limit every endpoint had before


@dataclass(frozen=True)
class Edge:
    endpoint: str
    url: str
    limit: int
    body: Callable[[], Any]
    at_limit: Callable[[Any], None]  # what the answer to the body's content is
    signed: bool = False
    kustom_reads: bool = False


def status_is(status: int, code: str | None = None) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        assert response.status_code == status, response.get_data(as_text=True)[:500]
        if code is not None:
            assert response.get_json()["error"]["code"] == code

    return check


def kustom_refused_for_the_cart(response: Any) -> None:
    # Read, then refused for what it says (no such cart), not as unreadable.
    assert assert_valid_refusal(response, "approval_failed")["error_text"] == NOT_PAYABLE_TEXT


def payment(kind: str) -> dict[str, Any]:
    return {f"{kind}Id": f"{kind}-1", "cartId": CART, "amount": "1.00", "currencyCode": "SEK"}


def update(callback: str) -> Edge:
    name = callback.replace("-", "_")
    return Edge(
        f"kustom_callbacks.{name}",
        f"/kustom/{callback}?{query(CART)}",
        MAX_ORDER_JSON_BYTES,
        lambda: update_request(make_render(CART, 1)),
        kustom_refused_for_the_cart,
        kustom_reads=True,
    )


EDGES = [
    Edge(
        "storefront.checkout",
        f"/carts/{CART}/kustom",
        SMALL_BODY_BYTES,
        lambda: URLS,
        status_is(404, "cart_not_found"),
    ),
    Edge(
        "commerce.cart_mutation",
        "/commerce/cart-mutation",
        MAX_RENDER_JSON_BYTES,
        lambda: make_render(CART, 1),
        status_is(202),
        signed=True,
    ),
    Edge(
        "payments.payment_capture",
        "/commerce/payment-capture",
        MAX_PAYMENT_EVENT_BYTES,
        lambda: payment("capture"),
        status_is(404, "cart_not_found"),
        signed=True,
    ),
    Edge(
        "payments.payment_refund",
        "/commerce/payment-refund",
        MAX_PAYMENT_EVENT_BYTES,
        lambda: payment("refund"),
        status_is(404, "cart_not_found"),
        signed=True,
    ),
    Edge(
        "payments.order_cancel",
        "/commerce/order-cancel",
        SMALL_BODY_BYTES,
        lambda: {"cartId": CART},
        status_is(404, "cart_not_found"),
        signed=True,
    ),
    Edge(
        "kustom_confirm.notification",
        f"/kustom/notification?{query(CART)}",
        SMALL_BODY_BYTES,
        lambda: {"order_id": "o-1", "event_type": "SOMETHING_ELSE"},
        status_is(200),
    ),
    Edge(
        "kustom_callbacks.validate_order",
        f"/kustom/validate?{query(CART)}",
        MAX_ORDER_JSON_BYTES,
        lambda: kustom_order(make_render(CART, 1)),
        kustom_refused_for_the_cart,
        kustom_reads=True,
    ),
    update("address-update"),
    update("country-change"),
    update("shipping-option-update"),
]


def send(client: Any, edge: Edge, raw: bytes) -> Any:
    headers = signed_headers(raw) if edge.signed else {"Content-Type": "application/json"}
    return client.post(edge.url, data=raw, headers=headers)


@pytest.mark.parametrize("edge", EDGES, ids=[e.endpoint for e in EDGES])
def test_a_body_of_exactly_the_limit_is_read(client, fake_redis, edge):
    response = send(client, edge, padded(json.dumps(edge.body()).encode(), edge.limit))
    edge.at_limit(response)


@pytest.mark.parametrize("edge", EDGES, ids=[e.endpoint for e in EDGES])
def test_one_byte_over_the_limit_is_refused_and_changes_nothing(
    client, fake_redis, task_queue, edge
):
    before = snapshot(fake_redis)
    response = send(client, edge, padded(json.dumps(edge.body()).encode(), edge.limit + 1))
    if edge.kustom_reads:
        assert assert_valid_refusal(response, "approval_failed")["error_text"] == UNREADABLE_TEXT
    else:
        assert response.status_code == 413
        assert response.get_json()["error"]["code"] == "payload_too_large"
    assert snapshot(fake_redis) == before
    assert task_queue.syncs == task_queue.captures == task_queue.refunds == []
    assert task_queue.fraud_decisions == []


def test_every_endpoint_that_reads_a_body_has_its_edge_tried(app):
    posts = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.methods and "POST" in rule.methods
    }
    assert posts - BODILESS == {edge.endpoint for edge in EDGES}
    assert set(BODY_LIMITS) <= posts  # the table names real endpoints
    assert {e.endpoint: e.limit for e in EDGES if e.limit != SMALL_BODY_BYTES} == BODY_LIMITS


# -- the largest carts, written the most expensive way, fit ---------------------------------


def test_the_largest_render_fits_and_is_accepted(client, fake_redis):
    # 1000 lines, every text 255 astral characters (12 bytes each as JSON), 1024-char URLs.
    raw = costly_json(large_render(CART, text=ASTRAL_TEXT, ids=ASTRAL_TEXT))
    assert OLD_LIMIT < len(raw) <= MAX_RENDER_JSON_BYTES
    response = client.post("/commerce/cart-mutation", data=raw, headers=signed_headers(raw))
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    assert fake_redis.exists(f"kustom:cart:{CART}")


def test_kustoms_echo_of_the_largest_order_fits_and_is_approved(client):
    render = large_render(CART, text=BMP_TEXT, ids=BMP_TEXT)
    raw_render = costly_json(render)
    assert (
        client.post(
            "/commerce/cart-mutation", data=raw_render, headers=signed_headers(raw_render)
        ).status_code
        == 202
    )
    # The order as Kustom holds it (names and references 255 non-ASCII characters, both
    # URLs on every line), posted back whole as the validation callback does.
    order = kustom_order(render, html_snippet="<div id='klarna-checkout-container'></div>")
    assert len(order["order_lines"]) == 1000 and "image_url" in order["order_lines"][-1]
    raw = costly_json(order)
    assert OLD_LIMIT < len(raw) <= MAX_ORDER_JSON_BYTES
    response = client.post(
        f"/kustom/validate?{query(CART)}", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
