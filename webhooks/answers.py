"""The service's answers, as marshmallow schemas: what `webhooks.openapi` describes.

The views build their bodies with ``jsonify``; these schemas say what those bodies are,
field by field, so that the OpenAPI document (``GET /openapi.json``) is generated from
code rather than written beside it. Every response the test suite sees is held to them
(tests/webhooks/conftest.py), so a view that drifts from its schema fails there.
Unknown fields are refused (``additionalProperties: false``): a new field is a decision.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from kustom_app.callbacks import ADDRESS_ERROR, UNSUPPORTED_SHIPPING_ADDRESS
from kustom_app.ordermanagement.kinds import (
    CANCELLED,
    CAPTURED,
    FAILED,
    QUEUED,
    REFUNDED,
    RELEASED,
)
from kustom_app.validation import APPROVAL_FAILED


class _Answer(Schema):
    class Meta:
        unknown = RAISE


def _one_of(*choices: str, **kwargs: object) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(choices), **kwargs)  # type: ignore[arg-type]


def _nullable_text() -> fields.String:
    return fields.String(required=True, allow_none=True)


class ErrorDetailSchema(_Answer):
    code = fields.String(
        required=True,
        metadata={"description": "snake_case, stable: what a program tests."},
    )
    message = fields.String(required=True, metadata={"description": "A sentence for people."})
    details = fields.Dict(
        required=True,
        metadata={"description": "Context: field errors under `fields`, ids, limits."},
    )


class ErrorSchema(_Answer):
    """Every refusal of the service, except those of the callbacks Kustom reads."""

    error = fields.Nested(ErrorDetailSchema, required=True)


KUSTOM_ERROR_TYPES = (ADDRESS_ERROR, UNSUPPORTED_SHIPPING_ADDRESS, APPROVAL_FAILED)


class KustomRefusalSchema(_Answer):
    """A refusal in Kustom's shape (the callbacks' 400): Kustom shows ``error_text``."""

    error_type = _one_of(*KUSTOM_ERROR_TYPES)
    error_text = fields.String(required=True)


class KustomUnauthorizedSchema(KustomRefusalSchema):
    """A callback whose token is missing or wrong: readable as Kustom's shape and ours."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class CheckoutSchema(_Answer):
    kustomOrderId = fields.String(required=True)
    htmlSnippet = fields.String(
        required=True, metadata={"description": "Kustom's checkout snippet, to mount as is."}
    )
    syncing = fields.Boolean(required=True)


class CheckoutCompleteSchema(_Answer):
    status = _one_of("checkout_complete")
    cartState = _one_of("completed")
    orderNumber = _nullable_text()


class CheckoutIncompleteSchema(_Answer):
    status = _one_of("checkout_incomplete")


class CartStatusSchema(_Answer):
    cartId = fields.String(required=True)
    kustomOrderId = _nullable_text()
    pendingHash = _nullable_text()
    syncHash = _nullable_text()
    syncing = fields.Boolean(required=True, metadata={"description": "pendingHash != syncHash."})
    cartState = _one_of("open", "completing", "completed")


class RenderAcceptedSchema(_Answer):
    cartId = fields.String(required=True)
    pendingHash = _nullable_text()
    syncHash = _nullable_text()
    syncing = fields.Boolean(required=True)


PAYMENT_STATUSES = (QUEUED, CAPTURED, REFUNDED, CANCELLED, RELEASED, FAILED)


def _payment_status() -> fields.String:
    return _one_of(
        *PAYMENT_STATUSES,
        metadata={"description": "queued for a new event; a repeat answers the status it has."},
    )


class CaptureAcceptedSchema(_Answer):
    captureId = fields.String(required=True)
    status = _payment_status()


class RefundAcceptedSchema(_Answer):
    refundId = fields.String(required=True)
    status = _payment_status()


class CancelAcceptedSchema(_Answer):
    cartId = fields.String(required=True)
    status = _payment_status()


class ShippingServiceAnswerSchema(_Answer):
    """Kustom's ``shipping_service_response``, built from the backend's new render."""

    order_amount = fields.Integer(required=True, metadata={"description": "Minor units."})
    order_tax_amount = fields.Integer(required=True)
    order_lines = fields.List(fields.Dict(), required=True)
    shipping_options = fields.List(fields.Dict())
    purchase_currency = fields.String()


class ApprovedSchema(_Answer):
    """The validation callback's approval: an empty object."""


class CallbackAcceptedSchema(_Answer):
    status = _one_of("accepted")


class NotificationAcceptedSchema(_Answer):
    status = _one_of("accepted", "ignored")


class HealthSchema(_Answer):
    status = _one_of("ok")


class ReadySchema(_Answer):
    status = _one_of("ready")
