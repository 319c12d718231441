"""Storefront endpoints, called from the shopper's browser (CONTRACT section 3)."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from kustom_app.checkout import StorefrontUrls
from kustom_app.commerce import CommerceUnavailable
from kustom_app.kustom import KustomRejected, KustomUnavailable
from webhooks import extension
from webhooks.errors import ApiError, parse_json_object
from webhooks.schemas import CART_ID_PATTERN, CheckoutRequestSchema

bp = Blueprint("storefront", __name__)

_checkout_schema = CheckoutRequestSchema()


def checked_cart_id(cart_id: str) -> str:
    if not CART_ID_PATTERN.match(cart_id):
        raise ApiError(
            400, "invalid_cart_id", "The cart id has characters or a length not allowed."
        )
    return cart_id


@bp.after_request
def _cors(response: Response) -> Response:
    origin = request.headers.get("Origin")
    allowed = extension.settings().cors_allowed_origins
    if origin and (origin in allowed or "*" in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.route("/carts/<cart_id>/kustom", methods=["OPTIONS"])
@bp.route("/carts/<cart_id>/kustom/<path:_rest>", methods=["OPTIONS"])
def _preflight(cart_id: str, _rest: str = "") -> Response:
    return Response(status=204)


@bp.post("/carts/<cart_id>/kustom")
def checkout(cart_id: str) -> Response:
    checked_cart_id(cart_id)
    body = _checkout_schema.load(parse_json_object())
    services = extension.services()
    if not services.settings.kustom_configured:
        raise ApiError(
            503,
            "kustom_not_configured",
            "Kustom credentials are not configured (KUSTOM_USERNAME, KUSTOM_PASSWORD).",
        )
    result = services.checkout.open(
        cart_id,
        StorefrontUrls(body["termsUrl"], body["checkoutUrl"], body["confirmationUrl"]),
    )
    if result.enqueue_sync:
        state = services.store.load(cart_id)
        extension.jobs().sync(cart_id, state.pending_hash if state else None, None)
    return jsonify(
        {
            "kustomOrderId": result.order_id,
            "htmlSnippet": result.html_snippet,
            "syncing": result.syncing,
        }
    )


@bp.get("/carts/<cart_id>/kustom/status")
def status(cart_id: str) -> Response:
    checked_cart_id(cart_id)
    state = extension.services().store.load(cart_id)
    if state is None:
        raise ApiError(404, "cart_not_found", f"Nothing is known about cart {cart_id}.")
    return jsonify(state.status())


def _completed(order_number: str | None) -> Response:
    return jsonify(
        {"status": "checkout_complete", "cartState": "completed", "orderNumber": order_number}
    )


def _incomplete() -> Response:
    response = jsonify({"status": "checkout_incomplete"})
    response.status_code = 202
    return response


@bp.post("/carts/<cart_id>/kustom/confirm")
def confirm(cart_id: str) -> Response:
    """The browser is back on the confirmation page: complete the cart if Kustom has."""
    checked_cart_id(cart_id)
    services = extension.services()
    state = services.store.load(cart_id)
    if state is None:
        raise ApiError(404, "cart_not_found", f"Nothing is known about cart {cart_id}.")
    if state.cart_state == "completed":  # repeated confirm: same answer, no work
        return _completed(state.order_number)
    if not state.order_id:
        raise ApiError(404, "kustom_order_not_found", f"Cart {cart_id} has no Kustom order.")
    tasks = extension.jobs()
    try:
        outcome = services.completion.complete(
            cart_id,
            state.order_id,
            path="confirm",
            token=uuid.uuid4().hex,
            wait_seconds=services.settings.confirm_wait_seconds,
        )
    except CommerceUnavailable:
        # The completion task retries with backoff; the browser keeps asking meanwhile.
        tasks.complete(cart_id, state.order_id, "confirm")
        return _incomplete()
    except KustomUnavailable as e:
        raise ApiError(502, "kustom_unavailable", "Kustom did not answer; try again.") from e
    except KustomRejected as e:  # a 4xx other than 404 (that is kustom_order_not_found)
        raise ApiError(
            502,
            "kustom_unavailable",
            "Kustom refused to show the order; nothing was completed.",
            {
                "status": e.status,
                "kustomErrorCode": e.error_code,
                "correlationId": e.correlation_id,
            },
        ) from e
    if outcome.status == "completed":
        if outcome.newly_completed:
            tasks.acknowledge(cart_id, outcome.order_id)
        return _completed(outcome.order_number)
    if outcome.status == "mismatch":
        raise ApiError(
            409,
            "amount_mismatch",
            "Kustom's order does not match the cart; nothing was completed.",
            {"kustomOrderId": outcome.order_id, "reasons": outcome.reasons},
        )
    return _incomplete()
