"""The largest carts the service takes, and the bodies they make: for the body-limit tests.

A render of `MAX_ORDER_LINES` lines with every text at its limit and 1024-character product
and image URLs, written the most expensive way JSON allows (non-ASCII text as ``\\uXXXX``
escapes, every "/" escaped), so a test of it is a test of the worst case the limits in
`webhooks.body_limits` were sized for.
"""

from __future__ import annotations

import json
from typing import Any

from kustom_app.payload import MAX_NAME_LENGTH, MAX_ORDER_LINES, MAX_URL_LENGTH

# "é" is one UTF-16 unit written as a 6-byte escape: the most a character costs in a name
# Kustom holds (MAX_ORDER_JSON_BYTES). An astral character (a surrogate pair, 12 bytes)
# costs the most in a render, where lengths count characters.
BMP_TEXT = "é"
ASTRAL_TEXT = "\U0001f455"  # T-shirt


def long_url(kind: str, index: int) -> str:
    """An absolute https URL of exactly MAX_URL_LENGTH characters, slashes and all."""
    start = f"https://shop.example.com/{kind}/{index}/"
    path = ("x/" * MAX_URL_LENGTH)[: MAX_URL_LENGTH - len(start)]
    return start + path


def large_render(
    cart_id: str,
    version: int = 1,
    *,
    lines: int = MAX_ORDER_LINES,
    text: str = BMP_TEXT,
    ids: str | None = None,
) -> dict[str, Any]:
    """A payable render of ``lines`` lines (10.00 each, 25 % VAT included) whose
    description is MAX_NAME_LENGTH x ``text``, whose lineId and productNumber are
    MAX_NAME_LENGTH characters (of ``ids``, else ASCII), and whose URLs are 1024 long."""

    def identifier(prefix: str, index: int) -> str:
        head = f"{prefix}{index:04d}-"
        filler = (ids or "r") * MAX_NAME_LENGTH
        return (head + filler)[:MAX_NAME_LENGTH]

    return {
        "cartId": cart_id,
        "version": version,
        "channelKey": "retail-se",
        "currencyCode": "SEK",
        "countryCode": "SE",
        "locale": "sv-SE",
        "taxIncluded": True,
        "cartTotal": f"{10 * lines}.00",
        "cartTaxTotal": f"{2 * lines}.00",
        "lines": [
            {
                "lineId": identifier("l", i),
                "productNumber": identifier("p", i),
                "description": (f"{i:04d} " + text * MAX_NAME_LENGTH)[:MAX_NAME_LENGTH],
                "quantity": 1,
                "reservedQuantity": 1,
                "unitPrice": "10.00",
                "discountTotal": "0.00",
                "salesTotal": "10.00",
                "taxRate": "0.25",
                "taxTotal": "2.00",
                "productUrl": long_url("products", i),
                "imageUrl": long_url("images", i),
            }
            for i in range(lines)
        ],
    }


def costly_json(value: Any) -> bytes:
    """``value`` as JSON the most expensive way: ASCII escapes, every "/" escaped."""
    return json.dumps(value, ensure_ascii=True).replace("/", "\\/").encode()


def padded(body: bytes, size: int) -> bytes:
    """``body`` followed by whitespace (still the same JSON) up to exactly ``size`` bytes."""
    assert len(body) <= size, f"{len(body)} bytes do not fit in {size}"
    return body + b" " * (size - len(body))
