"""HTTP sessions for the outbound clients (Kustom, the commerce backend)."""

from __future__ import annotations

import requests
from requests.utils import get_environ_proxies


def http_session(base_url: str, ca_bundle: str | None) -> requests.Session:
    """A session whose environment settings are fixed when it is built.

    With ``trust_env`` (the default), requests re-reads the proxy variables and walks
    ``os.environ`` on every call, a real share of a sync job's CPU (docs/benchmarks.md).
    Reading ``HTTP(S)_PROXY``/``NO_PROXY`` for ``base_url`` here, and taking the CA bundle
    from the settings (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, `Settings.ca_bundle`),
    keeps them working; a change to them needs a restart.
    """
    session = requests.Session()
    session.proxies.update(get_environ_proxies(base_url))  # {} when NO_PROXY covers it
    if ca_bundle:
        session.verify = ca_bundle
    session.trust_env = False
    return session


__all__ = ["http_session"]
