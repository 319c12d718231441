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

Run it (the commerce backend and the demo shop on one port)::

    python -m playground.commerce --port 8080 --service-url http://localhost:8000 \\
        --secret "$COMMERCE_WEBHOOK_SECRET"

``--secret`` defaults to ``COMMERCE_WEBHOOK_SECRET`` and ``--service-url`` to
``KUSTOM_APP_URL`` from the environment.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from kustom_app.signing import InvalidSignature, sign_payload, verify_signature

log = logging.getLogger(__name__)

OPERATIONS = (
    "get_cart",
    "complete",
    "capture_result",
    "refund_result",
    "fraud_decision",
    "shipping_option",
    "address",
)

EXTENSION_KEY = "commerce_double"
PUBLISHER_KEY = "commerce_publisher"
SERVICE_URL_ENV = "KUSTOM_APP_URL"
SECRET_ENV = "COMMERCE_WEBHOOK_SECRET"  # noqa: S105 - the name of the setting, not a secret
SIGNATURE_HEADER = "X-Commerce-Signature"

# ------------------------------------------------------------------------------ the shop

CURRENCY = "SEK"
COUNTRY = "SE"
LOCALE = "sv-SE"
CHANNEL = "playground-shop"
VAT_RATE = Decimal("0.25")
CENT = Decimal("0.01")
MAX_QUANTITY = 99


@dataclass(frozen=True)
class Product:
    number: str
    name: str
    price: Decimal  # per piece, VAT included
    colour: str  # for the shop page's swatch


@dataclass(frozen=True)
class ShippingChoice:
    id: str
    name: str
    price: Decimal  # VAT included
    description: str


PRODUCTS: tuple[Product, ...] = (
    Product("TSHIRT-RED-M", "Red T-Shirt, M", Decimal("250.00"), "#d94141"),
    Product("TSHIRT-BLUE-L", "Blue T-Shirt, L", Decimal("199.00"), "#3b6fd9"),
    Product("TSHIRT-BLACK-S", "Black T-Shirt, S", Decimal("229.00"), "#222222"),
    Product("HOODIE-GRY-L", "Grey Hoodie, L", Decimal("549.00"), "#8c8c8c"),
    Product("CAP-GRN", "Green Cap", Decimal("149.00"), "#3c8f5a"),
    Product("SOCKS-3PK", "Socks, 3-pack", Decimal("99.00"), "#e3b23c"),
)
PRODUCTS_BY_NUMBER = {product.number: product for product in PRODUCTS}
SHIPPING_CHOICES: tuple[ShippingChoice, ...] = (
    ShippingChoice("postnord", "PostNord", Decimal("49.00"), "2-4 working days"),
    ShippingChoice("express", "Express", Decimal("99.00"), "Next working day"),
)
SHIPPING_BY_ID = {choice.id: choice for choice in SHIPPING_CHOICES}


class ShopError(Exception):
    """A shop action that cannot be done (unknown product or cart, completed cart)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class ShopCart:
    cart_id: str
    version: int = 0
    quantities: dict[str, int] = field(default_factory=dict)  # product number -> pieces
    shipping_id: str = SHIPPING_CHOICES[0].id
    address: dict[str, Any] | None = None
    completed: bool = False


def vat_included(amount: Decimal, rate: Decimal = VAT_RATE) -> Decimal:
    """The VAT inside a VAT-inclusive amount, to the öre (Kustom allows ±1 minor unit)."""
    return (amount * rate / (1 + rate)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def _shipping_render(choice: ShippingChoice) -> dict[str, Any]:
    return {
        "id": choice.id,
        "name": choice.name,
        "price": _money(choice.price),
        "taxRate": str(VAT_RATE),
        "taxTotal": _money(vat_included(choice.price)),
        "description": choice.description,
    }


def render_cart(cart: ShopCart) -> dict[str, Any]:
    """The cart as a CONTRACT section 4 render, with totals that add up to the öre.

    Line tax is the VAT included in the line's sales total, and the cart's totals are the
    sums of exactly the numbers shown on the lines and the shipping, so the service's
    payload builder and Kustom's arithmetic accept every render. An empty cart has no
    shipping and totals of zero (the service treats it as not payable).
    """
    lines: list[dict[str, Any]] = []
    total = tax = Decimal(0)
    for number, quantity in cart.quantities.items():
        product = PRODUCTS_BY_NUMBER[number]
        sales = product.price * quantity
        line_tax = vat_included(sales)
        total += sales
        tax += line_tax
        lines.append(
            {
                "lineId": f"line-{number.lower()}",
                "productNumber": number,
                "description": product.name,
                "quantity": quantity,
                "reservedQuantity": quantity,
                "unitPrice": _money(product.price),
                "discountTotal": "0.00",
                "salesTotal": _money(sales),
                "taxRate": str(VAT_RATE),
                "taxTotal": _money(line_tax),
                "productUrl": None,
                "imageUrl": None,
            }
        )
    render: dict[str, Any] = {
        "cartId": cart.cart_id,
        "version": cart.version,
        "channelKey": CHANNEL,
        "currencyCode": CURRENCY,
        "countryCode": COUNTRY,
        "locale": LOCALE,
        "taxIncluded": True,
        "lines": lines,
        "shippingOptions": [_shipping_render(choice) for choice in SHIPPING_CHOICES],
    }
    if lines:
        shipping = _shipping_render(SHIPPING_BY_ID[cart.shipping_id])
        render["shipping"] = shipping
        total += Decimal(shipping["price"])
        tax += Decimal(shipping["taxTotal"])
    render["cartTotal"] = _money(total)
    render["cartTaxTotal"] = _money(tax)
    return render


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class CommerceDoubleState:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.carts: dict[str, dict[str, Any]] = {}  # the last render of every cart
        self.orders: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.results: dict[str, list[dict[str, Any]]] = {"captures": [], "refunds": []}
        self.fraud_decisions: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.faults: dict[str, list[int]] = {}
        self.delays: dict[str, float] = {}
        self.address_rejections: dict[str, dict[str, str]] = {}
        self.shop_carts: dict[str, ShopCart] = {}
        self.publications: list[dict[str, Any]] = []  # renders POSTed to the service
        self._numbers = itertools.count(10001)

    # Test control ----------------------------------------------------------------------

    def put_cart(self, render: dict[str, Any]) -> None:
        with self.lock:
            self.carts[render["cartId"]] = copy.deepcopy(render)

    def fail_next(self, operation: str, statuses: list[int]) -> None:
        """The next calls of ``operation`` answer these statuses without acting."""
        with self.lock:
            self.faults.setdefault(operation, []).extend(statuses)

    def set_delay(self, operation: str, seconds: float) -> None:
        with self.lock:
            self.delays[operation] = seconds

    def reject_address(self, cart_id: str, code: str, message: str) -> None:
        with self.lock:
            self.address_rejections[cart_id] = {"code": code, "message": message}

    def orders_for(self, cart_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for o in self.orders.values()
                if cart_id is None or o["cartId"] == cart_id
            ]

    def calls_for(self, operation: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(c) for c in self.calls if c["operation"] == operation]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("commerce double: condition not met")
                self.lock.wait(min(remaining, 0.05))

    # The shop --------------------------------------------------------------------------

    def new_cart(self) -> str:
        """An empty shop cart; its id is what the service and Kustom know it by."""
        with self.lock:
            cart = ShopCart(f"shop-{secrets.token_hex(6)}")
            self.shop_carts[cart.cart_id] = cart
            self.carts[cart.cart_id] = render_cart(cart)
            return cart.cart_id

    def shop_cart(self, cart_id: str | None) -> ShopCart | None:
        with self.lock:
            cart = self.shop_carts.get(cart_id or "")
            return copy.deepcopy(cart) if cart is not None else None

    def render(self, cart_id: str) -> dict[str, Any] | None:
        with self.lock:
            render = self.carts.get(cart_id)
            return copy.deepcopy(render) if render is not None else None

    def _mutate(self, cart_id: str, change: Callable[[ShopCart], None]) -> dict[str, Any]:
        with self.lock:
            cart = self.shop_carts.get(cart_id)
            if cart is None:
                raise ShopError(404, "cart_not_found", "No such cart.")
            if cart.completed:
                raise ShopError(409, "cart_completed", "This cart is already paid for.")
            change(cart)
            cart.version += 1
            render = render_cart(cart)
            self.carts[cart_id] = render
            self.lock.notify_all()
            return copy.deepcopy(render)

    def add_item(self, cart_id: str, product_number: str, quantity: int = 1) -> dict[str, Any]:
        """Add pieces of a product; returns the new render."""
        if product_number not in PRODUCTS_BY_NUMBER:
            raise ShopError(404, "product_not_found", f"No product {product_number}.")
        if quantity < 1:
            raise ShopError(400, "invalid_quantity", "Add at least one piece.")

        def add(cart: ShopCart) -> None:
            now = cart.quantities.get(product_number, 0)
            cart.quantities[product_number] = min(MAX_QUANTITY, now + quantity)

        return self._mutate(cart_id, add)

    def set_quantity(self, cart_id: str, product_number: str, quantity: int) -> dict[str, Any]:
        """Set a line's quantity; 0 removes the line. Returns the new render."""
        if not 0 <= quantity <= MAX_QUANTITY:
            raise ShopError(400, "invalid_quantity", f"Quantity must be 0 to {MAX_QUANTITY}.")

        def set_line(cart: ShopCart) -> None:
            if product_number not in cart.quantities:
                raise ShopError(404, "line_not_found", f"{product_number} is not in the cart.")
            if quantity == 0:
                del cart.quantities[product_number]
            else:
                cart.quantities[product_number] = quantity

        return self._mutate(cart_id, set_line)

    def select_shipping(self, cart_id: str, option_id: str) -> dict[str, Any]:
        if option_id not in SHIPPING_BY_ID:
            raise ShopError(422, "approval_failed", f"No shipping option {option_id}.")

        def choose(cart: ShopCart) -> None:
            cart.shipping_id = option_id

        return self._mutate(cart_id, choose)

    def set_address(self, cart_id: str, address: dict[str, Any]) -> dict[str, Any]:
        def store(cart: ShopCart) -> None:
            cart.address = copy.deepcopy(address)

        return self._mutate(cart_id, store)

    def _record_publication(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.publications.append(entry)
            del self.publications[:-200]
            self.lock.notify_all()

    # Internals -------------------------------------------------------------------------

    def _take_fault(self, operation: str) -> int | None:
        queue = self.faults.get(operation)
        return queue.pop(0) if queue else None

    def _record(self, operation: str, status: int, body: Any, headers: dict[str, str]) -> None:
        self.calls.append(
            {
                "operation": operation,
                "status": status,
                "json": body,
                "headers": headers,
                "at": time.time(),
            }
        )
        self.lock.notify_all()

    def complete(self, cart_id: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        existing = self.orders.get(key)
        if existing is not None:
            return 200, {"orderNumber": existing["orderNumber"]}
        for order in self.orders.values():
            if order["cartId"] == cart_id:
                return 409, {
                    "error": {"code": "already_completed", "message": "cart already completed"},
                    "orderNumber": order["orderNumber"],
                }
        number = f"SO-{next(self._numbers)}"
        self.orders[key] = {
            "cartId": cart_id,
            "orderNumber": number,
            "request": body,
            "idempotencyKey": key,
            "completedAt": time.time(),
            "cart": copy.deepcopy(self.carts.get(cart_id)),
        }
        shop_cart = self.shop_carts.get(cart_id)
        if shop_cart is not None:
            shop_cart.completed = True
        return 201, {"orderNumber": number}


class RenderPublisher:
    """POSTs cart renders, signed, to the service's ``/commerce/cart-mutation``.

    Synchronous, one attempt: a render is a whole snapshot, so a lost one is repaired by
    the next (the shop republishes the cart when the checkout page opens).
    """

    def __init__(
        self,
        state: CommerceDoubleState,
        service_url: str | None,
        secret: str | None,
        *,
        timeout: tuple[float, float] = (3.05, 5.0),
    ) -> None:
        self.state = state
        self.service_url = service_url.rstrip("/") if service_url else None
        self.secret = secret
        self.timeout = timeout
        self._session = requests.Session()

    @property
    def enabled(self) -> bool:
        return bool(self.service_url and self.secret)

    def publish(self, render: dict[str, Any]) -> dict[str, Any]:
        """Send one render; returns (and records) ``{cartId, version, status, error}``."""
        entry: dict[str, Any] = {
            "cartId": render["cartId"],
            "version": render["version"],
            "status": None,
            "error": None,
            "at": time.time(),
        }
        if not self.enabled:
            entry["error"] = "no service URL or secret configured"
            self.state._record_publication(entry)
            return entry
        body = json.dumps(render, default=_json_default, separators=(",", ":")).encode()
        assert self.secret is not None
        try:
            answer = self._session.post(
                f"{self.service_url}/commerce/cart-mutation",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign_payload(self.secret, body),
                },
                timeout=self.timeout,
            )
            entry["status"] = answer.status_code
            if answer.status_code != 202:
                entry["error"] = answer.text[:500]
        except requests.RequestException as e:
            entry["error"] = repr(e)
        if entry["error"]:
            log.warning(
                "commerce.render.publish_failed cart=%s version=%s status=%s",
                entry["cartId"],
                entry["version"],
                entry["status"],
            )
        self.state._record_publication(entry)
        return entry


def create_app(
    *,
    secret: str | None = None,
    service_url: str | None = None,
    public_service_url: str | None = None,
) -> Flask:
    """The commerce double and demo shop.

    With ``secret`` every section 5 call must carry a valid signature, and shop renders are
    signed with it. ``service_url`` is where renders are POSTed (kustom-app);
    ``public_service_url`` is where the shopper's browser reaches kustom-app (default: the
    same).
    """
    from playground import shop

    app = Flask(__name__)
    state = CommerceDoubleState()
    app.extensions[EXTENSION_KEY] = state
    app.extensions[PUBLISHER_KEY] = RenderPublisher(state, service_url, secret)
    app.config["SHOP_SERVICE_URL"] = (public_service_url or service_url or "").rstrip("/")

    def guarded(operation: str, handler: Callable[..., tuple[int, Any]]) -> Callable[..., Response]:
        def view(**kwargs: Any) -> Response:
            raw = request.get_data()
            if secret:
                try:
                    verify_signature(secret, raw, request.headers.get("X-Kustom-App-Signature"))
                except InvalidSignature as e:
                    return _answer(401, {"error": {"code": "invalid_signature", "message": str(e)}})
            body = json.loads(raw, parse_float=Decimal) if raw else None
            with state.lock:
                delay = state.delays.get(operation, 0.0)
            if delay:
                time.sleep(delay)
            with state.lock:
                fault = state._take_fault(operation)
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
    return app


def _answer(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body, default=_json_default), status=status, mimetype="application/json"
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
    args = parser.parse_args(argv)
    if not args.service_url:
        parser.error(f"--service-url (or {SERVICE_URL_ENV}) is required")
    if not args.secret:
        parser.error(f"--secret (or {SECRET_ENV}) is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")

    from werkzeug.serving import make_server

    from playground.server import serve_until_interrupted

    app = create_app(
        secret=args.secret,
        service_url=args.service_url,
        public_service_url=args.public_service_url,
    )
    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}"
    print(f"Commerce playground + demo shop listening on {url}", flush=True)
    print(f"  COMMERCE_API_URL={url}  (renders go to {args.service_url})", flush=True)
    print(f"  shop: {url}/   completed orders: {url}/orders", flush=True)
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
