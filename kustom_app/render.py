"""The cart render (CONTRACT section 4): what the commerce backend says a cart is.

A render is loaded once, at the edge, into a plain dict with the same camelCase keys and
`Decimal` money, and stored as JSON (`dump_render`) so that every later step (payload
building, validation hooks, completion checks) works from the same exact numbers. Its rules
are the schema of kustom_app/render_schema.py (whose names are offered here too); a
well-formed render takes the fast path of kustom_app/fastpath_render.py, with the same
result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from marshmallow import ValidationError

from kustom_app.fastpath_render import fast_load, fast_render_enabled
from kustom_app.render_schema import (
    LINE_TYPES,
    NEGATIVE_LINE_TYPES,
    CartLineSchema,
    CartRenderSchema,
    Code,
    Money,
    ShippingOptionSchema,
)

__all__ = [
    "LINE_TYPES",
    "NEGATIVE_LINE_TYPES",
    "CartLineSchema",
    "CartRenderSchema",
    "Code",
    "Money",
    "ShippingOptionSchema",
    "ValidationError",
    "compact_json",
    "dump_render",
    "load_render",
    "render_json",
]

_SCHEMA = CartRenderSchema()


def load_render(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a cart render at the edge, so nothing downstream meets a float or a typo.

    Unknown fields are dropped (the commerce backend may send more than we use); optional
    fields are filled (`locale` "en-<COUNTRY>", `reservedQuantity` = quantity,
    `discountTotal` 0, a line's `type` "physical", `channelKey`/`shipping`/`shippingOptions`
    None). Raises `marshmallow.ValidationError` whose `messages` name each bad field.
    """
    fast = fast_load(data) if fast_render_enabled() else None
    if fast is not None:
        return fast
    result: dict[str, Any] = _SCHEMA.load(data)
    return result


def dump_render(render: dict[str, Any]) -> dict[str, Any]:
    """A loaded render as JSON-safe data for storage; `load_render` gives it back equal.

    Decimals become their own string ("250.00" stays "250.00", never a float), so the
    stored render keeps the precision the commerce backend sent.
    """
    stored: dict[str, Any] = json.loads(render_json(render))
    return stored


def render_json(render: dict[str, Any], *, sort_keys: bool = False) -> str:
    """A loaded render as the JSON text it is stored as (`dump_render`'s data), in one
    encoder pass that turns each Decimal into its string as it meets it."""
    return compact_json(render, sort_keys=sort_keys, default=_money_text)


def compact_json(
    value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, ...)``, written by
    orjson, which is faster at the hot path's renders and payloads: the same text (held to
    it by a property test). What orjson refuses (a lone surrogate, an integer beyond 64
    bits) the standard library writes as before, so the text never differs."""
    try:
        option = orjson.OPT_SORT_KEYS if sort_keys else 0
        return orjson.dumps(value, default=default, option=option).decode()
    except TypeError:
        return json.dumps(
            value, separators=(",", ":"), sort_keys=sort_keys, default=default, ensure_ascii=False
        )


def _money_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
