"""Cart render → the cart part of a Kustom order body, and the hash that tracks its sync.

Kustom refuses an order whose arithmetic does not add up in minor units (CONTRACT section 8,
invariant 5), and a payment for an amount other than the cart's is worse than none. So the
builder never rounds or repairs anything: it converts exactly, checks every sum Kustom
checks, and refuses the cart (`CartNotPayable`, answered as 422 `cart_not_payable`) naming
the first line or total that is wrong.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from kustom_app.logs import event_log
from kustom_app.money import NotRepresentable, to_major, to_minor, to_tax_rate
from kustom_app.render import LINE_TYPES, NEGATIVE_LINE_TYPES, compact_json

log = event_log(__name__)

# Limits from the `order` / `order_line` schemas of Kustom's OpenAPI description.
MAX_ORDER_LINES = 1000
MAX_LINE_AMOUNT = 100_000_000
MAX_NAME_LENGTH = 255
MAX_URL_LENGTH = 1024
MAX_QUANTITY_UNIT_LENGTH = 8

# The largest order body the service can make Kustom hold, as Kustom may echo it back (the
# validation callback carries the whole order): every line at its limits, names and
# references written as JSON \uXXXX escapes (6 bytes per UTF-16 unit), URLs (ASCII) with
# every "/" escaped, room for the fields Kustom adds to a line and for the order's own
# fields (addresses, customer, options, merchant_urls, shipping options, ...).
_LINE_FIXED_BYTES = 1024
_ORDER_FIXED_BYTES = 256 * 1024
MAX_ORDER_JSON_BYTES = _ORDER_FIXED_BYTES + MAX_ORDER_LINES * (
    _LINE_FIXED_BYTES
    + 2 * 6 * MAX_NAME_LENGTH  # name and reference
    + 2 * 2 * MAX_URL_LENGTH  # product_url and image_url
    + 6 * MAX_QUANTITY_UNIT_LENGTH
)

SALES_TAX_TYPE = "sales_tax"
SALES_TAX_REFERENCE = "sales-tax"
SALES_TAX_NAME = "Sales Tax"

_BASIS = 10_000  # Kustom's tax_rate unit: hundredths of a percent


class CartNotPayable(ValueError):
    """The cart cannot become a Kustom order as it stands; the shopper cannot pay it yet.

    `message` is a sentence for people naming the offending line or total; `details` is
    JSON-safe context for the API error body (`lineId`, `field`, values as strings).
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


def build_order_payload(
    render: dict[str, Any], *, kustom_adds_shipping: bool = False
) -> dict[str, Any]:
    """The order fields that come from the cart, in the form Kustom checks to the unit.

    Takes a render as `load_render` returns it. The result holds only str/int/bool/list/dict
    and has no `merchant_urls` (the caller adds those when creating an order), so the same
    payload serves create, update and the callback answers, and hashes the same for the
    same cart. Raises `CartNotPayable` rather than sending Kustom anything it would reject
    or anything that differs from the cart's own totals.

    ``kustom_adds_shipping``: the order is created without a ``shipping_option_update``
    callback. Kustom then adds the selected shipping option's price to the order itself
    (docs.kustom.co checkout/use-cases/shipping), so when the cart offers
    ``shippingOptions`` the selected one is sent only as the preselected option, not as an
    order line too: the shopper pays shipping once either way.
    """
    currency: str = render["currencyCode"]
    included: bool = render["taxIncluded"]
    lines: list[dict[str, Any]] = render["lines"]
    if len(lines) > MAX_ORDER_LINES:
        raise CartNotPayable(
            f"the cart has {len(lines)} lines; Kustom takes at most {MAX_ORDER_LINES}",
            {"field": "lines", "count": len(lines)},
        )

    order_lines: list[dict[str, Any]] = []
    cart_line_tax = 0  # the render's own tax figures, whatever the lines carry
    dropped_links: list[tuple[str, str, str]] = []
    for line in lines:
        order_line, line_tax = order_line_from_render_line(
            line, currency, included=included, dropped_links=dropped_links
        )
        cart_line_tax += line_tax
        if order_line is not None:
            order_lines.append(order_line)
    if dropped_links:
        _log_dropped_links(render["cartId"], dropped_links)
    if not order_lines:
        raise CartNotPayable("the cart has no lines to pay for", {"field": "lines"})

    shipping = render.get("shipping")
    shipping_line: dict[str, Any] | None = None
    if shipping is not None:
        shipping_line, shipping_tax = _shipping_line(shipping, currency, included)
        order_lines.append(shipping_line)
        cart_line_tax += shipping_tax

    cart_total = _minor(render["cartTotal"], currency, "cartTotal", None)
    cart_tax = _minor(render["cartTaxTotal"], currency, "cartTaxTotal", None)
    if not included:
        if cart_line_tax != cart_tax:
            raise _total_mismatch(
                "cartTaxTotal", cart_tax, "the lines' taxTotal", cart_line_tax, currency
            )
        if cart_tax > 0:
            order_lines.append(_sales_tax_line(cart_tax, currency))
    if len(order_lines) > MAX_ORDER_LINES:
        raise CartNotPayable(
            f"the cart needs {len(order_lines)} order lines with shipping and tax; "
            f"Kustom takes at most {MAX_ORDER_LINES}",
            {"field": "lines", "count": len(order_lines)},
        )

    order_amount = 0
    order_tax_amount = 0
    for order_line in order_lines:
        order_amount += order_line["total_amount"]
        # The one exception to the sum (Kustom's and Klarna's tax-handling pages): a US
        # cart's tax is the sales_tax line's amount, the line itself carries no tax.
        order_tax_amount += (
            order_line["total_amount"]
            if order_line["type"] == SALES_TAX_TYPE
            else order_line["total_tax_amount"]
        )
    if order_amount != cart_total:
        raise _total_mismatch("cartTotal", cart_total, "the lines", order_amount, currency)
    if order_tax_amount != cart_tax:
        raise _total_mismatch(
            "cartTaxTotal", cart_tax, "the lines' tax", order_tax_amount, currency
        )

    options = render.get("shippingOptions")
    shipping_options = (
        None if options is None else _shipping_options(options, shipping_line, currency, included)
    )
    if kustom_adds_shipping and shipping_options and shipping_line is not None:
        if not any(option["preselected"] for option in shipping_options):
            raise CartNotPayable(
                f"the selected shipping {shipping_line['reference']} is not among "
                "shippingOptions, and Kustom charges the option it shows as selected",
                {"shippingId": shipping_line["reference"], "field": "shipping"},
            )
        # Kustom adds the preselected option's line and amounts itself.
        order_lines.remove(shipping_line)
        order_amount -= shipping_line["total_amount"]
        order_tax_amount -= shipping_line["total_tax_amount"]

    payload: dict[str, Any] = {
        "purchase_country": render["countryCode"],
        "purchase_currency": currency,
        # Kustom needs a locale; a render without one gets English for its country.
        "locale": render["locale"] or f"en-{render['countryCode']}",
        "order_amount": order_amount,
        "order_tax_amount": order_tax_amount,
        "order_lines": order_lines,
    }
    if shipping_options is not None:
        payload["shipping_options"] = shipping_options
    payload["merchant_reference1"] = render["cartId"]
    return payload


def canonical_json(payload: dict[str, Any]) -> str:
    """The payload as canonical JSON (sorted keys, no whitespace): what is hashed, stored
    as the pending payload and carried by the sync job, serialised once per render.

    A payload holding anything but JSON types (a Decimal, a float sneaking in) fails loudly.
    """
    return compact_json(payload, sort_keys=True)


def hash_canonical(canonical: str) -> str:
    """The fingerprint of a payload's `canonical_json`."""
    # surrogatepass: a lone surrogate from a JSON "\ud800" escape must hash, not crash.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def payload_hash(payload: dict[str, Any]) -> str:
    """A short fingerprint of a payload: equal hashes mean Kustom needs no update.

    Canonical JSON, so key order never matters.
    """
    return hash_canonical(canonical_json(payload))


def cut_to_limit(text: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``text`` cut to Kustom's length limit, counted in characters and in UTF-16 code
    units alike (Kustom counts an emoji as two), never inside a surrogate pair."""
    if len(text) <= limit // 2:
        return text  # even all-astral text fits
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def utf16_length(text: str) -> int:
    """The length Kustom's limits count: UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def link_problem(url: str) -> str | None:
    """Why Kustom would not take ``url`` as a ``product_url``/``image_url`` (None: it would).

    Kustom wants an absolute http(s) URL of at most 1024 characters (`order_line` in its
    OpenAPI description); only ASCII is sent, so that the limit holds in any encoding.
    """
    if len(url) > MAX_URL_LENGTH:
        return "too_long"
    if not url.isascii() or any(char.isspace() or ord(char) < 0x21 for char in url):
        return "not_ascii"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "malformed"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "not_absolute_http"
    return None


def order_line_from_render_line(
    line: dict[str, Any],
    currency: str,
    *,
    included: bool = True,
    dropped_links: list[tuple[str, str, str]] | None = None,
) -> tuple[dict[str, Any] | None, int]:
    """A loaded render line as a Kustom order line, and the tax the render gives it.

    The line is None for a removed line (quantity 0, nothing to pay). Raises
    `CartNotPayable` naming the line when its arithmetic is off, its sign does not fit its
    type (discounts, gift cards and store credit take money off: amounts <= 0; every other
    type adds: amounts >= 0), or Kustom could not take it. Links Kustom would refuse are left
    out and listed in ``dropped_links`` as ``(lineId, field, reason)``.
    """
    line_id = line["lineId"]
    label = f"line {line_id}"
    where = {"lineId": line_id}
    line_type: str = line.get("type") or LINE_TYPES[0]
    sign = -1 if line_type in NEGATIVE_LINE_TYPES else 1
    quantity: int = line["quantity"]
    unit_price = _minor(line["unitPrice"], currency, f"{label} unitPrice", where, sign)
    discount = _minor(line["discountTotal"], currency, f"{label} discountTotal", where)
    total = _minor(line["salesTotal"], currency, f"{label} salesTotal", where, sign)
    tax = _minor(line["taxTotal"], currency, f"{label} taxTotal", where, sign)

    if quantity == 0:
        if total == discount == tax == 0:
            return None, 0  # a removed line the backend still lists: nothing to pay
        raise CartNotPayable(
            f"{label} has quantity 0 but salesTotal {_fmt(total, currency)}, discountTotal "
            f"{_fmt(discount, currency)} and taxTotal {_fmt(tax, currency)} are not all zero",
            {**where, "field": "quantity"},
        )
    _check_line_limit(unit_price, f"{label} unitPrice", where, currency)
    _check_line_limit(total, f"{label} salesTotal", where, currency)
    expected = quantity * unit_price - discount
    if total != expected:
        raise CartNotPayable(
            f"{label} salesTotal {_fmt(total, currency)} does not equal quantity {quantity} x "
            f"unitPrice {_fmt(unit_price, currency)} - discountTotal "
            f"{_fmt(discount, currency)} = {_fmt(expected, currency)}",
            {
                **where,
                "field": "salesTotal",
                "expected": str(to_major(expected, currency)),
                "actual": str(to_major(total, currency)),
            },
        )

    if included:
        tax_rate = _tax_rate(line["taxRate"], f"{label} taxRate", where)
        _check_included_tax(tax, total, tax_rate, label, "salesTotal", where, currency)
        line_tax = tax
    else:
        # US style: amounts exclude tax, which travels on the single sales_tax line.
        tax_rate = line_tax = 0

    product_number: str = line["productNumber"]
    order_line: dict[str, Any] = {
        "type": line_type,
        "reference": cut_to_limit(product_number),
        "name": cut_to_limit(line["description"] or product_number),
        "quantity": quantity,
        "quantity_unit": "pcs",
        "unit_price": unit_price,
        "tax_rate": tax_rate,
        "total_amount": total,
        "total_discount_amount": discount,
        "total_tax_amount": line_tax,
    }
    # Links are a nicety; one Kustom would refuse is left out, not a refused cart.
    for field, key in (("productUrl", "product_url"), ("imageUrl", "image_url")):
        url = line[field]
        if not url:
            continue
        problem = link_problem(url)
        if problem is None:
            order_line[key] = url
        elif dropped_links is not None:
            dropped_links.append((line_id, field, problem))
    return order_line, tax


def _log_dropped_links(cart_id: str, dropped: list[tuple[str, str, str]]) -> None:
    line_id, field, reason = dropped[0]
    log.warning(
        "kustom.payload.links_dropped",
        cart=cart_id,
        count=len(dropped),
        first_line=line_id,
        field=field,
        reason=reason,
    )


def _shipping_line(
    shipping: dict[str, Any], currency: str, included: bool
) -> tuple[dict[str, Any], int]:
    label = f"shipping {shipping['id']}"
    where = {"shippingId": shipping["id"]}
    price = _minor(shipping["price"], currency, f"{label} price", where)
    tax = _minor(shipping["taxTotal"], currency, f"{label} taxTotal", where)
    _check_line_limit(price, f"{label} price", where, currency)
    if included:
        tax_rate = _tax_rate(shipping["taxRate"], f"{label} taxRate", where)
        _check_included_tax(tax, price, tax_rate, label, "price", where, currency)
        line_tax = tax
    else:
        tax_rate = line_tax = 0
    order_line = {
        "type": "shipping_fee",
        "reference": shipping["id"],
        "name": cut_to_limit(shipping["name"]),
        "quantity": 1,
        "unit_price": price,
        "tax_rate": tax_rate,
        "total_amount": price,
        "total_discount_amount": 0,
        "total_tax_amount": line_tax,
    }
    return order_line, tax


def _shipping_options(
    options: list[dict[str, Any]],
    selected: dict[str, Any] | None,
    currency: str,
    included: bool,
) -> list[dict[str, Any]]:
    selected_id = selected["reference"] if selected is not None else None
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for option in options:
        option_id: str = option["id"]
        label = f"shipping option {option_id}"
        where = {"shippingOptionId": option_id}
        if option_id in seen:
            raise CartNotPayable(
                f"shippingOptions lists {option_id} more than once", {**where, "field": "id"}
            )
        seen.add(option_id)
        price = _minor(option["price"], currency, f"{label} price", where)
        tax = _minor(option["taxTotal"], currency, f"{label} taxTotal", where)
        if included:
            tax_rate = _tax_rate(option["taxRate"], f"{label} taxRate", where)
            _check_included_tax(tax, price, tax_rate, label, "price", where, currency)
        else:
            tax_rate = tax = 0
        preselected = option_id == selected_id
        if (
            selected is not None
            and preselected
            and (
                price != selected["unit_price"]
                or tax != selected["total_tax_amount"]
                or tax_rate != selected["tax_rate"]
            )
        ):
            # Kustom would show one price in the option list and charge another.
            raise CartNotPayable(
                f"the selected shipping {option_id} has a different price or tax than its "
                "entry in shippingOptions",
                {**where, "field": "shipping"},
            )
        entry: dict[str, Any] = {
            "id": option_id,
            "name": cut_to_limit(option["name"]),
            "price": price,
            "tax_amount": tax,
            "tax_rate": tax_rate,
            "preselected": preselected,
        }
        if option["description"]:
            entry["description"] = option["description"]
        result.append(entry)
    return result


def _sales_tax_line(tax: int, currency: str) -> dict[str, Any]:
    _check_line_limit(tax, "cartTaxTotal", {}, currency)
    # Kustom's form for US sales tax (Klarna's tax-handling page; the request krokedil's
    # plugin sent to Kustom's playground, tests/fixtures/krokedil/create-us-sales-tax.json):
    # the tax is the line's amount, and the line itself carries no tax.
    return {
        "type": SALES_TAX_TYPE,
        "reference": SALES_TAX_REFERENCE,
        "name": SALES_TAX_NAME,
        "quantity": 1,
        "unit_price": tax,
        "tax_rate": 0,
        "total_amount": tax,
        "total_discount_amount": 0,
        "total_tax_amount": 0,
    }


def _minor(
    value: Decimal, currency: str, what: str, where: dict[str, str] | None, sign: int = 1
) -> int:
    """``value`` in minor units; ``sign`` 1 refuses a negative amount, -1 a positive one."""
    field = what.rpartition(" ")[2]
    try:
        minor = to_minor(value, currency, what=what)
    except NotRepresentable as e:
        raise CartNotPayable(
            e.message, {**(where or {}), "field": field, "value": str(value)}
        ) from e
    if minor * sign < 0:
        wrong = "negative" if sign > 0 else "positive (this line type takes money off)"
        raise CartNotPayable(
            f"{what} {value} is {wrong}", {**(where or {}), "field": field, "value": str(value)}
        )
    return minor


def _tax_rate(rate: Decimal, what: str, where: dict[str, str]) -> int:
    try:
        return to_tax_rate(rate, what=what)
    except ValueError as e:
        raise CartNotPayable(str(e), {**where, "field": "taxRate", "value": str(rate)}) from e


def _check_line_limit(amount: int, what: str, where: dict[str, str], currency: str) -> None:
    if abs(amount) > MAX_LINE_AMOUNT:
        raise CartNotPayable(
            f"{what} {_fmt(amount, currency)} is above Kustom's limit of "
            f"{_fmt(MAX_LINE_AMOUNT, currency)} per line",
            {**where, "field": what.rpartition(" ")[2]},
        )


def _check_included_tax(
    tax: int,
    total: int,
    tax_rate: int,
    label: str,
    total_field: str,
    where: dict[str, str],
    currency: str,
) -> None:
    # Kustom: |tax - (total - total*10000/(10000+rate))| <= 1, multiplied out to integers.
    denominator = _BASIS + tax_rate
    if abs(tax * denominator - total * tax_rate) <= denominator:
        return
    expected = round(Fraction(total * tax_rate, denominator))
    percent = Decimal(tax_rate).scaleb(-2).normalize()
    raise CartNotPayable(
        f"{label} taxTotal {_fmt(tax, currency)} is not the tax included in {total_field} "
        f"{_fmt(total, currency)} at {percent:f} % (expected {_fmt(expected, currency)}, "
        "give or take one minor unit)",
        {
            **where,
            "field": "taxTotal",
            "expected": str(to_major(expected, currency)),
            "actual": str(to_major(tax, currency)),
        },
    )


def _total_mismatch(
    field: str, cart: int, of_what: str, lines: int, currency: str
) -> CartNotPayable:
    return CartNotPayable(
        f"{field} {_fmt(cart, currency)} does not equal the sum of {of_what} "
        f"{_fmt(lines, currency)}",
        {
            "field": field,
            "expected": str(to_major(lines, currency)),
            "actual": str(to_major(cart, currency)),
        },
    )


def _fmt(minor: int, currency: str) -> str:
    return str(to_major(minor, currency))
