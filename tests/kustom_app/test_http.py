"""Outbound sessions read proxies and the CA bundle from the environment once."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from kustom_app.http import http_session
from kustom_app.settings import Settings
from tests.domain import commerce_client, kustom_client

PROXY_VARIABLES = (
    *("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"),
    *("NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_an_egress_proxy_set_in_the_environment_is_used(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    session = kustom_client("https://api.kustom.test").session
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session.trust_env is False, "not re-read from os.environ on every call"


def test_no_proxy_exempts_the_base_url(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "shop.internal")
    assert "https" not in commerce_client("https://shop.internal/api", "s").session.proxies
    assert "https" in commerce_client("https://shop.example/api", "s").session.proxies


def test_a_ca_bundle_from_the_environment_is_verified_against(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/merchant-ca.pem")
    assert (
        http_session("https://api.kustom.test", Settings.from_env().ca_bundle).verify
        == "/etc/ssl/merchant-ca.pem"
    )
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert http_session("https://api.kustom.test", Settings.from_env().ca_bundle).verify is True


class RecordingAdapter(requests.adapters.BaseAdapter):
    """Answers 200 {} and keeps what it was asked to send, and how."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.request = request
        return response

    def close(self) -> None:
        pass


def test_kustom_calls_carry_the_session_settings(monkeypatch):
    # The client sends through the session's adapter itself (no session.request): the
    # proxies, CA bundle, credentials and headers must still all be there.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/merchant-ca.pem")
    client = kustom_client(
        "https://api.kustom.test",
        "merchant",
        "s3cret",
        kustom_read_timeout=7,
        ca_bundle=Settings.from_env().ca_bundle,  # read from the environment, at start
    )
    adapter = RecordingAdapter()
    client.session.mount("https://", adapter)

    client.acknowledge_order("order-1", "key-1")
    client.update_order("order-1", {"order_amount": 100})

    (acknowledge, how), (update, _) = adapter.sent
    assert acknowledge.method == "POST"
    assert acknowledge.url == (
        "https://api.kustom.test/ordermanagement/v1/orders/order-1/acknowledge"
    )
    assert acknowledge.headers["Klarna-Idempotency-Key"] == "key-1"
    assert update.url == "https://api.kustom.test/checkout/v3/orders/order-1"
    assert json.loads(update.body) == {"order_amount": 100}
    assert update.headers["Content-Type"] == "application/json"
    expected_auth = "Basic " + base64.b64encode(b"merchant:s3cret").decode()
    assert acknowledge.headers["Authorization"] == update.headers["Authorization"] == expected_auth
    assert update.headers["User-Agent"].startswith("kustom-app/")
    assert "Klarna-Idempotency-Key" not in update.headers  # per call, not left on the session
    assert how["proxies"]["https"] == "http://proxy.internal:3128"
    assert how["verify"] == "/etc/ssl/merchant-ca.pem"
    assert how["timeout"] == (3.05, 7)
