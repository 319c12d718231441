"""kustom_app_client.KustomAppClient against a mocked service (responses).

What a backend team relies on: every event is signed over the exact bytes sent; a retry
sends the same bytes (same captureId / refundId / version); connection errors, 5xx and 429
are retried with backoff, a 4xx is not; failures raise an exception with the service's
error code, message and details.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses
from kustom_app_client import (
    COMMERCE_SIGNATURE_HEADER,
    KustomAppClient,
    KustomAppError,
    KustomAppRejected,
    KustomAppUnavailable,
)

from kustom_app.signing import verify_signature
from tests.conftest import make_render

BASE = "https://kustom-app.test"
SECRET = "whsec_client_test"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps) -> KustomAppClient:
    return KustomAppClient(BASE, SECRET, sleep=sleeps.append, max_retries=3)


def error(code: str, message: str = "m", details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def sent(call) -> tuple[bytes, str]:
    body = call.request.body
    return (body.encode() if isinstance(body, str) else body), call.request.headers[
        COMMERCE_SIGNATURE_HEADER
    ]


@responses.activate
def test_render_is_signed_over_the_bytes_sent_and_the_answer_returned(client):
    answer = {"cartId": "cart-1", "pendingHash": "h1", "syncHash": None, "syncing": True}
    responses.post(f"{BASE}/commerce/cart-mutation", json=answer, status=202)
    render = make_render("cart-1", 3)

    assert client.send_cart_render(render) == answer

    body, header = sent(responses.calls[0])
    verify_signature(SECRET, body, header)  # the service's own verifier accepts it
    assert json.loads(body) == render
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"


@responses.activate
def test_capture_sends_decimal_amounts_as_exact_strings_and_utf8(client):
    responses.post(
        f"{BASE}/commerce/payment-capture",
        json={"captureId": "cap-1", "status": "queued"},
        status=202,
    )
    accepted = client.capture_payment(
        capture_id="cap-1",
        cart_id="cart-1",
        amount=Decimal("549.10"),
        currency_code="SEK",
        description="Räksmörgås",
    )
    assert accepted == {"captureId": "cap-1", "status": "queued"}
    body, _ = sent(responses.calls[0])
    assert body == (
        b'{"captureId":"cap-1","cartId":"cart-1","amount":"549.10","currencyCode":"SEK",'
        b'"description":"R\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s"}'
    )


def test_float_amounts_are_refused_before_anything_is_sent(client):
    with pytest.raises(TypeError, match="float"):
        client.refund_payment(refund_id="r1", cart_id="c1", amount=1.1, currency_code="SEK")  # type: ignore[arg-type]


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_answers_are_retried_with_the_same_body(client, sleeps, status):
    url = f"{BASE}/commerce/payment-refund"
    responses.post(url, json=error("busy"), status=status)
    responses.post(url, json=error("busy"), status=status)
    responses.post(url, json={"refundId": "ref-9", "status": "queued"}, status=202)

    accepted = client.refund_payment(
        refund_id="ref-9", cart_id="cart-1", amount="100.00", currency_code="SEK"
    )

    assert accepted == {"refundId": "ref-9", "status": "queued"}
    bodies = [sent(call)[0] for call in responses.calls]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert json.loads(bodies[0])["refundId"] == "ref-9"
    for call in responses.calls:  # each attempt is signed (fresh timestamp, same bytes)
        verify_signature(SECRET, *sent(call))
    assert len(sleeps) == 2 and 0 < sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


@responses.activate
def test_connection_errors_and_timeouts_are_retried(client):
    url = f"{BASE}/commerce/order-cancel"
    responses.post(url, body=requests.ConnectionError("refused"))
    responses.post(url, body=requests.ReadTimeout("slow"))
    responses.post(url, json={"cartId": "cart-1", "status": "queued"}, status=202)

    assert client.cancel_order("cart-1") == {"cartId": "cart-1", "status": "queued"}
    assert len(responses.calls) == 3


@responses.activate
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "validation_error"),
        (401, "invalid_signature"),
        (404, "cart_not_found"),
        (409, "idempotency_conflict"),
        (422, "cart_not_payable"),
    ],
)
def test_a_4xx_is_raised_at_once_with_the_services_error(client, sleeps, status, code):
    details = {"fields": {"amount": ["Must be greater than 0."]}}
    responses.post(
        f"{BASE}/commerce/payment-capture",
        json=error(code, "The request was refused.", details),
        status=status,
    )
    with pytest.raises(KustomAppRejected) as caught:
        client.capture_payment(capture_id="c", cart_id="c", amount="0", currency_code="SEK")
    e = caught.value
    assert (e.status, e.code, e.message, e.details) == (
        status,
        code,
        "The request was refused.",
        details,
    )
    assert len(responses.calls) == 1 and sleeps == []
    assert isinstance(e, KustomAppError)


@responses.activate
def test_giving_up_raises_unavailable_with_the_last_answer(client, sleeps):
    url = f"{BASE}/commerce/cart-mutation"
    responses.post(url, json=error("redis_unavailable", "Redis is down."), status=503)

    with pytest.raises(KustomAppUnavailable) as caught:
        client.send_cart_render(make_render("cart-1", 1))

    e = caught.value
    assert (e.status, e.code, e.message, e.attempts) == (
        503,
        "redis_unavailable",
        "Redis is down.",
        4,
    )
    assert len(responses.calls) == 4 and len(sleeps) == 3
    assert all(s <= 8.0 for s in sleeps)


@responses.activate
def test_retry_after_is_honoured_and_capped(sleeps):
    client = KustomAppClient(BASE, SECRET, sleep=sleeps.append, max_backoff_seconds=5)
    url = f"{BASE}/commerce/cart-mutation"
    responses.post(url, json=error("too_many_requests"), status=429, headers={"Retry-After": "2"})
    responses.post(url, json=error("too_many_requests"), status=429, headers={"Retry-After": "60"})
    responses.post(url, json={"cartId": "c"}, status=202)
    client.send_cart_render(make_render("c", 1))
    assert sleeps == [2.0, 5.0]


@responses.activate
def test_a_proxy_error_page_still_gives_a_code_and_message(client):
    responses.post(f"{BASE}/commerce/order-cancel", body="<html>Bad gateway</html>", status=403)
    with pytest.raises(KustomAppRejected) as caught:
        client.cancel_order("cart-1")
    assert caught.value.code == "http_403"
    assert "Bad gateway" in caught.value.message


@responses.activate
def test_cart_status_is_a_plain_get(client):
    responses.get(
        f"{BASE}/carts/cart%2F1/kustom/status",
        json={"cartId": "cart/1", "syncing": False},
    )
    assert client.cart_status("cart/1")["cartId"] == "cart/1"
    assert COMMERCE_SIGNATURE_HEADER not in responses.calls[0].request.headers


def test_the_secret_is_required_and_never_shown():
    with pytest.raises(ValueError, match="secret"):
        KustomAppClient(BASE, "")
    assert SECRET not in repr(KustomAppClient(BASE, SECRET))
