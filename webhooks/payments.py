"""Payment events from the commerce backend: capture, refund, cancel (CONTRACT section 4).

Signed like every commerce event; checked with marshmallow; recorded once per id (a repeat
answers 202 with the status it already has and queues nothing); the work runs in a task.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from kustom_app.logs import bind_cart
from kustom_app.ordermanagement import (
    CANCEL,
    CAPTURE,
    REFUND,
    Accepted,
    PaymentRequest,
    prepare_cancel,
    prepare_capture,
    prepare_refund,
)
from kustom_app.render import Code, Money
from webhooks import extension
from webhooks.commerce import verify_commerce_signature
from webhooks.errors import parse_json_object
from webhooks.schemas import CART_ID_PATTERN

bp = Blueprint("payments", __name__, url_prefix="/commerce")
bp.before_request(verify_commerce_signature)


def _identifier(**kwargs: Any) -> fields.String:
    # Ids travel in URLs, Redis keys and Kustom's `reference` (max 255).
    return fields.String(
        required=True,
        validate=validate.Regexp(
            CART_ID_PATTERN, error="Use 1-255 letters, digits and . _ : @ ~ + -"
        ),
        **kwargs,
    )


class _PaymentEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # the backend may send more than we use

    cartId = _identifier()
    amount = Money(required=True)
    currencyCode = Code(3, required=True)
    lines = fields.List(fields.Dict(), load_default=None, allow_none=True)
    description = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=255)
    )

    @validates("amount")
    def _positive(self, value: Any, **_: Any) -> None:
        if value <= 0:
            raise ValidationError("Must be greater than 0.")


class CaptureEventSchema(_PaymentEventSchema):
    captureId = _identifier()
    shippingInfo = fields.List(fields.Dict(), load_default=None, allow_none=True)


class RefundEventSchema(_PaymentEventSchema):
    refundId = _identifier()


class CancelEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    cartId = _identifier()


def _accept(request: PaymentRequest) -> Response:
    bind_cart(request.cart_id)
    accepted: Accepted = extension.services().payment_operations.accept(request)
    if accepted.enqueue:
        queue = extension.jobs()
        {CAPTURE: queue.capture, REFUND: queue.refund, CANCEL: queue.cancel}[request.kind](
            request.op_id
        )
    response = jsonify(accepted.answer())
    response.status_code = 202
    return response


def _prepare(prepare: Any, event: dict[str, Any]) -> PaymentRequest:
    request: PaymentRequest = prepare(event)  # a PaymentEventError answers itself
    return request


@bp.post("/payment-capture")
def payment_capture() -> Response:
    """OnPaymentCapture: capture (part of) the authorization; the result follows later."""
    event = CaptureEventSchema().load(parse_json_object())
    return _accept(_prepare(prepare_capture, event))


@bp.post("/payment-refund")
def payment_refund() -> Response:
    """Refund (part of) what was captured; the result follows later."""
    event = RefundEventSchema().load(parse_json_object())
    return _accept(_prepare(prepare_refund, event))


@bp.post("/order-cancel")
def order_cancel() -> Response:
    """Cancel the order when nothing is captured, else release what is left."""
    event = CancelEventSchema().load(parse_json_object())
    return _accept(prepare_cancel(event["cartId"]))
