"""The shopper page: what the html snippet's iframe shows, and the calls it makes.

``/playground/checkout/<order_id>`` renders ``templates/checkout.html`` with the order as
the double has it (:meth:`~playground.kustom.purchase.Purchase.shopper_view`) embedded as
JSON; the page's script draws it and calls ``/data``, ``/shipping-option`` and ``/pay``
below it, as the shopper, without auth. An unknown or expired order gets
``templates/checkout_gone.html`` (404).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, render_template
from markupsafe import Markup

from playground.kustom.answers import DoubleError
from playground.kustom.api import current_state, json_object, json_response
from playground.kustom.rules import is_int

PAGE_TEMPLATE = "checkout.html"
GONE_TEMPLATE = "checkout_gone.html"


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def register_shopper_page(app: Flask) -> None:
    """The page inside the snippet's iframe, and the calls it makes (as a shopper, no auth)."""
    prefix = "/playground/checkout/<order_id>"

    @app.get(prefix)
    def _checkout_page(order_id: str) -> Response:
        try:
            view = current_state().shopper_view(order_id)
        except DoubleError:
            return Response(render_template(GONE_TEMPLATE), status=404, mimetype="text/html")
        # Inserted as it is: _script_json makes it safe inside the <script> element.
        initial = Markup(_script_json(view))  # noqa: S704
        page = render_template(PAGE_TEMPLATE, initial=initial)
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get(f"{prefix}/data")
    def _checkout_data(order_id: str) -> Response:
        return json_response(
            200, current_state().shopper_view(order_id), {"Cache-Control": "no-store"}
        )

    @app.post(f"{prefix}/shipping-option")
    def _checkout_shipping(order_id: str) -> Response:
        option_id = json_object().get("id")
        if not isinstance(option_id, str) or not option_id:
            raise DoubleError(400, "id is required")
        return json_response(200, current_state().shopper_select_shipping(order_id, option_id))

    @app.post(f"{prefix}/pay")
    def _checkout_pay(order_id: str) -> Response:
        body = json_object()
        address = body.get("address")
        revision = body.get("revision")
        if not isinstance(address, dict):
            raise DoubleError(400, "address must be an object")
        if revision is not None and not is_int(revision):
            raise DoubleError(400, "revision must be an integer")
        return json_response(200, current_state().shopper_pay(order_id, address, revision=revision))
