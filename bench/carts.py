"""The carts a bench sends and the calls it makes with them: contract-shaped renders,
signed as the commerce backend signs them, and checkout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from bench.node import COMMERCE_SECRET

STOREFRONT_URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


_BASE_RENDER: dict[str, Any] = {
    "channelKey": "retail-se",
    "currencyCode": "SEK",
    "countryCode": "SE",
    "locale": "sv-SE",
    "taxIncluded": True,
    "shippingOptions": [
        {"id": "postnord", "name": "PostNord", "price": "49.00", "taxRate": "0.25",
         "taxTotal": "9.80"},
        {"id": "express", "name": "Express", "price": "99.00", "taxRate": "0.25",
         "taxTotal": "19.80"},
    ],
}  # fmt: skip


def cart_render(cart_id: str, version: int, quantity: int = 2) -> dict[str, Any]:
    """A contract-shaped render: T-shirts (250.00, 25 % VAT included) x ``quantity``, a pair
    of socks (99.00) and PostNord shipping (49.00); totals add up to the öre."""
    shirts = 250 * quantity
    lines = [
        {
            "lineId": "l1", "productNumber": "TSHIRT-RED-M", "description": "Red T-Shirt",
            "quantity": quantity, "reservedQuantity": quantity, "unitPrice": "250.00",
            "discountTotal": "0.00", "salesTotal": f"{shirts}.00", "taxRate": "0.25",
            "taxTotal": f"{shirts // 5}.00", "productUrl": None, "imageUrl": None,
        },
        {
            "lineId": "l2", "productNumber": "SOCKS-3PK", "description": "Socks, 3-pack",
            "quantity": 1, "reservedQuantity": 1, "unitPrice": "99.00",
            "discountTotal": "0.00", "salesTotal": "99.00", "taxRate": "0.25",
            "taxTotal": "19.80", "productUrl": None, "imageUrl": None,
        },
    ]  # fmt: skip
    total_tax = f"{shirts // 5 + 29}.60"  # + 19.80 + 9.80
    return {
        "cartId": cart_id,
        "version": version,
        **_BASE_RENDER,
        "cartTotal": f"{shirts + 99 + 49}.00",
        "cartTaxTotal": total_tax,
        "lines": lines,
        "shipping": dict(_BASE_RENDER["shippingOptions"][0]),
    }


def render_body(render: Mapping[str, Any]) -> bytes:
    return json.dumps(render, separators=(",", ":")).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    from kustom_app.signing import sign_payload

    return {
        "Content-Type": "application/json",
        "X-Commerce-Signature": sign_payload(COMMERCE_SECRET, body),
    }


def post_render(session: requests.Session, url: str, render: Mapping[str, Any]) -> dict[str, Any]:
    body = render_body(render)
    response = session.post(
        f"{url}/commerce/cart-mutation", data=body, headers=signed_headers(body), timeout=30
    )
    if response.status_code != 202:
        raise RuntimeError(f"cart-mutation answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def open_checkout(session: requests.Session, url: str, cart_id: str) -> str:
    """Checkout for a cart whose render was posted: creates its Kustom order; the order id."""
    response = session.post(f"{url}/carts/{cart_id}/kustom", json=STOREFRONT_URLS, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"checkout answered {response.status_code}: {response.text}")
    order_id: str = response.json()["kustomOrderId"]
    return order_id


__all__ = [
    "STOREFRONT_URLS",
    "cart_render",
    "open_checkout",
    "post_render",
    "render_body",
    "signed_headers",
]
