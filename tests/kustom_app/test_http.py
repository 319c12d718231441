"""Outbound sessions read proxies and the CA bundle from the environment once."""

from __future__ import annotations

import pytest

from kustom_app.commerce import CommerceClient
from kustom_app.http import http_session
from kustom_app.kustom import KustomClient

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
    session = KustomClient("https://api.kustom.test", "u", "p").session
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session.trust_env is False, "not re-read from os.environ on every call"


def test_no_proxy_exempts_the_base_url(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "shop.internal")
    assert "https" not in CommerceClient("https://shop.internal/api", "s").session.proxies
    assert "https" in CommerceClient("https://shop.example/api", "s").session.proxies


def test_a_ca_bundle_from_the_environment_is_verified_against(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/merchant-ca.pem")
    assert http_session("https://api.kustom.test").verify == "/etc/ssl/merchant-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert http_session("https://api.kustom.test").verify is True
