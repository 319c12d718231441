"""Verifying the service's signed calls with kustom_app_client: the framework-neutral
function against every known-answer vector, and the Flask and Django view helpers against
the service's own signer (kustom_app.commerce.CommerceClient, the code that calls a real
backend)."""

from __future__ import annotations

import json
import time

import django
import pytest
from django.conf import settings as django_settings
from flask import Flask, jsonify, request
from kustom_app_client import SERVICE_SIGNATURE_HEADER, InvalidSignature, sign, verify_signature

from kustom_app.commerce import CommerceClient, CommerceRejected
from kustom_app.signing import sign_payload
from playground.server import ServerThread
from tests.signing.vectors import SIGN, VERIFY, body_bytes, names

SECRET = "whsec_backend_test"


@pytest.mark.parametrize("vector", SIGN, ids=names(SIGN))
def test_sign_matches_every_vector(vector):
    assert sign(vector["secret"], body_bytes(vector), vector["timestamp"]) == vector["header"]


@pytest.mark.parametrize("vector", VERIFY, ids=names(VERIFY))
def test_verify_agrees_with_every_vector(vector):
    args = (vector["secret"], body_bytes(vector), vector["header"])
    if vector["valid"]:
        verify_signature(*args, now=vector["now"])
    else:
        with pytest.raises(InvalidSignature) as caught:
            verify_signature(*args, now=vector["now"])
        assert caught.value.reason == vector["reason"]


def test_several_secrets_while_rotating():
    header = sign("new-secret", b"{}")
    verify_signature(["old-secret", "new-secret"], b"{}", header)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(["old-secret", "other"], b"{}", header)


# Flask ---------------------------------------------------------------------------------


def backend_flask_app(secret) -> Flask:
    from kustom_app_client.flask import kustom_app_signature_required

    app = Flask("backend")
    completions: list[dict] = []
    app.extensions["completions"] = completions

    @app.get("/carts/<cart_id>")
    @kustom_app_signature_required(secret)
    def cart(cart_id):
        return jsonify({"cartId": cart_id, "version": 1})

    @app.post("/carts/<cart_id>/complete")
    @kustom_app_signature_required(lambda: app.config["KUSTOM_APP_SECRET"])
    def complete(cart_id):
        completions.append(request.get_json())
        return jsonify({"orderNumber": f"SO-{cart_id}"}), 201

    app.config["KUSTOM_APP_SECRET"] = secret
    return app


@pytest.fixture
def flask_backend():
    app = backend_flask_app(SECRET)
    with ServerThread(app, name="flask-backend") as server:
        yield server, app


def commerce_client(url: str, secret: str) -> CommerceClient:
    return CommerceClient(url, secret, connect_timeout=5, read_timeout=10, ca_bundle=None)


def test_flask_view_accepts_the_services_signed_get_and_post(flask_backend):
    server, app = flask_backend
    service = commerce_client(server.url, SECRET)
    assert service.get_cart("cart-7") == {"cartId": "cart-7", "version": 1}  # empty body
    status, body = service.post(
        "complete_cart", "/carts/cart-7/complete", {"kustomOrderId": "k-1", "orderAmount": 100}
    )
    assert (status, body) == (201, {"orderNumber": "SO-cart-7"})
    assert app.extensions["completions"] == [{"kustomOrderId": "k-1", "orderAmount": 100}]


def test_flask_view_refuses_another_secret_before_the_view_runs(flask_backend):
    server, app = flask_backend
    with pytest.raises(CommerceRejected) as caught:
        commerce_client(server.url, "another-secret").post(
            "complete_cart", "/carts/cart-7/complete", {"kustomOrderId": "k-1"}
        )
    assert caught.value.status == 401
    assert caught.value.error_code == "invalid_signature"
    assert caught.value.body["error"]["details"] == {"reason": "mismatch"}
    assert app.extensions["completions"] == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({SERVICE_SIGNATURE_HEADER: "sha256=abc"}, "malformed"),
        ({SERVICE_SIGNATURE_HEADER: sign_payload(SECRET, b'{"a":1}', 1_000_000)}, "tolerance"),
        ({SERVICE_SIGNATURE_HEADER: sign_payload(SECRET, b'{"a": 1}')}, "mismatch"),
    ],
)
def test_flask_view_refusals_say_why(headers, reason):
    app = backend_flask_app(SECRET)
    response = app.test_client().post(
        "/carts/c/complete",
        data=b'{"a":1}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert response.get_json()["error"]["details"] == {"reason": reason}
    assert app.extensions["completions"] == []


# Django --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_ready():
    if not django_settings.configured:
        django_settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=[], SECRET_KEY="x" * 50
        )
        django.setup()


def django_view(secret):
    from django.http import JsonResponse
    from kustom_app_client.django import kustom_app_signature_required

    seen: list[bytes] = []

    @kustom_app_signature_required(secret)
    def complete(request, cart_id):
        seen.append(request.body)
        return JsonResponse({"orderNumber": f"SO-{cart_id}"}, status=201)

    return complete, seen


def test_django_view_runs_for_a_signed_call_only(django_ready):
    from django.test import RequestFactory

    view, seen = django_view(lambda: SECRET)
    raw = json.dumps({"kustomOrderId": "k-1", "note": "Räksmörgås"}, ensure_ascii=False).encode()
    factory = RequestFactory()

    signed = factory.post(
        "/carts/c1/complete",
        data=raw,
        content_type="application/json",
        headers={SERVICE_SIGNATURE_HEADER: sign_payload(SECRET, raw)},
    )
    response = view(signed, "c1")
    assert response.status_code == 201 and json.loads(response.content) == {"orderNumber": "SO-c1"}
    assert seen == [raw]

    stale = sign_payload(SECRET, raw, int(time.time()) - 301)
    for headers in ({}, {SERVICE_SIGNATURE_HEADER: stale}):
        refused = view(
            factory.post(
                "/carts/c1/complete", data=raw, content_type="application/json", headers=headers
            ),
            "c1",
        )
        assert refused.status_code == 401
        assert json.loads(refused.content)["error"]["code"] == "invalid_signature"
    assert seen == [raw]
