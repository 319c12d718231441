"""The Kustom client's shortcut past ``session.request`` (kustom_app/fastpath_http.py).

The guard of a requests upgrade: on one session, the shortcut hands the adapter exactly what
``Session.request`` hands it. With KUSTOM_FAST_PATHS=off the client calls
``session.request`` itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from kustom_app.fastpath_http import send_through_adapter
from kustom_app.http import http_session
from kustom_app.kustom import KustomClient
from kustom_app.settings import Settings
from tests.domain import kustom_client

BASE = "https://api.kustom.test"
PROXY_VARIABLES = (
    *("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"),
    *("NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
)


@pytest.fixture(autouse=True)
def proxy_and_ca_bundle(monkeypatch):
    """A proxy and a CA bundle in the environment, as an egress-controlled host has them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/merchant-ca.pem")


class RecordingAdapter(requests.adapters.BaseAdapter):
    """Answers 200 {} and keeps what it was asked to send, and how."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent.append(
            {
                "method": request.method,
                "url": request.url,
                "headers": dict(request.headers),
                "body": request.body,
                **kwargs,
            }
        )
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


def kustom_session() -> tuple[requests.Session, RecordingAdapter]:
    """A session set up as `KustomClient` sets up its own, on a recording adapter."""
    session = http_session(BASE, Settings.from_env().ca_bundle)
    session.auth = ("merchant", "s3cret")
    session.headers.update({"User-Agent": "kustom-app/0.1", "Accept": "application/json"})
    session.cert = "/etc/ssl/client.pem"
    adapter = RecordingAdapter()
    session.mount("https://", adapter)
    return session, adapter


CALLS = [
    ("GET", f"{BASE}/checkout/v3/orders/o-1", None, None),
    ("POST", f"{BASE}/checkout/v3/orders/o-1", {"order_amount": 100, "name": "Röd"}, None),
    (
        "POST",
        f"{BASE}/ordermanagement/v1/orders/o-1/acknowledge",
        None,
        {"Klarna-Idempotency-Key": "key-1"},
    ),
    (
        "PATCH",
        f"{BASE}/ordermanagement/v1/orders/o-1/merchant-references",
        {"merchant_reference1": "1001"},
        {"Klarna-Idempotency-Key": "key-2"},
    ),
]


@pytest.mark.parametrize(("method", "url", "body", "headers"), CALLS)
def test_the_shortcut_sends_what_session_request_sends(method, url, body, headers):
    session, adapter = kustom_session()
    timeout = (3.05, 7.0)
    send_through_adapter(session, method, url, json=body, headers=headers, timeout=timeout)
    session.request(method, url, json=body, headers=headers, timeout=timeout, allow_redirects=False)
    shortcut, plain = adapter.sent
    assert shortcut == plain
    # And what both send is what the client means to send (the comparison is not empty).
    assert plain["proxies"]["https"] == "http://proxy.internal:3128"
    assert plain["verify"] == "/etc/ssl/merchant-ca.pem"
    assert plain["cert"] == "/etc/ssl/client.pem"
    assert plain["timeout"] == timeout
    assert plain["headers"]["Authorization"].startswith("Basic ")
    assert "Cookie" not in plain["headers"]
    for name, value in (headers or {}).items():
        assert plain["headers"][name] == value
    assert "Klarna-Idempotency-Key" not in session.headers, "per call, not left on the session"


def response_hook_calls(client: KustomClient) -> list[str]:
    """The answers the session's response hooks saw: ``session.request`` dispatches them,
    the shortcut does not."""
    seen: list[str] = []
    client.session.hooks["response"].append(lambda response, **_: seen.append(response.url))
    client.session.mount("https://", RecordingAdapter())
    client.get_order("o-1")
    return seen


def test_with_the_fast_paths_off_the_client_calls_session_request():
    plain = kustom_client(BASE, "merchant", "s3cret", fast_paths=False)
    fast = kustom_client(BASE, "merchant", "s3cret")
    assert response_hook_calls(plain) == [f"{BASE}/checkout/v3/orders/o-1"]
    assert response_hook_calls(fast) == []
