"""Issue 13: a cart of Kustom's 1,000 lines with long names and URLs checks out, and Kustom's
validation callback for that order, carrying the whole order, is approved.

Real redis-server and Celery worker, the Kustom double and the commerce double over HTTP.
Before the per-endpoint body limits, both the render (about 2.6 MB) and the validation
body were over the one 1 MiB limit.
"""

from __future__ import annotations

import json
import uuid

import pytest

from kustom_app.payload import MAX_NAME_LENGTH, MAX_ORDER_LINES, MAX_URL_LENGTH, utf16_length
from tests.conftest import signed_headers
from tests.webhooks.large_bodies import ASTRAL_TEXT, large_render

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "https://shop.test/terms",
    "checkoutUrl": "https://shop.test/checkout",
    "confirmationUrl": "https://shop.test/confirmation",
}
OLD_LIMIT = 1024 * 1024


@pytest.mark.parametrize("text", ["d", ASTRAL_TEXT], ids=["ascii", "emoji"])
def test_a_1000_line_cart_checks_out_and_kustoms_validation_of_it_is_approved(
    http, web, worker, kustom, commerce, text
):
    cart = f"cart-{uuid.uuid4().hex[:12]}"
    # Descriptions of 255 characters (ASCII, or emoji: 510 UTF-16 units, cut to Kustom's
    # 255), product numbers of 255, https URLs of 1024.
    render = large_render(cart, text=text, ids="p")
    commerce.put_cart(render)  # what validation finds when it asks the backend
    body = json.dumps(render).encode()
    assert len(body) > OLD_LIMIT

    mutation = http.post(
        f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert mutation.status_code == 202, mutation.text[:500]

    checkout = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS, timeout=60)
    assert checkout.status_code == 200, checkout.text[:500]
    order_id = checkout.json()["kustomOrderId"]

    order = kustom.stored_order(order_id)["checkout"]
    lines = order["order_lines"]
    assert len(lines) == MAX_ORDER_LINES
    assert {utf16_length(line["name"]) for line in lines} <= {MAX_NAME_LENGTH - 1, MAX_NAME_LENGTH}
    assert {len(line["reference"]) for line in lines} == {MAX_NAME_LENGTH}
    assert {len(line[key]) for line in lines for key in ("product_url", "image_url")} == {
        MAX_URL_LENGTH
    }

    # Kustom posts the whole order, as it holds it, to the validation URL the service
    # gave it (https://docs.kustom.co/v3/checkout/use-cases/validate-order).
    callback_body = json.dumps(order).encode()
    assert len(callback_body) > OLD_LIMIT
    validation = http.post(
        order["merchant_urls"]["validation"].replace("{checkout.order.id}", order_id),
        data=callback_body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert validation.status_code == 200, validation.text[:500]
    assert validation.json() == {}
