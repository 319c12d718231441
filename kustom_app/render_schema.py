"""The cart render's rules (CONTRACT section 4), as a marshmallow schema.

What a render may hold, field by field, and the error each field gets when it does not.
`kustom_app.render.load_render` holds every render to it: through `CartRenderSchema`
itself, or through the fast path of kustom_app/fastpath_render.py, which gives the same
answers.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, post_load, validate

from kustom_app.money import as_decimal

# \Z, not $: "$" also matches before a trailing newline, which Kustom would refuse.
LOCALE_PATTERN = r"[A-Za-z]{2}(-[A-Za-z]{2})*\Z"
# Counts travel to Kustom as int64.
MAX_INT64 = 2**63 - 1

# The Kustom order-line types a render line may carry (CONTRACT section 4; Kustom's
# `order_line.type`). `sales_tax` is not among them: the service builds that line itself
# from a US-style cart's tax. The first is the default.
LINE_TYPES = (
    "physical",
    "digital",
    "discount",
    "gift_card",
    "store_credit",
    "surcharge",
    "shipping_fee",
)
# Lines that take money off the cart: their unitPrice, salesTotal and taxTotal are <= 0.
NEGATIVE_LINE_TYPES = frozenset({"discount", "gift_card", "store_credit"})


class Money(fields.Field):
    """An amount in major units: a JSON number or a decimal string, loaded as `Decimal`."""

    default_error_messages = {
        "invalid": "Not a valid amount ({reason}): use a JSON number or a decimal string "
        'such as "249.99".',
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        try:
            return as_decimal(value)
        except (TypeError, ValueError) as e:
            raise self.make_error("invalid", reason=str(e)) from e

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class WholeNumber(fields.Field):
    """An integer count: refuses 1.5, "2" and booleans instead of truncating or coercing."""

    default_error_messages = {"invalid": "Not a whole number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        # JSON has one number type; 2.0 from a float-minded backend is still two pieces.
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise self.make_error("invalid")


class StrictBoolean(fields.Field):
    """Only JSON true/false: "false" or 0 silently meaning something is too risky here."""

    default_error_messages = {"invalid": "Not a boolean (use true or false)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class Code(fields.String):
    """An ISO letter code of fixed length, upper-cased (currency "sek" → "SEK")."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Regexp(
                rf"[A-Za-z]{{{length}}}\Z", error=f"Must be {length} letters."
            ),
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).upper()


def _text(*, required: bool = False, max_length: int | None = None) -> fields.String:
    """A non-empty string; optional ones may be null or absent (→ None)."""
    if required:
        return fields.String(required=True, validate=validate.Length(min=1, max=max_length))
    return fields.String(load_default=None, allow_none=True)


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class ShippingOptionSchema(_Strict):
    id = _text(required=True, max_length=255)
    # Longer names are truncated for Kustom, not refused: a long carrier name is no reason
    # to block a payment.
    name = _text(required=True)
    price = Money(required=True)
    taxRate = Money(required=True, validate=validate.Range(min=0, max=1))
    taxTotal = Money(required=True)
    description = _text()


class CartLineSchema(_Strict):
    lineId = _text(required=True, max_length=255)
    # Any length: the payload cuts it to Kustom's limit for `reference`.
    productNumber = _text(required=True)
    type = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(LINE_TYPES, error="Not a line type: use one of {choices}."),
    )
    description = _text()
    quantity = WholeNumber(required=True, validate=validate.Range(min=0, max=MAX_INT64))
    reservedQuantity = WholeNumber(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=MAX_INT64)
    )
    unitPrice = Money(required=True)
    discountTotal = Money(load_default=None, allow_none=True)
    salesTotal = Money(required=True)
    taxRate = Money(required=True, validate=validate.Range(min=0, max=1))
    taxTotal = Money(required=True)
    productUrl = _text()
    imageUrl = _text()

    @post_load
    def _fill_defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["reservedQuantity"] is None:
            data["reservedQuantity"] = data["quantity"]
        if data["discountTotal"] is None:
            data["discountTotal"] = Decimal(0)
        if data["type"] is None:
            data["type"] = LINE_TYPES[0]
        return data


class CartRenderSchema(_Strict):
    cartId = _text(required=True, max_length=255)
    version = WholeNumber(required=True, validate=validate.Range(min=0, max=MAX_INT64))
    channelKey = _text()
    currencyCode = Code(3, required=True)
    countryCode = Code(2, required=True)
    locale = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(LOCALE_PATTERN, error="Not a locale such as sv-SE."),
    )
    taxIncluded = StrictBoolean(required=True)
    cartTotal = Money(required=True)
    cartTaxTotal = Money(required=True)
    lines = fields.List(fields.Nested(CartLineSchema), required=True)
    shipping = fields.Nested(ShippingOptionSchema, load_default=None, allow_none=True)
    # None (absent or null) and [] differ: [] tells Kustom to drop options it had before.
    shippingOptions = fields.List(
        fields.Nested(ShippingOptionSchema), load_default=None, allow_none=True
    )
