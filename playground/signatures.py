"""The commerce double's own HMAC signatures (CONTRACT sections 4 and 5).

Both directions are signed alike: ``X-Commerce-Signature`` on the renders the shop POSTs to
the service, ``X-Kustom-App-Signature`` on the service's calls to the commerce backend, each
``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, accepted for 300 s.

Written here rather than imported from ``kustom_app.signing``: a double that shares the
service's code shares its bugs. tests/playground/test_signatures.py holds this module and
the service's to one known answer.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    """The header is missing, malformed, too old or too new, or signs other bytes."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = b"%d.%s" % (timestamp, body)
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The header value that signs ``body`` (the raw bytes sent) at ``timestamp`` (now)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={_mac(secret, at, body)}"


def check(secret: str, body: bytes, header: str | None, *, now: float | None = None) -> None:
    """Raise :class:`BadSignature` unless ``header`` signs these bytes within the tolerance.

    More than one ``v1`` may be given (a secret being rotated); one matching is enough.
    """
    if not header:
        raise BadSignature("missing signature header")
    entries = [item.strip().partition("=") for item in header.split(",")]
    stamps = [value for name, _, value in entries if name == "t" and value.isdigit()]
    macs = [value for name, _, value in entries if name == "v1" and value]
    if not stamps or not macs:
        raise BadSignature("malformed signature header")
    at = int(stamps[-1])
    if abs((time.time() if now is None else now) - at) > TOLERANCE_SECONDS:
        raise BadSignature("signature timestamp outside the tolerance")
    expected = _mac(secret, at, body)
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise BadSignature("signature does not match")
