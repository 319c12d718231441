"""The commerce double's signatures and the service's agree on CONTRACT sections 4 and 5.

The double writes its own HMAC (playground.signatures) instead of importing
kustom_app.signing, so that a bug in one does not hide in both. These tests pin the format
with one known answer, computed here with nothing but hmac, and hold both modules to it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from kustom_app import signing
from playground import signatures

SECRET = "whsec_playground_known_answer"
TIMESTAMP = 1_700_000_000
BODY = b'{"cartId":"cart-1","version":3}'
# t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>, worked out once by hand.
KNOWN_HEADER = "t=1700000000,v1=cfb32b8f393fa6a6766f88dfa3485b9ebcd317f2cecc193d874c09be29941664"

Check = Callable[[str, bytes, str | None, float], None]


def _double_check(secret: str, body: bytes, header: str | None, now: float) -> None:
    signatures.check(secret, body, header, now=now)


def _service_check(secret: str, body: bytes, header: str | None, now: float) -> None:
    signing.verify_signature(secret, body, header, now=now)


CHECKS = pytest.mark.parametrize(
    ("check", "refused"),
    [
        (_double_check, signatures.BadSignature),
        (_service_check, signing.InvalidSignature),
    ],
    ids=["double", "service"],
)


def test_known_answer_is_the_documented_format() -> None:
    mac = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert f"t={TIMESTAMP},v1={mac}" == KNOWN_HEADER


def test_both_signers_give_the_known_answer() -> None:
    assert signatures.sign(SECRET, BODY, timestamp=TIMESTAMP) == KNOWN_HEADER
    assert signing.sign_payload(SECRET, BODY, TIMESTAMP) == KNOWN_HEADER


def test_a_signature_without_a_timestamp_is_signed_now() -> None:
    header = signatures.sign(SECRET, BODY)
    signing.verify_signature(SECRET, BODY, header)
    signatures.check(SECRET, BODY, header)


@CHECKS
def test_both_verifiers_accept_the_known_answer(check: Check, refused: type[Exception]) -> None:
    check(SECRET, BODY, KNOWN_HEADER, TIMESTAMP + 300)  # the 300 s tolerance, inclusive
    check(SECRET, BODY, KNOWN_HEADER, TIMESTAMP - 300)
    rotating = f"t={TIMESTAMP},v1={'0' * 64},v1={KNOWN_HEADER.split('v1=')[1]}"
    check(SECRET, BODY, rotating, TIMESTAMP)


@CHECKS
@pytest.mark.parametrize(
    ("secret", "body", "header", "now"),
    [
        (SECRET, BODY + b" ", KNOWN_HEADER, TIMESTAMP),
        ("another secret", BODY, KNOWN_HEADER, TIMESTAMP),
        (SECRET, BODY, KNOWN_HEADER, TIMESTAMP + 301),
        (SECRET, BODY, KNOWN_HEADER, TIMESTAMP - 301),
        (SECRET, BODY, KNOWN_HEADER.replace("cfb3", "cfb4"), TIMESTAMP),
        (SECRET, BODY, KNOWN_HEADER.split(",")[1], TIMESTAMP),
        (SECRET, BODY, KNOWN_HEADER.split(",")[0], TIMESTAMP),
        (SECRET, BODY, KNOWN_HEADER.replace("v1=", "v0="), TIMESTAMP),
        (SECRET, BODY, "", TIMESTAMP),
        (SECRET, BODY, None, TIMESTAMP),
    ],
    ids=[
        "other-body",
        "other-secret",
        "too-old",
        "too-new",
        "other-mac",
        "no-timestamp",
        "no-mac",
        "unknown-scheme",
        "empty",
        "missing",
    ],
)
def test_both_verifiers_refuse_what_the_known_answer_does_not_sign(
    check: Check,
    refused: type[Exception],
    secret: str,
    body: bytes,
    header: str | None,
    now: float,
) -> None:
    with pytest.raises(refused):
        check(secret, body, header, now)
