"""Ready OnKustomValidation rules: the reference's three examples, switched on by name.

    KUSTOM_VALIDATION_RULES=kustom_app.rules:stock_available,kustom_app.rules:minimum_order_total,kustom_app.rules:allowed_channels
    KUSTOM_MIN_ORDER_TOTAL=100                 # major units, any currency
    KUSTOM_MIN_ORDER_TOTAL=SEK:100,EUR:10      # or per currency (others: no minimum)
    KUSTOM_ALLOWED_CHANNELS=retail-se,retail-no

The settings (`Settings.min_order_total`, `Settings.allowed_channels`) are read from the
environment each time the rule runs, and checked once when the rules are loaded
(`check_configuration`): a rule switched on with its setting missing or malformed stops the
process at start instead of rejecting every checkout. For other values in code, build a
rule with `MinimumOrderTotal(...)` or `AllowedChannels(...)` and register that object.

Every rule takes the hook input (see `kustom_app.validation`) and returns a list of
effects, empty when the order may go ahead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kustom_app.settings import ConfigurationError, Settings

__all__ = [
    "AllowedChannels",
    "MinimumOrderTotal",
    "allowed_channels",
    "minimum_order_total",
    "stock_available",
]

Effect = dict[str, Any]

MIN_ORDER_TOTAL_ENV = Settings.env_name("min_order_total")
ALLOWED_CHANNELS_ENV = Settings.env_name("allowed_channels")


def _error(code: str, message: str) -> Effect:
    return {"effect": "validationError", "code": code, "message": message}


def stock_available(hook_input: Mapping[str, Any]) -> list[Effect]:
    """Reject when any line asks for more than is reserved (the reference's stock rule)."""
    unavailable = [
        line["productNumber"]
        for line in hook_input["orderLines"]
        if line["quantity"] > line["reservedQuantity"]
    ]
    if not unavailable:
        return []
    names = ", ".join(unavailable)
    return [_error("approval_failed", f"The following items are no longer available: {names}")]


def _parse_minimums(raw: str) -> Decimal | dict[str, Decimal]:
    """``"100"`` (every currency) or ``"SEK:100,EUR:10"`` (per currency)."""

    def amount(text: str) -> Decimal:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value < 0:
            raise ConfigurationError(
                f"{MIN_ORDER_TOTAL_ENV} must be a non-negative decimal amount "
                f"(or CUR:amount pairs), got {raw!r}"
            )
        return value

    if ":" not in raw:
        return amount(raw)
    minimums: dict[str, Decimal] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        currency, sep, text = part.partition(":")
        currency = currency.strip().upper()
        if not sep or len(currency) != 3 or not currency.isalpha():
            raise ConfigurationError(
                f"{MIN_ORDER_TOTAL_ENV} entry {part.strip()!r} is not of the form CUR:amount"
            )
        minimums[currency] = amount(text)
    return minimums


class MinimumOrderTotal:
    """Reject orders whose total is below a minimum (the reference's threshold rule).

    ``minimum`` is a `Decimal` for every currency or a mapping currency → `Decimal`
    (currencies not in it have no minimum); without it the rule reads
    ``KUSTOM_MIN_ORDER_TOTAL`` when it runs.
    """

    def __init__(self, minimum: Decimal | Mapping[str, Decimal] | None = None) -> None:
        if isinstance(minimum, Mapping):
            minimum = {code.upper(): Decimal(value) for code, value in minimum.items()}
        self._minimum = minimum

    def minimum(self, currency: str) -> Decimal | None:
        configured = self._minimum
        if configured is None:
            raw: str = Settings.read("min_order_total").strip()
            if not raw:
                raise ConfigurationError(
                    f"{MIN_ORDER_TOTAL_ENV} must be set to use the minimum_order_total rule"
                )
            configured = _parse_minimums(raw)
        if isinstance(configured, Mapping):
            return configured.get(currency.upper())
        return configured

    def check_configuration(self) -> None:
        self.minimum("XXX")

    def __call__(self, hook_input: Mapping[str, Any]) -> list[Effect]:
        currency = hook_input["currencyCode"]
        minimum = self.minimum(currency)
        if minimum is None or hook_input["orderTotal"] >= minimum:
            return []
        return [_error("approval_failed", f"Minimum order total is {minimum} {currency}.")]

    def __repr__(self) -> str:
        return f"MinimumOrderTotal({self._minimum!r})"


class AllowedChannels:
    """Reject orders from channels not on the list (the reference's shipping-country rule).

    Without ``channels`` the rule reads ``KUSTOM_ALLOWED_CHANNELS`` (comma-separated) when
    it runs. A cart without a channel key is not on any list.
    """

    def __init__(self, channels: Iterable[str] | None = None) -> None:
        self._channels = None if channels is None else frozenset(channels)

    def channels(self) -> frozenset[str]:
        if self._channels is not None:
            return self._channels
        channels = frozenset(Settings.read("allowed_channels"))
        if not channels:
            raise ConfigurationError(
                f"{ALLOWED_CHANNELS_ENV} must list at least one channel key to use the "
                "allowed_channels rule"
            )
        return channels

    def check_configuration(self) -> None:
        self.channels()

    def __call__(self, hook_input: Mapping[str, Any]) -> list[Effect]:
        if hook_input.get("channelKey") in self.channels():
            return []
        return [_error("unsupported_shipping_address", "We don't ship to this destination yet.")]

    def __repr__(self) -> str:
        return f"AllowedChannels({self._channels!r})"


minimum_order_total = MinimumOrderTotal()
allowed_channels = AllowedChannels()
