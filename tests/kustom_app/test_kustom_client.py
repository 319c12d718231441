"""The Kustom client's error hierarchy: what is worth a retry and what is a rejection."""

from __future__ import annotations

import logging

import pytest
import requests
import responses

from kustom_app.kustom import KustomRejected, KustomUnavailable
from tests.domain import kustom_client

BASE = "https://kustom.test"
ORDER_URL = f"{BASE}/checkout/v3/orders/o-1"


@pytest.fixture
def kustom():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def client():
    return kustom_client(BASE, "merchant", "very-secret-password", kustom_read_timeout=7.5)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_worth_a_retry(kustom, client, status):
    kustom.get(ORDER_URL, status=status, headers={"Klarna-Correlation-Id": "corr-9"}, body="")
    with pytest.raises(KustomUnavailable) as raised:
        client.get_order("o-1")
    assert raised.value.status == status
    assert raised.value.correlation_id == "corr-9"
    assert not isinstance(raised.value, KustomRejected)


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectTimeout("connect"),
        requests.exceptions.ReadTimeout("read"),
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.SSLError("handshake"),
    ],
    ids=["connect-timeout", "read-timeout", "connection", "tls"],
)
def test_connection_trouble_and_timeouts_are_worth_a_retry(kustom, client, failure, caplog):
    kustom.get(ORDER_URL, body=failure)
    with (
        caplog.at_level(logging.WARNING, logger="kustom_app.kustom"),
        pytest.raises(KustomUnavailable) as raised,
    ):
        client.get_order("o-1", cart="cart-1")
    assert raised.value.status is None
    assert "kustom.call.unreachable" in caplog.text and "cart=cart-1" in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_rejections_with_kustoms_error_details(kustom, client, status):
    kustom.post(
        ORDER_URL,
        status=status,
        json={
            "error_code": "BAD_VALUE",
            "error_messages": ["Bad value: order_lines[0].total_amount"],
            "correlation_id": "corr-body",
        },
        headers={"Klarna-Correlation-Id": "corr-header"},
    )
    with pytest.raises(KustomRejected) as raised:
        client.update_order("o-1", {"order_amount": 1})
    error = raised.value
    assert (error.status, error.error_code) == (status, "BAD_VALUE")
    assert error.error_messages == ["Bad value: order_lines[0].total_amount"]
    assert error.correlation_id == "corr-body"  # Kustom's body names the failing request


def test_a_rejection_without_a_json_body_is_still_a_rejection(kustom, client):
    kustom.get(ORDER_URL, status=404, body="<html>not found</html>")
    with pytest.raises(KustomRejected) as raised:
        client.get_order("o-1")
    assert raised.value.status == 404 and raised.value.error_code is None


def test_basic_auth_and_the_configured_timeouts_are_sent(kustom, client, caplog):
    kustom.get(ORDER_URL, json={"order_id": "o-1"})
    with caplog.at_level(logging.DEBUG):
        assert client.get_order("o-1") == {"order_id": "o-1"}
    call = kustom.calls[0]
    assert call.request.headers["Authorization"].startswith("Basic ")
    assert call.request.req_kwargs["timeout"] == (3.05, 7.5)
    assert "very-secret-password" not in caplog.text
    assert "very-secret-password" not in repr(client)
