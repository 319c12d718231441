"""The fast render loader never disagrees with the marshmallow schema.

For any input it either declines (None: the schema decides) or returns exactly what the
schema returns; it never accepts what the schema refuses. This is the guard of a
marshmallow upgrade (kustom_app/fastpath_render.py); with KUSTOM_FAST_PATHS=off the schema
alone loads renders.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from kustom_app.fastpath_render import fast_load, fast_render_enabled, use_fast_render
from kustom_app.render import _SCHEMA, load_render
from tests.conftest import CONTRACT_RENDER

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "renders").glob("*.json"))
BASES = [CONTRACT_RENDER] + [json.loads(p.read_text()) for p in FIXTURES]

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["", "1.5", "NaN", "sek", "SE", "sv-SE", "sv-SE\n", "249.995", "x" * 300]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


@st.composite
def corrupted_renders(draw):
    render = copy.deepcopy(draw(st.sampled_from(BASES)))
    render = json.loads(json.dumps(render), parse_float=Decimal)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        candidates = [p for p in paths(render) if p]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = render
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    return render


BOUNDARY_VALUES = [
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    100,
    2**63,
    1.0,
    2.0,
    1.5,
    0.25,
    float("nan"),
    Decimal("0"),
    Decimal("1"),
    Decimal("1.01"),
    Decimal("0.25"),
    Decimal("-0.01"),
    "",
    "0.25",
    "1.5",
    "abc",
    "NaN",
    "sek",
    "SE",
    "S",
    "sv-SE",
    "sv-SE\n",
    "x" * 256,
    [],
    [{}],
    {},
    {"id": "x"},
]


def test_every_single_field_change_agrees_with_the_schema_or_declines():
    checked = 0
    for base in BASES:
        render = json.loads(json.dumps(base), parse_float=Decimal)
        for path in [p for p in paths(render) if p]:
            variants = [("delete", None)] + [("set", v) for v in BOUNDARY_VALUES]
            for action, value in variants:
                data = copy.deepcopy(render)
                parent = data
                for step in path[:-1]:
                    parent = parent[step]
                if action == "delete":
                    if not isinstance(parent, dict):
                        continue
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(value)
                fast = fast_load(copy.deepcopy(data))
                if fast is not None:
                    assert fast == schema_result(copy.deepcopy(data)), (path, action, value)
                checked += 1
    assert checked > 5000


def schema_result(data):
    try:
        return _SCHEMA.load(data)
    except ValidationError:
        return "refused"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_renders())
def test_fast_path_agrees_with_the_schema_or_declines(data):
    fast = fast_load(copy.deepcopy(data))
    if fast is not None:
        assert fast == schema_result(copy.deepcopy(data))


def test_well_formed_renders_take_the_fast_path():
    for base in BASES:
        data = json.loads(json.dumps(base), parse_float=Decimal)
        assert fast_load(data) is not None, base["cartId"]
        assert load_render(data) == _SCHEMA.load(data)


def test_declined_input_still_gets_the_schemas_field_errors():
    data = json.loads(json.dumps(CONTRACT_RENDER), parse_float=Decimal)
    data["lines"][0]["quantity"] = 1.5
    assert fast_load(data) is None
    try:
        load_render(data)
    except ValidationError as e:
        assert "lines" in e.messages
    else:  # pragma: no cover
        raise AssertionError("a fractional quantity must be refused")


@pytest.fixture
def fast_render_restored():
    was = fast_render_enabled()
    yield
    use_fast_render(was)


def test_with_the_fast_paths_off_renders_go_through_the_schema_only(
    fast_render_restored, monkeypatch
):
    # A fast path that would answer wrongly: only a load that consults it can tell.
    monkeypatch.setattr("kustom_app.render.fast_load", lambda data: {"fast": True})
    data = json.loads(json.dumps(CONTRACT_RENDER), parse_float=Decimal)
    use_fast_render(False)
    assert load_render(copy.deepcopy(data)) == _SCHEMA.load(copy.deepcopy(data))
    use_fast_render(True)
    assert load_render(copy.deepcopy(data)) == {"fast": True}
