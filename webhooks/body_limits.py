"""How large a request body each endpoint takes: one table, applied per request.

Kustom's callbacks echo the whole order, so they take the largest order the service can
make Kustom hold (`kustom_app.payload.MAX_ORDER_JSON_BYTES`); the commerce backend's cart
render and payment events take the largest render of a cart that fits Kustom; everything
else (the unauthenticated storefront calls, Kustom's push and notifications, a cancel)
is small. A body over its endpoint's limit is 413 ``payload_too_large`` (400 in Kustom's
shape on the callbacks Kustom reads, `webhooks.kustom_callbacks`), and nothing is read.

The limit is set on each request before any view reads the body (Flask >= 3.1 lets
``request.max_content_length`` differ per request:
https://flask.palletsprojects.com/en/stable/api/#flask.Request.max_content_length), so an
endpoint that never reads its body is not limited by it either.
"""

from __future__ import annotations

from flask import Flask, request

from kustom_app.payload import (
    MAX_NAME_LENGTH,
    MAX_ORDER_JSON_BYTES,
    MAX_ORDER_LINES,
    MAX_URL_LENGTH,
)

SMALL_BODY_BYTES = 64 * 1024

# The largest cart render of a cart Kustom can take: MAX_ORDER_LINES lines whose lineId,
# productNumber and description are 255 characters each, every one an astral character
# written as a JSON escaped surrogate pair (12 bytes), whose productUrl and imageUrl are
# 1024 ASCII characters with every "/" escaped (as for MAX_ORDER_JSON_BYTES), plus room
# for a line's money fields, quantities and type, and for the render's own fields and
# shipping options.
_RENDER_LINE_FIXED_BYTES = 1024
_RENDER_FIXED_BYTES = 256 * 1024
MAX_RENDER_JSON_BYTES = _RENDER_FIXED_BYTES + MAX_ORDER_LINES * (
    _RENDER_LINE_FIXED_BYTES
    + 3 * 12 * MAX_NAME_LENGTH  # lineId, productNumber, description
    + 2 * 2 * MAX_URL_LENGTH  # productUrl, imageUrl
)
# A capture or refund may list every line of the order, as Kustom order lines or as
# render lines.
MAX_PAYMENT_EVENT_BYTES = max(MAX_ORDER_JSON_BYTES, MAX_RENDER_JSON_BYTES)

# Endpoint → the most bytes its body may have; endpoints not named take SMALL_BODY_BYTES.
BODY_LIMITS: dict[str, int] = {
    "commerce.cart_mutation": MAX_RENDER_JSON_BYTES,
    "payments.payment_capture": MAX_PAYMENT_EVENT_BYTES,
    "payments.payment_refund": MAX_PAYMENT_EVENT_BYTES,
    "kustom_callbacks.validate_order": MAX_ORDER_JSON_BYTES,
    "kustom_callbacks.address_update": MAX_ORDER_JSON_BYTES,
    "kustom_callbacks.country_change": MAX_ORDER_JSON_BYTES,
    "kustom_callbacks.shipping_option_update": MAX_ORDER_JSON_BYTES,
}


def body_limit(endpoint: str | None) -> int:
    """The most bytes a request to ``endpoint`` (Flask's endpoint name) may carry."""
    return BODY_LIMITS.get(endpoint or "", SMALL_BODY_BYTES)


def register_body_limits(app: Flask) -> None:
    # The app-wide default guards anything that reads a body before the hook below runs.
    app.config["MAX_CONTENT_LENGTH"] = SMALL_BODY_BYTES

    @app.before_request
    def _limit_body() -> None:
        request.max_content_length = body_limit(request.endpoint)
