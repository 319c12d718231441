"""The known-answer vectors hold: computed with plain hmac/hashlib, and the service agrees.

The first half recomputes every vector from its definition (CONTRACT section 4) without the
service's code, so a wrong vector cannot pass because the service has the same mistake. The
second half runs the service's own signer and verifier, and the commerce endpoint over HTTP,
against the same vectors.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import re

import pytest

from kustom_app.signing import InvalidSignature, sign_payload, verify_signature
from tests.signing.vectors import SIGN, VECTORS, VECTORS_PATH, VERIFY, body_bytes, names

# What each documented reason looks like in the service's InvalidSignature message.
SERVICE_REASON = {
    "missing": "missing signature header",
    "malformed": "malformed signature header",
    "tolerance": "outside the tolerance",
    "mismatch": "does not match",
}


def plain_mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def plain_verify(secret: str, body: bytes, header: str, now: int) -> str | None:
    """An independent reading of the documented rules; the reason for a refusal, or None."""
    if not header:
        return "missing"
    entries = [part.strip().partition("=") for part in header.split(",")]
    stamps = [v for k, _, v in entries if k == "t" and re.fullmatch(r"[0-9]+", v)]
    macs = [v for k, _, v in entries if k == "v1" and v]
    if not stamps or not macs:
        return "malformed"
    timestamp = int(stamps[-1])
    if abs(now - timestamp) > VECTORS["scheme"]["toleranceSeconds"]:
        return "tolerance"
    expected = plain_mac(secret, timestamp, body).encode("ascii")
    if not any(hmac.compare_digest(expected, mac.encode("utf-8")) for mac in macs):
        return "mismatch"
    return None


def test_vectors_cover_what_the_docs_promise():
    sign_names = set(names(SIGN))
    assert {"utf8-body", "empty-body", "whitespace-body", "long-secret"} <= sign_names
    assert {v["direction"] for v in SIGN} == {"commerceToService", "serviceToCommerce"}
    assert any(len(v["secret"].encode()) > 64 for v in SIGN)  # longer than a SHA-256 block
    assert any(not v["body"].isascii() for v in SIGN)
    reasons = {v.get("reason") for v in VERIFY}
    assert reasons == {None, "missing", "malformed", "tolerance", "mismatch"}
    assert len(set(names(SIGN))) == len(SIGN) and len(set(names(VERIFY))) == len(VERIFY)


@pytest.mark.parametrize("vector", SIGN + VERIFY, ids=names(SIGN) + names(VERIFY))
def test_body_text_and_base64_are_the_same_bytes(vector):
    assert vector["body"].encode("utf-8") == body_bytes(vector)


@pytest.mark.parametrize("vector", SIGN, ids=names(SIGN))
def test_sign_vector_recomputed_with_plain_hmac(vector):
    mac = plain_mac(vector["secret"], vector["timestamp"], body_bytes(vector))
    assert mac == vector["v1"]
    assert vector["header"] == f"t={vector['timestamp']},v1={mac}"


@pytest.mark.parametrize("vector", VERIFY, ids=names(VERIFY))
def test_verify_vector_matches_the_documented_rules(vector):
    reason = plain_verify(vector["secret"], body_bytes(vector), vector["header"], vector["now"])
    assert reason == vector.get("reason")
    assert vector["valid"] is (reason is None)


@pytest.mark.parametrize("vector", SIGN, ids=names(SIGN))
def test_service_signs_every_vector(vector):
    header = sign_payload(vector["secret"], body_bytes(vector), vector["timestamp"])
    assert header == vector["header"]
    verify_signature(vector["secret"], body_bytes(vector), header, now=vector["timestamp"])


@pytest.mark.parametrize("vector", VERIFY, ids=names(VERIFY))
def test_service_verifier_agrees_with_every_vector(vector):
    args = (vector["secret"], body_bytes(vector), vector["header"])
    if vector["valid"]:
        verify_signature(*args, now=vector["now"])
    else:
        with pytest.raises(InvalidSignature, match=SERVICE_REASON[vector["reason"]]):
            verify_signature(*args, now=vector["now"])


def _latin1(header: str) -> bool:
    try:
        header.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize(
    "vector", [v for v in VERIFY if _latin1(v["header"])], ids=lambda v: v["name"]
)
def test_commerce_endpoint_answers_401_for_every_refused_vector(
    vector, settings, fake_redis, task_queue, monkeypatch
):
    """Over HTTP, each refused vector is a 401 invalid_signature (never a 5xx) and queues
    nothing; each accepted one gets past the signature check."""
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": dataclasses.replace(settings, commerce_webhook_secret=vector["secret"]),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
            "TESTING": True,
        }
    )
    # The endpoint's verifier, with the clock at the vector's `now`.
    monkeypatch.setattr(
        "webhooks.commerce.verify_signature", functools.partial(verify_signature, now=vector["now"])
    )
    headers = {"Content-Type": "application/json"}
    if vector["header"]:
        headers["X-Commerce-Signature"] = vector["header"]
    response = app.test_client().post(
        "/commerce/cart-mutation", data=body_bytes(vector), headers=headers
    )
    if vector["valid"]:
        assert response.status_code != 401, response.get_json()
    else:
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "invalid_signature"
        assert task_queue.syncs == []


def test_vectors_file_keeps_utf8_readable():
    """UTF-8 text, not \\u escapes, so the docs' table and the file read the same."""
    raw = VECTORS_PATH.read_text(encoding="utf-8")
    assert "Räksmörgås" in raw
    assert json.loads(raw) == VECTORS


def test_docs_table_shows_every_vector():
    """docs/signing.md lists each vector; a vector changed here must be changed there."""
    page = (VECTORS_PATH.parents[1] / "docs" / "signing.md").read_text(encoding="utf-8")
    for vector in SIGN:
        assert f"| `{vector['name']}` |" in page and f"`{vector['v1']}`" in page
    for vector in VERIFY:
        verdict = "accepted" if vector["valid"] else f"refused: `{vector['reason']}`"
        assert re.search(
            rf"\| `{re.escape(vector['name'])}` \|[^|]*\| {re.escape(verdict)} \|", page
        )
