"""Events from the commerce backend (CONTRACT section 4). Signed; verified before parsing."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from kustom_app.logs import bind_cart
from kustom_app.render import load_render
from kustom_app.signing import InvalidSignature, verify_signature
from kustom_app.sync import ingest_render
from webhooks import extension
from webhooks.errors import ApiError, parse_json_object
from webhooks.schemas import CART_ID_PATTERN

bp = Blueprint("commerce", __name__, url_prefix="/commerce")

INBOUND_SIGNATURE_HEADER = "X-Commerce-Signature"


@bp.before_request
def verify_commerce_signature() -> None:
    """Refuse (401/503) a commerce event that is not signed with the shared secret."""
    secret = extension.settings().commerce_webhook_secret
    if not secret:
        raise ApiError(
            503,
            "commerce_not_configured",
            "COMMERCE_WEBHOOK_SECRET is not set; commerce events cannot be verified.",
        )
    header = request.headers.get(INBOUND_SIGNATURE_HEADER)
    if not header:  # before the body is read: as cheap as a refusal gets
        raise ApiError(
            401, "invalid_signature", f"The {INBOUND_SIGNATURE_HEADER} header is missing."
        )
    try:
        verify_signature(secret, request.get_data(cache=True), header)
    except InvalidSignature as e:
        raise ApiError(401, "invalid_signature", f"The signature is not valid: {e}.") from e


@bp.post("/cart-mutation")
def cart_mutation() -> Response:
    render = load_render(parse_json_object())
    if not CART_ID_PATTERN.match(render["cartId"]):
        raise ApiError(
            400, "invalid_cart_id", "The cart id has characters or a length not allowed."
        )
    bind_cart(render["cartId"])
    queue = extension.jobs()
    services = extension.services()
    outcome, prepared = ingest_render(
        services.store, render, queue, kustom_adds_shipping=services.checkout.kustom_adds_shipping
    )
    if outcome.enqueue:
        queue.sync(render["cartId"], prepared.hash, prepared.payload)
    # Serialised here rather than by jsonify: the one answer of the hottest endpoint.
    body = json.dumps(
        {
            "cartId": render["cartId"],
            "pendingHash": outcome.pending_hash,
            "syncHash": outcome.sync_hash,
            "syncing": outcome.syncing,
        },
        separators=(",", ":"),
    )
    return current_app.response_class(body, status=202, mimetype="application/json")
