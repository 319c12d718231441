"""Event lines and shipping info as Kustom's order-management API takes them.

Event lines (``lines``) come in either of two shapes, told apart per line:

* Kustom's own ``order_line`` (snake_case, integer minor units: ``name``, ``quantity``,
  ``unit_price``, ``total_amount``, optional ``type``, ``reference``, ``tax_rate``,
  ``total_discount_amount``, ``total_tax_amount``, ...): recognised by ``total_amount``,
  checked and passed on as is;
* the cart render's line (``lineId``, ``productNumber``, ``description``, ``quantity``,
  ``unitPrice``, ``discountTotal``, ``salesTotal``, ``taxRate``, ``taxTotal`` in major
  units, optional ``type``): converted exactly, like the checkout payload (tax included).

Either way every line must satisfy ``total_amount = quantity x unit_price -
total_discount_amount`` and the lines must add up to the event's ``amount``; an event that
does not is refused (400) rather than sent. ``shippingInfo`` items are Kustom's
``shipping_info`` objects, keys in snake_case or camelCase (``shippingCompany`` ...).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from marshmallow import ValidationError

from kustom_app.money import NotRepresentable, to_major, to_minor, to_tax_rate
from kustom_app.ordermanagement.errors import refuse
from kustom_app.payload import cut_to_limit, link_problem
from kustom_app.render import CartLineSchema

# Kustom's order-management limits (kustom-order-management-api.yml).
MAX_OM_AMOUNT = 200_000_000
MAX_LINES = 1000
MAX_SHIPPING_INFO = 500
MAX_TEXT = 255
MAX_URL = 1024

LINE_TYPES = frozenset(
    {
        "physical",
        "discount",
        "shipping_fee",
        "sales_tax",
        "store_credit",
        "gift_card",
        "digital",
        "surcharge",
        "return_fee",
    }
)
_LINE_INTS = ("quantity", "unit_price", "total_amount", "total_discount_amount")
_LINE_OPTIONAL_INTS = ("tax_rate", "total_tax_amount")
_LINE_TEXTS = {
    "reference": MAX_TEXT,
    "quantity_unit": 8,
    "merchant_data": MAX_URL,
    "product_url": MAX_URL,
    "image_url": MAX_URL,
}
_KUSTOM_LINE_FIELDS = frozenset({"type", "name", *_LINE_INTS, *_LINE_OPTIONAL_INTS, *_LINE_TEXTS})
_SHIPPING_INFO_FIELDS = {
    "shipping_company": 100,
    "shipping_method": 100,
    "tracking_number": 100,
    "tracking_uri": MAX_URL,
    "return_shipping_company": 100,
    "return_tracking_number": 100,
    "return_tracking_uri": MAX_URL,
}
_CAMEL = {
    "".join(part.title() if i else part for i, part in enumerate(name.split("_"))): name
    for name in _SHIPPING_INFO_FIELDS
}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kustom_line(line: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(line) - _KUSTOM_LINE_FIELDS)
    if unknown:
        raise refuse("invalid_lines", f"{where} has unknown fields {unknown}.", line=where)
    name = line.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TEXT:
        raise refuse("invalid_lines", f"{where} needs a name of 1 to 255 characters.", line=where)
    out: dict[str, Any] = {"type": line.get("type", "physical"), "name": name}
    if out["type"] not in LINE_TYPES:
        raise refuse("invalid_lines", f"{where} has an unknown type.", line=where)
    for key in _LINE_INTS + _LINE_OPTIONAL_INTS:
        value = line.get(key, 0 if key not in ("quantity", "unit_price", "total_amount") else None)
        if not _is_int(value) or abs(value) > MAX_OM_AMOUNT:
            raise refuse(
                "invalid_lines", f"{where} {key} must be an integer in minor units.", line=where
            )
        out[key] = value
    if (
        out["quantity"] < 0
        or out["total_discount_amount"] < 0
        or not 0 <= out["tax_rate"] <= 10_000
    ):
        raise refuse(
            "invalid_lines", f"{where} has a negative count or a bad tax rate.", line=where
        )
    for key, limit in _LINE_TEXTS.items():
        if key in line:
            if not isinstance(line[key], str) or len(line[key]) > limit:
                raise refuse("invalid_lines", f"{where} {key} is too long.", line=where)
            out[key] = line[key]
    return out


def _commerce_line(line: dict[str, Any], currency: str, where: str) -> dict[str, Any]:
    try:
        # The type is checked below against the order-management API's own list, which
        # is longer than a cart render's (sales_tax, return_fee).
        loaded = CartLineSchema().load({k: v for k, v in line.items() if k != "type"})
    except ValidationError as e:
        raise refuse("invalid_lines", f"{where} is not a valid line.", fields=e.messages) from e
    line_type = line.get("type", "physical")
    if line_type not in LINE_TYPES:
        raise refuse("invalid_lines", f"{where} has an unknown type.", line=where)
    try:
        converted = {
            "type": line_type,
            "reference": cut_to_limit(loaded["productNumber"]),
            "name": cut_to_limit(loaded["description"] or loaded["productNumber"]),
            "quantity": loaded["quantity"],
            "quantity_unit": "pcs",
            "unit_price": to_minor(loaded["unitPrice"], currency, what=f"{where} unitPrice"),
            "tax_rate": to_tax_rate(loaded["taxRate"], what=f"{where} taxRate"),
            "total_amount": to_minor(loaded["salesTotal"], currency, what=f"{where} salesTotal"),
            "total_discount_amount": to_minor(
                loaded["discountTotal"], currency, what=f"{where} discountTotal"
            ),
            "total_tax_amount": to_minor(loaded["taxTotal"], currency, what=f"{where} taxTotal"),
        }
    except NotRepresentable as e:
        raise refuse("amount_not_representable", e.message, line=where) from e
    except ValueError as e:
        raise refuse("invalid_lines", str(e), line=where) from e
    for key, target in (("productUrl", "product_url"), ("imageUrl", "image_url")):
        if loaded[key] and link_problem(loaded[key]) is None:
            converted[target] = loaded[key]
    return converted


def kustom_order_lines(lines: list[Any], currency: str, amount: int) -> list[dict[str, Any]]:
    """Event lines as Kustom ``order_lines`` (see the module docstring for both shapes).

    Raises `PaymentEventError` (400) when a line is malformed, its arithmetic is off, or
    the lines do not add up to ``amount`` (minor units).
    """
    if len(lines) > MAX_LINES:
        raise refuse("invalid_lines", f"At most {MAX_LINES} lines are accepted.")
    result = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, dict):
            raise refuse("invalid_lines", f"{where} must be an object.", line=where)
        converted = (
            _kustom_line(line, where)
            if "total_amount" in line
            else _commerce_line(line, currency, where)
        )
        expected = (
            converted["quantity"] * converted["unit_price"] - converted["total_discount_amount"]
        )
        if converted["total_amount"] != expected:
            raise refuse(
                "invalid_lines",
                f"{where} total {converted['total_amount']} does not equal quantity x unit "
                f"price - discount = {expected} (minor units).",
                line=where,
            )
        result.append(converted)
    total = sum(line["total_amount"] for line in result)
    if result and total != amount:
        raise refuse(
            "lines_do_not_match_amount",
            f"The lines add up to {to_major(total, currency)} {currency}, the amount is "
            f"{to_major(amount, currency)} {currency}.",
        )
    return result


def kustom_shipping_info(items: list[Any]) -> list[dict[str, str]]:
    """``shippingInfo`` as Kustom's ``shipping_info`` list (camelCase keys accepted)."""
    if len(items) > MAX_SHIPPING_INFO:
        raise refuse("invalid_shipping_info", f"At most {MAX_SHIPPING_INFO} items are accepted.")
    result = []
    for index, item in enumerate(items):
        where = f"shippingInfo[{index}]"
        if not isinstance(item, dict):
            raise refuse("invalid_shipping_info", f"{where} must be an object.")
        converted: dict[str, str] = {}
        for key, value in item.items():
            name = _CAMEL[key] if key in _CAMEL else str(key)
            limit = _SHIPPING_INFO_FIELDS.get(name)
            if limit is None:
                raise refuse("invalid_shipping_info", f"{where} has an unknown field {key!r}.")
            if not isinstance(value, str) or len(value) > limit:
                raise refuse(
                    "invalid_shipping_info",
                    f"{where} {key} must be text of at most {limit} characters.",
                )
            converted[name] = value
        result.append(converted)
    return result
