"""A local stand-in for the commerce backend (CONTRACT section 5). NOT for production.

It keeps carts and orders in memory, verifies ``X-Kustom-App-Signature`` on every call,
honours ``Idempotency-Key`` on completion (a repeated key creates no second order), and
records every call so tests can count what really happened. Faults can be injected per
operation to simulate an outage.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Flask, Response, jsonify, request

from kustom_app.signing import InvalidSignature, verify_signature

OPERATIONS = (
    "get_cart",
    "complete",
    "capture_result",
    "refund_result",
    "fraud_decision",
    "shipping_option",
    "address",
)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class CommerceDoubleState:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.carts: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.results: dict[str, list[dict[str, Any]]] = {"captures": [], "refunds": []}
        self.fraud_decisions: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.faults: dict[str, list[int]] = {}
        self.delays: dict[str, float] = {}
        self.address_rejections: dict[str, dict[str, str]] = {}
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

    # Internals -------------------------------------------------------------------------

    def _take_fault(self, operation: str) -> int | None:
        queue = self.faults.get(operation)
        return queue.pop(0) if queue else None

    def _record(self, operation: str, status: int, body: Any, headers: dict[str, str]) -> None:
        self.calls.append(
            {"operation": operation, "status": status, "json": body, "headers": headers,
             "at": time.time()}
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
        self.orders[key] = {"cartId": cart_id, "orderNumber": number, "request": body,
                            "idempotencyKey": key}
        return 201, {"orderNumber": number}


def create_app(*, secret: str | None = None) -> Flask:
    """The commerce double; with ``secret`` every call must carry a valid signature."""
    app = Flask(__name__)
    state = CommerceDoubleState()
    app.extensions["commerce_double"] = state

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

    def shipping_option(body: Any, cart_id: str) -> tuple[int, Any]:
        cart = state.carts.get(cart_id)
        if cart is None:
            return 404, {"error": {"code": "not_found", "message": "no such cart"}}
        wanted = (body or {}).get("shippingOptionId")
        options = {o["id"]: o for o in cart.get("shippingOptions") or []}
        if wanted not in options:
            return 422, {"error": {"code": "approval_failed", "message": "unknown option"}}
        old = cart.get("shipping") or {"price": "0", "taxTotal": "0"}
        new = options[wanted]
        cart["cartTotal"] = str(Decimal(str(cart["cartTotal"])) - Decimal(str(old["price"]))
                                + Decimal(str(new["price"])))
        cart["cartTaxTotal"] = str(Decimal(str(cart["cartTaxTotal"]))
                                   - Decimal(str(old["taxTotal"])) + Decimal(str(new["taxTotal"])))
        cart["shipping"] = copy.deepcopy(new)
        return 200, _bump(cart)

    def address(body: Any, cart_id: str) -> tuple[int, Any]:
        cart = state.carts.get(cart_id)
        if cart is None:
            return 404, {"error": {"code": "not_found", "message": "no such cart"}}
        rejection = state.address_rejections.get(cart_id)
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

    return app


def _answer(status: int, body: Any) -> Response:
    return Response(json.dumps(body, default=_json_default), status=status,
                    mimetype="application/json")
