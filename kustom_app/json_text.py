"""Reading JSON from outside: decimals kept exact, nesting bounded.

Every body the service reads (requests to the web, the commerce backend's answers) goes
through `decode_json`. CPython's parser recurses once per level, so ``[[[[…`` 50,000 deep
raises RecursionError instead of a ValueError; and a body the parser survives can still
exhaust the stack later (marshmallow, jsonify, requests forwarding an address). So both
cases are one refusal, `JsonTooDeep`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

# How deep a body may nest (``{}`` is 1, ``{"a": []}`` 2). Kustom's orders and the cart
# renders nest about six levels (order → shipping_options → option → delivery_details →
# pickup_location → address); anything deeper is not a body the service takes.
MAX_JSON_DEPTH = 32


class JsonTooDeep(ValueError):
    """The JSON nests objects or arrays more than `MAX_JSON_DEPTH` levels deep."""

    def __init__(self) -> None:
        super().__init__(f"nests objects or arrays more than {MAX_JSON_DEPTH} levels deep")


def decode_json(raw: bytes | str) -> Any:
    """Parse JSON with decimals kept exact (money must never pass through float).

    Raises `JsonTooDeep` for nesting beyond `MAX_JSON_DEPTH`, ValueError (or
    UnicodeDecodeError) for anything else that is not JSON.
    """
    try:
        parsed = json.loads(raw, parse_float=Decimal)
    except RecursionError as e:
        raise JsonTooDeep() from e
    if nests_deeper_than(parsed, MAX_JSON_DEPTH):
        raise JsonTooDeep()
    return parsed


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON has objects or arrays more than ``limit`` levels deep.

    Iterative, so no depth of input can exhaust the stack here.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False
