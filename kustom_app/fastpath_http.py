"""Fast path: a Kustom API call sent through the session's adapter, not ``session.request``.

What it shortcuts: ``requests.Session.request`` and ``Session.send``, around what the Kustom
client actually needs. It never uses cookies, hooks or redirects (Kustom's API answers where
it is asked), and its session settings are fixed when it is built (`kustom_app.http`), so
the per-call merging of cookies, hooks, environment and session settings is work for
nothing on every sync push.

What it copies: the request ``session.request`` prepares (the session's headers under the
call's, the session's auth, the JSON body) and the arguments it hands the adapter
(``stream``, ``timeout``, ``verify``, ``cert``, ``proxies``) for a session with
``trust_env`` off, as `kustom_app.http.http_session` builds them.

Relies on: requests 2.34.2 as installed (pyproject: ``requests>=2.32,<3``):
``PreparedRequest.prepare``, ``Session.get_adapter`` and ``HTTPAdapter.send``'s arguments,
and what ``Session.request`` passes them.

Guarded by: ``tests/kustom_app/test_fastpath_http.py``
(``test_the_shortcut_sends_what_session_request_sends`` records both on one adapter and
fails if requests starts to send anything else).

Off (``KUSTOM_FAST_PATHS=off``): `kustom_app.kustom.KustomClient` calls
``session.request`` (without following redirects, as here).
"""

from __future__ import annotations

from typing import Any

import requests


def send_through_adapter(
    session: requests.Session,
    method: str,
    url: str,
    *,
    json: Any,
    headers: dict[str, str] | None,
    timeout: tuple[float, float],
) -> requests.Response:
    """What ``session.request(method, url, json=json, headers=headers, timeout=timeout,
    allow_redirects=False)`` sends, prepared from the session's headers and auth and sent
    through its adapter with its proxies and CA settings; the answer is not dispatched to
    hooks, its cookies are not kept."""
    request = requests.PreparedRequest()
    request.prepare(
        method=method,
        url=url,
        headers={**session.headers, **headers} if headers else session.headers,
        json=json,
        auth=session.auth,
    )
    return session.get_adapter(url).send(
        request,
        stream=False,
        timeout=timeout,
        verify=session.verify if session.verify is not None else True,
        cert=session.cert,
        proxies=session.proxies,
    )


__all__ = ["send_through_adapter"]
