"""The per-cart token check shared by every Kustom callback (CONTRACT section 6)."""

from __future__ import annotations

from flask import request

from kustom_app.signing import check_callback_token
from webhooks import extension
from webhooks.errors import ApiError
from webhooks.schemas import CART_ID_PATTERN


def verified_callback_cart() -> str:
    """The cart id of a Kustom callback whose ``cart``/``token`` query pair is genuine.

    Raises a 401 `ApiError` (and nothing else happens) when either is missing or wrong.
    """
    cart_id = request.args.get("cart")
    token = request.args.get("token")
    secret = extension.settings().callback_secret
    if (
        not cart_id
        or not CART_ID_PATTERN.match(cart_id)
        or not check_callback_token(secret, cart_id, token)
    ):
        raise ApiError(401, "invalid_token", "The callback token is missing or wrong.")
    return cart_id
