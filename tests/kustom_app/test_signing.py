from __future__ import annotations

import pytest

from kustom_app.signing import (
    InvalidSignature,
    callback_token,
    check_callback_token,
    sign_payload,
    verify_signature,
)

BODY = b'{"cartId":"c1"}'


def test_round_trip():
    verify_signature("s", BODY, sign_payload("s", BODY))


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000"],
)
def test_missing_or_malformed_header(header):
    with pytest.raises(InvalidSignature):
        verify_signature("s", BODY, header, now=1_700_000_000)


def test_wrong_secret_and_tampered_body():
    header = sign_payload("s", BODY, 1_700_000_000)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature("other", BODY, header, now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature("s", BODY + b" ", header, now=1_700_000_000)


def test_timestamp_tolerance():
    header = sign_payload("s", BODY, 1_700_000_000)
    verify_signature("s", BODY, header, now=1_700_000_000 + 299)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature("s", BODY, header, now=1_700_000_000 + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature("s", BODY, header, now=1_700_000_000 - 301)


def test_rotated_secret_accepts_either_v1():
    old = sign_payload("old", BODY, 1_700_000_000).split(",")[1]
    new = sign_payload("new", BODY, 1_700_000_000)
    verify_signature("old", BODY, f"{new},{old}", now=1_700_000_000)


def test_callback_token_is_per_cart_and_secret():
    token = callback_token("k", "cart-1")
    assert check_callback_token("k", "cart-1", token)
    assert not check_callback_token("k", "cart-2", token)
    assert not check_callback_token("other", "cart-1", token)
    assert not check_callback_token("k", "cart-1", None)
    assert not check_callback_token("k", None, token)


@pytest.mark.parametrize(
    "header",
    [
        "t=1700000000,v1=é",
        "t=1700000000,v1=\ud800",
        "t=²,v1=00",
        "t=\u0661\u0667" + "\u0660" * 8 + ",v1=00",
    ],
)
def test_non_ascii_signatures_are_refused_not_crashed_on(header):
    # Found by schemathesis (tests/integration/test_openapi_conformance.py): compare_digest
    # raised TypeError on non-ASCII text, and int() ValueError on "²", so the web said 500.
    with pytest.raises(InvalidSignature):
        verify_signature("s", BODY, header, now=1_700_000_000)


@pytest.mark.parametrize("token", ["é", "\ud800", "0" * 63 + "é"])
def test_a_non_ascii_callback_token_is_wrong_not_an_error(token):
    assert not check_callback_token("k", "cart-1", token)
