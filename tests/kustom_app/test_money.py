from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustom_app.money import (
    NotRepresentable,
    as_decimal,
    currency_exponent,
    to_major,
    to_minor,
    to_tax_rate,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("JPY", 0), ("KRW", 0), ("ISK", 0), ("SEK", 2), ("EUR", 2), ("USD", 2), ("KWD", 3),
     ("BHD", 3), ("TND", 3), ("jpy", 0), ("XYZ", 2)],
)  # fmt: skip
def test_currency_exponents_follow_iso_4217(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("250.00", "SEK", 25000),
        ("249.99", "SEK", 24999),
        ("0.01", "SEK", 1),
        ("1980", "JPY", 1980),
        ("1.125", "KWD", 1125),
        ("24.75", "KWD", 24750),
        ("0", "SEK", 0),
        ("-0.00", "SEK", 0),
        ("-12.50", "EUR", -1250),
        ("1E+3", "JPY", 1000),
        ("99999999.99", "SEK", 9999999999),
    ],
)
def test_to_minor_converts_exactly(amount: str, currency: str, minor: int) -> None:
    result = to_minor(Decimal(amount), currency, what="amount")
    assert result == minor
    assert type(result) is int


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("250.000", "SEK", 25000), ("1980.00", "JPY", 1980), ("1.1250", "KWD", 1125),
     ("5." + "0" * 70, "SEK", 500)],
)  # fmt: skip
def test_trailing_zeros_are_not_significant(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency, what="amount") == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("249.995", "SEK"), ("1980.5", "JPY"), ("1.1255", "KWD"), ("0.001", "EUR"),
     ("1E-30", "SEK")],
)  # fmt: skip
def test_too_many_decimals_are_refused_not_rounded(amount: str, currency: str) -> None:
    with pytest.raises(NotRepresentable) as caught:
        to_minor(Decimal(amount), currency, what="line l1 unitPrice")
    assert caught.value.what == "line l1 unitPrice"
    assert isinstance(caught.value, ValueError)


def test_refusal_message_names_the_amount_and_the_currency() -> None:
    with pytest.raises(NotRepresentable) as caught:
        to_minor(Decimal("249.995"), "SEK", what="line l1 unitPrice")
    assert str(caught.value) == "line l1 unitPrice 249.995 has more decimals than SEK allows (2)"
    assert caught.value.message == str(caught.value)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "1E+40"])
def test_non_finite_and_absurdly_large_amounts_are_refused(amount: str) -> None:
    with pytest.raises(NotRepresentable, match="cartTotal"):
        to_minor(Decimal(amount), "SEK", what="cartTotal")


@given(minor=st.integers(min_value=-(10**17), max_value=10**17), currency=st.sampled_from(
    ["JPY", "SEK", "KWD"]))  # fmt: skip
def test_to_major_and_to_minor_are_inverse(minor: int, currency: str) -> None:
    major = to_major(minor, currency)
    assert -major.as_tuple().exponent == currency_exponent(currency)  # type: ignore[operator]
    assert to_minor(major, currency, what="x") == minor


def test_to_major_keeps_the_currency_decimals() -> None:
    assert str(to_major(25000, "SEK")) == "250.00"
    assert str(to_major(1980, "JPY")) == "1980"
    assert str(to_major(1125, "KWD")) == "1.125"
    assert str(to_major(-5, "EUR")) == "-0.05"
    with pytest.raises(TypeError):
        to_major(True, "SEK")
    with pytest.raises(TypeError):
        to_major(2.5, "SEK")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("250.00"), "250.00"),
        (3, "3"),
        ("249.99", "249.99"),
        ("-1.5", "-1.5"),
        ("1e2", "1E+2"),
        (".5", "0.5"),
        # floats go through their shortest repr, never through their binary value
        (249.99, "249.99"),
        (0.1, "0.1"),
        (109.8, "109.8"),
        (1e16, "1E+16"),
    ],
)
def test_as_decimal_accepts_numbers_and_decimal_strings(value: object, expected: str) -> None:
    result = as_decimal(value)
    assert isinstance(result, Decimal)
    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize(
    "value",
    [True, False, float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity"), "NaN",
     "Infinity", "abc", "", " 1", "1_000", "1,5", "0x10", None, [1], {"amount": 1}, "9" * 65,
     # Found by schemathesis: an exponent beyond Decimal's range raised InvalidOperation.
     "+.19402e4078156493443208556", "1E-99999999999999999999"],
)  # fmt: skip
def test_as_decimal_refuses_what_is_not_money(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        as_decimal(value)


@pytest.mark.parametrize(
    ("rate", "basis_points"),
    [("0", 0), ("0.25", 2500), ("0.2500", 2500), ("0.12", 1200), ("0.06", 600),
     ("0.0825", 825), ("1", 10000)],
)  # fmt: skip
def test_tax_rate_in_hundredths_of_a_percent(rate: str, basis_points: int) -> None:
    assert to_tax_rate(Decimal(rate), what="taxRate") == basis_points


@pytest.mark.parametrize("rate", ["0.08875", "-0.01", "1.01", "NaN", "0." + "1" * 70])
def test_tax_rate_without_an_exact_kustom_value_is_refused(rate: str) -> None:
    with pytest.raises(ValueError, match="line l1 taxRate"):
        to_tax_rate(Decimal(rate), what="line l1 taxRate")
