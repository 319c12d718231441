"""Holds the service's answers to its own OpenAPI document (webhooks/openapi.py).

    check_response(method, path, status, content_type, body)   # raises NotInSpec

`ConformingClient` is a Flask test client that checks every answer it gets this way;
tests/webhooks/conftest.py makes it every app's test client there, so each response the
web tests see must be documented (operation, status, media type) and its JSON body must
validate against the operation's schema. Requests to paths or methods the document does
not have (a 404 of an unknown path, a 405) are not checked: they are no operation.
Event streams are checked by status and media type only (their body never ends).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from flask.testing import FlaskClient
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS31Validator
from referencing import Registry
from werkzeug.test import TestResponse

from webhooks.openapi import openapi_document


class NotInSpec(AssertionError):
    """An answer the OpenAPI document does not describe."""


@cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    routes = []
    # Literal paths before templated ones ("/kustom/validate" is no "{cartId}").
    for template in sorted(openapi_document()["paths"], key=lambda p: ("{" in p, p)):
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        routes.append((re.compile(f"^{pattern}$"), template))
    return routes


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The document's (template, operation) for a request, or None when it has none."""
    paths = openapi_document()["paths"]
    for pattern, template in _routes():
        if pattern.match(path):
            operation = paths[template].get(method.lower())
            return (template, operation) if operation is not None else None
    return None


@cache
def _validator(schema_json: str) -> OAS31Validator:
    components = openapi_document()["components"]
    root = {**json.loads(schema_json), "components": components}
    return OAS31Validator(root, registry=Registry())


def validate_body(schema: dict[str, Any], body: Any, where: str) -> None:
    """Raise `NotInSpec` unless ``body`` validates against ``schema`` (an OpenAPI schema)."""
    errors = list(_validator(json.dumps(schema, sort_keys=True)).iter_errors(body))
    if errors:
        best = best_match(errors)
        at = "/".join(map(str, best.absolute_path)) or "(root)"
        raise NotInSpec(f"{where}: body does not match the document at {at}: {best.message}")


def check_response(
    method: str,
    path: str,
    status: int,
    content_type: str,
    body: bytes | None,
    headers: Mapping[str, str] | None = None,
) -> bool:
    """Raise `NotInSpec` if the document does not describe this answer; False when the
    request matches no operation of the document (nothing to check). ``headers``, when
    given, must hold every header the response documents as required."""
    found = operation_for(method, path)
    if found is None:
        return False
    template, operation = found
    where = f"{method.upper()} {path} ({template}) -> {status}"
    response = operation["responses"].get(str(status))
    if response is None:
        documented = ", ".join(sorted(operation["responses"]))
        raise NotInSpec(f"{where}: status not documented (documented: {documented})")
    if headers is not None:
        for name, header in response.get("headers", {}).items():
            if header.get("required") and name not in headers:
                raise NotInSpec(f"{where}: the required header {name} is missing")
    media_types = response.get("content", {})
    media_type = content_type.split(";")[0].strip()
    if not media_types:
        return True  # no body described (204, 303, 304)
    if media_type not in media_types:
        raise NotInSpec(f"{where}: media type {media_type!r} not in {sorted(media_types)}")
    if media_type == "application/json" and body is not None:
        try:
            parsed = json.loads(body)
        except ValueError as e:
            raise NotInSpec(f"{where}: body is not JSON: {e}") from e
        validate_body(media_types[media_type]["schema"], parsed, where)
    return True


class ConformingClient(FlaskClient):
    """A test client that holds every answer to the OpenAPI document."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        request = response.request
        streamed = response.mimetype == "text/event-stream"
        check_response(
            request.method,
            request.path,
            response.status_code,
            response.content_type or "",
            None if streamed else response.get_data(),
            response.headers,
        )
        return response
