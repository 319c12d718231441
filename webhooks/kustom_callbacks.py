"""Kustom checkout callbacks: validation, address, country and shipping-option updates.

CONTRACT section 6. Every callback proves itself with the per-cart token first (401, and
nothing is read or stored otherwise); the body is parsed with unknown fields allowed, and
anything Kustom's callback schemas allow is read; the meaning lives in
`kustom_app.validation` and `kustom_app.callbacks`. Every refusal, whatever its cause, is
in Kustom's shape (see "refusals Kustom reads" below).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.exceptions import HTTPException

from kustom_app.callbacks import (
    APPROVAL_FAILED,
    UNKNOWN_OPTION_TEXT,
    CallbackAnswer,
    CallbackRefused,
    change_country,
    update_address,
    update_shipping_option,
)
from kustom_app.errors import Refusal
from kustom_app.jobs import Jobs
from kustom_app.logs import event_log
from kustom_app.metrics import VALIDATIONS
from kustom_app.validation import TRY_AGAIN_TEXT, Rejection
from webhooks import extension
from webhooks.callback_auth import verified_callback_cart
from webhooks.errors import HTTP_CODES, parse_json_object

log = event_log(__name__)

bp = Blueprint("kustom_callbacks", __name__)

REDIRECT_ERROR_PARAM = "kustom_error"


# -- schemas (Kustom's bodies; only what we use is checked, the rest is let through) ---------


def _amount(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=0), **kwargs)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class OrderLineSchema(_Lenient):
    type = fields.String(load_default=None, allow_none=True)
    reference = fields.String(load_default=None, allow_none=True)
    quantity = _amount(required=True)
    unit_price = fields.Integer(strict=True, required=True)
    tax_rate = fields.Integer(strict=True, load_default=None, allow_none=True)
    total_amount = fields.Integer(strict=True, required=True)
    total_discount_amount = fields.Integer(strict=True, load_default=None, allow_none=True)
    total_tax_amount = fields.Integer(strict=True, load_default=None, allow_none=True)


class MerchantUrlsSchema(_Lenient):
    checkout = fields.String(load_default=None, allow_none=True)


class ValidationOrderSchema(_Lenient):
    """Kustom's order as the validation callback sends it (``order`` schema)."""

    order_amount = _amount(required=True)
    order_tax_amount = _amount(required=True)
    order_lines = fields.List(fields.Nested(OrderLineSchema), required=True)
    purchase_currency = fields.String(required=True)
    merchant_reference1 = fields.String(load_default=None, allow_none=True)
    merchant_urls = fields.Nested(MerchantUrlsSchema, load_default=None, allow_none=True)


class ShippingOptionRefSchema(_Lenient):
    # Kustom's shipping_option.id is a string without a length limit: an id that is not
    # one of the cart's options is refused as such (approval_failed), not as malformed.
    id = fields.String(required=True)


class ShippingServiceRequestSchema(_Lenient):
    """The address/country/shipping-option callbacks' body (``shipping_service_request``)."""

    order_amount = _amount(load_default=None)
    order_tax_amount = _amount(load_default=None)
    purchase_currency = fields.String(load_default=None)
    billing_address = fields.Dict(load_default=None, allow_none=True)
    shipping_address = fields.Dict(load_default=None, allow_none=True)


class ShippingOptionUpdateSchema(ShippingServiceRequestSchema):
    # Optional in Kustom's schema: a body without one is refused as a choice we cannot
    # apply, not as malformed.
    selected_shipping_option = fields.Nested(
        ShippingOptionRefSchema, load_default=None, allow_none=True
    )


_validation_schema = ValidationOrderSchema()
_update_schema = ShippingServiceRequestSchema()
_shipping_option_schema = ShippingOptionUpdateSchema()


# -- refusals Kustom reads -----------------------------------------------------------------
#
# Kustom reads these four answers as 200 (go on), 30x (send the shopper there) or 400
# {"error_type", "error_text"} (show error_text, keep the shopper in the checkout); the
# error_type is one of address_error, unsupported_shipping_address, approval_failed (the
# callbacks' OpenAPI description, kustom-checkout-callbacks.yml, the 400 of each path:
# https://docs.kustom.co/contents/api/checkout-callback/other/updateshippingoption). A
# validation that fails with a 5xx lets the purchase through unless the order asked for
# require_validate_callback_success
# (https://docs.kustom.co/v3/checkout/use-cases/validate-order). So every refusal of
# these endpoints, even of a body we cannot read, is that 400 with approval_failed: the
# shopper is asked to try again and nothing is paid or changed unchecked.

UNREADABLE_TEXT = "We could not check your order just now. Please try again."


def kustom_refusal(code: str, text: str, *, status: int = 400, **more: Any) -> Response:
    response = jsonify({"error_type": code, "error_text": text, **more})
    response.status_code = status
    return response


def _unreadable(code: str, reason: str) -> Response:
    """A body we cannot take (malformed, off the schema, too deep, too large)."""
    log.warning("kustom.callback.unreadable", path=request.path, code=code, reason=reason)
    return kustom_refusal(APPROVAL_FAILED, UNREADABLE_TEXT)


@bp.errorhandler(Refusal)
def _refusal(e: Refusal) -> Response:
    if e.status == 401:
        # Not a refusal Kustom shows, but readable both as Kustom's shape and ours.
        error = {"code": e.code, "message": e.message, "details": e.details}
        return kustom_refusal(APPROVAL_FAILED, TRY_AGAIN_TEXT, status=401, error=error)
    return _unreadable(e.code, e.message)


@bp.errorhandler(ValidationError)
def _invalid_fields(e: ValidationError) -> Response:
    fields_ = sorted(e.messages) if isinstance(e.messages, dict) else ["_schema"]
    return _unreadable("validation_error", "fields=" + ",".join(map(str, fields_)))


@bp.errorhandler(HTTPException)
def _http_error(e: HTTPException) -> Response:
    status = e.code or 400
    return _unreadable(HTTP_CODES.get(status, "http_error"), f"http_{status}")


@bp.errorhandler(Exception)
def _failed(e: Exception) -> Response:
    log.exception("kustom.callback.failed", path=request.path, error=type(e).__name__)
    return kustom_refusal(APPROVAL_FAILED, TRY_AGAIN_TEXT)


# -- answers --------------------------------------------------------------------------------


def with_error_param(url: str, code: str) -> str:
    """``url`` with ``kustom_error=<code>`` in its query, any earlier one replaced.

    The rest of the query is kept byte for byte (a ``{checkout.order.id}`` placeholder
    stays unescaped), and so is the fragment.
    """
    parts = urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and pair.split("=", 1)[0] != REDIRECT_ERROR_PARAM
    ]
    kept.append(f"{REDIRECT_ERROR_PARAM}={code}")
    return urlunsplit(parts._replace(query="&".join(kept)))


def _checkout_url(order: dict[str, Any]) -> str | None:
    url = (order.get("merchant_urls") or {}).get("checkout")
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return str(url)


def _reject(rejection: Rejection, order: dict[str, Any]) -> Response:
    if extension.settings().validation_reject == 303:
        url = _checkout_url(order)
        if url is not None:
            response = Response(status=303)
            response.headers["Location"] = with_error_param(url, rejection.code)
            return response
        # Nowhere to send the shopper: the JSON refusal still keeps them in the checkout.
    return kustom_refusal(rejection.code, rejection.message)


def _refused(cart_id: str, e: CallbackRefused) -> Response:
    log.info("kustom.callback.refused", cart=cart_id, code=e.code, reason=e.reason)
    return kustom_refusal(e.code, e.text)


def _answered(answer: CallbackAnswer) -> Response:
    return jsonify(answer.body)


# -- endpoints ------------------------------------------------------------------------------


@bp.post("/kustom/validate")
def validate_order() -> Response:
    started = time.monotonic()
    cart_id = verified_callback_cart()
    order = _validation_schema.load(parse_json_object())
    services = extension.services()
    queue = extension.jobs()
    outcome = services.validator.validate(
        cart_id, order, services.store, services.commerce, started=started, jobs=queue
    )
    if outcome.rejection is not None:
        VALIDATIONS.labels("rejected", outcome.rejection.code).inc()
        response = _reject(outcome.rejection, order)
    else:
        VALIDATIONS.labels("approved", "").inc()
        response = jsonify({})
    if outcome.sync_hash is not None:
        # The backend had a newer render than the last event brought and the broker is not
        # the state Redis: queue its sync once Kustom has its answer, so a slow broker
        # cannot spend Kustom's 3 s.
        response.call_on_close(
            partial(_queue_sync, queue, cart_id, outcome.sync_hash, outcome.sync_payload)
        )
    return response


def _queue_sync(queue: Jobs, cart_id: str, payload_hash: str, payload: Any) -> None:
    try:
        queue.sync(cart_id, payload_hash, payload)
    except Exception as e:  # the cart is on the syncing index: the sweeper re-queues it
        log.error("kustom.validation.sync_not_queued", cart=cart_id, error=type(e).__name__)


def _address_callback(apply_change: Any) -> Response:
    """Address and country changes: both forward the shopper's addresses (section 5)."""
    cart_id = verified_callback_cart()
    body = _update_schema.load(parse_json_object())
    services = extension.services()
    try:
        answer = apply_change(
            services.store,
            services.commerce,
            cart_id,
            shipping_address=body["shipping_address"],
            billing_address=body["billing_address"],
        )
    except CallbackRefused as e:
        return _refused(cart_id, e)
    return _answered(answer)


@bp.post("/kustom/address-update")
def address_update() -> Response:
    return _address_callback(update_address)


@bp.post("/kustom/country-change")
def country_change() -> Response:
    return _address_callback(change_country)


@bp.post("/kustom/shipping-option-update")
def shipping_option_update() -> Response:
    cart_id = verified_callback_cart()
    body = _shipping_option_schema.load(parse_json_object())
    services = extension.services()
    try:
        option = body["selected_shipping_option"]
        if option is None:
            raise CallbackRefused(APPROVAL_FAILED, UNKNOWN_OPTION_TEXT, reason="no_shipping_option")
        answer = update_shipping_option(services.store, services.commerce, cart_id, option["id"])
    except CallbackRefused as e:
        return _refused(cart_id, e)
    return _answered(answer)
