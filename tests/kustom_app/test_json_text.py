"""The payload and render JSON text written by orjson is the text json.dumps writes.

The payload's canonical JSON is what is hashed: a serialiser that wrote one character
differently for some text would change pending hashes and make Kustom calls nobody needs.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustom_app.payload import canonical_json, hash_canonical
from kustom_app.render import load_render, render_json
from tests.conftest import make_render

# Any text, including control characters, quotes, backslashes, U+2028, astral characters
# and lone surrogates (which a JSON "\ud800" escape can put into a render).
TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=30)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits too
    TEXT,
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


def stdlib_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@given(st.dictionaries(TEXT, JSON_VALUES, max_size=6))
def test_canonical_json_is_the_standard_librarys_text(payload: dict[str, Any]) -> None:
    assert canonical_json(payload) == stdlib_canonical(payload)


def test_canonical_json_of_a_payload_with_a_lone_surrogate_still_hashes() -> None:
    payload = {"order_lines": [{"name": json.loads('"T-Shirt \\ud800"')}]}
    assert canonical_json(payload) == stdlib_canonical(payload)
    assert len(hash_canonical(canonical_json(payload))) == 32


def test_a_decimal_in_a_payload_still_fails_loudly() -> None:
    with pytest.raises(TypeError):  # a Decimal must never be serialised into a payload
        canonical_json({"order_amount": Decimal("1.00")})


@given(description=TEXT, price=st.decimals(allow_nan=False, allow_infinity=False, places=2))
def test_the_stored_render_reads_back_as_the_same_render(description: str, price: Decimal) -> None:
    render = load_render(make_render())
    render["lines"][0]["description"] = description
    render["lines"][0]["unitPrice"] = price
    for sort_keys in (False, True):
        text = render_json(render, sort_keys=sort_keys)
        expected = json.dumps(
            render,
            separators=(",", ":"),
            sort_keys=sort_keys,
            default=str,
            ensure_ascii=False,
        )
        assert text == expected
        assert json.loads(text)["lines"][0]["unitPrice"] == str(price)  # exact, as text
