"""A local stand-in for the commerce backend (CONTRACT sections 4 and 5). NOT for production.

Two uses, one in-memory state:

* **Test double** (tests/integration): carts are put in with ``put_cart``; every call is
  verified (``X-Kustom-App-Signature``), recorded (``calls_for``) and can be made to fail
  (``fail_next``) or be slow (``set_delay``). Completion honours ``Idempotency-Key``: a
  repeated key creates no second order.
* **Shop backend** (``scripts/run``, the browser test): a small catalogue of SEK products
  with 25 % VAT included, carts with add/remove/quantity and two shipping options. Every
  mutation a shopper makes renders the cart (CONTRACT section 4, ``version`` + 1) and POSTs
  the render, signed with ``X-Commerce-Signature``, to the service's
  ``/commerce/cart-mutation``. Changes the *service* asks for (section 5 shipping option
  and address calls, from Kustom's callbacks) are answered with the new render and not
  posted again: the service records that answer as applied by Kustom itself, and a second
  copy racing it would only make the iframe flicker. The shop's pages are in
  ``playground.shop``; completed orders are listed at ``/orders``.

This module is the Flask app (the section 5 endpoints, ``create_app``) and its command line.
The state and the render publisher are in ``playground.commerce_state``, the products and
the render arithmetic in ``playground.catalogue``, the signatures in
``playground.signatures``.

Run it (the commerce backend and the demo shop on one port)::

    python -m playground.commerce --port 8080 --service-url http://localhost:8000 \\
        --secret "$COMMERCE_WEBHOOK_SECRET"

``--secret`` defaults to ``COMMERCE_WEBHOOK_SECRET`` and ``--service-url`` to
``KUSTOM_APP_URL`` from the environment.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Flask, Response, jsonify, request

from playground import shop
from playground.catalogue import json_default
from playground.commerce_state import (
    EXTENSION_KEY,
    PUBLISHER_KEY,
    CommerceDoubleState,
    RenderPublisher,
    ShopError,
)
from playground.signatures import BadSignature, check

SERVICE_URL_ENV = "KUSTOM_APP_URL"
SECRET_ENV = "COMMERCE_WEBHOOK_SECRET"  # noqa: S105 - the name of the setting, not a secret
SERVICE_SIGNATURE_HEADER = "X-Kustom-App-Signature"


def create_app(
    *,
    secret: str | None = None,
    service_url: str | None = None,
    public_service_url: str | None = None,
    state_file: str | None = None,
) -> Flask:
    """The commerce double and demo shop.

    With ``secret`` every section 5 call must carry a valid signature, and shop renders are
    signed with it. ``service_url`` is where renders are POSTed (kustom-app);
    ``public_service_url`` is where the shopper's browser reaches kustom-app (default: the
    same). With ``state_file`` the shop's carts, orders and order numbers survive a restart
    (JSON, rewritten after every request that changed them).
    """
    app = Flask(__name__)
    state = CommerceDoubleState(state_file)
    app.extensions[EXTENSION_KEY] = state
    app.extensions[PUBLISHER_KEY] = RenderPublisher(state, service_url, secret)
    app.config["SHOP_SERVICE_URL"] = (public_service_url or service_url or "").rstrip("/")

    def guarded(operation: str, handler: Callable[..., tuple[int, Any]]) -> Callable[..., Response]:
        def view(**kwargs: Any) -> Response:
            raw = request.get_data()
            if secret:
                try:
                    check(secret, raw, request.headers.get(SERVICE_SIGNATURE_HEADER))
                except BadSignature as e:
                    return _answer(401, {"error": {"code": "invalid_signature", "message": str(e)}})
            body = json.loads(raw, parse_float=Decimal) if raw else None
            with state.lock:
                delay = state.delays.get(operation, 0.0)
            if delay:
                time.sleep(delay)
            with state.lock:
                fault = state._take_fault(operation, request.path)
                if fault is not None:
                    state._record(operation, fault, body, dict(request.headers))
                    return _answer(fault, {"error": {"code": "injected_fault", "message": "down"}})
                status, answer = handler(body=body, **kwargs)
                state._record(operation, status, body, dict(request.headers))
            return _answer(status, answer)

        view.__name__ = f"view_{operation}"
        return view

    def get_cart(body: Any, cart_id: str) -> tuple[int, Any]:
        cart = state.carts.get(cart_id)
        if cart is None:
            return 404, {"error": {"code": "not_found", "message": "no such cart"}}
        return 200, cart

    def complete(body: Any, cart_id: str) -> tuple[int, Any]:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return 400, {"error": {"code": "missing_idempotency_key", "message": "required"}}
        return state.complete(cart_id, key, body or {})

    def capture_result(body: Any, capture_id: str) -> tuple[int, Any]:
        state.results["captures"].append({"captureId": capture_id, **(body or {})})
        return 200, {"status": "recorded"}

    def refund_result(body: Any, refund_id: str) -> tuple[int, Any]:
        state.results["refunds"].append({"refundId": refund_id, **(body or {})})
        return 200, {"status": "recorded"}

    def fraud_decision(body: Any, cart_id: str) -> tuple[int, Any]:
        state.fraud_decisions.append({"cartId": cart_id, **(body or {})})
        return 200, {"status": "recorded"}

    def _bump(cart: dict[str, Any]) -> dict[str, Any]:
        cart["version"] = int(cart.get("version", 0)) + 1
        return cart

    def _shop_answer(action: Callable[[], dict[str, Any]]) -> tuple[int, Any]:
        try:
            return 200, action()
        except ShopError as e:
            return e.status, {"error": {"code": e.code, "message": e.message}}

    def shipping_option(body: Any, cart_id: str) -> tuple[int, Any]:
        wanted = (body or {}).get("shippingOptionId")
        if cart_id in state.shop_carts:
            return _shop_answer(lambda: state.select_shipping(cart_id, str(wanted)))
        cart = state.carts.get(cart_id)
        if cart is None:
            return 404, {"error": {"code": "not_found", "message": "no such cart"}}
        options = {o["id"]: o for o in cart.get("shippingOptions") or []}
        if wanted not in options:
            return 422, {"error": {"code": "approval_failed", "message": "unknown option"}}
        old = cart.get("shipping") or {"price": "0", "taxTotal": "0"}
        new = options[wanted]
        cart["cartTotal"] = str(
            Decimal(str(cart["cartTotal"]))
            - Decimal(str(old["price"]))
            + Decimal(str(new["price"]))
        )
        cart["cartTaxTotal"] = str(
            Decimal(str(cart["cartTaxTotal"]))
            - Decimal(str(old["taxTotal"]))
            + Decimal(str(new["taxTotal"]))
        )
        cart["shipping"] = copy.deepcopy(new)
        return 200, _bump(cart)

    def address(body: Any, cart_id: str) -> tuple[int, Any]:
        rejection = state.address_rejections.get(cart_id)
        if cart_id in state.shop_carts:
            if rejection:
                return 422, {"error": rejection}
            address = (body or {}).get("shippingAddress") or {}
            return _shop_answer(lambda: state.set_address(cart_id, address))
        cart = state.carts.get(cart_id)
        if cart is None:
            return 404, {"error": {"code": "not_found", "message": "no such cart"}}
        if rejection:
            return 422, {"error": rejection}
        return 200, _bump(cart)

    routes = [
        ("GET", "/carts/<cart_id>", "get_cart", get_cart),
        ("POST", "/carts/<cart_id>/complete", "complete", complete),
        ("POST", "/captures/<capture_id>/result", "capture_result", capture_result),
        ("POST", "/refunds/<refund_id>/result", "refund_result", refund_result),
        ("POST", "/carts/<cart_id>/fraud-decision", "fraud_decision", fraud_decision),
        ("POST", "/carts/<cart_id>/shipping-option", "shipping_option", shipping_option),
        ("POST", "/carts/<cart_id>/address", "address", address),
    ]
    for method, rule, operation, handler in routes:
        app.add_url_rule(rule, operation, guarded(operation, handler), methods=[method])

    @app.get("/_double/orders")
    def list_orders() -> Response:
        return jsonify(state.orders_for())

    app.register_blueprint(shop.bp)

    @app.after_request
    def _keep_state(response: Response) -> Response:
        state.save_state()  # only writes when something changed (a shop page makes carts)
        return response

    return app


def _answer(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body, default=json_default), status=status, mimetype="application/json"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playground.commerce",
        description="Serve the local commerce backend and demo shop (a stand-in, not for "
        "production).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--service-url",
        default=os.environ.get(SERVICE_URL_ENV),
        help=f"kustom-app's URL, where cart renders go (env {SERVICE_URL_ENV})",
    )
    parser.add_argument(
        "--public-service-url",
        default=None,
        help="kustom-app's URL as the shopper's browser reaches it (default: --service-url)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the HMAC secret shared with kustom-app (env {SECRET_ENV})",
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="keep carts, orders and the order-number counter in this JSON file across "
        "restarts (scripts/run: .run/shop-state.json; default: in memory only)",
    )
    args = parser.parse_args(argv)
    if not args.service_url:
        parser.error(f"--service-url (or {SERVICE_URL_ENV}) is required")
    if not args.secret:
        parser.error(f"--secret (or {SECRET_ENV}) is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")

    from werkzeug.serving import make_server

    from playground.server import serve_until_interrupted
    from playground.statefile import StateFileError

    try:
        app = create_app(
            secret=args.secret,
            service_url=args.service_url,
            public_service_url=args.public_service_url,
            state_file=args.state_file,
        )
    except StateFileError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}"
    print(f"Commerce playground + demo shop listening on {url}", flush=True)
    print(f"  COMMERCE_API_URL={url}  (renders go to {args.service_url})", flush=True)
    print(f"  shop: {url}/   completed orders: {url}/orders", flush=True)
    if args.state_file:
        held = len(app.extensions[EXTENSION_KEY].orders)
        print(f"  state: {args.state_file} ({held} orders held)", flush=True)
    return serve_until_interrupted(server)


__all__ = ["CommerceDoubleState", "create_app", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
