"""Validate test data against Kustom's published OpenAPI descriptions (tests/fixtures/openapi).

    validate_against("order", payload)                      # what we send Kustom
    validate_against("order", kustom_answer, direction="response")
    validate_against("...", body, spec="kustom-order-management-api.yml")

`direction` matters because of readOnly/writeOnly: a request must not carry readOnly fields
such as `order_id` or `html_snippet` (OAS30WriteValidator refuses them), while a response
may, and must not carry writeOnly ones (OAS30ReadValidator). Integer formats (int32/int64)
are checked too. Raises `jsonschema.ValidationError` (the most relevant error, with every
error listed in its message) when the instance does not conform.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from referencing import Registry

__all__ = ["ValidationError", "load_spec", "validate_against"]

SPEC_DIR = Path(__file__).parent / "fixtures" / "openapi"

Direction = Literal["request", "response"]


@cache
def load_spec(spec: str = "kustom-checkout-api.yml") -> dict[str, Any]:
    """The parsed spec, read once per test session."""
    with (SPEC_DIR / spec).open(encoding="utf-8") as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@cache
def _validator(schema_name: str, spec: str, direction: Direction) -> Any:
    components = load_spec(spec)["components"]
    if schema_name not in components["schemas"]:
        raise KeyError(f"{spec} has no schema {schema_name!r}")
    # The components travel with the root so "#/components/schemas/..." refs inside resolve
    # locally; the empty registry keeps anything else from being fetched.
    root = {**components["schemas"][schema_name], "components": components}
    cls = OAS30WriteValidator if direction == "request" else OAS30ReadValidator
    return cls(root, registry=Registry(), format_checker=oas30_format_checker)


def validate_against(
    schema_name: str,
    instance: Any,
    spec: str = "kustom-checkout-api.yml",
    *,
    direction: Direction = "request",
) -> None:
    """Raise `ValidationError` unless `instance` conforms to `components/schemas/<name>`."""
    errors = list(_validator(schema_name, spec, direction).iter_errors(instance))
    if not errors:
        return
    best = best_match(errors)
    listing = "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
    )
    # Only message and path: jsonschema would otherwise print the whole schema on failure.
    raise ValidationError(
        f"{schema_name} ({spec}, {direction}) is invalid: {best.message}\n{listing}",
        path=best.absolute_path,
        instance=best.instance,
    )
