"""The Kustom double behaves like Kustom's Checkout v3 and Order Management APIs."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask import Flask, request
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

from playground.kustom import (
    OPERATIONS,
    DoubleError,
    KustomDoubleState,
    KustomError,
    create_app,
    validate_order,
)
from playground.server import ServerThread

OPENAPI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "openapi"
AUTH = ("playground", "playground")
AUTH_HEADER = {"Authorization": "Basic " + base64.b64encode(b"playground:playground").decode()}
MERCHANT_URLS = {
    "terms": "https://merchant.example/terms",
    "checkout": "https://merchant.example/checkout?order_id={checkout.order.id}",
    "confirmation": "https://merchant.example/confirmation?order_id={checkout.order.id}",
    "push": "https://merchant.example/push?order_id={checkout.order.id}",
}


def order_payload(**overrides: Any) -> dict[str, Any]:
    """Kustom's documented example (5 T-shirts, 10 % VAT) plus a 25 % shipping fee."""
    payload: dict[str, Any] = {
        "purchase_country": "SE",
        "purchase_currency": "SEK",
        "locale": "en-SE",
        "order_amount": 54900,
        "order_tax_amount": 5525,
        "order_lines": [
            {
                "type": "physical",
                "reference": "19-402-USA",
                "name": "Yellow T-Shirt",
                "quantity": 5,
                "quantity_unit": "pcs",
                "unit_price": 10000,
                "tax_rate": 1000,
                "total_amount": 50000,
                "total_discount_amount": 0,
                "total_tax_amount": 4545,
            },
            {
                "type": "shipping_fee",
                "name": "Postnord",
                "quantity": 1,
                "unit_price": 4900,
                "tax_rate": 2500,
                "total_amount": 4900,
                "total_tax_amount": 980,
            },
        ],
        "merchant_urls": dict(MERCHANT_URLS),
    }
    payload.update(overrides)
    return payload


_DELETE = object()


def corrupt(path: str, value: Any) -> dict[str, Any]:
    """order_payload() with one field (``order_lines.0.total_amount`` style) replaced."""
    payload = order_payload()
    target: Any = payload
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return payload


# ------------------------------------------------------------------------------ schema checks


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when available


def _load_spec(name: str) -> dict[str, Any]:
    with (OPENAPI_DIR / name).open(encoding="utf-8") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    return spec


CHECKOUT_SPEC = _load_spec("kustom-checkout-api.yml")
OM_SPEC = _load_spec("kustom-order-management-api.yml")
# The published OM spec squeezes the order line types into one bogus enum value
# ("physical|discount|..."); its `pattern` says the same thing correctly.
del OM_SPEC["components"]["schemas"]["order_line"]["properties"]["type"]["enum"]


_SPECS = {"checkout": CHECKOUT_SPEC, "om": OM_SPEC}


@functools.cache
def _validator(spec: str, schema_name: str) -> OAS30ReadValidator:
    schema = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": _SPECS[spec]["components"],
    }
    return OAS30ReadValidator(schema, format_checker=oas30_format_checker)


def assert_matches_schema(spec: str, schema_name: str, instance: Any) -> None:
    _validator(spec, schema_name).validate(instance)


def assert_error(response: Any, status: int, error_code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json() if callable(response.json) else response.json
    assert response.status_code == status, (response.status_code, body)
    assert body["error_code"] == error_code, body
    assert isinstance(body["error_messages"], list) and body["error_messages"]
    assert body["correlation_id"] == response.headers["Klarna-Correlation-Id"]
    assert_matches_schema("om", "ErrorMessageDto", body)
    return body


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def app() -> Flask:
    return create_app()


@pytest.fixture
def state(app: Flask) -> KustomDoubleState:
    double: KustomDoubleState = app.extensions["kustom_double"]
    return double


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def created(client: Any) -> dict[str, Any]:
    response = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    assert response.status_code == 201, response.json
    order: dict[str, Any] = response.json
    return order


@pytest.fixture
def completed(state: KustomDoubleState, created: dict[str, Any]) -> str:
    state.complete_order(created["order_id"])
    return str(created["order_id"])


@pytest.fixture(scope="module")
def live_app() -> Flask:
    return create_app()


@pytest.fixture(scope="module")
def live_server(live_app: Flask) -> Iterator[ServerThread]:
    with ServerThread(live_app) as server:
        yield server


@pytest.fixture
def live(live_server: ServerThread, live_app: Flask) -> Iterator[tuple[str, KustomDoubleState]]:
    double: KustomDoubleState = live_app.extensions["kustom_double"]
    double.reset()
    yield live_server.url, double
    double.reset()


def om(client: Any, order_id: str, suffix: str = "", **kwargs: Any) -> Any:
    method = kwargs.pop("method", "POST" if suffix else "GET")
    headers = {**AUTH_HEADER, **kwargs.pop("headers", {})}
    return client.open(
        f"/ordermanagement/v1/orders/{order_id}{suffix}", method=method, headers=headers, **kwargs
    )


# ------------------------------------------------------------------------------ Checkout v3


def test_create_get_update_happy_path(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    order_id = created["order_id"]
    uuid.UUID(order_id)
    assert created["status"] == "checkout_incomplete"
    assert created["billing_address"] == {"country": "SE"}
    assert created["shipping_address"] == {"country": "SE"}
    assert created["customer"] == {}
    assert created["order_lines"] == order_payload()["order_lines"]
    assert created["merchant_urls"] == MERCHANT_URLS
    assert created["started_at"] == created["last_modified_at"]
    snippet = created["html_snippet"]
    assert snippet.startswith('<div id="klarna-checkout-container"')
    assert f'src="http://localhost/playground/checkout/{order_id}"' in snippet
    assert 'typeof w._klarnaCheckout === "function"' in snippet
    assert_matches_schema("checkout", "order", created)

    read = client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER)
    assert read.status_code == 200
    assert read.json == created
    uuid.UUID(read.headers["Klarna-Correlation-Id"])

    one_line = order_payload()["order_lines"][:1]
    update = client.post(
        f"/checkout/v3/orders/{order_id}",
        json={
            "order_amount": 50000,
            "order_tax_amount": 4545,
            "order_lines": one_line,
            "merchant_reference1": "cart-42",
            "status": "checkout_complete",  # read-only: ignored
        },
        headers=AUTH_HEADER,
    )
    assert update.status_code == 200, update.json
    assert update.json["order_lines"] == one_line
    assert update.json["order_amount"] == 50000
    assert update.json["merchant_reference1"] == "cart-42"
    assert update.json["status"] == "checkout_incomplete"
    assert update.json["merchant_urls"] == MERCHANT_URLS  # untouched fields stay
    assert_matches_schema("checkout", "order", update.json)
    stored = state.stored_order(order_id)
    assert stored is not None and stored["update_count"] == 1
    assert [c["operation"] for c in state.calls()] == ["create_order", "get_order", "update_order"]


def test_create_answers_location_and_correlation_headers(client: Any) -> None:
    response = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    order_id = response.json["order_id"]
    assert response.headers["Location"] == f"http://localhost/checkout/v3/orders/{order_id}"
    uuid.UUID(response.headers["Klarna-Correlation-Id"])
    again = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    assert again.headers["Klarna-Correlation-Id"] != response.headers["Klarna-Correlation-Id"]
    assert again.json["order_id"] != order_id


def test_base_url_prefixes_snippet_and_location() -> None:
    client: Any = create_app(base_url="https://kustom.playground.test/").test_client()
    response = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    order_id = response.json["order_id"]
    base = "https://kustom.playground.test"
    assert response.headers["Location"] == f"{base}/checkout/v3/orders/{order_id}"
    assert f'src="{base}/playground/checkout/{order_id}"' in response.json["html_snippet"]


@pytest.mark.parametrize(
    ("payload", "bad_field"),
    [
        (order_payload(order_amount=54901), "order_amount"),
        (order_payload(order_tax_amount=5524), "order_tax_amount"),
        (order_payload(order_amount="54900"), "order_amount"),
        (order_payload(order_amount=54900.0), "order_amount"),
        (corrupt("order_lines.0.total_amount", 49999), "order_lines[0].total_amount"),
        (corrupt("order_lines.0.unit_price", "10000"), "order_lines[0].unit_price"),
        (corrupt("order_lines.0.quantity", True), "order_lines[0].quantity"),
        (corrupt("order_lines.1.total_tax_amount", 982), "order_lines[1].total_tax_amount"),
        (corrupt("order_lines.0.tax_rate", 10001), "order_lines[0].tax_rate"),
        (corrupt("order_lines.0.tax_rate", -1), "order_lines[0].tax_rate"),
        (corrupt("order_lines.0.unit_price", 100_000_001), "order_lines[0].unit_price"),
        (corrupt("order_lines.0.name", ""), "order_lines[0].name"),
        (corrupt("order_lines.0.name", "x" * 256), "order_lines[0].name"),
        (corrupt("order_lines.0.type", "spaceship"), "order_lines[0].type"),
        (
            corrupt("order_lines.0.total_discount_amount", -5),
            "order_lines[0].total_discount_amount",
        ),
        (corrupt("merchant_urls.push", _DELETE), "merchant_urls.push"),
        (corrupt("merchant_urls", _DELETE), "merchant_urls"),
        (corrupt("purchase_country", _DELETE), "purchase_country"),
        (corrupt("purchase_currency", "kronor"), "purchase_currency"),
        (corrupt("locale", "english"), "locale"),
        (corrupt("order_lines", {"not": "a list"}), "order_lines"),
    ],
)
def test_bad_values_are_named(client: Any, payload: dict[str, Any], bad_field: str) -> None:
    response = client.post("/checkout/v3/orders", json=payload, headers=AUTH_HEADER)
    body = assert_error(response, 400, "BAD_VALUE")
    assert f"Bad value: {bad_field}" in body["error_messages"], body


def test_every_bad_field_is_named_at_once(client: Any) -> None:
    payload = order_payload(order_amount=1, locale="x")
    payload["order_lines"][1]["total_tax_amount"] = 0
    body = assert_error(
        client.post("/checkout/v3/orders", json=payload, headers=AUTH_HEADER), 400, "BAD_VALUE"
    )
    assert body["error_messages"] == [
        "Bad value: locale",
        "Bad value: order_lines[1].total_tax_amount",
        "Bad value: order_amount",
        "Bad value: order_tax_amount",
    ]


def test_kustom_arithmetic_edges_are_accepted() -> None:
    # Tax within +-1 of total - total*10000/(10000+rate): 50000 at 10 % -> 4545.45.
    def with_tax(tax: int) -> list[str]:
        return validate_order(
            corrupt("order_lines.0.total_tax_amount", tax) | {"order_tax_amount": tax + 980}
        )

    assert with_tax(4545) == with_tax(4546) == []
    assert with_tax(4544) == with_tax(4547) == ["order_lines[0].total_tax_amount"]
    # A discounted line; a discount line (negative amounts, negative tax: -900 at 25 %
    # holds -180 of tax, and the tax check applies to discount lines too).
    discounted = order_payload()
    discounted["order_lines"][0].update(
        total_discount_amount=5000, total_amount=45000, total_tax_amount=4091
    )
    discounted["order_lines"].append(
        {
            "type": "discount",
            "name": "Coupon",
            "quantity": 1,
            "unit_price": -900,
            "tax_rate": 2500,
            "total_amount": -900,
            "total_tax_amount": -180,
        }
    )
    discounted.update(order_amount=45000 + 4900 - 900, order_tax_amount=4091 + 980 - 180)
    assert validate_order(discounted) == []
    # US style (Kustom's form): tax-free lines plus a sales_tax line whose total_amount is
    # the tax, with tax_rate 0 and total_tax_amount 0; order_tax_amount is that amount.
    us = order_payload(purchase_country="US", purchase_currency="USD", locale="en-US")
    us["order_lines"] = [
        {
            "name": "Mug",
            "quantity": 2,
            "unit_price": 1000,
            "tax_rate": 0,
            "total_amount": 2000,
            "total_tax_amount": 0,
        },
        {
            "type": "sales_tax",
            "name": "Sales tax",
            "quantity": 1,
            "unit_price": 170,
            "tax_rate": 0,
            "total_amount": 170,
            "total_tax_amount": 0,
        },
    ]
    us.update(order_amount=2170, order_tax_amount=170)
    assert validate_order(us) == []
    # The old form (the sales_tax line's tax in its total_tax_amount) is refused.
    us["order_lines"][1]["total_tax_amount"] = 170
    assert validate_order(us) == ["order_lines[1].total_tax_amount", "order_tax_amount"]
    too_many = order_payload(order_lines=[order_payload()["order_lines"][1]] * 1001)
    assert "order_lines" in validate_order(too_many)


def test_update_revalidates_the_merged_order(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    order_id = created["order_id"]
    # New lines without new totals: the merged order no longer adds up.
    response = client.post(
        f"/checkout/v3/orders/{order_id}",
        json={"order_lines": order_payload()["order_lines"][:1]},
        headers=AUTH_HEADER,
    )
    body = assert_error(response, 400, "BAD_VALUE")
    assert body["error_messages"] == ["Bad value: order_amount", "Bad value: order_tax_amount"]
    assert state.read_order(order_id) == created  # unchanged
    stored = state.stored_order(order_id)
    assert stored is not None and stored["update_count"] == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"playground:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"someone:playground").decode()},
        {"Authorization": "Bearer playground"},
    ],
)
def test_bad_auth_is_401(client: Any, state: KustomDoubleState, headers: dict[str, str]) -> None:
    response = client.post("/checkout/v3/orders", json=order_payload(), headers=headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert state.order_ids() == []
    assert state.calls("create_order")[0]["status"] == 401


def test_custom_credentials() -> None:
    client: Any = create_app(username="merchant", password="s3cret").test_client()
    assert client.get("/checkout/v3/orders/x", headers=AUTH_HEADER).status_code == 401
    good = {"Authorization": "Basic " + base64.b64encode(b"merchant:s3cret").decode()}
    assert client.get("/checkout/v3/orders/x", headers=good).status_code == 404


def test_unknown_and_expired_orders_are_404_with_empty_body(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    unknown = client.get(f"/checkout/v3/orders/{uuid.uuid4()}", headers=AUTH_HEADER)
    assert unknown.status_code == 404 and unknown.data == b""
    uuid.UUID(unknown.headers["Klarna-Correlation-Id"])

    order_id = created["order_id"]
    expire = client.post(f"/_double/orders/{order_id}/expire")
    assert expire.status_code == 204
    read = client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER)
    assert read.status_code == 404 and read.data == b""
    update = client.post(
        f"/checkout/v3/orders/{order_id}", json=order_payload(), headers=AUTH_HEADER
    )
    assert update.status_code == 404 and update.data == b""
    stored = client.get(f"/_double/orders/{order_id}").json
    assert stored["expired"] is True


def test_expired_completed_order_is_gone_from_order_management(
    client: Any, state: KustomDoubleState, completed: str
) -> None:
    state.expire_order(completed)
    assert_error(om(client, completed), 404, "NO_SUCH_ORDER")
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 1}), 404, "NO_SUCH_ORDER"
    )


def test_completed_order_is_read_only(client: Any, created: dict[str, Any]) -> None:
    order_id = created["order_id"]
    done = client.post(
        f"/_double/orders/{order_id}/complete",
        json={"billing_address": {"given_name": "Alice", "email": "alice@example.com"}},
    )
    assert done.status_code == 200, done.json
    assert done.json["status"] == "checkout_complete"
    assert done.json["om_status"] == "AUTHORIZED"

    read = client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).json
    assert read["status"] == "checkout_complete"
    assert read["completed_at"]
    assert read["billing_address"]["given_name"] == "Alice"
    assert read["billing_address"]["country"] == "SE"
    assert_matches_schema("checkout", "order", read)

    update = client.post(
        f"/checkout/v3/orders/{order_id}", json={"order_amount": 1}, headers=AUTH_HEADER
    )
    body = assert_error(update, 403, "READ_ONLY_ORDER")
    assert body["error_messages"] == ["Resource is read-only"]

    again = client.post(f"/_double/orders/{order_id}/complete", json={})
    assert again.status_code == 409


# ------------------------------------------------------------------------------ faults, latency


def test_faults_are_answered_then_cleared(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    order_id = created["order_id"]
    update = {"merchant_reference2": "x"}
    injected = client.post(
        "/_double/faults", json={"operation": "update_order", "statuses": [503, 503]}
    )
    assert injected.status_code == 200
    assert [f["status"] for f in injected.json["update_order"]] == [503, 503]
    for _ in range(2):
        response = client.post(f"/checkout/v3/orders/{order_id}", json=update, headers=AUTH_HEADER)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
    stored = state.stored_order(order_id)
    assert stored is not None and stored["update_count"] == 0  # faults do not act
    ok = client.post(f"/checkout/v3/orders/{order_id}", json=update, headers=AUTH_HEADER)
    assert ok.status_code == 200
    calls = state.calls("update_order")
    assert [(c["status"], c["fault"]) for c in calls] == [(503, True), (503, True), (200, False)]
    # Other operations are not affected.
    assert client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).status_code == 200

    # Explicit clearing.
    state.add_faults("get_order", [500, 502])
    assert client.delete("/_double/faults?operation=get_order").status_code == 204
    assert client.get("/_double/faults").json == {}
    assert client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).status_code == 200


def test_fault_shapes(client: Any, state: KustomDoubleState, created: dict[str, Any]) -> None:
    order_id = created["order_id"]
    state.add_faults("get_order", [404, {"status": 403, "error_code": "READ_ONLY_ORDER"}])
    gone = client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER)
    assert gone.status_code == 404 and gone.data == b""  # like Kustom's checkout 404
    assert_error(
        client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER), 403, "READ_ONLY_ORDER"
    )
    with pytest.raises(DoubleError):
        state.add_faults("no_such_operation", [503])
    assert client.post("/_double/faults", json={"operation": "capture"}).status_code == 400
    assert (
        client.post("/_double/faults", json={"operation": "capture", "statuses": [200]}).status_code
        == 400
    )


def test_delay_fault_slows_the_next_call_only(client: Any, created: dict[str, Any]) -> None:
    order_id = created["order_id"]
    response = client.post(
        "/_double/faults", json={"operation": "get_order", "delay_seconds": 0.2, "count": 1}
    )
    assert response.status_code == 200
    started = time.monotonic()
    assert client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).status_code == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert client.get(f"/checkout/v3/orders/{order_id}", headers=AUTH_HEADER).status_code == 200
    assert time.monotonic() - started < 0.15


def test_latency_is_added_to_api_calls_only(client: Any, state: KustomDoubleState) -> None:
    assert client.post("/_double/latency", json={"seconds": 0.15}).json == {"seconds": 0.15}
    started = time.monotonic()
    response = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    assert response.status_code == 201
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    client.get("/_double/calls")
    assert time.monotonic() - started < 0.1
    state.reset()
    assert state.latency_seconds == 0.0


def test_latency_from_create_app() -> None:
    client: Any = create_app(latency_seconds=0.1).test_client()
    started = time.monotonic()
    assert client.get("/checkout/v3/orders/x", headers=AUTH_HEADER).status_code == 404
    assert time.monotonic() - started >= 0.1


# ------------------------------------------------------------------------------ order management


def test_order_management_order_exists_after_completion(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    order_id = created["order_id"]
    assert_error(om(client, order_id), 404, "NO_SUCH_ORDER")
    state.complete_order(order_id, fraud_status="ACCEPTED")
    response = om(client, order_id)
    assert response.status_code == 200
    order = response.json
    assert_matches_schema("om", "MerchantOrderDto", order)
    assert order["order_id"] == order_id
    assert order["status"] == "AUTHORIZED"
    assert order["fraud_status"] == "ACCEPTED"
    assert order["order_amount"] == order["original_order_amount"] == 54900
    assert order["remaining_authorized_amount"] == 54900
    assert order["captured_amount"] == order["refunded_amount"] == 0
    assert order["purchase_currency"] == "SEK"
    assert order["order_lines"] == created["order_lines"]
    assert order["captures"] == [] and order["refunds"] == []
    assert order["billing_address"]["country"] == "SE"
    for name in ("merchant_reference1", "merchant_reference2", "shipping_address", "customer"):
        assert name in order


def test_acknowledge_and_merchant_references(
    client: Any, state: KustomDoubleState, completed: str
) -> None:
    assert om(client, completed, "/acknowledge").status_code == 204
    assert om(client, completed, "/acknowledge").status_code == 204
    stored = state.stored_order(completed)
    assert stored is not None
    assert stored["acknowledged"] is True and stored["acknowledge_count"] == 2

    response = om(
        client,
        completed,
        "/merchant-references",
        method="PATCH",
        json={"merchant_reference1": "ORDER-1001"},
    )
    assert response.status_code == 204 and response.data == b""
    order = om(client, completed).json
    assert order["merchant_reference1"] == "ORDER-1001"
    assert order["merchant_reference2"] == ""
    bad = om(
        client, completed, "/merchant-references", method="PATCH", json={"merchant_reference2": 7}
    )
    assert_error(bad, 400, "BAD_VALUE")


def test_capture_rules(client: Any, state: KustomDoubleState, completed: str) -> None:
    too_much = om(client, completed, "/captures", json={"captured_amount": 54901})
    assert_error(too_much, 403, "CAPTURE_NOT_ALLOWED")
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": "10"}), 400, "BAD_VALUE"
    )
    assert_error(om(client, completed, "/captures", json={}), 400, "BAD_VALUE")

    first = om(
        client,
        completed,
        "/captures",
        json={"captured_amount": 50000, "reference": "shipment-1", "description": "T-shirts"},
    )
    assert first.status_code == 201 and first.data == b""
    capture_id = first.headers["Capture-Id"]
    assert first.headers["Location"] == (
        f"http://localhost/ordermanagement/v1/orders/{completed}/captures/{capture_id}"
    )
    stored = state.stored_order(completed)
    assert stored is not None and stored["acknowledged"] is True  # capturing acknowledges
    assert stored["acknowledge_count"] == 0
    order = om(client, completed).json
    assert order["status"] == "PART_CAPTURED"
    assert order["captured_amount"] == 50000
    assert order["remaining_authorized_amount"] == 4900
    capture = client.get(first.headers["Location"], headers=AUTH_HEADER)
    assert capture.status_code == 200
    assert capture.json["capture_id"] == capture_id
    assert capture.json["reference"] == "shipment-1"
    assert_matches_schema("om", "Capture", capture.json)
    assert_matches_schema("om", "MerchantOrderDto", order)

    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 4901}),
        403,
        "CAPTURE_NOT_ALLOWED",
    )
    assert om(client, completed, "/captures", json={"captured_amount": 4900}).status_code == 201
    order = om(client, completed).json
    assert order["status"] == "CAPTURED" and order["remaining_authorized_amount"] == 0
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 1}), 403, "CAPTURE_NOT_ALLOWED"
    )
    assert_error(om(client, completed, "/cancel"), 403, "CANCEL_NOT_ALLOWED")


def test_refund_rules(client: Any, state: KustomDoubleState, completed: str) -> None:
    assert_error(
        om(client, completed, "/refunds", json={"refunded_amount": 1}), 403, "REFUND_NOT_ALLOWED"
    )
    state.capture(completed, {"captured_amount": 30000})
    assert_error(
        om(client, completed, "/refunds", json={"refunded_amount": 30001}),
        403,
        "REFUND_NOT_ALLOWED",
    )
    response = om(
        client, completed, "/refunds", json={"refunded_amount": 20000, "description": "Returned"}
    )
    assert response.status_code == 201
    refund_id = response.headers["Refund-Id"]
    assert response.headers["Location"].endswith(f"/orders/{completed}/refunds/{refund_id}")
    refund = client.get(response.headers["Location"], headers=AUTH_HEADER)
    assert refund.status_code == 200
    assert_matches_schema("om", "Refund", refund.json)
    assert_error(
        om(client, completed, "/refunds", json={"refunded_amount": 10001}),
        403,
        "REFUND_NOT_ALLOWED",
    )
    assert om(client, completed, "/refunds", json={"refunded_amount": 10000}).status_code == 201
    order = om(client, completed).json
    assert order["refunded_amount"] == 30000
    assert order["captures"][0]["refunded_amount"] == 30000
    assert len(order["refunds"]) == 2
    assert_error(
        om(client, str(uuid.uuid4()), "/refunds", json={"refunded_amount": 1}), 404, "NOT_FOUND"
    )


def test_cancel_rules(client: Any, completed: str) -> None:
    assert om(client, completed, "/cancel").status_code == 204
    order = om(client, completed).json
    assert order["status"] == "CANCELLED" and order["remaining_authorized_amount"] == 0
    assert_error(om(client, completed, "/cancel"), 403, "CANCEL_NOT_ALLOWED")
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 100}), 403, "NOT_ALLOWED"
    )
    assert_error(om(client, completed, "/release-remaining-authorization"), 403, "NOT_ALLOWED")
    assert_error(
        om(
            client,
            completed,
            "/merchant-references",
            method="PATCH",
            json={"merchant_reference1": "x"},
        ),
        403,
        "NOT_ALLOWED",
    )


def test_release_remaining_authorization(
    client: Any, state: KustomDoubleState, completed: str
) -> None:
    # The spec: release is refused while the order has no captures.
    assert_error(om(client, completed, "/release-remaining-authorization"), 403, "NOT_ALLOWED")
    state.capture(completed, {"captured_amount": 10000})
    assert om(client, completed, "/release-remaining-authorization").status_code == 204
    order = om(client, completed).json
    assert order["status"] == "CAPTURED"
    assert order["remaining_authorized_amount"] == 0
    assert order["captured_amount"] == 10000
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 1}), 403, "CAPTURE_NOT_ALLOWED"
    )
    assert_error(om(client, completed, "/cancel"), 403, "CANCEL_NOT_ALLOWED")


def test_pending_fraud_status_blocks_capture_until_accepted(
    client: Any, state: KustomDoubleState, created: dict[str, Any]
) -> None:
    order_id = created["order_id"]
    state.complete_order(order_id, fraud_status="PENDING")
    assert om(client, order_id).json["fraud_status"] == "PENDING"
    assert_error(
        om(client, order_id, "/captures", json={"captured_amount": 100}), 403, "CAPTURE_NOT_ALLOWED"
    )
    response = client.post(
        f"/_double/orders/{order_id}/fraud-status", json={"fraud_status": "ACCEPTED"}
    )
    assert response.status_code == 200
    assert om(client, order_id, "/captures", json={"captured_amount": 100}).status_code == 201


def test_idempotency_key_replays_the_first_answer(
    client: Any, state: KustomDoubleState, completed: str
) -> None:
    key = str(uuid.uuid4())
    headers = {"Klarna-Idempotency-Key": key}
    first = om(client, completed, "/captures", json={"captured_amount": 1000}, headers=headers)
    second = om(client, completed, "/captures", json={"captured_amount": 1000}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.headers["Capture-Id"] == second.headers["Capture-Id"]
    assert first.headers["Location"] == second.headers["Location"]
    # Only the key matters: different input, same answer, still no new capture.
    third = om(client, completed, "/captures", json={"captured_amount": 5}, headers=headers)
    assert third.headers["Capture-Id"] == first.headers["Capture-Id"]
    order = om(client, completed).json
    assert len(order["captures"]) == 1 and order["captured_amount"] == 1000
    calls = state.calls("capture")
    assert [c["replayed"] for c in calls] == [False, True, True]
    assert {c["idempotency_key"] for c in calls} == {key}

    # A new key acts again; a replayed refusal stays a refusal.
    other = om(
        client,
        completed,
        "/captures",
        json={"captured_amount": 1000},
        headers={"Klarna-Idempotency-Key": "k2"},
    )
    assert other.headers["Capture-Id"] != first.headers["Capture-Id"]
    refused_key = {"Klarna-Idempotency-Key": "k3"}
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 10**6}, headers=refused_key),
        403,
        "CAPTURE_NOT_ALLOWED",
    )
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 1}, headers=refused_key),
        403,
        "CAPTURE_NOT_ALLOWED",
    )
    assert len(om(client, completed).json["captures"]) == 2


def test_faulted_calls_do_not_consume_the_idempotency_key(
    client: Any, state: KustomDoubleState, completed: str
) -> None:
    state.add_faults("capture", [503])
    headers = {"Klarna-Idempotency-Key": "retry-me"}
    assert_error(
        om(client, completed, "/captures", json={"captured_amount": 10}, headers=headers),
        503,
        "SERVICE_UNAVAILABLE",
    )
    retry = om(client, completed, "/captures", json={"captured_amount": 10}, headers=headers)
    assert retry.status_code == 201
    assert om(client, completed).json["captured_amount"] == 10


# ------------------------------------------------------------------------------ admin / Python API


def test_call_log_and_reset(client: Any, state: KustomDoubleState, completed: str) -> None:
    om(client, completed, "/acknowledge", headers={"Klarna-Idempotency-Key": "ack-1"})
    calls = client.get("/_double/calls").json
    assert [c["operation"] for c in calls] == ["create_order", "acknowledge"]
    create, ack = calls
    assert create["method"] == "POST" and create["path"] == "/checkout/v3/orders"
    assert create["status"] == 201 and create["json"] == order_payload()
    assert ack["idempotency_key"] == "ack-1" and ack["json"] is None and ack["status"] == 204
    assert isinstance(ack["at"], float) and ack["at"] >= create["at"]
    assert client.get("/_double/calls?operation=acknowledge").json == [ack]
    assert set(OPERATIONS) >= {
        "create_order",
        "get_order",
        "update_order",
        "om_get",
        "acknowledge",
        "merchant_references",
        "capture",
        "refund",
        "cancel",
        "release",
    }
    stored = client.get(f"/_double/orders/{completed}").json
    assert stored["acknowledge_count"] == 1 and stored["update_count"] == 0
    assert stored["checkout"]["status"] == "checkout_complete"
    assert stored["order_management"]["status"] == "AUTHORIZED"

    assert client.post("/_double/reset").status_code == 204
    assert client.get("/_double/calls").json == []
    assert client.get(f"/_double/orders/{completed}").status_code == 404
    assert client.get(f"/checkout/v3/orders/{completed}", headers=AUTH_HEADER).status_code == 404


def test_python_api_mirrors_the_http_api(state: KustomDoubleState) -> None:
    order = state.create_order(order_payload())
    order_id = order["order_id"]
    assert state.read_order(order_id)["status"] == "checkout_incomplete"
    with pytest.raises(KustomError) as bad:
        state.update_order(order_id, {"order_amount": -1})
    assert bad.value.status == 400 and bad.value.error_messages[0] == "Bad value: order_amount"
    state.complete_order(order_id, shipping_address={"city": "Malmö"})
    assert state.om_order(order_id)["shipping_address"]["city"] == "Malmö"
    with pytest.raises(KustomError) as read_only:
        state.update_order(order_id, {})
    assert read_only.value.error_code == "READ_ONLY_ORDER"
    capture = state.capture(order_id, {"captured_amount": 54900})
    assert state.get_capture(order_id, capture["capture_id"])["captured_amount"] == 54900
    state.refund(order_id, {"refunded_amount": 900})
    assert state.om_order(order_id)["refunded_amount"] == 900
    assert state.calls() == []  # the Python API bypasses the call log
    with pytest.raises(DoubleError):
        state.complete_order(str(uuid.uuid4()))


# ------------------------------------------------------------------------------ over real HTTP


def test_over_http_with_push_to_a_merchant(live: tuple[str, KustomDoubleState]) -> None:
    base, state = live
    received: list[dict[str, Any]] = []
    merchant = Flask("merchant")

    @merchant.post("/push")
    def push() -> tuple[str, int]:
        received.append({"args": dict(request.args), "body": request.get_data()})
        return "", 204

    with ServerThread(merchant) as merchant_server, requests.Session() as http:
        http.auth = AUTH
        payload = order_payload()
        payload["merchant_urls"]["push"] = (
            f"{merchant_server.url}/push?order_id={{checkout.order.id}}"
        )
        created = http.post(f"{base}/checkout/v3/orders", json=payload, timeout=5)
        assert created.status_code == 201
        order_id = created.json()["order_id"]
        assert created.headers["Location"] == f"{base}/checkout/v3/orders/{order_id}"
        assert f"{base}/playground/checkout/{order_id}" in created.json()["html_snippet"]
        assert http.get(created.headers["Location"], timeout=5).json()["order_id"] == order_id
        page = requests.get(f"{base}/playground/checkout/{order_id}", timeout=5)
        assert page.status_code == 200 and "Yellow T-Shirt" in page.text

        done = requests.post(
            f"{base}/_double/orders/{order_id}/complete",
            json={"fraud_status": "ACCEPTED", "push": True, "push_delay_seconds": 0.05},
            timeout=5,
        )
        assert done.status_code == 200
        pushes = state.wait_for_callbacks("push", 1, timeout=5)
        assert pushes[0]["status"] == 204
        assert pushes[0]["url"] == f"{merchant_server.url}/push?order_id={order_id}"
        assert received == [{"args": {"order_id": order_id}, "body": b""}]

        key = {"Klarna-Idempotency-Key": str(uuid.uuid4())}
        url = f"{base}/ordermanagement/v1/orders/{order_id}/captures"
        first = http.post(url, json={"captured_amount": 54900}, headers=key, timeout=5)
        again = http.post(url, json={"captured_amount": 54900}, headers=key, timeout=5)
        assert first.status_code == again.status_code == 201
        assert first.headers["Capture-Id"] == again.headers["Capture-Id"]
        assert (
            len(
                http.get(f"{base}/ordermanagement/v1/orders/{order_id}", timeout=5).json()[
                    "captures"
                ]
            )
            == 1
        )

        calls = requests.get(f"{base}/_double/calls", timeout=5).json()
        assert [c["operation"] for c in calls] == [
            "create_order",
            "get_order",
            "capture",
            "capture",
            "om_get",
        ]
        assert requests.get(f"{base}/checkout/v3/orders/{order_id}", timeout=5).status_code == 401


def test_fraud_decision_notifies_the_merchant(live: tuple[str, KustomDoubleState]) -> None:
    _base, state = live
    received: list[Any] = []
    merchant = Flask("merchant")

    @merchant.post("/notify")
    def notify() -> tuple[str, int]:
        received.append(request.get_json())
        return "", 200

    with ServerThread(merchant) as merchant_server:
        payload = order_payload()
        payload["merchant_urls"]["notification"] = f"{merchant_server.url}/notify"
        order_id = state.create_order(payload)["order_id"]
        state.complete_order(order_id, fraud_status="PENDING")
        stored = state.set_fraud_status(order_id, "REJECTED", notify=True)
        assert stored["order_management"]["fraud_status"] == "REJECTED"
        assert stored["om_status"] == "CANCELLED"
        [sent] = state.wait_for_callbacks("notification", 1, timeout=5)
        assert sent["status"] == 200
        assert received == [{"order_id": order_id, "event_type": "FRAUD_RISK_REJECTED"}]


def test_concurrent_captures_never_over_capture(live: tuple[str, KustomDoubleState]) -> None:
    base, state = live
    order_id = state.create_order(order_payload())["order_id"]
    state.complete_order(order_id)
    state.set_latency(0.05)
    url = f"{base}/ordermanagement/v1/orders/{order_id}/captures"

    def capture(_: int) -> int:
        return requests.post(url, json={"captured_amount": 10000}, auth=AUTH, timeout=5).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(capture, range(10)))
    assert statuses == [201] * 5 + [403] * 5
    assert time.monotonic() - started < 0.4  # serialised would take >= 0.5 s
    order = state.om_order(order_id)
    assert order["captured_amount"] == 50000 and order["remaining_authorized_amount"] == 4900
    assert len(state.wait_for_calls("capture", 10, timeout=1)) == 10


def test_server_thread_is_generic_and_stops() -> None:
    hello = Flask("hello")
    hello.add_url_rule("/", "hello", lambda: "hi")
    server = ServerThread(hello)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(server.url, timeout=5).text == "hi"
        url = server.url
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=1)


@contextlib.contextmanager
def module_entry_point(env: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m playground.kustom`` on a free port; yields its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "playground.kustom",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--latency",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(10)
        assert line and "listening on http://127.0.0.1:" in line[0], line
        yield line[0].rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(5)


def test_module_entry_point_serves_the_double() -> None:
    with module_entry_point() as url:
        assert requests.get(f"{url}/checkout/v3/orders/x", auth=AUTH, timeout=5).status_code == 404


def test_update_delay_slows_order_updates_only() -> None:
    client: Any = create_app(update_delay_seconds=0.3).test_client()
    started = time.monotonic()
    created = client.post("/checkout/v3/orders", json=order_payload(), headers=AUTH_HEADER)
    assert created.status_code == 201
    assert time.monotonic() - started < 0.3
    path = f"/checkout/v3/orders/{created.json['order_id']}"
    started = time.monotonic()
    assert client.post(path, json={"locale": "sv-SE"}, headers=AUTH_HEADER).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert client.get(path, headers=AUTH_HEADER).json["locale"] == "sv-SE"
    assert time.monotonic() - started < 0.3


def test_update_delay_from_the_environment() -> None:
    """scripts/run sets KUSTOM_PLAYGROUND_UPDATE_DELAY (1 s) for the playground process."""
    with module_entry_point({"KUSTOM_PLAYGROUND_UPDATE_DELAY": "0.4"}) as url:
        created = requests.post(
            f"{url}/checkout/v3/orders", json=order_payload(), auth=AUTH, timeout=5
        )
        assert created.status_code == 201
        path = f"{url}/checkout/v3/orders/{created.json()['order_id']}"
        started = time.monotonic()
        answer = requests.post(path, json={"locale": "sv-SE"}, auth=AUTH, timeout=5)
        assert answer.status_code == 200
        assert time.monotonic() - started >= 0.4


def test_order_payload_helper_is_valid() -> None:
    assert validate_order(copy.deepcopy(order_payload())) == []
