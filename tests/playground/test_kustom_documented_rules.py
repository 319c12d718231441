"""The Kustom double enforces Kustom's documented checks, and prices shipping as Kustom does.

Each group cites where the rule comes from (see playground/kustom/rules.py for the full
list): the Checkout API's OpenAPI description (tests/fixtures/openapi/), Klarna's and
Kustom's tax-handling and shipping pages, and the requests krokedil recorded against
Kustom's playground (tests/fixtures/krokedil/).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request

from playground.kustom import KustomDoubleState, KustomError, create_app
from playground.kustom.rules import ORDER_LINE_TYPES, utf16_length, validate_order
from playground.server import ServerThread
from tests.playground.test_kustom_double import (
    AUTH_HEADER,
    MERCHANT_URLS,
    assert_error,
    assert_matches_schema,
    order_payload,
)

KROKEDIL = Path(__file__).resolve().parents[1] / "fixtures" / "krokedil"
SITE = "https://shop.example"
EMOJI = "\N{GRINNING FACE}"  # one code point, two UTF-16 code units


def krokedil_body(name: str) -> dict[str, Any]:
    """A recorded create body, its ``<site>`` placeholders filled with a real https URL."""
    text = (KROKEDIL / name).read_text(encoding="utf-8").replace("<site>", SITE)
    recorded: dict[str, Any] = json.loads(text)
    assert recorded["method"] == "POST" and recorded["path"].endswith("/checkout/v3/orders")
    body: dict[str, Any] = recorded["body"]
    return body


@pytest.fixture
def client() -> Any:
    return create_app().test_client()


def create(client: Any, payload: dict[str, Any]) -> Any:
    return client.post("/checkout/v3/orders", json=payload, headers=AUTH_HEADER)


def refused_fields(payload: dict[str, Any]) -> list[str]:
    """The fields the double names when refusing ``payload`` through its Python API."""
    with pytest.raises(KustomError) as refused:
        KustomDoubleState().create_order(copy.deepcopy(payload))
    assert refused.value.status == 400 and refused.value.error_code == "BAD_VALUE"
    return [message.removeprefix("Bad value: ") for message in refused.value.error_messages]


def line(**fields: Any) -> dict[str, Any]:
    """An order line; ``total_amount`` defaults to ``quantity * unit_price``."""
    base: dict[str, Any] = {"name": "Thing", "quantity": 1, "unit_price": 1000, "tax_rate": 0}
    base.update(fields)
    base.setdefault("total_amount", base["quantity"] * base["unit_price"])
    base.setdefault("total_tax_amount", 0)
    return base


def order_of(*lines: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A merchant order of ``lines`` whose amounts add up by Kustom's rules."""
    amount = sum(item["total_amount"] for item in lines)
    tax = sum(item["total_tax_amount"] for item in lines) + sum(
        item["total_amount"] for item in lines if item.get("type") == "sales_tax"
    )
    payload = order_payload(order_lines=list(lines), order_amount=amount, order_tax_amount=tax)
    payload.update(overrides)
    return payload


# ------------------------------------------------------------------ the ±1 tax check, every type
# order_line.total_tax_amount: "Must be within ±1 of total_amount - total_amount * 10000 /
# (10000 + tax_rate). Negative when type is discount." (kustom-checkout-api.yml)


@pytest.mark.parametrize("line_type", sorted(ORDER_LINE_TYPES))
def test_the_tax_check_applies_to_every_line_type(line_type: str) -> None:
    # 1000 at 25 % holds 200 of tax; 199 and 201 are within Kustom's tolerance.
    for tax in (199, 200, 201):
        taxed = line(type=line_type, tax_rate=2500, total_tax_amount=tax)
        assert validate_order(order_of(taxed)) == [], (line_type, tax)
    for tax in (198, 202, 0):
        taxed = line(type=line_type, tax_rate=2500, total_tax_amount=tax)
        assert validate_order(order_of(taxed)) == ["order_lines[0].total_tax_amount"]


def test_a_discount_line_is_negative_and_carries_negative_tax() -> None:
    goods = line(unit_price=10000, tax_rate=2500, total_tax_amount=2000)
    coupon = line(type="discount", unit_price=-1000, tax_rate=2500, total_tax_amount=-200)
    assert validate_order(order_of(goods, coupon)) == []
    wrong_sign = {**coupon, "total_tax_amount": 200}
    assert validate_order(order_of(goods, wrong_sign)) == ["order_lines[1].total_tax_amount"]
    untaxed = {**coupon, "total_tax_amount": 0}  # was exempt before; Kustom checks it
    assert validate_order(order_of(goods, untaxed)) == ["order_lines[1].total_tax_amount"]


def test_a_sales_tax_line_has_tax_rate_0_and_so_a_tax_of_0_give_or_take_1() -> None:
    item = line(unit_price=2000)
    assert validate_order(order_of(item, line(type="sales_tax", unit_price=170))) == []
    one_off = line(type="sales_tax", unit_price=170, total_tax_amount=1)
    assert validate_order(order_of(item, one_off)) == []
    two_off = line(type="sales_tax", unit_price=170, total_tax_amount=2)
    assert validate_order(order_of(item, two_off)) == ["order_lines[1].total_tax_amount"]


# ------------------------------------------------------------------ the US sales-tax form
# https://docs.klarna.com/klarna-payments/in-depth-knowledge/tax-handling/ ("order_tax_amount
# is the total_amount of the sales_tax order line"), and krokedil's create-us-sales-tax.json
# recorded against Kustom's playground.


def test_krokedils_recorded_us_order_is_accepted_and_read_back(client: Any) -> None:
    body = krokedil_body("create-us-sales-tax.json")
    items, sales_tax = body["order_lines"]
    assert (items["tax_rate"], items["total_tax_amount"]) == (0, 0)
    assert sales_tax["type"] == "sales_tax" and sales_tax["total_tax_amount"] == 0
    assert body["order_tax_amount"] == sales_tax["total_amount"] == 1700

    response = create(client, body)
    assert response.status_code == 201, response.json
    created = response.json
    assert created["order_lines"] == body["order_lines"]
    assert (created["order_amount"], created["order_tax_amount"]) == (21700, 1700)
    read = client.get(f"/checkout/v3/orders/{created['order_id']}", headers=AUTH_HEADER)
    assert read.json == created
    assert_matches_schema("checkout", "order", read.json)


def test_the_old_us_form_is_refused_naming_the_line_and_the_order_tax(client: Any) -> None:
    """The sales_tax line carrying its amount as total_tax_amount too (tax counted twice)."""
    body = krokedil_body("create-us-sales-tax.json")
    body["order_lines"][1]["total_tax_amount"] = body["order_lines"][1]["total_amount"]
    error = assert_error(create(client, body), 400, "BAD_VALUE")
    assert error["error_messages"] == [
        "Bad value: order_lines[1].total_tax_amount",
        "Bad value: order_tax_amount",
    ]


def test_the_us_order_tax_must_be_the_sales_tax_lines_amount() -> None:
    body = krokedil_body("create-us-sales-tax.json")
    assert refused_fields({**body, "order_tax_amount": 0}) == ["order_tax_amount"]
    assert refused_fields({**body, "order_tax_amount": 1701}) == ["order_tax_amount"]
    assert refused_fields({**body, "order_amount": 20000}) == ["order_amount"]


@pytest.mark.parametrize(
    "name",
    [
        "create-us-sales-tax.json",
        "create-shipping.json",
        "create-coupon.json",
        "create-cart-fee.json",
    ],
)
def test_every_recorded_create_body_is_accepted_with_its_lines_as_sent(
    client: Any, name: str
) -> None:
    body = krokedil_body(name)
    response = create(client, body)
    assert response.status_code == 201, response.json
    read = client.get(f"/checkout/v3/orders/{response.json['order_id']}", headers=AUTH_HEADER)
    assert read.json["order_lines"] == body["order_lines"]
    assert read.json["order_amount"] == body["order_amount"]
    assert read.json["order_tax_amount"] == body["order_tax_amount"]


def test_a_recorded_body_with_its_site_placeholder_left_in_is_refused() -> None:
    """``<site>/terms/`` is no http(s) URL: Kustom answers "Bad value: merchant_urls.terms"."""
    text = (KROKEDIL / "create-coupon.json").read_text(encoding="utf-8")
    body = json.loads(text)["body"]
    assert refused_fields(body) == [
        "order_lines[0].product_url",
        "merchant_urls.terms",
        "merchant_urls.checkout",
        "merchant_urls.confirmation",
        "merchant_urls.push",
    ]


# ------------------------------------------------------------------ line types
# order_line.type: physical, discount, shipping_fee, sales_tax, digital, gift_card,
# store_credit, surcharge (kustom-checkout-api.yml).


def _one_line_of_each_type() -> dict[str, Any]:
    lines = [
        line(type="physical", unit_price=10000, quantity=2, tax_rate=2500, total_tax_amount=4000),
        line(type="digital", unit_price=5000, tax_rate=600, total_tax_amount=283),
        line(type="shipping_fee", unit_price=4900, tax_rate=2500, total_tax_amount=980),
        line(type="surcharge", unit_price=1000, tax_rate=2500, total_tax_amount=200),
        line(type="discount", unit_price=-2000, tax_rate=2500, total_tax_amount=-400),
        line(type="gift_card", unit_price=-5000),
        line(type="store_credit", unit_price=-1500),
        line(type="sales_tax", unit_price=0),
    ]
    return order_of(*lines)


def test_every_documented_type_goes_in_and_comes_back_as_sent(client: Any) -> None:
    payload = _one_line_of_each_type()
    assert {item["type"] for item in payload["order_lines"]} == ORDER_LINE_TYPES
    assert payload["order_amount"] == 20000 + 5000 + 4900 + 1000 - 2000 - 5000 - 1500
    response = create(client, payload)
    assert response.status_code == 201, response.json
    order_id = response.json["order_id"]
    read = client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).json
    assert [item["type"] for item in read["order_lines"]] == [
        item["type"] for item in payload["order_lines"]
    ]
    assert read["order_lines"] == payload["order_lines"]
    # An update keeps them too.
    update = client.post(f"/checkout/v3/orders/{order_id}", json=payload, headers=AUTH_HEADER)
    assert update.status_code == 200 and update.json["order_lines"] == payload["order_lines"]


@pytest.mark.parametrize("bad_type", ["return_fee", "Physical", "coupon", "", 7])
def test_an_undocumented_line_type_is_refused(bad_type: Any) -> None:
    payload = order_of(line(type=bad_type))
    assert refused_fields(payload) == ["order_lines[0].type"]


def test_order_amounts_stay_non_negative() -> None:
    """order_amount and order_tax_amount are "non-negative minor units"; lines may not be."""
    card = line(type="gift_card", unit_price=-5000)
    assert refused_fields(order_of(line(unit_price=1000), card)) == ["order_amount"]
    credit_only = order_of(line(unit_price=3000), line(type="store_credit", unit_price=-3000))
    assert validate_order(credit_only) == []  # 0 is allowed


# ------------------------------------------------------------------ the shipping-option price rule
# https://docs.kustom.co/contents/checkout/use-cases/shipping: with a shipping_option_update
# URL "the shipping option cost is not automatically added to order_lines or order_total";
# without it KCO "automatically handles shipping cost updates"
# (https://docs.kustom.co/contents/checkout/additional-resources/server-side-callbacks).

OPTIONS = [
    {"id": "postnord", "name": "PostNord", "price": 4900, "tax_amount": 980, "tax_rate": 2500},
    {
        "id": "express",
        "name": "Express",
        "price": 9900,
        "tax_amount": 1980,
        "tax_rate": 2500,
        "preselected": True,
        "description": "Tomorrow",
        "shipping_method": "Home",
    },
]
TSHIRTS = line(
    type="physical",
    reference="19-402-USA",
    name="Yellow T-Shirt",
    quantity=5,
    unit_price=10000,
    tax_rate=1000,
    total_tax_amount=4545,
)


def goods_with_options(**overrides: Any) -> dict[str, Any]:
    """T-shirts for 500.00 and two shipping options, no shipping line: Kustom prices it."""
    return order_of(TSHIRTS, **{"shipping_options": copy.deepcopy(OPTIONS), **overrides})


def kustom_line(option: dict[str, Any]) -> dict[str, Any]:
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


def test_without_the_callback_kustom_adds_the_preselected_option(client: Any) -> None:
    payload = goods_with_options()
    response = create(client, payload)
    assert response.status_code == 201, response.json
    created = response.json
    express = OPTIONS[1]
    assert created["order_lines"] == [TSHIRTS, kustom_line(express)]
    assert created["order_amount"] == 50000 + 9900
    assert created["order_tax_amount"] == 4545 + 1980
    assert created["selected_shipping_option"] == express
    assert created["shipping_options"] == OPTIONS  # as sent
    read = client.get(f"/checkout/v3/orders/{created['order_id']}", headers=AUTH_HEADER).json
    assert read == created
    assert_matches_schema("checkout", "order", read)
    assert validate_order(read) == []  # what Kustom holds adds up too


def test_without_a_preselected_option_kustom_adds_the_first() -> None:
    options = [{k: v for k, v in o.items() if k != "preselected"} for o in OPTIONS]
    created = KustomDoubleState().create_order(order_of(TSHIRTS, shipping_options=options))
    assert created["order_lines"][-1] == kustom_line(options[0])
    assert created["order_amount"] == 50000 + 4900
    assert created["selected_shipping_option"]["id"] == "postnord"


def test_the_merchants_body_is_checked_as_sent_before_kustom_adds_shipping() -> None:
    """The merchant's lines must add up to the merchant's order_amount: an order_amount that
    already counts the shipping Kustom adds is refused."""
    counted = goods_with_options(order_amount=50000 + 9900, order_tax_amount=4545 + 1980)
    assert refused_fields(counted) == ["order_amount", "order_tax_amount"]


def test_a_merchant_that_also_sends_the_shipping_line_charges_it_twice(client: Any) -> None:
    """Options without the callback URL *and* the selected option's line in the merchant's own
    order_lines: Kustom adds its own line as well, and the shopper pays shipping twice. This
    is how a service test catches a double charge against the double."""
    express = OPTIONS[1]
    own_line = kustom_line(express)
    payload = order_of(TSHIRTS, own_line, shipping_options=copy.deepcopy(OPTIONS))
    assert payload["order_amount"] == 50000 + 9900  # the merchant means to charge this
    response = create(client, payload)
    assert response.status_code == 201, response.json
    held = response.json
    assert held["order_amount"] == 50000 + 9900 + 9900
    assert held["order_tax_amount"] == 4545 + 1980 + 1980
    assert [item["type"] for item in held["order_lines"]] == [
        "physical",
        "shipping_fee",
        "shipping_fee",
    ]
    stored = KustomDoubleState()
    order_id = stored.create_order(payload)["order_id"]
    completed = stored.complete_order(order_id)
    assert completed["order_management"]["order_amount"] == 50000 + 2 * 9900


def test_with_the_callback_nothing_is_added_and_the_selection_is_recorded() -> None:
    urls = {**MERCHANT_URLS, "shipping_option_update": "https://merchant.example/shipping"}
    express = OPTIONS[1]
    payload = order_of(TSHIRTS, kustom_line(express), shipping_options=copy.deepcopy(OPTIONS))
    payload["merchant_urls"] = urls
    created = KustomDoubleState().create_order(payload)
    assert created["order_lines"] == payload["order_lines"]
    assert created["order_amount"] == payload["order_amount"] == 50000 + 9900
    assert created["selected_shipping_option"] == express


def test_merchant_updates_reapply_the_still_selected_option() -> None:
    state = KustomDoubleState()
    order_id = state.create_order(goods_with_options())["order_id"]
    more = {**TSHIRTS, "quantity": 6, "total_amount": 60000, "total_tax_amount": 5455}
    updated = state.update_order(
        order_id, {"order_lines": [more], "order_amount": 60000, "order_tax_amount": 5455}
    )
    assert updated["order_lines"] == [more, kustom_line(OPTIONS[1])]
    assert updated["order_amount"] == 60000 + 9900
    # An update that changes nothing of the amounts keeps Kustom's line exactly once.
    again = state.update_order(order_id, {"merchant_reference1": "cart-42"})
    assert again["order_lines"] == [more, kustom_line(OPTIONS[1])]
    assert again["order_amount"] == 60000 + 9900
    # The merchant's amounts are its own: sending Kustom's totals back is refused.
    with pytest.raises(KustomError) as refused:
        state.update_order(order_id, {"order_amount": 69900, "order_tax_amount": 7435})
    assert refused.value.error_messages == [
        "Bad value: order_amount",
        "Bad value: order_tax_amount",
    ]


def test_the_shoppers_choice_swaps_kustoms_line_and_survives_merchant_updates() -> None:
    state = KustomDoubleState()
    order_id = state.create_order(goods_with_options())["order_id"]
    chosen = state.shopper_select_shipping(order_id, "postnord")
    assert "error" not in chosen
    assert chosen["order_amount"] == 50000 + 4900 and chosen["selected_shipping_option"] == (
        "postnord"
    )
    held = state.read_order(order_id)
    assert held["order_lines"] == [TSHIRTS, kustom_line(OPTIONS[0])]  # swapped, not added
    assert held["order_tax_amount"] == 4545 + 980
    assert held["selected_shipping_option"]["id"] == "postnord"

    # The merchant re-sends the cart with express still preselected: the shopper's pick stays.
    resent = state.update_order(order_id, goods_with_options())
    assert resent["order_lines"] == [TSHIRTS, kustom_line(OPTIONS[0])]
    assert resent["order_amount"] == 50000 + 4900
    # The merchant stops offering it: Kustom falls back to the preselected option.
    only_express = goods_with_options(shipping_options=[copy.deepcopy(OPTIONS[1])])
    fallback = state.update_order(order_id, only_express)
    assert fallback["order_lines"] == [TSHIRTS, kustom_line(OPTIONS[1])]
    assert fallback["selected_shipping_option"]["id"] == "express"
    # No options any more: nothing is added and nothing is selected.
    plain = state.update_order(order_id, {"shipping_options": []})
    assert plain["order_lines"] == [TSHIRTS] and plain["order_amount"] == 50000
    assert "selected_shipping_option" not in plain


def test_the_order_kustom_completes_is_the_one_with_its_shipping_line() -> None:
    state = KustomDoubleState()
    order_id = state.create_order(goods_with_options())["order_id"]
    state.shopper_select_shipping(order_id, "postnord")
    stored = state.complete_order(order_id)
    om = stored["order_management"]
    assert om["order_amount"] == 50000 + 4900
    assert om["order_lines"][-1] == kustom_line(OPTIONS[0])
    assert om["selected_shipping_option"]["id"] == "postnord"


class ShippingMerchant:
    """A merchant with a shipping_option_update callback that reprices the cart itself."""

    def __init__(self) -> None:
        self.app = Flask("shipping-merchant")
        self.bodies: list[dict[str, Any]] = []

        @self.app.post("/shipping")
        def shipping() -> Any:
            body = request.get_json()
            self.bodies.append(body)
            option = body["selected_shipping_option"]
            repriced = order_of(TSHIRTS, kustom_line(option))
            fields = ("order_amount", "order_tax_amount", "order_lines")
            return jsonify({name: repriced[name] for name in fields})


@pytest.fixture
def shipping_merchant() -> Iterator[tuple[ShippingMerchant, str]]:
    merchant = ShippingMerchant()
    with ServerThread(merchant.app, name="shipping-merchant") as server:
        yield merchant, server.url


def test_with_the_callback_the_merchants_answer_is_applied_as_is(
    shipping_merchant: tuple[ShippingMerchant, str],
) -> None:
    merchant, url = shipping_merchant
    state = KustomDoubleState()
    payload = order_of(TSHIRTS, kustom_line(OPTIONS[1]), shipping_options=copy.deepcopy(OPTIONS))
    payload["merchant_urls"] = {**MERCHANT_URLS, "shipping_option_update": f"{url}/shipping"}
    order_id = state.create_order(payload)["order_id"]

    chosen = state.shopper_select_shipping(order_id, "postnord")
    assert "error" not in chosen
    [body] = merchant.bodies
    assert body["selected_shipping_option"]["id"] == "postnord"
    assert body["order_amount"] == 50000 + 9900  # the order as Kustom had it
    held = state.read_order(order_id)
    assert held["order_lines"] == [TSHIRTS, kustom_line(OPTIONS[0])]  # nothing added
    assert held["order_amount"] == 50000 + 4900
    assert held["selected_shipping_option"]["id"] == "postnord"
    # The merchant's next sync is taken as sent, the shopper's choice kept on record.
    resync = order_of(TSHIRTS, kustom_line(OPTIONS[0]), merchant_urls=payload["merchant_urls"])
    synced = state.update_order(order_id, resync)
    assert synced["order_amount"] == 50000 + 4900
    assert synced["selected_shipping_option"]["id"] == "postnord"


def test_a_shopper_choice_without_the_callback_calls_no_merchant() -> None:
    state = KustomDoubleState()
    order_id = state.create_order(goods_with_options())["order_id"]
    state.shopper_select_shipping(order_id, "postnord")
    assert state.callbacks() == []


# ------------------------------------------------------------------ shipping_option fields
# shipping_option: required id, name (1..255), price, tax_amount, tax_rate (non-negative);
# preselected a boolean (kustom-checkout-api.yml).


@pytest.mark.parametrize(
    ("change", "bad_field"),
    [
        ({"id": None}, "shipping_options[0].id"),
        ({"id": 7}, "shipping_options[0].id"),
        ({"name": ""}, "shipping_options[0].name"),
        ({"name": "n" * 256}, "shipping_options[0].name"),
        ({"name": "n" * 254 + EMOJI}, "shipping_options[0].name"),  # 256 UTF-16 units
        ({"price": "49.00"}, "shipping_options[0].price"),
        ({"price": None}, "shipping_options[0].price"),
        ({"tax_amount": 9.8}, "shipping_options[0].tax_amount"),
        ({"tax_rate": -1}, "shipping_options[0].tax_rate"),
        ({"preselected": "true"}, "shipping_options[0].preselected"),
        ({"description": 5}, "shipping_options[0].description"),
        ({"shipping_method": ["Home"]}, "shipping_options[0].shipping_method"),
    ],
)
def test_bad_shipping_option_fields_are_named(change: dict[str, Any], bad_field: str) -> None:
    options = copy.deepcopy(OPTIONS)
    options[0].update(change)
    payload = goods_with_options(shipping_options=options)
    assert refused_fields(payload) == [bad_field]
    with_callback = {**MERCHANT_URLS, "shipping_option_update": "https://merchant.example/s"}
    assert refused_fields({**payload, "merchant_urls": with_callback}) == [bad_field]


def test_shipping_options_must_be_a_list_of_objects() -> None:
    assert refused_fields(goods_with_options(shipping_options={"id": "x"})) == ["shipping_options"]
    assert refused_fields(goods_with_options(shipping_options=["postnord"])) == [
        "shipping_options[0]"
    ]


def test_an_option_kustom_would_turn_into_a_bad_line_is_refused() -> None:
    """Kustom adds the chosen option as an order line, held to the line rules (±1 tax,
    price limit, id usable as the line's reference): checked when Kustom prices shipping."""
    for change, bad_field in (
        ({"tax_amount": 982}, "shipping_options[0].tax_amount"),
        ({"tax_rate": 10001}, "shipping_options[0].tax_rate"),
        ({"price": 100_000_001, "tax_amount": 20_000_000}, "shipping_options[0].price"),
        ({"id": "i" * 256}, "shipping_options[0].id"),
    ):
        options = copy.deepcopy(OPTIONS)
        options[0].update(change)
        assert refused_fields(goods_with_options(shipping_options=options)) == [bad_field]
        # With the callback the merchant's own lines carry shipping: only the option's
        # documented fields are checked.
        urls = {**MERCHANT_URLS, "shipping_option_update": "https://merchant.example/s"}
        assert (
            validate_order(goods_with_options(shipping_options=options, merchant_urls=urls)) == []
        )


# ------------------------------------------------------------------ URLs and lengths
# order_line.product_url / image_url: max 1024; merchant_urls.*: max 2000 (OpenAPI). Kustom
# refuses what is not an http(s) URL ("Bad value: merchant_urls.terms (must be a valid http
# or https URI)", https://docs.krokedil.com/kustom-checkout-for-woocommerce/troubleshooting/faq/;
# an empty image_url is a 400 BAD_VALUE,
# https://github.com/krokedil/klarna-payments-for-woocommerce/pull/397).


def _url_of_length(units: int) -> str:
    prefix = "https://shop.example/p/"
    return prefix + "x" * (units - len(prefix))


@pytest.mark.parametrize("field", ["product_url", "image_url"])
@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://shop.example/products/red-shirt?size=M", True),
        ("http://shop.example/img/1.jpg", True),
        ("HTTPS://SHOP.EXAMPLE/X", True),
        (_url_of_length(1024), True),
        (_url_of_length(1025), False),
        ("/products/red-shirt", False),
        ("shop.example/products/red-shirt", False),
        ("//shop.example/products/red-shirt", False),
        ("ftp://shop.example/file", False),
        ("javascript:alert(1)", False),
        ("https://", False),
        ("https://shop.example/a b", False),
        ("", False),
        (None, False),
    ],
)
def test_line_urls_are_absolute_http_urls_within_1024(field: str, url: Any, accepted: bool) -> None:
    payload = order_of(line(**{field: url}))
    if accepted:
        assert validate_order(payload) == []
    else:
        assert refused_fields(payload) == [f"order_lines[0].{field}"]


@pytest.mark.parametrize(
    "name",
    ["terms", "checkout", "confirmation", "push", "validation", "notification",
     "shipping_option_update", "address_update", "country_change", "cancellation_terms"],
)  # fmt: skip
def test_merchant_urls_are_absolute_http_urls_within_2000(name: str) -> None:
    def with_url(url: Any) -> dict[str, Any]:
        return order_payload(merchant_urls={**MERCHANT_URLS, name: url})

    # Kustom's own templates are fine; plain http too (the double serves local services).
    assert validate_order(with_url("http://127.0.0.1:8000/k?order_id={checkout.order.id}")) == []
    assert validate_order(with_url("https://m.example/" + "x" * (2000 - 18))) == []
    for bad in ("/kustom/push", "https://m.example/" + "x" * (2001 - 18), "", "mailto:a@b.c"):
        assert refused_fields(with_url(bad)) == [f"merchant_urls.{name}"], bad


@pytest.mark.parametrize(("units", "accepted"), [(254, True), (255, True), (256, False)])
def test_names_count_utf16_code_units_like_kustom(units: int, accepted: bool) -> None:
    """An emoji counts two: 255 characters with one emoji are 256 units, one too many."""
    name = "a" * (units - 2) + EMOJI
    assert utf16_length(name) == units and len(name) == units - 1
    payload = order_of(line(name=name))
    if accepted:
        assert validate_order(payload) == []
    else:
        assert refused_fields(payload) == ["order_lines[0].name"]


@pytest.mark.parametrize("field", ["reference", "merchant_reference1", "merchant_reference2"])
@pytest.mark.parametrize(("units", "accepted"), [(254, True), (255, True), (256, False)])
def test_references_count_utf16_code_units(field: str, units: int, accepted: bool) -> None:
    value = EMOJI * (units // 2) + "r" * (units % 2)
    assert utf16_length(value) == units
    if field == "reference":
        payload, path = order_of(line(reference=value)), "order_lines[0].reference"
    else:
        payload, path = order_payload(**{field: value}), field
    if accepted:
        assert validate_order(payload) == []
    else:
        assert refused_fields(payload) == [path]
    assert validate_order(order_of(line(reference=""))) == []  # reference is 0..255


@pytest.mark.parametrize(
    ("unit", "accepted"),
    [("pcs", True), ("kg", True), ("x" * 8, True), ("", False), ("x" * 9, False),
     ("pcs" + EMOJI * 3, False)],  # 3 + 6 = 9 units
)  # fmt: skip
def test_quantity_unit_is_1_to_8_units(unit: str, accepted: bool) -> None:
    payload = order_of(line(quantity_unit=unit))
    if accepted:
        assert validate_order(payload) == []
    else:
        assert refused_fields(payload) == ["order_lines[0].quantity_unit"]


def test_utf16_length() -> None:
    assert utf16_length("") == 0
    assert utf16_length("Göteborg") == 8  # one unit each, Latin-1 included
    assert utf16_length(EMOJI) == 2
    assert utf16_length("\u20ac") == 1  # € is in the BMP
    assert utf16_length("\ud800") == 1  # a lone surrogate from a JSON escape, as in Java


def test_many_bad_fields_are_named_at_once_in_kustoms_shape(client: Any) -> None:
    payload = order_of(
        line(name="n" * 254 + EMOJI, product_url="/p/1", quantity_unit=""),
        line(type="surcharge", tax_rate=2500, total_tax_amount=0),
        shipping_options=[{**OPTIONS[0], "tax_amount": 0}],
        merchant_urls={**MERCHANT_URLS, "terms": "terms.html"},
    )
    error = assert_error(create(client, payload), 400, "BAD_VALUE")
    assert error["error_messages"] == [
        "Bad value: order_lines[0].name",
        "Bad value: order_lines[0].quantity_unit",
        "Bad value: order_lines[0].product_url",
        "Bad value: order_lines[1].total_tax_amount",
        "Bad value: shipping_options[0].tax_amount",
        "Bad value: merchant_urls.terms",
    ]
