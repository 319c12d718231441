"""Which cart a web request is about, for its log lines and its access-log line.

The cart comes from the URL (``/carts/<cart_id>/...``, a Kustom callback's ``?cart=``) when
the request starts, or from the body once a view has read it (a cart event, a payment
event: `kustom_app.logs.bind_cart`). gunicorn's access log (`webhooks.access_log`) reads it
from the WSGI environ, where it is left when the response is ready.
"""

from __future__ import annotations

from flask import Flask, Response, request

from kustom_app.logs import bind_cart, bound_cart, unbind
from webhooks.access_log import ENVIRON_CART
from webhooks.schemas import CART_ID_PATTERN


def url_cart() -> str | None:
    """The cart a request names in its URL, if it is a well-formed cart id."""
    view_args = request.view_args or {}
    cart_id = view_args.get("cart_id") or request.args.get("cart")
    if isinstance(cart_id, str) and CART_ID_PATTERN.match(cart_id):
        return cart_id
    return None


def register_request_logging(app: Flask) -> None:
    """Bind each request's cart for its lines; hand it to the access log at the end."""

    @app.before_request
    def _bind_cart() -> None:
        unbind()  # a thread serves many requests: nothing of the last one stays
        bind_cart(url_cart())

    @app.after_request
    def _hand_to_access_log(response: Response) -> Response:
        cart_id = bound_cart()
        if cart_id:
            request.environ[ENVIRON_CART] = cart_id
        return response

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        unbind()
