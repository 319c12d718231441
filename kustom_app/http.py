"""HTTP sessions for the outbound clients (Kustom, the commerce backend)."""

from __future__ import annotations

import os

import requests
from requests.utils import get_environ_proxies


def http_session(base_url: str) -> requests.Session:
    """A session that reads its environment settings once, when it is built.

    With ``trust_env`` (the default), requests re-reads the proxy variables and walks
    ``os.environ`` on every call, a real share of a sync job's CPU (docs/benchmarks.md).
    Reading ``HTTP(S)_PROXY``/``NO_PROXY`` for ``base_url`` and ``REQUESTS_CA_BUNDLE``/
    ``CURL_CA_BUNDLE`` here keeps them working; a change to them needs a restart.
    """
    session = requests.Session()
    session.proxies.update(get_environ_proxies(base_url))  # {} when NO_PROXY covers it
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


__all__ = ["http_session"]
