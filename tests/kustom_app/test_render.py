from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import ValidationError

from kustom_app.render import dump_render, load_render, render_json
from tests.conftest import FIXTURES

RENDERS = sorted((FIXTURES / "renders").glob("*.json"))


def contract_render() -> dict[str, Any]:
    return json.loads((FIXTURES / "renders" / "sek_contract.json").read_text())


def errors_of(data: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        load_render(data)
    messages = caught.value.messages
    assert isinstance(messages, dict)
    return messages


def test_the_contract_example_loads_with_exact_money() -> None:
    render = load_render(contract_render())
    assert render["cartId"] == "cart-1001"
    assert render["version"] == 7
    assert render["currencyCode"] == "SEK"
    assert render["countryCode"] == "SE"
    assert render["locale"] == "sv-SE"
    assert render["taxIncluded"] is True
    assert render["cartTotal"] == Decimal("549.00")
    assert render["cartTaxTotal"] == Decimal("109.80")
    line = render["lines"][0]
    assert line["quantity"] == 2
    assert line["unitPrice"] == Decimal("250.00")
    assert line["taxRate"] == Decimal("0.25")
    assert render["shipping"]["price"] == Decimal("49.00")
    assert [o["id"] for o in render["shippingOptions"]] == ["postnord", "express"]
    assert all(
        isinstance(line[k], Decimal)
        for k in ("unitPrice", "discountTotal", "salesTotal", "taxRate", "taxTotal")
    )


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_every_fixture_render_loads(path: Any) -> None:
    load_render(json.loads(path.read_text()))


def test_json_numbers_load_as_exact_decimals() -> None:
    data = contract_render()
    data["cartTotal"] = 549
    data["cartTaxTotal"] = 109.8
    data["lines"][0]["unitPrice"] = 250.0
    render = load_render(data)
    assert render["cartTotal"] == Decimal("549")
    assert render["cartTaxTotal"] == Decimal("109.8")
    assert str(render["cartTaxTotal"]) == "109.8"  # not 109.7999999999999971578...
    assert render["lines"][0]["unitPrice"] == Decimal("250.0")


def test_codes_are_upper_cased() -> None:
    data = contract_render() | {"currencyCode": "sek", "countryCode": "se"}
    render = load_render(data)
    assert (render["currencyCode"], render["countryCode"]) == ("SEK", "SE")


def test_optional_fields_get_their_defaults() -> None:
    data = contract_render()
    for key in ("locale", "channelKey", "shipping", "shippingOptions"):
        del data[key]
    line = data["lines"][0]
    for key in ("reservedQuantity", "discountTotal", "description", "productUrl", "imageUrl"):
        del line[key]
    render = load_render(data)
    assert render["locale"] is None  # the hook input says "nothing"; the payload fills it
    assert render["channelKey"] is None
    assert render["shipping"] is None
    assert render["shippingOptions"] is None
    loaded_line = render["lines"][0]
    assert loaded_line["reservedQuantity"] == 2
    assert loaded_line["discountTotal"] == Decimal(0)
    assert loaded_line["description"] is None
    assert loaded_line["productUrl"] is None


def test_null_locale_stays_null_and_reserved_quantity_is_filled() -> None:
    data = contract_render()
    data["locale"] = None
    data["lines"][0]["reservedQuantity"] = None
    data["lines"][0]["quantity"] = 3
    render = load_render(data)
    assert render["locale"] is None
    assert render["lines"][0]["reservedQuantity"] == 3


def test_an_empty_options_list_is_kept_apart_from_no_options() -> None:
    render = load_render(contract_render() | {"shippingOptions": []})
    assert render["shippingOptions"] == []


def test_unknown_fields_are_dropped_everywhere() -> None:
    data = contract_render()
    data["promotionCodes"] = ["X"]
    data["lines"][0]["warehouse"] = "north"
    data["shipping"]["carrierCode"] = "PN"
    data["shippingOptions"][1]["eta"] = "tomorrow"
    render = load_render(data)
    assert "promotionCodes" not in render
    assert "warehouse" not in render["lines"][0]
    assert "carrierCode" not in render["shipping"]
    assert "eta" not in render["shippingOptions"][1]


def test_missing_required_fields_are_named() -> None:
    messages = errors_of({})
    for field in ("cartId", "version", "currencyCode", "countryCode", "taxIncluded",
                  "cartTotal", "cartTaxTotal", "lines"):  # fmt: skip
        assert field in messages, field
    data = contract_render()
    del data["lines"][0]["salesTotal"]
    del data["shipping"]["taxTotal"]
    messages = errors_of(data)
    assert "salesTotal" in messages["lines"][0]
    assert "taxTotal" in messages["shipping"]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(cartId=""), ("cartId",)),
        (lambda d: d.update(cartId="c" * 256), ("cartId",)),
        (lambda d: d.update(cartId=1001), ("cartId",)),
        (lambda d: d.update(version=-1), ("version",)),
        (lambda d: d.update(version="7"), ("version",)),
        (lambda d: d.update(version=7.5), ("version",)),
        (lambda d: d.update(currencyCode="SEKK"), ("currencyCode",)),
        (lambda d: d.update(currencyCode="S1K"), ("currencyCode",)),
        (lambda d: d.update(countryCode="SWE"), ("countryCode",)),
        (lambda d: d.update(locale="sv_SE"), ("locale",)),
        (lambda d: d.update(locale="swe-SE"), ("locale",)),
        (lambda d: d.update(locale="sv-SE\n"), ("locale",)),
        (lambda d: d.update(currencyCode="SEK\n"), ("currencyCode",)),
        (lambda d: d.update(version=2**63), ("version",)),
        (lambda d: d.update(taxIncluded="true"), ("taxIncluded",)),
        (lambda d: d.update(taxIncluded=1), ("taxIncluded",)),
        (lambda d: d.update(taxIncluded=None), ("taxIncluded",)),
        (lambda d: d.update(cartTotal=True), ("cartTotal",)),
        (lambda d: d.update(cartTotal="NaN"), ("cartTotal",)),
        (lambda d: d.update(cartTotal=float("nan")), ("cartTotal",)),
        (lambda d: d.update(cartTotal="Infinity"), ("cartTotal",)),
        (lambda d: d.update(cartTotal="549,00"), ("cartTotal",)),
        (lambda d: d.update(cartTaxTotal=None), ("cartTaxTotal",)),
        (lambda d: d.update(lines={"l1": {}}), ("lines",)),
        (lambda d: d.update(lines=None), ("lines",)),
        (lambda d: d["lines"][0].update(quantity=1.5), ("lines", 0, "quantity")),
        (lambda d: d["lines"][0].update(quantity="2"), ("lines", 0, "quantity")),
        (lambda d: d["lines"][0].update(quantity=True), ("lines", 0, "quantity")),
        (lambda d: d["lines"][0].update(quantity=-1), ("lines", 0, "quantity")),
        (lambda d: d["lines"][0].update(quantity=2**63), ("lines", 0, "quantity")),
        (lambda d: d["lines"][0].update(reservedQuantity=0.5), ("lines", 0, "reservedQuantity")),
        (lambda d: d["lines"][0].update(productNumber=""), ("lines", 0, "productNumber")),
        (lambda d: d["lines"][0].update(type="sales_tax"), ("lines", 0, "type")),
        (lambda d: d["lines"][0].update(type="Physical"), ("lines", 0, "type")),
        (lambda d: d["lines"][0].update(type=["physical"]), ("lines", 0, "type")),
        (lambda d: d["lines"][0].update(lineId=None), ("lines", 0, "lineId")),
        (lambda d: d["lines"][0].update(unitPrice=False), ("lines", 0, "unitPrice")),
        (lambda d: d["lines"][0].update(unitPrice="two"), ("lines", 0, "unitPrice")),
        (lambda d: d["lines"][0].update(salesTotal=[500]), ("lines", 0, "salesTotal")),
        (lambda d: d["lines"][0].update(taxRate="25"), ("lines", 0, "taxRate")),
        (lambda d: d["lines"][0].update(taxRate="-0.25"), ("lines", 0, "taxRate")),
        (lambda d: d["lines"][0].update(description=5), ("lines", 0, "description")),
        (lambda d: d["shipping"].update(price="free"), ("shipping", "price")),
        (lambda d: d["shipping"].update(id=""), ("shipping", "id")),
        (lambda d: d["shippingOptions"][1].update(name=None), ("shippingOptions", 1, "name")),
        (lambda d: d.update(shipping="postnord"), ("shipping",)),
    ],
)
def test_wrong_values_are_refused_naming_the_field(mutate: Any, where: tuple[Any, ...]) -> None:
    data = contract_render()
    mutate(data)
    node: Any = errors_of(data)
    for key in where:
        assert key in node, (where, node)
        node = node[key]


def test_money_errors_say_what_is_wrong() -> None:
    data = contract_render()
    data["cartTotal"] = True
    data["cartTaxTotal"] = "NaN"
    messages = errors_of(data)
    assert "boolean" in messages["cartTotal"][0]
    assert "'NaN' is not a decimal number" in messages["cartTaxTotal"][0]


def test_integral_float_quantities_are_accepted() -> None:
    data = contract_render()
    data["lines"][0]["quantity"] = 2.0
    assert load_render(data)["lines"][0]["quantity"] == 2


def test_non_objects_are_refused() -> None:
    for data in ([], "cart", None, 5):
        errors_of(data)


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_dump_then_load_gives_the_same_render(path: Any) -> None:
    render = load_render(json.loads(path.read_text()))
    stored = json.loads(json.dumps(dump_render(render)))  # as it comes back from Redis
    assert load_render(stored) == render


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_the_stored_json_text_is_the_dumped_render(path: Any) -> None:
    render = load_render(json.loads(path.read_text()))
    text = render_json(render)
    assert json.loads(text) == dump_render(render)
    assert load_render(json.loads(text)) == render
    assert json.loads(render_json(render, sort_keys=True)) == dump_render(render)


def test_dump_keeps_amounts_as_given_and_never_as_floats() -> None:
    data = contract_render()
    data["cartTaxTotal"] = 109.8
    data["lines"][0]["unitPrice"] = "250.000"
    render = load_render(data)
    before = copy.deepcopy(render)
    stored = dump_render(render)
    assert render == before  # dumping does not touch the loaded render
    assert stored["cartTotal"] == "549.00"
    assert stored["cartTaxTotal"] == "109.8"
    assert stored["lines"][0]["unitPrice"] == "250.000"
    assert stored["lines"][0]["quantity"] == 2
    assert stored["taxIncluded"] is True
    assert stored["shippingOptions"][1]["price"] == "99.00"
    json.dumps(stored)  # nothing that JSON cannot hold
