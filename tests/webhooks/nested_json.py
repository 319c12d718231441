"""Deeply nested JSON bodies, for the bad-input tests of every JSON endpoint.

Each is refused with 400 ``invalid_json`` (or, on the callbacks Kustom reads, 400
``approval_failed`` in Kustom's shape) and changes nothing. The 10,000-deep ones used to
raise RecursionError inside the JSON parser (a 500); the 900-deep ones are parsed by
CPython but would blow up later (marshmallow, jsonify, forwarding an address); 33 levels
is one past the accepted depth.

10,000 levels is ten times CPython's recursion limit and still under the small body limit
(64 KiB) of the storefront and notification endpoints, so there too it reaches the parser.
`HUGE_NESTED_BODIES` (50,000 levels, as in the issue) is for the endpoints that take large
bodies; the small ones refuse it by its size (413) before parsing.
"""

from __future__ import annotations

from kustom_app.json_text import MAX_JSON_DEPTH

DEEP = 10_000


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def inside(field: str, nested: bytes) -> bytes:
    """An object whose ``field`` holds ``nested`` (one level more than ``nested``)."""
    return b'{"' + field.encode() + b'": ' + nested + b"}"


NESTED_BODIES: dict[str, bytes] = {
    "arrays-10000": nested_arrays(DEEP),
    "objects-10000": nested_objects(DEEP),
    "in-order-lines-10000": inside("order_lines", nested_arrays(DEEP)),
    "in-shipping-address-10000": inside("shipping_address", nested_objects(DEEP)),
    "in-lines-900": inside("lines", nested_arrays(899)),
    "in-shipping-address-900": inside("shipping_address", nested_objects(899)),
    f"depth-{MAX_JSON_DEPTH + 1}": inside("order_lines", nested_arrays(MAX_JSON_DEPTH)),
}
HUGE_NESTED_BODIES: dict[str, bytes] = {
    "arrays-50000": nested_arrays(50_000),
    "in-order-lines-50000": inside("order_lines", nested_arrays(50_000)),
    "in-shipping-address-50000": inside("shipping_address", nested_objects(50_000)),
}
