"""The Kustom double's arithmetic checks and the service's payload builder agree.

Both implement Kustom's rules: a line's ``total_amount`` is ``quantity * unit_price -
total_discount_amount``, its tax is the tax included in that total give or take one minor
unit, and the order's amounts are the sums of its lines. Here they judge the same orders:

* Kustom's own examples (tests/fixtures/kustom_examples/, from the reference documents):
  each becomes the cart render a commerce backend would send for it (``render_from_order``).
  The builder must accept exactly what the double accepts and build the same order lines,
  and what it builds must pass the double and Kustom's OpenAPI ``order`` schema.
* The cart render fixtures (tests/fixtures/renders/): a line's tax moved by one or two minor
  units is accepted or refused by both alike.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kustom_app.money import currency_exponent, to_major, to_minor
from kustom_app.order_match import same_order_lines
from kustom_app.payload import CartNotPayable, build_order_payload
from kustom_app.render import NEGATIVE_LINE_TYPES, load_render
from playground.kustom import validate_order
from tests.conftest import FIXTURES
from tests.openapi_schema import validate_against

EXAMPLES = FIXTURES / "kustom_examples"
RENDERS = sorted((FIXTURES / "renders").glob("*.json"))
MERCHANT_URLS = {
    "terms": "https://shop.example/terms",
    "checkout": "https://shop.example/checkout",
    "confirmation": "https://shop.example/confirmation?order_id={checkout.order.id}",
    "push": "https://kustom-app.example/kustom/push?order_id={checkout.order.id}",
}


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def as_order(body: dict[str, Any]) -> dict[str, Any]:
    """The order part of an example body, as the merchant would send it to Kustom."""
    country = body.get("purchase_country") or body["billing_address"]["country"]
    return {
        "purchase_country": country,
        "purchase_currency": body["purchase_currency"],
        "locale": body.get("locale") or f"en-{country}",
        "order_amount": body["order_amount"],
        "order_tax_amount": body["order_tax_amount"],
        "order_lines": copy.deepcopy(body["order_lines"]),
        "merchant_urls": MERCHANT_URLS,
    }


def double_errors(order: dict[str, Any]) -> list[str]:
    return validate_order({**order, "merchant_urls": MERCHANT_URLS})


def render_from_order(order: dict[str, Any]) -> dict[str, Any]:
    """The cart render (CONTRACT section 4) a commerce backend sends for this order."""
    currency = order["purchase_currency"]

    def major(minor: int) -> str:
        return str(to_major(minor, currency))

    lines = [
        {
            "lineId": f"line-{index}",
            "productNumber": line.get("reference") or line["name"],
            "description": line["name"],
            "quantity": line["quantity"],
            "reservedQuantity": line["quantity"],
            "unitPrice": major(line["unit_price"]),
            "discountTotal": major(line.get("total_discount_amount", 0)),
            "salesTotal": major(line["total_amount"]),
            "taxRate": str(Decimal(line["tax_rate"]).scaleb(-4)),
            "taxTotal": major(line["total_tax_amount"]),
            "productUrl": line.get("product_url"),
            "imageUrl": line.get("image_url"),
        }
        for index, line in enumerate(order["order_lines"])
    ]
    return {
        "cartId": "cart-example",
        "version": 1,
        "channelKey": "web",
        "currencyCode": currency,
        "countryCode": order["purchase_country"],
        "locale": order["locale"],
        "taxIncluded": True,
        "cartTotal": major(order["order_amount"]),
        "cartTaxTotal": major(order["order_tax_amount"]),
        "lines": lines,
    }


def build(render: dict[str, Any]) -> dict[str, Any] | CartNotPayable:
    try:
        return build_order_payload(load_render(copy.deepcopy(render)))
    except CartNotPayable as e:
        return e


# ------------------------------------------------------------------------------ Kustom's examples


@pytest.mark.parametrize("name", ["create_order_request", "callback_validation"])
def test_examples_that_add_up_are_accepted_by_both_and_built_alike(name: str) -> None:
    order = as_order(example(name))
    assert double_errors(order) == []

    payload = build(render_from_order(order))
    assert not isinstance(payload, CartNotPayable), payload
    assert (payload["order_amount"], payload["order_tax_amount"]) == (
        order["order_amount"],
        order["order_tax_amount"],
    )
    assert same_order_lines(payload["order_lines"], order["order_lines"])
    assert double_errors(payload) == []
    validate_against("order", {**payload, "merchant_urls": MERCHANT_URLS})


def test_the_callback_example_whose_totals_do_not_add_up_is_refused_by_both() -> None:
    """Reference 003's address_update (= country_change, shipping_option_update) body says
    order_amount 0 and order_tax_amount 0 beside a 500.00 line."""
    order = as_order(example("callback_address_update"))
    assert sum(line["total_amount"] for line in order["order_lines"]) == 50000
    assert double_errors(order) == ["order_amount", "order_tax_amount"]

    refused = build(render_from_order(order))
    assert isinstance(refused, CartNotPayable)
    assert refused.details["field"] == "cartTotal"
    assert refused.details["expected"] == "500.00"


def test_the_reference_discount_line_does_not_add_up_for_either() -> None:
    """Reference 003's discount line: 5 x -100.00 is not -25.00. As an order line of type
    discount the double refuses its total; a render cannot carry it (a negative price)."""
    body = example("callback_validation")
    [discount] = body["discount_lines"]
    order = as_order(body)
    order["order_lines"].append({"type": "discount", **discount})
    order["order_amount"] += discount["total_amount"]
    order["order_tax_amount"] += discount["total_tax_amount"]
    assert double_errors(order) == ["order_lines[1].total_amount"]

    refused = build(render_from_order(order))
    assert isinstance(refused, CartNotPayable)
    assert refused.details["lineId"] == "line-1"


@pytest.mark.parametrize(
    ("tax", "payable"),
    [
        (4318, True),  # the tax in 475.00 at 10 %: 43.18
        (4319, True),  # one minor unit off: Kustom's tolerance
        (4545, False),  # the tax before the discount
        (4545 - 123, False),  # minus the reference discount line's own tax (-1.23)
    ],
)
def test_the_reference_discount_on_its_line_is_judged_alike(tax: int, payable: bool) -> None:
    """The reference discount (-25.00 on the 5 T-shirts) the way the builder sends a
    discount: as the line's total_discount_amount, with the tax of what is left."""
    body = example("callback_validation")
    [discount] = body["discount_lines"]
    order = as_order(body)
    [line] = order["order_lines"]
    line["total_discount_amount"] = -discount["total_amount"]
    line["total_amount"] = line["quantity"] * line["unit_price"] + discount["total_amount"]
    line["total_tax_amount"] = tax
    order["order_amount"] = line["total_amount"]
    order["order_tax_amount"] = tax

    errors = double_errors(order)
    built = build(render_from_order(order))
    assert (errors == [], not isinstance(built, CartNotPayable)) == (payable, payable)
    if payable:
        assert not isinstance(built, CartNotPayable)
        assert same_order_lines(built["order_lines"], order["order_lines"])
    else:
        assert errors == ["order_lines[0].total_tax_amount"]
        assert isinstance(built, CartNotPayable)
        assert built.details["field"] == "taxTotal"


# ------------------------------------------------------------------------------ render fixtures


def _shifted_render(raw: dict[str, Any], index: int, delta: int) -> dict[str, Any]:
    currency = raw["currencyCode"]
    render = copy.deepcopy(raw)
    line = render["lines"][index]
    for owner, key in ((line, "taxTotal"), (render, "cartTaxTotal")):
        minor = to_minor(Decimal(str(owner[key])), currency, what=key)
        owner[key] = str(to_major(minor + delta, currency))
    return render


def _shifted_payload(payload: dict[str, Any], position: int, delta: int) -> dict[str, Any]:
    shifted = copy.deepcopy(payload)
    shifted["order_lines"][position]["total_tax_amount"] += delta
    shifted["order_tax_amount"] += delta
    return shifted


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_the_builders_payloads_of_the_render_fixtures_pass_the_double(path: Path) -> None:
    payload = build(json.loads(path.read_text()))
    assert not isinstance(payload, CartNotPayable), payload
    assert double_errors(payload) == []


# Tax-excluded carts carry no tax on their lines (it travels on one sales_tax line).
TAX_INCLUDED = [p for p in RENDERS if json.loads(p.read_text())["taxIncluded"]]


@pytest.mark.parametrize("path", TAX_INCLUDED, ids=lambda p: p.stem)
def test_tax_one_or_two_minor_units_off_is_judged_alike(path: Path) -> None:
    raw = json.loads(path.read_text())
    payload = build(raw)
    assert not isinstance(payload, CartNotPayable), payload
    outcomes = set()
    paid = [i for i, line in enumerate(raw["lines"]) if line["quantity"] > 0]
    for position, index in enumerate(paid):
        tax = Decimal(str(raw["lines"][index]["taxTotal"]))
        for delta in (-2, -1, 1, 2):
            shifted = tax.scaleb(currency_exponent(raw["currencyCode"])) + delta
            takes_off = raw["lines"][index].get("type") in NEGATIVE_LINE_TYPES
            if (shifted > 0) if takes_off else (shifted < 0):
                continue  # a tax of the wrong sign is a cart error of the builder's own
            builder_ok = not isinstance(build(_shifted_render(raw, index, delta)), CartNotPayable)
            double_ok = double_errors(_shifted_payload(payload, position, delta)) == []
            assert builder_ok == double_ok, (path.stem, index, delta)
            outcomes.add(builder_ok)
    assert outcomes == {True, False}  # both sides of the tolerance were seen


# -- shipping charged once, whoever adds it ---------------------------------------------------

WITH_OPTIONS = [p for p in RENDERS if json.loads(p.read_text()).get("shippingOptions")]


def _created_amount(payload: dict[str, Any], urls: dict[str, str]) -> int:
    from playground.kustom import KustomDoubleState

    state = KustomDoubleState()
    order_id = state.create_order({**copy.deepcopy(payload), "merchant_urls": urls})["order_id"]
    amount: int = state.read_order(order_id)["order_amount"]
    return amount


@pytest.mark.parametrize("path", WITH_OPTIONS, ids=lambda p: p.stem)
def test_the_shopper_pays_shipping_once_with_or_without_the_shipping_callback(path: Path) -> None:
    raw = json.loads(path.read_text())
    cart_total = to_minor(Decimal(str(raw["cartTotal"])), raw["currencyCode"], what="total")
    render = load_render(raw)
    with_callback = {
        **MERCHANT_URLS,
        "shipping_option_update": "https://kustom-app.example/kustom/shipping-option-update",
    }
    merchant_adds = build_order_payload(render)
    kustom_adds = build_order_payload(render, kustom_adds_shipping=True)
    assert _created_amount(merchant_adds, with_callback) == cart_total
    assert _created_amount(kustom_adds, MERCHANT_URLS) == cart_total
    # The mistake the mode exists for: the merchant's line plus Kustom's own.
    shipping = to_minor(Decimal(str(raw["shipping"]["price"])), raw["currencyCode"], what="p")
    assert _created_amount(merchant_adds, MERCHANT_URLS) == cart_total + shipping
