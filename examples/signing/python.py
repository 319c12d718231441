"""Sign and verify kustom-app webhooks in Python, with the standard library only.

    header = sign(secret, raw_body)            # send as X-Commerce-Signature
    reason = verify(secret, raw_body, header)  # X-Kustom-App-Signature; None means valid

``raw_body`` is the exact bytes on the wire: sign the bytes you send, verify the bytes you
received (Flask: ``request.get_data()``, Django: ``request.body``), never a re-serialised
copy. Format (docs/signing.md): ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Run ``python examples/signing/python.py schemas/signing-vectors.json`` to check these
functions against the known-answer vectors (prints the results as JSON).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time

TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int, body: bytes) -> bytes:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().encode("ascii")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body`` (unix seconds, not milliseconds)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body).decode('ascii')}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str | None:
    """None when ``header`` signs ``body`` within the tolerance, else why not:
    ``missing``, ``malformed``, ``tolerance`` or ``mismatch``."""
    if not header:
        return "missing"
    timestamp = None
    macs = []
    for entry in header.split(","):
        key, _, value = entry.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            macs.append(value.encode("utf-8", "replace"))
    if timestamp is None or not macs:
        return "malformed"
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return "tolerance"
    expected = _mac(secret, timestamp, body)
    # Several v1 entries: the sender is rotating secrets; one match is enough.
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        return "mismatch"
    return None


def check_vectors(path: str) -> dict[str, dict[str, str | None]]:
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    signed = {
        v["name"]: sign(v["secret"], base64.b64decode(v["bodyBase64"]), v["timestamp"])
        for v in vectors["sign"]
    }
    verified = {
        v["name"]: verify(v["secret"], base64.b64decode(v["bodyBase64"]), v["header"], now=v["now"])
        for v in vectors["verify"]
    }
    return {"sign": signed, "verify": verified}


if __name__ == "__main__":
    print(json.dumps(check_vectors(sys.argv[1]), ensure_ascii=False))
