"""The payloads we build, as the service sends them, against Kustom's published `order` schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from tests.conftest import FIXTURES
from tests.openapi_schema import ValidationError, validate_against

RENDERS = sorted((FIXTURES / "renders").glob("*.json"))
BASE = "https://kustom-app.example.com"
QUERY = "cart=cart-1001&token=3f1c0e5a9b7d4c2e8f6a1b0c9d8e7f6a"


def create_body(path: Path) -> dict[str, Any]:
    """A create-order body: the cart payload plus merchant_urls as the service adds them."""
    body = build_order_payload(load_render(json.loads(path.read_text())))
    body["merchant_urls"] = {
        "terms": "https://shop.example.com/terms",
        "checkout": "https://shop.example.com/checkout",
        "confirmation": "https://shop.example.com/checkout/confirmation",
        "push": f"{BASE}/kustom/push?order_id={{checkout.order.id}}&{QUERY}",
        "notification": f"{BASE}/kustom/notification?order_id={{checkout.order.id}}&{QUERY}",
        "validation": f"{BASE}/kustom/validate?{QUERY}",
        "address_update": f"{BASE}/kustom/address-update?{QUERY}",
        "country_change": f"{BASE}/kustom/country-change?{QUERY}",
        "shipping_option_update": f"{BASE}/kustom/shipping-option-update?{QUERY}",
    }
    return body


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_fixture_payloads_are_valid_kustom_orders(path: Path) -> None:
    validate_against("order", create_body(path))


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_update_payloads_without_merchant_urls_are_valid_too(path: Path) -> None:
    validate_against("order", build_order_payload(load_render(json.loads(path.read_text()))))


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (("order_lines", 0, "quantity"), "2", "is not of type 'integer'"),
        (("order_lines", 0, "name"), "n" * 256, "is too long"),
        (("order_lines", 0, "name"), "", "should be non-empty"),
        (("order_lines", 0, "unit_price"), 100_000_001, "is greater than the maximum"),
        (("order_lines", 0, "tax_rate"), 10_001, "is greater than the maximum"),
        (("order_lines", 0, "total_amount"), 500.0, "is not of type 'integer'"),
        (("order_lines", 0, "product_url"), None, "is not of type 'string'"),
        (("order_amount",), -1, "is less than the minimum"),
        (("order_amount",), 2**63, "is not a 'int64'"),
        (("purchase_currency",), "SEKK", "does not match"),
        (("locale",), "sv_SE", "does not match"),
        (("merchant_reference1",), "r" * 256, "is too long"),
        (("merchant_urls", "push"), "https://x.example/" + "p" * 2000, "is too long"),
        (("shipping_options", 0, "preselected"), "true", "is not of type 'boolean'"),
        (("order_id",), "f3392f8b-6116-4073-ab96-e330819e2c07", "read-only"),
    ],
)
def test_the_validator_rejects_a_broken_payload(
    path: tuple[Any, ...], value: Any, complaint: str
) -> None:
    body = create_body(FIXTURES / "renders" / "sek_contract.json")
    broken = copy.deepcopy(body)
    _set(broken, path, value)
    with pytest.raises(ValidationError) as caught:
        validate_against("order", broken)
    assert complaint in str(caught.value)
    validate_against("order", body)  # the unbroken body still passes


def test_required_fields_are_enforced() -> None:
    body = create_body(FIXTURES / "renders" / "sek_contract.json")
    del body["order_tax_amount"]
    del body["order_lines"][0]["total_tax_amount"]
    with pytest.raises(ValidationError, match="'order_tax_amount' is a required property"):
        validate_against("order", body)
    del body["merchant_urls"]["push"]
    with pytest.raises(ValidationError, match="'push' is a required property"):
        validate_against("order", body)


def test_read_only_fields_are_fine_in_responses() -> None:
    answer = create_body(FIXTURES / "renders" / "sek_contract.json")
    answer |= {"order_id": "f3392f8b", "status": "checkout_incomplete", "html_snippet": "<div>"}
    validate_against("order", answer, direction="response")
    with pytest.raises(ValidationError, match="read-only"):
        validate_against("order", answer)


def test_other_specs_and_unknown_schemas() -> None:
    validate_against(
        "order_line",
        {"name": "Red T-Shirt", "quantity": 1, "unit_price": 100, "tax_rate": 0,
         "total_amount": 100, "total_tax_amount": 0},
    )  # fmt: skip
    with pytest.raises(KeyError):
        validate_against("no_such_schema", {})
