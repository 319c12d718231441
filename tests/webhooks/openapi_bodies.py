"""Hypothesis strategies for the bodies Kustom may send, generated from its OpenAPI YAML.

    bodies("shipping_service_request")          # the three update callbacks' body
    bodies("order")                             # the validation callback's body

A small generator for the subset of OpenAPI 3.0 schema keywords Kustom's callbacks
description uses: ``$ref``, object ``properties``/``required``, array ``items`` with
``minItems``/``maxItems``, string ``minLength``/``maxLength``/``pattern``/``enum`` and the
``date-time`` format, integer ``minimum``/``maximum`` within its ``int32``/``int64``
format, and booleans. Optional properties come and go; objects also get a few properties
the description does not name (Kustom adds fields, and OpenAPI objects allow them), so
what is generated is what Kustom may send, not only what the service happens to read.
Every generated body is checked against the description itself (`validate_against`) by
the tests that use it, so the generator cannot drift from the YAML unnoticed.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from hypothesis import strategies as st

from tests.openapi_schema import load_spec

CALLBACKS_SPEC = "kustom-checkout-callbacks.yml"
FORMAT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Enough to go past every limit the service might wrongly impose (ids of 255), small
# enough to keep an example quick.
MAX_TEXT = 300
MAX_ITEMS = 3

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(*FORMAT_BOUNDS["int64"]),
    st.text(max_size=20),
)


def bodies(
    schema_name: str,
    spec: str = CALLBACKS_SPEC,
    *,
    max_items: int = MAX_ITEMS,
    null_optionals: bool = False,
) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies valid under ``components/schemas/<schema_name>`` of ``spec``.

    With ``null_optionals`` an optional property may also be null: not what the
    description allows (it declares nothing nullable), but what JSON writers that emit
    every field do, so the service must read it all the same.
    """
    generator = _Generator(load_spec(spec)["components"]["schemas"], max_items, null_optionals)
    return generator.schema({"$ref": f"#/components/schemas/{schema_name}"})


class _Generator:
    def __init__(self, components: dict[str, Any], max_items: int, nulls: bool) -> None:
        self.components = components
        self.max_items = max_items
        self.nulls = nulls
        self._named: dict[str, st.SearchStrategy[Any]] = {}

    def _optional(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        strategy = self.schema(schema)
        return st.none() | strategy if self.nulls else strategy

    def schema(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in self._named:
                # deferred: a schema may (in principle) refer to itself
                self._named[name] = st.deferred(lambda: self.schema(self.components[name]))
            return self._named[name]
        kind = schema.get("type", "object" if "properties" in schema else None)
        if kind == "object":
            return self._object(schema)
        if kind == "array":
            return self._array(schema)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return self._integer(schema)
        if kind == "boolean":
            return st.booleans()
        raise NotImplementedError(f"no generator for schema {schema!r}")

    def _object(self, schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        named = st.fixed_dictionaries(
            {name: self.schema(s) for name, s in properties.items() if name in required},
            optional={
                name: self._optional(s) for name, s in properties.items() if name not in required
            },
        )
        extra = st.dictionaries(
            st.text(min_size=1, max_size=12).filter(lambda key: key not in properties),
            _scalars | st.dictionaries(st.text(max_size=8), _scalars, max_size=2),
            max_size=2,
        )
        return st.builds(lambda a, b: {**b, **a}, named, extra)

    def _array(self, schema: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", self.max_items), self.max_items))
        return st.lists(self.schema(schema["items"]), min_size=low, max_size=high)

    def _string(self, schema: dict[str, Any]) -> st.SearchStrategy[str]:
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "pattern" in schema:
            # A full match also satisfies JSON Schema's unanchored search.
            return st.from_regex(schema["pattern"], fullmatch=True)
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.just(UTC)).map(
                lambda moment: moment.isoformat(timespec="seconds").replace("+00:00", "Z")
            )
        low = schema.get("minLength", 0)
        high = max(low, min(schema.get("maxLength", MAX_TEXT), MAX_TEXT))
        return st.text(min_size=low, max_size=high)

    def _integer(self, schema: dict[str, Any]) -> st.SearchStrategy[int]:
        low, high = FORMAT_BOUNDS.get(schema.get("format", "int64"), FORMAT_BOUNDS["int64"])
        return st.integers(
            max(low, schema.get("minimum", low)), min(high, schema.get("maximum", high))
        )
