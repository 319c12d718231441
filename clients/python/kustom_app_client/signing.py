"""The HMAC signatures of kustom-app, both directions, without the service's code.

``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, accepted for 300 s:
``X-Commerce-Signature`` on what the backend sends, ``X-Kustom-App-Signature`` on what the
service sends back. The rules (several ``v1`` for rotation, lower-case hex, ASCII-digit
``t``) are pinned by the repository's schemas/signing-vectors.json; see docs/signing.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

COMMERCE_SIGNATURE_HEADER = "X-Commerce-Signature"
SERVICE_SIGNATURE_HEADER = "X-Kustom-App-Signature"
TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The signature is missing, malformed, outside the tolerance or does not match.

    ``reason`` is one of ``missing``, ``malformed``, ``tolerance``, ``mismatch``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _mac(secret: str, timestamp: int, body: bytes) -> bytes:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().encode("ascii")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value signing ``body`` (the exact bytes sent) at ``timestamp`` (now)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body).decode('ascii')}"


def verify_signature(
    secret: str | Sequence[str],
    body: bytes,
    header: str | None,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `InvalidSignature` unless ``header`` signs these raw bytes within the tolerance.

    ``secret`` may be several secrets (while you rotate yours): one matching is enough.
    ``body`` must be the raw request body, not parsed and re-serialised JSON.
    """
    if not header:
        raise InvalidSignature("missing", "missing signature header")
    timestamp: int | None = None
    macs: list[bytes] = []
    for entry in header.split(","):
        key, _, value = entry.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            macs.append(value.encode("utf-8", "replace"))
    if timestamp is None or not macs:
        raise InvalidSignature("malformed", "malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("tolerance", "signature timestamp outside the tolerance")
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not any(
        hmac.compare_digest(_mac(one, timestamp, body), mac) for one in secrets for mac in macs
    ):
        raise InvalidSignature("mismatch", "signature does not match")
