"""``/_playground/...``: the playground's control API, what ``kustom-playground trigger`` calls.

Separate from Kustom's paths (``/checkout/v3``, ``/ordermanagement/v1``) and from the test
suite's ``/_double/...``; like those, it asks for no credentials: the playground is for a
developer's machine or a CI job, never a public network. Every answer is JSON; misuse is a
4xx ``{"error": text}`` (unknown order 404, wrong state 409, bad input 400).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response

from playground.kustom.answers import DoubleError
from playground.kustom.api import current_state, json_object, json_response

PREFIX = "/_playground"


def _number(body: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        if required:
            raise DoubleError(400, f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DoubleError(400, f"{name} must be a number")
    return float(value)


def _count(body: dict[str, Any]) -> int | None:
    value = body.get("count")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise DoubleError(400, "count must be an integer")
    return value


def _address(body: dict[str, Any]) -> dict[str, Any] | None:
    address = body.get("address")
    if address is not None and not isinstance(address, dict):
        raise DoubleError(400, "address must be an object")
    return address


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise DoubleError(400, f"{name} must be a string")
    return value


def register_playground_control(app: Flask) -> None:
    """The trigger endpoints, the order lookup, the trouble windows and a readiness probe."""

    def order_trigger(name: str, run: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
        def view(order_id: str) -> Response:
            return json_response(200, run(order_id, json_object()))

        app.add_url_rule(
            f"{PREFIX}/orders/<order_id>/{name}",
            endpoint=f"playground_{name}",
            view_func=view,
            methods=["POST"],
        )

    state = current_state
    order_trigger(
        "pay",
        lambda oid, b: state().trigger_pay(
            oid,
            validate=bool(b.get("validate", True)),
            push=bool(b.get("push", True)),
            fraud_status=str(b.get("fraud_status", "ACCEPTED")),
            address=_address(b),
        ),
    )
    order_trigger("push", lambda oid, b: state().trigger_push(oid))
    order_trigger("validation", lambda oid, b: state().trigger_validation(oid, address=_address(b)))
    order_trigger("address-update", lambda oid, b: state().trigger_address_update(oid, _address(b)))
    order_trigger(
        "country-change",
        lambda oid, b: state().trigger_country_change(oid, str(b.get("country") or "")),
    )
    order_trigger(
        "shipping-option-update",
        lambda oid, b: state().trigger_shipping_option_update(
            oid, _optional_string(b, "option_id")
        ),
    )
    order_trigger("expire", lambda oid, b: state().trigger_expire(oid))
    order_trigger("fraud", lambda oid, b: state().trigger_fraud(oid, str(b.get("decision") or "")))

    @app.get(f"{PREFIX}/health")
    def _playground_health() -> Response:
        return json_response(200, {"status": "ok", "orders": len(current_state().order_ids())})

    @app.get(f"{PREFIX}/orders")
    def _playground_orders() -> Response:
        s = current_state()
        return json_response(200, [s.stored_order(order_id) for order_id in s.order_ids()])

    @app.get(f"{PREFIX}/orders/<order_id>")
    def _playground_order(order_id: str) -> Response:
        stored = current_state().stored_order(order_id)
        if stored is None:
            raise DoubleError(404, f"unknown order {order_id}")
        return json_response(200, stored)

    @app.get(f"{PREFIX}/trouble")
    def _playground_trouble() -> Response:
        return json_response(200, current_state().trouble())

    @app.post(f"{PREFIX}/fail")
    def _playground_fail() -> Response:
        body = json_object()
        status = body.get("status", 503)
        if isinstance(status, bool) or not isinstance(status, int):
            raise DoubleError(400, "status must be an integer")
        trouble = current_state().start_outage(
            status,
            for_seconds=_number(body, "for_seconds"),
            count=_count(body),
            operation=_optional_string(body, "operation"),
            order_id=_optional_string(body, "order_id"),
        )
        return json_response(200, {"trigger": "fail", **trouble})

    @app.post(f"{PREFIX}/slow")
    def _playground_slow() -> Response:
        body = json_object()
        seconds = _number(body, "seconds", required=True)
        assert seconds is not None
        trouble = current_state().start_slowdown(
            seconds, for_seconds=_number(body, "for_seconds"), count=_count(body)
        )
        return json_response(200, {"trigger": "slow", **trouble})

    @app.delete(f"{PREFIX}/trouble")
    def _playground_recover() -> Response:
        current_state().end_trouble()
        return json_response(200, {"trigger": "recover", **current_state().trouble()})
