"""HMAC signatures shared with the commerce backend, and the per-cart callback token.

Both directions of the commerce integration use the same scheme, Stripe-style:
``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. The timestamp bounds
replay; the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The signature header is missing, malformed, stale or does not match."""


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_payload(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """Return the signature header value for ``body``, as the commerce backend expects it."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, str(t).encode() + b'.' + body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `InvalidSignature` unless ``header`` signs exactly these raw bytes recently.

    Several ``v1=`` entries are accepted so a secret can be rotated without downtime.
    ``t`` must be ASCII digits and ``v1`` is compared as bytes: a header is Latin-1 text, so
    a Unicode digit or a non-ASCII MAC is a refusal, never a crash (a 5xx) in the compare.
    The accepted forms are pinned by schemas/signing-vectors.json.
    """
    if not header:
        raise InvalidSignature("missing signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("signature timestamp outside the tolerance")
    expected = _digest(secret, str(timestamp).encode() + b"." + body).encode()
    if not any(
        hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
        for candidate in candidates
    ):
        raise InvalidSignature("signature does not match")


def callback_token(secret: str, cart_id: str) -> str:
    """The token Kustom hands back in callback URLs; proves the URL came from us."""
    return _digest(secret, b"kustom-callback:" + cart_id.encode())


def check_callback_token(secret: str, cart_id: str | None, token: str | None) -> bool:
    """True when ``token`` is this cart's callback token (constant-time)."""
    if not cart_id or not token:
        return False
    return hmac.compare_digest(callback_token(secret, cart_id).encode(), _raw(token))


def _raw(text: str) -> bytes:
    # compare_digest refuses str with non-ASCII characters (a TypeError, not a mismatch);
    # as bytes, any text a request may carry is simply compared, and is not equal.
    return text.encode("utf-8", "surrogatepass")
