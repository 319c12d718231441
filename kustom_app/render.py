"""The cart render (CONTRACT section 4): what the commerce backend says a cart is.

A render is loaded once, at the edge, into a plain dict with the same camelCase keys and
`Decimal` money, and stored as JSON (`dump_render`) so that every later step (payload
building, validation hooks, completion checks) works from the same exact numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from kustom_app.money import as_decimal

__all__ = [
    "LINE_TYPES",
    "NEGATIVE_LINE_TYPES",
    "CartLineSchema",
    "CartRenderSchema",
    "ShippingOptionSchema",
    "ValidationError",
    "compact_json",
    "dump_render",
    "load_render",
    "render_json",
]

# \Z, not $: "$" also matches before a trailing newline, which Kustom would refuse.
_LOCALE = r"[A-Za-z]{2}(-[A-Za-z]{2})*\Z"
# Counts travel to Kustom as int64.
_MAX_INT64 = 2**63 - 1

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
_LINE_TYPE_SET = frozenset(LINE_TYPES)


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
    quantity = WholeNumber(required=True, validate=validate.Range(min=0, max=_MAX_INT64))
    reservedQuantity = WholeNumber(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=_MAX_INT64)
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
    version = WholeNumber(required=True, validate=validate.Range(min=0, max=_MAX_INT64))
    channelKey = _text()
    currencyCode = Code(3, required=True)
    countryCode = Code(2, required=True)
    locale = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(_LOCALE, error="Not a locale such as sv-SE."),
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


_SCHEMA = CartRenderSchema()


class _Doubt(Exception):
    """The fast path is unsure: let the schema decide (and word the errors)."""


_LOCALE_RE = re.compile(_LOCALE)
_CODE_RE = {2: re.compile(r"[A-Za-z]{2}\Z"), 3: re.compile(r"[A-Za-z]{3}\Z")}


def _f_text(data: dict[str, Any], key: str, max_length: int | None = None) -> str:
    value = data.get(key)
    if type(value) is not str or not value or (max_length and len(value) > max_length):
        raise _Doubt
    return value


def _f_optional_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and type(value) is not str:
        raise _Doubt
    return value


def _f_int(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_INT64:
        raise _Doubt
    return value


def _f_money(value: Any) -> Decimal:
    if value is None:
        raise _Doubt
    try:
        return as_decimal(value)
    except (TypeError, ValueError) as e:
        raise _Doubt from e


def _f_rate(value: Any) -> Decimal:
    rate = _f_money(value)
    if not 0 <= rate <= 1:
        raise _Doubt
    return rate


def _f_code(data: dict[str, Any], key: str, length: int) -> str:
    value = data.get(key)
    if type(value) is not str or not _CODE_RE[length].match(value):
        raise _Doubt
    return value.upper()


def _f_option(data: Any) -> dict[str, Any]:
    if type(data) is not dict:
        raise _Doubt
    return {
        "id": _f_text(data, "id", 255),
        "name": _f_text(data, "name"),
        "price": _f_money(data.get("price")),
        "taxRate": _f_rate(data.get("taxRate")),
        "taxTotal": _f_money(data.get("taxTotal")),
        "description": _f_optional_text(data, "description"),
    }


def _f_line(data: Any) -> dict[str, Any]:
    if type(data) is not dict:
        raise _Doubt
    quantity = _f_int(data.get("quantity"))
    reserved = data.get("reservedQuantity")
    discount = data.get("discountTotal")
    line_type = data.get("type")
    if line_type is None:
        line_type = LINE_TYPES[0]
    elif type(line_type) is not str or line_type not in _LINE_TYPE_SET:
        raise _Doubt
    return {
        "lineId": _f_text(data, "lineId", 255),
        "productNumber": _f_text(data, "productNumber"),
        "type": line_type,
        "description": _f_optional_text(data, "description"),
        "quantity": quantity,
        "reservedQuantity": quantity if reserved is None else _f_int(reserved),
        "unitPrice": _f_money(data.get("unitPrice")),
        "discountTotal": Decimal(0) if discount is None else _f_money(discount),
        "salesTotal": _f_money(data.get("salesTotal")),
        "taxRate": _f_rate(data.get("taxRate")),
        "taxTotal": _f_money(data.get("taxTotal")),
        "productUrl": _f_optional_text(data, "productUrl"),
        "imageUrl": _f_optional_text(data, "imageUrl"),
    }


def _fast_load(data: Any) -> dict[str, Any] | None:
    """The common well-formed render, loaded exactly as the schema would; None if unsure.

    The schema costs ~150 µs per render on the hot path of every cart event; this costs a
    fraction. It never accepts what the schema refuses (tested property-based): anything
    unusual (floats for counts, missing fields, wrong types) goes to the schema.
    """
    if type(data) is not dict:
        return None
    try:
        country = _f_code(data, "countryCode", 2)
        locale = data.get("locale")
        if locale is not None and (type(locale) is not str or not _LOCALE_RE.match(locale)):
            raise _Doubt
        tax_included = data.get("taxIncluded")
        if tax_included is not True and tax_included is not False:
            raise _Doubt
        lines = data.get("lines")
        if type(lines) is not list:
            raise _Doubt
        shipping = data.get("shipping")
        options = data.get("shippingOptions")
        if options is not None and type(options) is not list:
            raise _Doubt
        return {
            "cartId": _f_text(data, "cartId", 255),
            "version": _f_int(data.get("version")),
            "channelKey": _f_optional_text(data, "channelKey"),
            "currencyCode": _f_code(data, "currencyCode", 3),
            "countryCode": country,
            "locale": locale,
            "taxIncluded": tax_included,
            "cartTotal": _f_money(data.get("cartTotal")),
            "cartTaxTotal": _f_money(data.get("cartTaxTotal")),
            "lines": [_f_line(line) for line in lines],
            "shipping": None if shipping is None else _f_option(shipping),
            "shippingOptions": None if options is None else [_f_option(o) for o in options],
        }
    except _Doubt:
        return None


def load_render(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a cart render at the edge, so nothing downstream meets a float or a typo.

    Unknown fields are dropped (the commerce backend may send more than we use); optional
    fields are filled (`locale` "en-<COUNTRY>", `reservedQuantity` = quantity,
    `discountTotal` 0, a line's `type` "physical", `channelKey`/`shipping`/`shippingOptions`
    None). Raises `marshmallow.ValidationError` whose `messages` name each bad field.
    """
    fast = _fast_load(data)
    if fast is not None:
        return fast
    result: dict[str, Any] = _SCHEMA.load(data)
    return result


def dump_render(render: dict[str, Any]) -> dict[str, Any]:
    """A loaded render as JSON-safe data for storage; `load_render` gives it back equal.

    Decimals become their own string ("250.00" stays "250.00", never a float), so the
    stored render keeps the precision the commerce backend sent.
    """
    stored: dict[str, Any] = json.loads(render_json(render))
    return stored


def render_json(render: dict[str, Any], *, sort_keys: bool = False) -> str:
    """A loaded render as the JSON text it is stored as (`dump_render`'s data), in one
    encoder pass that turns each Decimal into its string as it meets it."""
    return compact_json(render, sort_keys=sort_keys, default=_money_text)


def compact_json(
    value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, ...)``, written by
    orjson: the same text (held to it by a property test), several times faster on the
    hot path's renders and payloads. What orjson refuses (a lone surrogate, an integer
    beyond 64 bits) the standard library writes as before, so the text never differs."""
    try:
        option = orjson.OPT_SORT_KEYS if sort_keys else 0
        return orjson.dumps(value, default=default, option=option).decode()
    except TypeError:
        return json.dumps(
            value, separators=(",", ":"), sort_keys=sort_keys, default=default, ensure_ascii=False
        )


def _money_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
