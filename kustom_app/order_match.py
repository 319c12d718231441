"""Does Kustom's order hold what the service sent? Comparing order lines with a payload.

Kustom answers with its own view of an order (the checkout order, the order-management
order, the validation callback's body): names may be trimmed, defaults left out, lines in
another order, and (without the shipping callback) a shipping line Kustom added itself.
Completion, validation and the sync's read-back ask these questions the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Fields that decide what the shopper pays for, and Kustom's defaults where it leaves one out.
_COMPARED_LINE_FIELDS = {
    "type": "physical",
    "reference": None,
    "quantity": None,
    "unit_price": None,
    "tax_rate": 0,
    "total_amount": None,
    "total_discount_amount": 0,
    "total_tax_amount": 0,
}


def _line_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        line[name] if line.get(name) is not None else default
        for name, default in _COMPARED_LINE_FIELDS.items()
    )


def same_order_lines(
    theirs: Iterable[Mapping[str, Any]], ours: Iterable[Mapping[str, Any]]
) -> bool:
    """Whether Kustom's order lines are the payload's, in any order (names may differ)."""
    return Counter(map(_line_key, theirs)) == Counter(map(_line_key, ours))


def _price_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a shipping line costs, whatever Kustom names or references it."""
    key = _line_key(line)
    return key[:1] + key[2:]


def _option_line(option: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "shipping_fee",
        "reference": option["id"],
        "name": option["name"],
        "quantity": 1,
        "unit_price": option["price"],
        "tax_rate": option["tax_rate"],
        "total_amount": option["price"],
        "total_discount_amount": 0,
        "total_tax_amount": option["tax_amount"],
    }


def with_kustom_added_shipping(
    payload: dict[str, Any], kustom_lines: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """The payload as Kustom holds it when it added the shopper's shipping option itself.

    An order created without a ``shipping_option_update`` callback gets the selected
    option's price added by Kustom (docs.kustom.co checkout/use-cases/shipping), and the
    shopper may pick another of the offered options in the iframe. So when the payload
    carries no line for any offered option and Kustom's lines are the payload's plus exactly
    one shipping line at the price of an offered option, that is the order the cart meant:
    the payload with that line and amounts. Otherwise the payload unchanged.
    """
    options = payload.get("shipping_options") or []
    ours = payload["order_lines"]
    offered = {option["id"] for option in options}
    if not options or any(
        line["type"] == "shipping_fee" and line["reference"] in offered for line in ours
    ):
        return payload
    theirs = list(kustom_lines)
    extra = Counter(map(_line_key, theirs)) - Counter(map(_line_key, ours))
    if sum(extra.values()) != 1 or len(theirs) != len(ours) + 1:
        return payload
    (added_key,) = extra
    added = next(line for line in theirs if _line_key(line) == added_key)
    if not any(_price_key(_option_line(option)) == _price_key(added) for option in options):
        return payload
    return {
        **payload,
        "order_lines": [*ours, dict(added)],
        "order_amount": payload["order_amount"] + int(added["total_amount"]),
        "order_tax_amount": payload["order_tax_amount"] + int(added.get("total_tax_amount") or 0),
    }


# Codes Kustom may give back in another case.
_CODE_FIELDS = frozenset({"purchase_country", "purchase_currency", "locale"})


def order_has_payload(order: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Whether Kustom's order, as read back, holds every field of ``payload`` as it was sent.

    This decides that an update whose answer never came need not be pushed again. Lines
    compare on what the shopper pays (`same_order_lines`, with Kustom's defaults for fields
    left out) and on every field sent (names, URLs too); shipping options on every field
    sent; both in any order, Kustom's own extra fields ignored. Codes (country, currency,
    locale) ignore case. When in doubt this says no: a needless push costs one call. An
    order Kustom added the shopper's shipping option to itself holds the payload too
    (`with_kustom_added_shipping`).
    """
    payload = with_kustom_added_shipping(dict(payload), order.get("order_lines") or ())
    for name, ours in payload.items():
        theirs = order.get(name)
        if name == "order_lines":
            same = (
                isinstance(theirs, list)
                and same_order_lines(theirs, ours)
                and _pairs_off(theirs, ours)
            )
        elif name == "shipping_options":
            same = isinstance(theirs, list) and _pairs_off(theirs, ours)
        elif name in _CODE_FIELDS:
            same = isinstance(theirs, str) and theirs.lower() == str(ours).lower()
        else:
            same = theirs == ours
        if not same:
            return False
    return True


def _pairs_off(theirs: Sequence[Any], ours: Sequence[Mapping[str, Any]]) -> bool:
    """Whether each of ``ours`` has its own item in ``theirs`` holding all of its fields."""
    if len(theirs) != len(ours):
        return False
    left = list(theirs)
    for item in sorted(ours, key=len, reverse=True):  # the most specific first
        for i, candidate in enumerate(left):
            if isinstance(candidate, Mapping) and all(
                candidate.get(k) == v for k, v in item.items()
            ):
                del left[i]
                break
        else:
            return False
    return True
