"""The reference's three example rules, run against the reference's hook input shape."""

from __future__ import annotations

import copy
import importlib.metadata
from decimal import Decimal
from typing import Any

import pytest

from kustom_app.render import load_render
from kustom_app.rules import (
    AllowedChannels,
    MinimumOrderTotal,
    allowed_channels,
    minimum_order_total,
    stock_available,
)
from kustom_app.settings import ConfigurationError
from kustom_app.validation import build_hook_input, load_rules, run_rules
from tests.conftest import CONTRACT_RENDER

ALL_THREE = (
    "kustom_app.rules:stock_available",
    "kustom_app.rules:minimum_order_total",
    "kustom_app.rules:allowed_channels",
)


def hook_input(**changes: Any) -> dict[str, Any]:
    """The hook input of the contract's example cart (SEK 549.00, channel retail-se)."""
    built = build_hook_input(load_render(copy.deepcopy(CONTRACT_RENDER)))
    built.update(changes)
    return built


def line(product: str, quantity: int, reserved: int) -> dict[str, Any]:
    return {
        "productNumber": product,
        "description": None,
        "quantity": quantity,
        "reservedQuantity": reserved,
        "unitPrice": Decimal("10.00"),
        "salesTotal": Decimal(10 * quantity),
        "taxTotal": Decimal(2 * quantity),
    }


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "100")
    monkeypatch.setenv("KUSTOM_ALLOWED_CHANNELS", "retail-se, retail-no")


# -- stock ----------------------------------------------------------------------------------


def test_stock_passes_when_everything_is_reserved() -> None:
    assert stock_available(hook_input()) == []
    assert stock_available(hook_input(orderLines=[line("A", 2, 5)])) == []


def test_stock_names_every_line_asking_for_more_than_is_reserved() -> None:
    effects = stock_available(
        hook_input(orderLines=[line("A", 3, 2), line("B", 1, 1), line("C", 1, 0)])
    )
    assert effects == [
        {
            "effect": "validationError",
            "code": "approval_failed",
            "message": "The following items are no longer available: A, C",
        }
    ]


# -- minimum order total --------------------------------------------------------------------


def test_minimum_total_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "100")
    assert minimum_order_total(hook_input()) == []
    assert minimum_order_total(hook_input(orderTotal=Decimal("100.00"))) == []
    assert minimum_order_total(hook_input(orderTotal=Decimal("99.99"))) == [
        {
            "effect": "validationError",
            "code": "approval_failed",
            "message": "Minimum order total is 100 SEK.",
        }
    ]


def test_minimum_total_is_read_when_the_rule_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "100")
    assert minimum_order_total(hook_input()) == []
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "1000.50")
    assert minimum_order_total(hook_input())[0]["message"] == "Minimum order total is 1000.50 SEK."


def test_minimum_total_per_currency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "sek:600, EUR:10")
    assert minimum_order_total(hook_input())[0]["message"] == "Minimum order total is 600 SEK."
    assert minimum_order_total(hook_input(currencyCode="EUR", orderTotal=Decimal("9"))) != []
    assert minimum_order_total(hook_input(currencyCode="NOK", orderTotal=Decimal("1"))) == []


@pytest.mark.parametrize("raw", ["", "abc", "-1", "NaN", "Infinity", "SEK100,EUR:1", "SEKK:1"])
def test_minimum_total_misconfigured_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", raw)
    monkeypatch.setenv("KUSTOM_ALLOWED_CHANNELS", "retail-se")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    with pytest.raises(ConfigurationError, match="KUSTOM_MIN_ORDER_TOTAL"):
        load_rules(ALL_THREE)


def test_minimum_total_built_in_code() -> None:
    rule = MinimumOrderTotal(Decimal("600"))
    assert rule(hook_input())[0]["message"] == "Minimum order total is 600 SEK."
    assert MinimumOrderTotal({"eur": Decimal(5)})(hook_input()) == []


# -- allowed channels -----------------------------------------------------------------------


def test_allowed_channels_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOM_ALLOWED_CHANNELS", "retail-se,retail-no")
    assert allowed_channels(hook_input()) == []
    assert allowed_channels(hook_input(channelKey="retail-no")) == []
    assert allowed_channels(hook_input(channelKey="retail-dk")) == [
        {
            "effect": "validationError",
            "code": "unsupported_shipping_address",
            "message": "We don't ship to this destination yet.",
        }
    ]


def test_a_cart_without_a_channel_is_not_allowed() -> None:
    assert AllowedChannels(["retail-se"])(hook_input(channelKey=None)) != []


@pytest.mark.parametrize("raw", ["", " , "])
def test_allowed_channels_misconfigured_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("KUSTOM_ALLOWED_CHANNELS", raw)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    with pytest.raises(ConfigurationError, match="KUSTOM_ALLOWED_CHANNELS"):
        load_rules(["kustom_app.rules:allowed_channels"])


# -- switched on by name --------------------------------------------------------------------


def test_the_three_switched_on_by_name_run_in_order(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    rules = load_rules(ALL_THREE)
    assert [r.name for r in rules] == list(ALL_THREE)
    assert run_rules(rules, hook_input()) is None

    # Everything wrong at once: the stock rule is first, so its error is the one sent.
    everything_wrong = hook_input(
        orderLines=[line("A", 2, 1)], orderTotal=Decimal("20.00"), channelKey="retail-dk"
    )
    rejection = run_rules(rules, everything_wrong)
    assert rejection is not None
    assert (rejection.rule, rejection.code, rejection.message) == (
        "kustom_app.rules:stock_available",
        "approval_failed",
        "The following items are no longer available: A",
    )

    rejection = run_rules(rules, hook_input(channelKey="retail-dk"))
    assert rejection is not None
    assert (rejection.rule, rejection.code) == (
        "kustom_app.rules:allowed_channels",
        "unsupported_shipping_address",
    )


def test_the_rules_declare_only_fields_of_the_reference_shape(configured: None) -> None:
    # Each example uses only its declared fields: a minimal input in the reference's
    # declaration for that rule is enough.
    assert stock_available({"hook": "OnKustomValidation", "orderLines": [line("A", 1, 0)]})
    assert minimum_order_total(
        {"hook": "OnKustomValidation", "currencyCode": "SEK", "orderTotal": Decimal(1)}
    )
    assert allowed_channels({"hook": "OnKustomValidation", "channelKey": "retail-dk"})
