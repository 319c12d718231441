"""Fast path: well-formed cart renders loaded without marshmallow.

What it shortcuts: `kustom_app.render_schema.CartRenderSchema`, which loads the render of
every cart event on the hot path; marshmallow's generic field machinery is most of what a
cart event's loading costs. `fast_load` checks the common well-formed render with plain
type checks and gives the same dict; for anything else it declines (None) and the schema
decides.

What it copies: the schema's answers (its rules, defaults and Decimal money), including
how marshmallow fills ``load_default`` fields, drops unknown ones (``EXCLUDE``) and runs
``post_load``.

Relies on: marshmallow 4.4.0 as installed (pyproject: ``marshmallow>=3.23,<5``): that
those are what the schema does; a marshmallow release that changes a default or a field's
handling changes the schema's answer, and the fast path no longer agrees.

Guarded by: ``tests/kustom_app/test_fastpath_render.py``
(``test_every_single_field_change_agrees_with_the_schema_or_declines`` and a property test:
the fast path equals the schema or declines, on every fixture render and every single-field
change of them).

Off (``KUSTOM_FAST_PATHS=off``): `use_fast_render` is told so at start
(`kustom_app.services.Services`) and `kustom_app.render.load_render` asks the schema only.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from kustom_app.money import as_decimal
from kustom_app.render_schema import LINE_TYPES, LOCALE_PATTERN, MAX_INT64

# The process's switch (KUSTOM_FAST_PATHS): `load_render` is a function, called from all
# over the domain, with no object of its own to carry the setting.
_enabled = True


def use_fast_render(enabled: bool) -> None:
    """Turn the fast path on or off for this process (done by `Services` from its settings)."""
    global _enabled
    _enabled = enabled


def fast_render_enabled() -> bool:
    return _enabled


class _Doubt(Exception):
    """The fast path is unsure: let the schema decide (and word the errors)."""


_LOCALE_RE = re.compile(LOCALE_PATTERN)
_CODE_RE = {2: re.compile(r"[A-Za-z]{2}\Z"), 3: re.compile(r"[A-Za-z]{3}\Z")}
_LINE_TYPE_SET = frozenset(LINE_TYPES)


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
    if type(value) is not int or not 0 <= value <= MAX_INT64:
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


def fast_load(data: Any) -> dict[str, Any] | None:
    """The common well-formed render, loaded exactly as `CartRenderSchema` would; None if
    unsure. It never accepts what the schema refuses: anything unusual (floats for counts,
    missing fields, wrong types) goes to the schema, which also words the errors.
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


__all__ = ["fast_load", "fast_render_enabled", "use_fast_render"]
