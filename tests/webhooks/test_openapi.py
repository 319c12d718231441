"""GET /openapi.json: a valid OpenAPI 3.1 document of every route, the same as docs/openapi.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.api_conformance import ConformingClient, NotInSpec, check_response
from webhooks.openapi import EVENT_SCHEMAS, SCHEMA_DIR, openapi_document, openapi_json

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"


def test_served_document_is_valid_openapi_3_1(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_committed_copy_equals_what_the_app_serves(client):
    served = client.get("/openapi.json").get_data(as_text=True)
    assert COMMITTED.read_text(encoding="utf-8") == served, (
        "docs/openapi.json is out of date: run `make openapi` and commit it"
    )
    assert served == openapi_json()


def _flask_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue  # only the SDK is served from there; its path is checked below
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).replace("{cart_id}", "{cartId}")
        for method in rule.methods - {"HEAD"}:
            routes.add((path, method.lower()))
    return routes


def test_every_route_of_the_app_is_documented_and_nothing_else(app):
    documented = {
        (path, method)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
        if method in {"get", "post", "options", "put", "delete", "patch"}
    }
    routes = _flask_routes(app)
    # Flask answers OPTIONS on every rule by itself; only the storefront's are documented
    # (the browser's CORS preflight), and its catch-all preflight rule is those four paths.
    routes = {(p, m) for p, m in routes if m != "options" or p.startswith("/carts/")}
    routes.discard(("/carts/{cartId}/kustom/{_rest}", "options"))
    # The operator console's paths are no HTTP routes; a route left out here is a gap.
    assert routes - documented == set()
    assert documented - routes == {("/static/kustom-checkout.js", "get")}


def test_the_sdk_path_is_served(client):
    assert client.get("/static/kustom-checkout.js").status_code == 200


@pytest.mark.parametrize(("name", "file_name"), sorted(EVENT_SCHEMAS.items()))
def test_event_schemas_are_embedded_as_written(name, file_name):
    written = json.loads((SCHEMA_DIR / file_name).read_text())
    component = openapi_document()["components"]["schemas"][name]
    assert component["required"] == written["required"]
    assert component["properties"].keys() == written["properties"].keys()
    for key in written.get("$defs", {}):
        assert name + key[0].upper() + key[1:] in openapi_document()["components"]["schemas"]


def test_every_status_documented_has_a_reason_and_every_error_its_shape():
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                assert response["description"], (path, method, status)
                if int(status) >= 400 and path != "/" and "content" in response:
                    assert "application/json" in response["content"], (path, method, status)
            if path not in {"/healthz"}:
                assert "503" in operation["responses"] or method == "options", (path, method)


# -- the checker that every web test goes through (tests/webhooks/conftest.py) ---------------


def test_web_tests_use_the_conforming_client(client):
    assert isinstance(client, ConformingClient)


def test_checker_refuses_an_undocumented_status():
    with pytest.raises(NotInSpec, match="status not documented"):
        check_response("GET", "/carts/c-1/kustom/status", 418, "application/json", b"{}")


def test_checker_refuses_a_body_off_the_schema():
    with pytest.raises(NotInSpec, match="does not match"):
        check_response(
            "GET", "/carts/c-1/kustom/status", 200, "application/json", b'{"cartId": "c-1"}'
        )
    with pytest.raises(NotInSpec, match="does not match"):
        check_response(
            "POST",
            "/commerce/cart-mutation",
            401,
            "application/json",
            b'{"error": {"code": "invalid_signature", "message": "x"}}',  # no details
        )


def test_checker_refuses_a_media_type_not_documented():
    with pytest.raises(NotInSpec, match="media type"):
        check_response("GET", "/healthz", 200, "text/html", b"<p>ok</p>")


def test_checker_refuses_a_redirect_without_its_location():
    with pytest.raises(NotInSpec, match="Location"):
        check_response("POST", "/kustom/validate", 303, "", b"", {"Content-Length": "0"})
    assert check_response("POST", "/kustom/validate", 303, "", b"", {"Location": "https://x/"})


def test_checker_leaves_requests_of_no_operation_alone():
    assert check_response("GET", "/nowhere", 404, "application/json", b"{}") is False
    assert check_response("DELETE", "/healthz", 405, "application/json", b"{}") is False


def test_an_install_without_the_schema_files_stops_at_start_not_with_a_500(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings, fake_redis, task_queue
) -> None:
    from webhooks import openapi
    from webhooks.app import create_app

    monkeypatch.setattr(openapi, "SCHEMA_DIR", tmp_path)
    with pytest.raises(RuntimeError, match=r"cart-render\.schema\.json"):
        create_app({"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": task_queue})
