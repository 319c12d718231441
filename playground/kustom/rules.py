"""Kustom's documented checks on a checkout order, and the shipping fee Kustom adds itself.

Pure functions over JSON-shaped dicts, used by the Kustom double (``playground.kustom``).
Like the double, this module never imports kustom_app, webhooks or workers: it must judge
the service's payloads by Kustom's rules, not share the service's arithmetic.

Each function answers the *paths* of the bad fields (``order_lines[0].total_tax_amount``);
the double turns them into Kustom's ``400 BAD_VALUE`` with one ``Bad value: <path>`` message
per field. The rules and where each comes from:

* Limits, types and required fields: the ``order``, ``order_line``, ``merchant_urls`` and
  ``shipping_option`` schemas of Kustom's Checkout API
  (/work/shared/reference/openapi/kustom-checkout-api.yml, copied in
  tests/fixtures/openapi/).
* Line arithmetic: ``total_amount = quantity * unit_price - total_discount_amount`` and, for
  every line type, ``|total_tax_amount - (total_amount - total_amount*10000/(10000 +
  tax_rate))| <= 1`` ("Negative when type is discount"): the ``order_line`` descriptions of
  that OpenAPI file.
* US sales tax: the tax travels as its own ``sales_tax`` line (``tax_rate`` 0,
  ``total_tax_amount`` 0, ``total_amount`` = the tax) and ``order_tax_amount`` is that
  line's ``total_amount`` — https://docs.klarna.com/klarna-payments/in-depth-knowledge/tax-handling/
  ("order_tax_amount is the total_amount of the sales_tax order line", "The tax_rate field
  isn't present in any order lines"), https://docs.klarna.com/kco/additional-resources/tax-handling
  (Kustom Checkout validates tax and "throw[s] an error if it not correct"), and the request
  krokedil recorded against Kustom's playground
  (krokedil/klarna-checkout-for-woocommerce tests/Support/Data/snapshots/create-us-sales-tax.json,
  copied in tests/fixtures/krokedil/). So ``order_tax_amount = Σ total_tax_amount + Σ
  total_amount of the sales_tax lines``; ``order_amount = Σ total_amount`` of all lines.
* Line types: exactly the eight of ``order_line.type`` (physical, discount, shipping_fee,
  sales_tax, digital, gift_card, store_credit, surcharge).
* URLs: ``product_url``/``image_url`` at most 1024 and every ``merchant_urls`` entry at most
  2000 characters (OpenAPI), and each an absolute http(s) URL: Kustom refuses others
  ("Bad value: merchant_urls.terms (must be a valid http or https URI)",
  https://docs.krokedil.com/kustom-checkout-for-woocommerce/troubleshooting/faq/), and an
  empty ``image_url`` is "not a valid URL according to Klarna" and answered 400 BAD_VALUE
  (https://github.com/krokedil/klarna-payments-for-woocommerce/pull/397).
* String lengths are counted in UTF-16 code units (an emoji counts 2), as a JVM service
  counts them (``String.length()``): Kustom's API answers in Jackson's default pretty-print
  (``"error_code" : "BAD_VALUE"``, https://github.com/woocommerce/woocommerce/issues/55109)
  and reports ``"service_version":"SNAPSHOT"`` (a Maven version,
  https://github.com/krokedil/klarna-checkout-for-woocommerce/pull/753). This is an
  inference, not a documented rule; it is the stricter reading.
* Shipping options (``shipping_option_builds_line``): https://docs.kustom.co/contents/checkout/use-cases/shipping
  — with a ``shipping_option_update`` URL "the shipping option cost is not automatically
  added to order_lines or order_total"; without it "KCO automatically handles shipping cost
  updates" (https://docs.kustom.co/contents/checkout/additional-resources/server-side-callbacks),
  and https://docs.klarna.com/shipping-assistant: if you implement that callback "you must
  set the shipping fee as an order line" in every call.

Not enforced, on purpose: the "must be https" of the callback URLs (validation,
shipping_option_update, address_update, country_change) — the double serves local services
on plain http — and undocumented sign rules on line amounts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, TypeGuard, cast
from urllib.parse import urlsplit

# Limits from kustom-checkout-api.yml (order, order_line, merchant_urls, shipping_option).
MAX_ORDER_LINES = 1000
MAX_LINE_AMOUNT = 100_000_000
MAX_TAX_RATE = 10_000
MAX_NAME_LENGTH = 255  # order_line.name 1..255, shipping_option.name 1..255
MAX_REFERENCE_LENGTH = 255  # order_line.reference, merchant_reference1/2
MAX_QUANTITY_UNIT_LENGTH = 8  # order_line.quantity_unit "1-8 characters"
MAX_LINE_URL_LENGTH = 1024  # order_line.product_url, image_url
MAX_LINE_MERCHANT_DATA_LENGTH = 1024
MAX_MERCHANT_URL_LENGTH = 2000
MAX_ORDER_MERCHANT_DATA_LENGTH = 6000
# order_line.type, as the OpenAPI description lists them.
ORDER_LINE_TYPES = frozenset(
    {
        "physical",
        "discount",
        "shipping_fee",
        "sales_tax",
        "digital",
        "gift_card",
        "store_credit",
        "surcharge",
    }
)
REQUIRED_MERCHANT_URLS = ("terms", "checkout", "confirmation", "push")
OPTIONAL_MERCHANT_URLS = (
    "validation",
    "notification",
    "cancellation_terms",
    "shipping_option_update",
    "address_update",
    "country_change",
)
SHIPPING_OPTION_STRINGS = ("description", "promo", "shipping_method", "tms_reference")


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Java's ``String.length()`` counts (an emoji is 2).

    A lone surrogate (a JSON ``"\\ud800"`` escape) counts 1, as in Java.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def check_string(
    value: Any, *, min_length: int = 0, max_length: int, pattern: str | None = None
) -> bool:
    """A string within ``min_length..max_length`` UTF-16 code units (and ``pattern``)."""
    if not isinstance(value, str) or not min_length <= utf16_length(value) <= max_length:
        return False
    return pattern is None or re.fullmatch(pattern, value) is not None


def is_http_url(value: Any, *, max_length: int) -> bool:
    """An absolute http(s) URL with a host, no whitespace, within ``max_length`` units.

    Kustom's own templates (``{checkout.order.id}``) are not URL syntax but are accepted.
    """
    if not check_string(value, min_length=1, max_length=max_length):
        return False
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1" — not a URL
        return False
    return parts.scheme.lower() in ("http", "https") and bool(host)


def tax_within_one(total_amount: int, tax_rate: int, total_tax_amount: int) -> bool:
    """``|total_tax_amount - (total_amount - total_amount*10000/(10000+tax_rate))| <= 1``.

    Exactly, in integers: the expected tax is ``total_amount*tax_rate/(10000+tax_rate)``.
    Negative totals (a discount line) give a negative expected tax, as documented.
    """
    denominator = 10_000 + tax_rate
    return abs(total_tax_amount * denominator - total_amount * tax_rate) <= denominator


# --------------------------------------------------------------------------------------------
# Order lines
# --------------------------------------------------------------------------------------------


def _line_text_fields(line: Mapping[str, Any], prefix: str) -> list[str]:
    bad: list[str] = []
    if not check_string(line.get("name"), min_length=1, max_length=MAX_NAME_LENGTH):
        bad.append(f"{prefix}.name")
    line_type = line.get("type")
    if line_type is not None and line_type not in ORDER_LINE_TYPES:
        bad.append(f"{prefix}.type")
    if "reference" in line and not check_string(line["reference"], max_length=MAX_REFERENCE_LENGTH):
        bad.append(f"{prefix}.reference")
    if "quantity_unit" in line and not check_string(
        line["quantity_unit"], min_length=1, max_length=MAX_QUANTITY_UNIT_LENGTH
    ):
        bad.append(f"{prefix}.quantity_unit")
    if "merchant_data" in line and not check_string(
        line["merchant_data"], max_length=MAX_LINE_MERCHANT_DATA_LENGTH
    ):
        bad.append(f"{prefix}.merchant_data")
    for name in ("product_url", "image_url"):
        if name in line and not is_http_url(line[name], max_length=MAX_LINE_URL_LENGTH):
            bad.append(f"{prefix}.{name}")
    return bad


def validate_order_line(line: Any, prefix: str) -> list[str]:
    """Bad field paths of one checkout order line (e.g. ``order_lines[0].total_amount``).

    The tax check applies to every line type: a discount line's negative total has a
    negative tax, and a ``sales_tax`` line (``tax_rate`` 0) has a tax of 0 ± 1.
    """
    if not isinstance(line, dict):
        return [prefix]
    bad = _line_text_fields(line, prefix)
    quantity = line.get("quantity")
    unit_price = line.get("unit_price")
    tax_rate = line.get("tax_rate")
    total_amount = line.get("total_amount")
    discount = line.get("total_discount_amount", 0)
    total_tax = line.get("total_tax_amount")
    checks = (
        ("quantity", is_int(quantity) and quantity >= 0),
        ("unit_price", is_int(unit_price) and unit_price <= MAX_LINE_AMOUNT),
        ("tax_rate", is_int(tax_rate) and 0 <= tax_rate <= MAX_TAX_RATE),
        ("total_amount", is_int(total_amount) and total_amount <= MAX_LINE_AMOUNT),
        ("total_discount_amount", is_int(discount) and discount >= 0),
        ("total_tax_amount", is_int(total_tax)),
    )
    bad.extend(f"{prefix}.{name}" for name, ok in checks if not ok)
    if not all(ok for _, ok in checks):
        return bad  # Kustom's arithmetic needs every number
    numbers = cast(
        tuple[int, int, int, int, int, int],
        (quantity, unit_price, tax_rate, total_amount, discount, total_tax),
    )
    quantity, unit_price, tax_rate, total_amount, discount, total_tax = numbers
    if total_amount != quantity * unit_price - discount:
        bad.append(f"{prefix}.total_amount")
    elif not tax_within_one(total_amount, tax_rate, total_tax):
        bad.append(f"{prefix}.total_tax_amount")
    return bad


def expected_order_amounts(lines: list[dict[str, Any]]) -> tuple[int, int]:
    """``(order_amount, order_tax_amount)`` the lines add up to, by Kustom's rules.

    The ``total_amount`` of a ``sales_tax`` line is tax (US form): it counts in both sums.
    """
    amount = sum(line["total_amount"] for line in lines)
    tax = sum(line["total_tax_amount"] for line in lines)
    tax += sum(line["total_amount"] for line in lines if line.get("type") == "sales_tax")
    return amount, tax


# --------------------------------------------------------------------------------------------
# Shipping options
# --------------------------------------------------------------------------------------------


def validate_shipping_option(option: Any, prefix: str) -> list[str]:
    """Bad field paths of one ``shipping_option`` (required id, name, price, tax_amount,
    tax_rate; ``name`` 1..255; ``tax_rate`` non-negative; ``preselected`` a boolean)."""
    if not isinstance(option, dict):
        return [prefix]
    bad: list[str] = []
    if not isinstance(option.get("id"), str):
        bad.append(f"{prefix}.id")
    if not check_string(option.get("name"), min_length=1, max_length=MAX_NAME_LENGTH):
        bad.append(f"{prefix}.name")
    for name in SHIPPING_OPTION_STRINGS:
        if name in option and not isinstance(option[name], str):
            bad.append(f"{prefix}.{name}")
    for name in ("price", "tax_amount"):
        if not is_int(option.get(name)):
            bad.append(f"{prefix}.{name}")
    tax_rate = option.get("tax_rate")
    if not (is_int(tax_rate) and tax_rate >= 0):
        bad.append(f"{prefix}.tax_rate")
    if "preselected" in option and not isinstance(option["preselected"], bool):
        bad.append(f"{prefix}.preselected")
    return bad


def shipping_fee_line(option: Mapping[str, Any]) -> dict[str, Any]:
    """The ``shipping_fee`` order line Kustom adds for a selected option it prices itself."""
    price = option["price"]
    return {
        "type": "shipping_fee",
        "reference": option["id"],
        "name": option["name"],
        "quantity": 1,
        "unit_price": price,
        "tax_rate": option["tax_rate"],
        "total_amount": price,
        "total_discount_amount": 0,
        "total_tax_amount": option["tax_amount"],
    }


# Where a bad field of the line Kustom builds from an option comes from in the option.
_OPTION_FIELD_OF_LINE = {
    "reference": "id",
    "name": "name",
    "unit_price": "price",
    "total_amount": "price",
    "tax_rate": "tax_rate",
    "total_tax_amount": "tax_amount",
}


def validate_option_as_line(option: Mapping[str, Any], prefix: str) -> list[str]:
    """Bad fields of an option whose ``shipping_fee`` line Kustom could not accept.

    Kustom adds the selected option as an order line when it prices shipping itself, and
    that line is held to the order line rules (``tax_amount`` within ±1 of the tax in
    ``price`` at ``tax_rate``, ``price`` at most 100000000, ``id`` usable as a reference).
    Any option may be chosen, so each is checked. Only for well-formed options.
    """
    line_errors = validate_order_line(shipping_fee_line(option), "line")
    fields = {_OPTION_FIELD_OF_LINE.get(error.removeprefix("line.")) for error in line_errors}
    in_order = ("id", "name", "price", "tax_rate", "tax_amount")
    return [f"{prefix}.{name}" for name in in_order if name in fields]


def kustom_prices_shipping(order: Mapping[str, Any]) -> bool:
    """Whether Kustom adds the selected shipping option's cost to the order itself.

    It does when the order offers ``shipping_options`` and has no
    ``merchant_urls.shipping_option_update``; with that URL the merchant's callback answer
    carries the shipping fee line (docs.kustom.co checkout/use-cases/shipping).
    """
    urls = order.get("merchant_urls")
    has_callback = isinstance(urls, Mapping) and bool(urls.get("shipping_option_update"))
    return bool(order.get("shipping_options")) and not has_callback


def select_shipping_option(options: Any, chosen_id: str | None = None) -> dict[str, Any] | None:
    """The option the shopper has: their choice while still offered, else the preselected
    one, else the first; None without options."""
    if not isinstance(options, list) or not options:
        return None
    offered = [o for o in options if isinstance(o, dict)]
    for rule in (
        lambda o: chosen_id is not None and o.get("id") == chosen_id,
        lambda o: o.get("preselected") is True,
        lambda o: True,
    ):
        found = next((o for o in offered if rule(o)), None)
        if found is not None:
            return copy.deepcopy(found)
    return None


def with_kustom_shipping(order: Mapping[str, Any], chosen_id: str | None) -> dict[str, Any]:
    """The order as Kustom holds it: the merchant's ``order`` plus what Kustom adds.

    Records ``selected_shipping_option`` whenever options are offered. When Kustom prices
    shipping itself (``kustom_prices_shipping``), the selected option also becomes a
    ``shipping_fee`` line after the merchant's lines and its price and tax are added to
    ``order_amount`` and ``order_tax_amount`` — on top of whatever the merchant's own lines
    already charge (a merchant that also sends that shipping line charges it twice).
    """
    held = copy.deepcopy(dict(order))
    held.pop("selected_shipping_option", None)
    selected = select_shipping_option(held.get("shipping_options"), chosen_id)
    if selected is None:
        return held
    held["selected_shipping_option"] = selected
    if kustom_prices_shipping(held):
        held["order_lines"] = [*held["order_lines"], shipping_fee_line(selected)]
        held["order_amount"] += selected["price"]
        held["order_tax_amount"] += selected["tax_amount"]
    return held


# --------------------------------------------------------------------------------------------
# The order
# --------------------------------------------------------------------------------------------


def _validate_amounts(order: Mapping[str, Any]) -> list[str]:
    bad: list[str] = []
    amounts_ok = True
    for name in ("order_amount", "order_tax_amount"):
        value = order.get(name)
        if not (is_int(value) and value >= 0):
            bad.append(name)
            amounts_ok = False
    lines = order.get("order_lines")
    if not isinstance(lines, list) or len(lines) > MAX_ORDER_LINES:
        return [*bad, "order_lines"]
    for index, line in enumerate(lines):
        bad.extend(validate_order_line(line, f"order_lines[{index}]"))
    # The sums are checked whenever they can be computed, independently of the lines.
    if amounts_ok and all(
        isinstance(line, dict)
        and is_int(line.get("total_amount"))
        and is_int(line.get("total_tax_amount"))
        for line in lines
    ):
        amount, tax = expected_order_amounts(lines)
        if order["order_amount"] != amount:
            bad.append("order_amount")
        if order["order_tax_amount"] != tax:
            bad.append("order_tax_amount")
    return bad


def _validate_merchant_urls(urls: Any) -> list[str]:
    if not isinstance(urls, dict):
        return ["merchant_urls"]
    bad: list[str] = []
    for name in REQUIRED_MERCHANT_URLS:
        if not is_http_url(urls.get(name), max_length=MAX_MERCHANT_URL_LENGTH):
            bad.append(f"merchant_urls.{name}")
    for name in OPTIONAL_MERCHANT_URLS:
        if name in urls and not is_http_url(urls[name], max_length=MAX_MERCHANT_URL_LENGTH):
            bad.append(f"merchant_urls.{name}")
    return bad


def _validate_shipping_options(order: Mapping[str, Any]) -> list[str]:
    options = order.get("shipping_options")
    if options is None:
        return []
    if not isinstance(options, list):
        return ["shipping_options"]
    bad: list[str] = []
    for index, option in enumerate(options):
        prefix = f"shipping_options[{index}]"
        option_errors = validate_shipping_option(option, prefix)
        bad.extend(option_errors)
        if not option_errors and kustom_prices_shipping(order):
            bad.extend(validate_option_as_line(option, prefix))
    return bad


def _validate_other_fields(order: Mapping[str, Any]) -> list[str]:
    bad: list[str] = []
    for name in ("merchant_reference1", "merchant_reference2"):
        if name in order and not check_string(order[name], max_length=MAX_REFERENCE_LENGTH):
            bad.append(name)
    if "merchant_data" in order and not check_string(
        order["merchant_data"], max_length=MAX_ORDER_MERCHANT_DATA_LENGTH
    ):
        bad.append("merchant_data")
    for name in ("billing_address", "shipping_address", "customer", "options", "gui"):
        if name in order and not isinstance(order[name], dict):
            bad.append(name)
    for name in ("shipping_countries", "billing_countries", "tags"):
        value = order.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            bad.append(name)
    return bad


def validate_order(order: Mapping[str, Any]) -> list[str]:
    """Bad field paths of a (complete, merged) checkout order as the merchant sends it;
    empty when Kustom accepts it. What Kustom adds itself (``with_kustom_shipping``) is
    not part of it."""
    bad: list[str] = []
    patterns = (
        ("purchase_country", r"[A-Za-z]{2}"),
        ("purchase_currency", r"[A-Za-z]{3}"),
        ("locale", r"[A-Za-z]{2}(?:-[A-Za-z]{2})*"),
    )
    for name, pattern in patterns:
        if not check_string(order.get(name), max_length=16, pattern=pattern):
            bad.append(name)
    bad.extend(_validate_amounts(order))
    bad.extend(_validate_shipping_options(order))
    bad.extend(_validate_merchant_urls(order.get("merchant_urls")))
    bad.extend(_validate_other_fields(order))
    return bad
