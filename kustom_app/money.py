"""Money: `Decimal` in major units from the commerce side, integers of minor units to Kustom.

Kustom counts money in integer minor units whose size depends on the currency (ISO 4217):
one yen is 1, one krona is 100 öre, one Kuwaiti dinar is 1000 fils. Every conversion
between the two sides goes through this module so that no amount is ever rounded, and no
float ever takes part in arithmetic.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal, Inexact, InvalidOperation

DEFAULT_EXPONENT = 2

# ISO 4217 minor-unit exponents that differ from the default of 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
            "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip

# Kustom's integers are int64; anything with more than 18 digits before the point (in minor
# units) cannot be sent, and refusing it early keeps absurd exponents ("1e999999") cheap.
_MAX_MINOR_DIGITS = 18
_MAX_TEXT_LENGTH = 64
# Large enough that quantizing an amount below the bound above never rounds for lack of
# precision: only discarded non-zero digits can then signal Inexact.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation])
_QUANTUM = {exponent: Decimal(1).scaleb(-exponent) for exponent in range(0, 5)}
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class NotRepresentable(ValueError):
    """An amount cannot be expressed exactly in the currency's minor units."""

    def __init__(self, what: str, amount: Decimal, currency: str, reason: str) -> None:
        self.what = what
        self.amount = amount
        self.currency = currency
        self.exponent = currency_exponent(currency)
        self.message = f"{what} {amount} {reason}"
        super().__init__(self.message)


def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of a currency, so that JPY is never sent in hundredths.

    Currencies not listed use 2, which is right for almost every active ISO 4217 code.
    """
    return _EXPONENTS.get(code.upper(), DEFAULT_EXPONENT)


def to_minor(amount: Decimal, currency: str, *, what: str) -> int:
    """Major units to Kustom's integer minor units, exactly or not at all.

    Rounding here would make the payload disagree with the cart the shopper saw, so an
    amount with more significant decimals than the currency has is refused instead.
    Trailing zeros are not significant ("250.000" SEK is 25000). `what` names the amount
    in the error ("line l1 unitPrice").
    """
    exponent = currency_exponent(currency)
    if not amount.is_finite():
        raise NotRepresentable(what, amount, currency, "is not a finite number")
    if amount.is_zero():
        return 0
    if amount.adjusted() + exponent >= _MAX_MINOR_DIGITS:
        raise NotRepresentable(what, amount, currency, f"is too large for {currency.upper()}")
    try:
        exact = amount.quantize(_QUANTUM[exponent], context=_EXACT)
    except Inexact:
        raise NotRepresentable(
            what,
            amount,
            currency,
            f"has more decimals than {currency.upper()} allows ({exponent})",
        ) from None
    return int(exact.scaleb(exponent, context=_EXACT))


def to_major(minor: int, currency: str) -> Decimal:
    """Minor units back to a `Decimal` in major units, for people and for hook inputs.

    The result carries exactly the currency's number of decimals (25000 SEK → 250.00).
    """
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, not {type(minor).__name__}")
    # Built from text: exact whatever the decimal context's precision is.
    return Decimal(f"{minor}E-{currency_exponent(currency)}")


def as_decimal(value: object) -> Decimal:
    """Parse an amount as JSON gives it to us (number or decimal string) without floats.

    A float is read through its shortest repr (249.99 → Decimal("249.99")), never through
    its binary value. Booleans, NaN and infinities are refused: they are never money.
    """
    if isinstance(value, str):  # first: renders usually carry money as text
        if len(value) > _MAX_TEXT_LENGTH or not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError(f"{value[:_MAX_TEXT_LENGTH]!r} is not a decimal number")
        try:
            return Decimal(value)
        except InvalidOperation as e:  # "1e4078156493443208556": beyond any Decimal exponent
            raise ValueError(f"{value!r} is beyond the range of a decimal number") from e
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite amount")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite amount")
        return Decimal(repr(value))
    raise TypeError(f"{type(value).__name__} is not an amount")


def to_tax_rate(rate: Decimal, *, what: str) -> int:
    """A tax rate fraction (0.25) as Kustom's hundredths of a percent (2500), exactly.

    A rate such as 0.08875 (8.875 %) has no exact Kustom representation; refusing it is
    better than sending a rate that does not match the tax amounts.
    """
    if not rate.is_finite() or rate < 0 or rate > 1:
        raise ValueError(f"{what} {rate} is not a fraction between 0 and 1")
    try:
        scaled = rate.scaleb(4, context=_EXACT)
    except Inexact:  # more digits than any real rate has
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value():
        raise ValueError(
            f"{what} {rate} is not a whole number of hundredths of a percent "
            "(Kustom's tax_rate is an integer, 2500 for 25 %)"
        )
    return int(scaled)
