"""The Kustom double's HTTP API: Checkout v3, Order Management, and ``/_double`` control.

Every API call goes through :func:`dispatch`, which does what Kustom does around an
operation: HTTP Basic auth (401 ``UNAUTHORIZED``), the configured latency, the next
injected fault (a Kustom-shaped error body, or Kustom's bodiless checkout 404),
``Klarna-Idempotency-Key`` replay on the order-management writes, a
``Klarna-Correlation-Id`` on every answer, and one entry in the call log. The handlers
below it only call the state and shape the answer.
"""

from __future__ import annotations

import copy
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request

from playground.kustom.answers import ApiResponse, DoubleError, KustomError
from playground.kustom.state import KustomDoubleState

EXTENSION_KEY = "kustom_double"
CORRELATION_HEADER = "Klarna-Correlation-Id"
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"
CHECKOUT_OPERATIONS = frozenset({"create_order", "get_order", "update_order"})
FAULT_ERROR_CODES = {
    400: "BAD_VALUE",
    401: "UNAUTHORIZED",
    403: "NOT_ALLOWED",
    404: "NO_SUCH_ORDER",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    if body is None:
        response = Response(b"", status=status)
        del response.headers["Content-Type"]
    else:
        response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def request_json() -> tuple[bool, Any]:
    """(ok, parsed body); an empty body parses as None."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return True, None
    try:
        return True, json.loads(raw)
    except ValueError:
        return False, None


def current_state() -> KustomDoubleState:
    state: KustomDoubleState = current_app.extensions[EXTENSION_KEY]
    return state


def _authorized(state: KustomDoubleState) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), state.username.encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), state.password.encode())
    return user_ok and password_ok


def _fault_response(operation: str, fault: Mapping[str, Any], correlation_id: str) -> ApiResponse:
    status = int(fault["status"])
    if status == 404 and operation in CHECKOUT_OPERATIONS and "error_code" not in fault:
        return ApiResponse(404)  # Kustom's bodiless checkout 404
    code = fault.get("error_code") or FAULT_ERROR_CODES.get(status, "ERROR")
    messages = fault.get("error_messages") or [f"Injected fault: {status} {code}"]
    return ApiResponse(
        status,
        {"error_code": code, "error_messages": list(messages), "correlation_id": correlation_id},
    )


Handler = Callable[..., ApiResponse]


def dispatch(
    operation: str, handler: Handler, kwargs: dict[str, Any], idempotent: bool
) -> Response:
    state = current_state()
    correlation_id = str(uuid.uuid4())
    g.correlation_id = correlation_id
    parsed_ok, body = request_json()
    key = request.headers.get(IDEMPOTENCY_HEADER) if idempotent else None
    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "operation": operation,
        "status": None,
        "idempotency_key": key,
        "json": copy.deepcopy(body),
        "at": time.time(),
        "order_id": kwargs.get("order_id"),
        "replayed": False,
        "fault": False,
    }
    latency = state.latency_seconds
    if operation == "update_order":
        latency += state.update_delay_seconds
    slowdown, outage_status = state.take_trouble(operation, kwargs.get("order_id"))
    latency += slowdown
    if latency > 0:
        time.sleep(latency)
    answer: ApiResponse
    if outage_status is not None:  # `trigger fail`: Kustom down for every operation
        answer = _fault_response(operation, {"status": outage_status}, correlation_id)
        entry["fault"] = True
    elif not _authorized(state):
        answer = ApiResponse(
            401,
            {
                "error_code": "UNAUTHORIZED",
                "error_messages": ["Unauthorized"],
                "correlation_id": correlation_id,
            },
            {"WWW-Authenticate": 'Basic realm="Kustom"'},
        )
    else:
        fault = state.take_fault(operation)
        if fault is not None and fault.get("delay_seconds"):
            time.sleep(fault["delay_seconds"])
        if fault is not None and fault.get("status") is not None:
            answer = _fault_response(operation, fault, correlation_id)
            entry["fault"] = True
        elif not parsed_ok:
            answer = ApiResponse(
                400,
                {
                    "error_code": "BAD_VALUE",
                    "error_messages": ["Bad value: body (malformed JSON)"],
                    "correlation_id": correlation_id,
                },
            )
        else:
            with state.lock:  # replay check, action and storing the answer are atomic
                stored = state.idempotent_response(key) if key else None
                if stored is not None:
                    answer = copy.deepcopy(stored)
                    entry["replayed"] = True
                    # Same answer, but this HTTP response's own correlation id.
                    if isinstance(answer.body, dict) and "correlation_id" in answer.body:
                        answer.body["correlation_id"] = correlation_id
                else:
                    try:
                        answer = handler(state, body=body, **kwargs)
                    except KustomError as exc:
                        answer = ApiResponse(exc.status, exc.body(correlation_id))
                    if key:
                        state.remember_response(key, answer)
    entry["status"] = answer.status
    state.record_call(entry)
    headers = {**answer.headers, CORRELATION_HEADER: correlation_id}
    return json_response(answer.status, answer.body, headers)


def _base_url(state: KustomDoubleState) -> str:
    return state.base_url or request.host_url.rstrip("/")


def _om_url(state: KustomDoubleState, order_id: str, *parts: str) -> str:
    return "/".join([_base_url(state), "ordermanagement/v1/orders", order_id, *parts])


# Handlers: (state, body=..., **path params) -> ApiResponse; they may raise KustomError.
# The path parameters (order_id, capture_id, refund_id) are the state methods' own names.


def _read(read: Callable[..., Any]) -> Handler:
    """A GET: 200 with what ``read(state, **path)`` answers."""

    def handler(state: KustomDoubleState, body: Any, **path: str) -> ApiResponse:
        return ApiResponse(200, read(state, **path))

    return handler


def _act(act: Callable[..., None]) -> Handler:
    """A POST without a body: ``act(state, **path)``, then 204."""

    def handler(state: KustomDoubleState, body: Any, **path: str) -> ApiResponse:
        act(state, **path)
        return ApiResponse(204)

    return handler


def _created(state: KustomDoubleState, order_id: str, kind: str, new_id: str) -> ApiResponse:
    """Kustom's 201 for a new capture or refund: no body, its URL and id in headers."""
    header = f"{kind.capitalize()}-Id"
    url = _om_url(state, order_id, f"{kind}s", new_id)
    return ApiResponse(201, None, {"Location": url, header: new_id})


def _h_create_order(state: KustomDoubleState, body: Any) -> ApiResponse:
    order = state.create_order(body, base_url=_base_url(state))
    location = f"{_base_url(state)}/checkout/v3/orders/{order['order_id']}"
    return ApiResponse(201, order, {"Location": location})


def _h_update_order(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return ApiResponse(200, state.update_order(order_id, body))


def _h_merchant_references(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    state.update_merchant_references(order_id, body)
    return ApiResponse(204)


def _h_capture(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return _created(state, order_id, "capture", state.capture(order_id, body)["capture_id"])


def _h_refund(state: KustomDoubleState, body: Any, order_id: str) -> ApiResponse:
    return _created(state, order_id, "refund", state.refund(order_id, body)["refund_id"])


_h_get_order = _read(KustomDoubleState.read_order)
_h_om_get = _read(KustomDoubleState.om_order)
_h_get_capture = _read(KustomDoubleState.get_capture)
_h_get_refund = _read(KustomDoubleState.get_refund)
_h_acknowledge = _act(KustomDoubleState.acknowledge)
_h_cancel = _act(KustomDoubleState.cancel)
_h_release = _act(KustomDoubleState.release_remaining_authorization)
_h_extend_authorization = _act(KustomDoubleState.extend_authorization_time)


_OM = "/ordermanagement/v1/orders/<order_id>"
# (rule, methods, operation, handler, idempotent)
_API_ROUTES: tuple[tuple[str, str, str, Handler, bool], ...] = (
    ("/checkout/v3/orders", "POST", "create_order", _h_create_order, False),
    ("/checkout/v3/orders/<order_id>", "GET", "get_order", _h_get_order, False),
    ("/checkout/v3/orders/<order_id>", "POST", "update_order", _h_update_order, False),
    (_OM, "GET", "om_get", _h_om_get, False),
    (f"{_OM}/acknowledge", "POST", "acknowledge", _h_acknowledge, True),
    (f"{_OM}/merchant-references", "PATCH", "merchant_references", _h_merchant_references, True),
    (f"{_OM}/captures", "POST", "capture", _h_capture, True),
    (f"{_OM}/captures/<capture_id>", "GET", "get_capture", _h_get_capture, False),
    (f"{_OM}/refunds", "POST", "refund", _h_refund, True),
    (f"{_OM}/refunds/<refund_id>", "GET", "get_refund", _h_get_refund, False),
    (f"{_OM}/cancel", "POST", "cancel", _h_cancel, True),
    (f"{_OM}/release-remaining-authorization", "POST", "release", _h_release, True),
    (
        f"{_OM}/extend-authorization-time",
        "POST",
        "extend_authorization",
        _h_extend_authorization,
        True,
    ),
)


def register_api(app: Flask) -> None:
    """Kustom's Checkout v3 and Order Management endpoints, each through :func:`dispatch`;
    Kustom's answers to unknown paths and methods, and a correlation id on every answer."""
    for rule, method, operation, handler, idempotent in _API_ROUTES:

        def view(
            _operation: str = operation,
            _handler: Handler = handler,
            _idempotent: bool = idempotent,
            **kwargs: Any,
        ) -> Response:
            return dispatch(_operation, _handler, kwargs, _idempotent)

        app.add_url_rule(rule, endpoint=operation, view_func=view, methods=[method])

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return json_response(404, None)

    @app.errorhandler(405)
    def _method_not_allowed(_exc: Exception) -> Response:
        return json_response(
            405,
            {
                "error_code": "METHOD_NOT_ALLOWED",
                "error_messages": [f"Method {request.method} not allowed"],
                "correlation_id": getattr(g, "correlation_id", None) or str(uuid.uuid4()),
            },
        )

    @app.after_request
    def _correlation(response: Response) -> Response:
        if CORRELATION_HEADER not in response.headers:
            response.headers[CORRELATION_HEADER] = getattr(g, "correlation_id", None) or str(
                uuid.uuid4()
            )
        return response


def json_object() -> dict[str, Any]:
    """The body of a test-control or shopper call: a JSON object, ``{}`` when empty."""
    ok, body = request_json()
    if not ok:
        raise DoubleError(400, "malformed JSON")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise DoubleError(400, "expected a JSON object")
    return body


def register_control(app: Flask) -> None:
    """``/_double/...``: the test-control API (no auth): logs, faults, latency, orders."""

    @app.get("/_double/calls")
    def _calls() -> Response:
        operation = request.args.get("operation") or None
        order_id = request.args.get("order_id") or None
        return json_response(200, current_state().calls(operation, order_id=order_id))

    @app.get("/_double/callbacks")
    def _callbacks() -> Response:
        return json_response(200, current_state().callbacks(request.args.get("kind") or None))

    @app.post("/_double/reset")
    def _reset() -> Response:
        current_state().reset()
        return json_response(204, None)

    @app.get("/_double/faults")
    def _faults() -> Response:
        return json_response(200, current_state().pending_faults())

    @app.post("/_double/faults")
    def _add_faults() -> Response:
        body = json_object()
        operation = body.get("operation")
        if not isinstance(operation, str):
            raise DoubleError(400, "operation is required")
        statuses = body.get("statuses")
        if statuses is not None and not isinstance(statuses, list):
            raise DoubleError(400, "statuses must be a list")
        state = current_state()
        state.add_faults(
            operation,
            statuses,
            delay_seconds=body.get("delay_seconds"),
            count=body.get("count"),
        )
        return json_response(200, state.pending_faults())

    @app.delete("/_double/faults")
    def _clear_faults() -> Response:
        current_state().clear_faults(request.args.get("operation") or None)
        return json_response(204, None)

    @app.get("/_double/latency")
    def _get_latency() -> Response:
        return json_response(200, {"seconds": current_state().latency_seconds})

    @app.post("/_double/latency")
    def _set_latency() -> Response:
        seconds = json_object().get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise DoubleError(400, "seconds must be a number")
        current_state().set_latency(seconds)
        return json_response(200, {"seconds": current_state().latency_seconds})

    @app.get("/_double/orders")
    def _orders() -> Response:
        state = current_state()
        return json_response(200, [state.stored_order(oid) for oid in state.order_ids()])

    @app.get("/_double/orders/<order_id>")
    def _order(order_id: str) -> Response:
        stored = current_state().stored_order(order_id)
        if stored is None:
            raise DoubleError(404, f"unknown order {order_id}")
        return json_response(200, stored)

    @app.post("/_double/orders/<order_id>/complete")
    def _complete(order_id: str) -> Response:
        body = json_object()
        delay = body.get("push_delay_seconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise DoubleError(400, "push_delay_seconds must be a number >= 0")
        stored = current_state().complete_order(
            order_id,
            fraud_status=body.get("fraud_status", "ACCEPTED"),
            billing_address=body.get("billing_address"),
            shipping_address=body.get("shipping_address"),
            customer=body.get("customer"),
            push=bool(body.get("push", False)),
            push_delay_seconds=float(delay),
        )
        return json_response(200, stored)

    @app.post("/_double/orders/<order_id>/expire")
    def _expire(order_id: str) -> Response:
        current_state().expire_order(order_id)
        return json_response(204, None)

    @app.post("/_double/orders/<order_id>/push")
    def _push(order_id: str) -> Response:
        delay = json_object().get("delay_seconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise DoubleError(400, "delay_seconds must be a number >= 0")
        current_state().send_push(order_id, delay_seconds=float(delay))
        return json_response(202, None)

    @app.post("/_double/orders/<order_id>/fraud-status")
    def _fraud_status(order_id: str) -> Response:
        body = json_object()
        stored = current_state().set_fraud_status(
            order_id, str(body.get("fraud_status")), notify=bool(body.get("notify", False))
        )
        return json_response(200, stored)
