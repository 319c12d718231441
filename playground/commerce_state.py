"""The commerce double's state, and the publisher that sends the shop's renders.

One :class:`CommerceDoubleState` (``app.extensions["commerce_double"]``) holds, behind one
lock, what the commerce backend knows: the last render of every cart, the orders completed
(by idempotency key), the capture/refund results and fraud decisions reported to it, the
calls the service made and the faults and delays tests put in, and the demo shop's carts.
:class:`RenderPublisher` (``app.extensions["commerce_publisher"]``) POSTs each render the
shop makes, signed, to the service.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from playground.catalogue import (
    MAX_QUANTITY,
    PRODUCTS_BY_NUMBER,
    SHIPPING_BY_ID,
    ShopCart,
    json_default,
    render_cart,
)
from playground.signatures import sign
from playground.statefile import StateWriter, read_state

log = logging.getLogger(__name__)

EXTENSION_KEY = "commerce_double"
PUBLISHER_KEY = "commerce_publisher"
SIGNATURE_HEADER = "X-Commerce-Signature"
STATE_KIND = "commerce"
FIRST_ORDER_NUMBER = 10001


class ShopError(Exception):
    """A shop action that cannot be done (unknown product or cart, completed cart)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CommerceDoubleState:
    """What the commerce backend knows, behind one lock; with ``state_file`` the shop's carts,
    the orders and the order-number counter are also kept on disk (``save_state``) and read
    back at start, so a restart neither forgets an order nor reuses its number."""

    def __init__(self, state_file: str | None = None) -> None:
        self.lock = threading.Condition()
        self.carts: dict[str, dict[str, Any]] = {}  # the last render of every cart
        self.orders: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.results: dict[str, list[dict[str, Any]]] = {"captures": [], "refunds": []}
        self.fraud_decisions: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        # operation → [(status, only the calls whose path holds this, or None: any)]
        self.faults: dict[str, list[tuple[int, str | None]]] = {}
        self.delays: dict[str, float] = {}
        self.address_rejections: dict[str, dict[str, str]] = {}
        self.shop_carts: dict[str, ShopCart] = {}
        self.publications: list[dict[str, Any]] = []  # renders POSTed to the service
        self._next_number = FIRST_ORDER_NUMBER
        self._writer: StateWriter | None = None
        if state_file:
            saved = read_state(state_file, STATE_KIND)
            if saved is not None:
                self._restore(saved)
            self._writer = StateWriter(state_file, STATE_KIND, self._snapshot, default=json_default)

    # The state file ------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        """What survives a restart: carts, orders, reported results, the next number."""
        with self.lock:
            return copy.deepcopy(
                {
                    "carts": self.carts,
                    "orders": self.orders,
                    "results": self.results,
                    "fraud_decisions": self.fraud_decisions,
                    "shop_carts": {k: dataclasses.asdict(v) for k, v in self.shop_carts.items()},
                    "next_order_number": self._next_number,
                }
            )

    def _restore(self, saved: dict[str, Any]) -> None:
        with self.lock:
            self.carts = dict(saved.get("carts") or {})
            self.orders = dict(saved.get("orders") or {})
            results = saved.get("results") or {}
            self.results = {
                "captures": list(results.get("captures") or []),
                "refunds": list(results.get("refunds") or []),
            }
            self.fraud_decisions = list(saved.get("fraud_decisions") or [])
            self.shop_carts = {
                cart_id: ShopCart(**fields)
                for cart_id, fields in (saved.get("shop_carts") or {}).items()
            }
            # Never below a number already given, whatever the file says.
            given = [
                int(o["orderNumber"].removeprefix("SO-"))
                for o in self.orders.values()
                if str(o.get("orderNumber", "")).removeprefix("SO-").isdigit()
            ]
            self._next_number = max(
                [int(saved.get("next_order_number") or FIRST_ORDER_NUMBER), *(n + 1 for n in given)]
            )

    def save_state(self) -> bool:
        """Write the state file if there is one and something changed; True if written."""
        return self._writer.save() if self._writer is not None else False

    # Test control ----------------------------------------------------------------------

    def put_cart(self, render: dict[str, Any]) -> None:
        with self.lock:
            self.carts[render["cartId"]] = copy.deepcopy(render)

    def fail_next(
        self, operation: str, statuses: list[int], *, only_for: str | None = None
    ) -> None:
        """The next calls of ``operation`` answer these statuses without acting; with
        ``only_for``, only calls whose path holds it (one capture's result, say), so other
        traffic to the same double cannot use the faults up."""
        with self.lock:
            self.faults.setdefault(operation, []).extend((s, only_for) for s in statuses)

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

    def _take_fault(self, operation: str, path: str = "") -> int | None:
        queue = self.faults.get(operation) or []
        for index, (status, only_for) in enumerate(queue):
            if only_for is None or only_for in path:
                del queue[index]
                return status
        return None

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
        number = f"SO-{self._next_number}"
        self._next_number += 1
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
        body = json.dumps(render, default=json_default, separators=(",", ":")).encode()
        assert self.secret is not None
        try:
            answer = self._session.post(
                f"{self.service_url}/commerce/cart-mutation",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(self.secret, body),
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
