"""Kustom's callbacks: /kustom/validate and the address, country and shipping-option updates.

The commerce backend is faked with `responses`, or with a real slow server where timing is
the point; Redis is fakeredis. Our answers are checked against the callbacks OpenAPI
description (shipping_service_response, shipping_service_error_response).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kustom_app.validation as validation
from kustom_app.callbacks import UnknownShippingOption, select_shipping_option
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import dump_render, load_render
from kustom_app.settings import ConfigurationError, Settings
from kustom_app.signing import callback_token, verify_signature
from kustom_app.sync import ingest_render
from kustom_app.validation import TRY_AGAIN_TEXT
from playground.server import ServerThread
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET, FIXTURES, make_render
from tests.openapi_schema import validate_against
from tests.webhooks.nested_json import HUGE_NESTED_BODIES, NESTED_BODIES
from tests.webhooks.openapi_bodies import bodies
from webhooks.kustom_callbacks import UNREADABLE_TEXT

COMMERCE = "https://commerce.test"
CALLBACKS_SPEC = "kustom-checkout-callbacks.yml"
CHECKOUT_URL = "https://shop.test/checkout"
CALLBACKS = ("validate", "address-update", "country-change", "shipping-option-update")

SHIPPING_ADDRESS = {
    "given_name": "Testperson-se",
    "family_name": "Approved",
    "email": "youremail@email.com",
    "street_address": "Stårgatan 1",
    "postal_code": "12345",
    "city": "Ankeborg",
    "phone": "+46765260000",
    "country": "SE",
}
BILLING_ADDRESS = {**SHIPPING_ADDRESS, "street_address": "Faktureringsvägen 2"}


# -- helpers --------------------------------------------------------------------------------


def query(cart_id: str = "cart-1", token: str | None = None) -> str:
    token = callback_token(CALLBACK_SECRET, cart_id) if token is None else token
    return f"cart={cart_id}&token={token}"


def payload_of(render: dict[str, Any]) -> dict[str, Any]:
    return build_order_payload(load_render(copy.deepcopy(render)))


def kustom_order(render: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Kustom's order as the validation callback posts it, for the payload of ``render``."""
    order = {
        **payload_of(render),
        "order_id": "o-1",
        "status": "checkout_incomplete",
        "billing_address": BILLING_ADDRESS,
        "shipping_address": SHIPPING_ADDRESS,
        "merchant_urls": {
            "terms": "https://shop.test/terms",
            "checkout": CHECKOUT_URL,
            "confirmation": "https://shop.test/confirmation",
            "push": "https://shop-kustom.test/kustom/push",
        },
    }
    order.update(changes)
    return order


def update_request(render: dict[str, Any], option_id: str = "postnord") -> dict[str, Any]:
    """Kustom's shipping_service_request body, as Kustom's order currently stands."""
    payload = payload_of(render)
    option = next(o for o in payload["shipping_options"] if o["id"] == option_id)
    return {
        "order_amount": payload["order_amount"],
        "order_tax_amount": payload["order_tax_amount"],
        "order_lines": payload["order_lines"],
        "purchase_currency": payload["purchase_currency"],
        "billing_address": BILLING_ADDRESS,
        "shipping_address": SHIPPING_ADDRESS,
        "selected_shipping_option": option,
        "merchant_reference1": render["cartId"],
        "locale": payload["locale"],
    }


def post(client: Any, callback: str, body: Any, cart_id: str = "cart-1", token: str | None = None):
    return client.post(f"/kustom/{callback}?{query(cart_id, token)}", json=body)


def status(client: Any, cart_id: str = "cart-1") -> dict[str, Any]:
    return client.get(f"/carts/{cart_id}/kustom/status").get_json()


def snapshot(redis: Any) -> dict[bytes, Any]:
    return {
        key: redis.hgetall(key) if redis.type(key) == b"hash" else redis.type(key)
        for key in redis.scan_iter()
    }


def assert_valid_answer(body: dict[str, Any]) -> None:
    validate_against("shipping_service_response", body, spec=CALLBACKS_SPEC, direction="response")


def assert_valid_refusal(response: Any, code: str) -> dict[str, Any]:
    assert response.status_code == 400
    body = response.get_json()
    validate_against(
        "shipping_service_error_response", body, spec=CALLBACKS_SPEC, direction="response"
    )
    assert body["error_type"] == code and body["error_text"]
    return body


def make_app(settings: Settings, fake_redis: Any, task_queue: Any, **changes: Any) -> Flask:
    from webhooks.app import create_app

    return create_app(
        {
            "SETTINGS": replace(settings, **changes),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
            "TESTING": True,
        }
    )


def store_of(app: Flask) -> Any:
    return app.extensions["kustom"].store


def with_order(app: Flask, render: dict[str, Any]) -> None:
    """Record ``render`` and a Kustom order created from it (so later renders need a sync)."""
    store = store_of(app)
    _, prepared = ingest_render(store, load_render(copy.deepcopy(render)))
    store.record_order(render["cartId"], "o-1", prepared.hash, prepared.payload or {})


@pytest.fixture
def commerce_app(settings, fake_redis, task_queue) -> Flask:
    return make_app(settings, fake_redis, task_queue, commerce_api_url=COMMERCE)


@pytest.fixture
def commerce_client(commerce_app: Flask):
    return commerce_app.test_client()


@pytest.fixture
def backend():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def rule_app(settings, fake_redis, task_queue, *rules: str, **changes: Any) -> Any:
    return make_app(settings, fake_redis, task_queue, validation_rules=rules, **changes)


# Rules used by name through KUSTOM_VALIDATION_RULES in these tests.


def raising_rule(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    raise RuntimeError("inventory service exploded")


def big_spender_rule(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    if hook_input["orderTotal"] > 1000:
        return [
            {
                "effect": "validationError",
                "code": "approval_failed",
                "message": "Orders above 1000 need a phone call.",
            }
        ]
    return []


def bad_code_rule(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"effect": "validationError", "code": "out_of_stock", "message": "Sold out"}]


SLOW_RULE_RELEASE = threading.Event()


def slow_rule(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    SLOW_RULE_RELEASE.wait(5)
    return []


def seen_rule(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    SEEN.append(hook_input)
    return []


SEEN: list[dict[str, Any]] = []


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("callback", CALLBACKS)
@pytest.mark.parametrize(
    "url_query",
    [
        "",
        "cart=cart-1",
        "token=" + callback_token(CALLBACK_SECRET, "cart-1"),
        "cart=cart-1&token=" + "0" * 64,
        "cart=cart-1&token=" + callback_token(CALLBACK_SECRET, "cart-2"),
        "cart=cart-1&token=" + callback_token("another-secret", "cart-1"),
        "cart=cart-2&token=" + callback_token(CALLBACK_SECRET, "cart-1"),
    ],
    ids=["none", "no-token", "no-cart", "wrong", "other-cart", "other-secret", "swapped"],
)
def test_a_missing_or_tampered_token_is_401_and_nothing_happens(
    commerce_app, commerce_client, fake_redis, backend, task_queue, callback, url_query
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    before = snapshot(fake_redis)
    response = commerce_client.post(
        f"/kustom/{callback}?{url_query}", json=update_request(render, "express")
    )
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"]["code"] == "invalid_token"  # our error shape
    validate_against(  # and Kustom's
        "shipping_service_error_response", body, spec=CALLBACKS_SPEC, direction="response"
    )
    assert body["error_type"] == "approval_failed"
    assert snapshot(fake_redis) == before
    assert not backend.calls  # the commerce backend never heard of it
    assert not task_queue.syncs


@pytest.mark.parametrize("callback", CALLBACKS)
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        *NESTED_BODIES.values(),
        *HUGE_NESTED_BODIES.values(),
    ],
    ids=["empty", "broken", "array", "string", *NESTED_BODIES, *HUGE_NESTED_BODIES],
)
def test_bad_json_is_400_in_kustoms_shape(
    client, post_render, fake_redis, task_queue, caplog, callback, raw
):
    # Kustom reads these answers: a body it sent that we cannot read is still a refusal
    # it shows the shopper (approval_failed), never our {"error": ...} shape or a 5xx.
    post_render(make_render("cart-1", 1))
    before = snapshot(fake_redis)
    response = client.post(
        f"/kustom/{callback}?{query()}", data=raw, headers={"Content-Type": "application/json"}
    )
    body = assert_valid_refusal(response, "approval_failed")
    assert body == {"error_type": "approval_failed", "error_text": UNREADABLE_TEXT}
    assert snapshot(fake_redis) == before
    assert not task_queue.syncs
    assert "kustom.callback.unreadable" in caplog.text and "code=invalid_json" in caplog.text


@pytest.mark.parametrize("raw", [b"{not json", HUGE_NESTED_BODIES["arrays-50000"]])
def test_303_mode_refuses_an_unreadable_body_with_400(redirect_client, raw):
    # No order, so no checkout URL to send the shopper to: the 400 keeps them in place.
    response = redirect_client.post(
        f"/kustom/validate?{query()}", data=raw, headers={"Content-Type": "application/json"}
    )
    assert assert_valid_refusal(response, "approval_failed")["error_text"] == UNREADABLE_TEXT


@pytest.mark.parametrize(
    ("callback", "body"),
    [
        ("validate", kustom_order(make_render("cart-1", 1), order_amount="54900")),
        ("validate", kustom_order(make_render("cart-1", 1), order_lines=[{"quantity": "2"}])),
        ("address-update", {**update_request(make_render("cart-1", 1)), "order_amount": -1}),
        ("country-change", {**update_request(make_render("cart-1", 1)), "shipping_address": 7}),
        (
            "shipping-option-update",
            {**update_request(make_render("cart-1", 1)), "selected_shipping_option": {}},
        ),
    ],
    ids=["amount-text", "line-quantity", "negative-amount", "address-number", "option-no-id"],
)
def test_a_body_off_kustoms_schema_is_400_in_kustoms_shape(
    client, post_render, fake_redis, caplog, callback, body
):
    post_render(make_render("cart-1", 1))
    before = snapshot(fake_redis)
    response = post(client, callback, body)
    assert assert_valid_refusal(response, "approval_failed")["error_text"] == UNREADABLE_TEXT
    assert "code=validation_error" in caplog.text
    assert snapshot(fake_redis) == before


class BrokenStore:
    def __getattr__(self, name: str) -> Any:
        import redis

        raise redis.ConnectionError("Redis is away")


@pytest.mark.parametrize("callback", CALLBACKS)
def test_redis_or_a_bug_failing_a_callback_is_400_in_kustoms_shape(
    app, client, post_render, caplog, callback
):
    # A 5xx on validation lets Kustom take the payment unchecked; on an update, Kustom
    # would go on with amounts nobody confirmed. Both fail closed, as a refusal.
    render = make_render("cart-1", 1)
    post_render(render)
    app.extensions["kustom"].__dict__["store"] = BrokenStore()
    body = kustom_order(render) if callback == "validate" else update_request(render, "express")
    response = post(client, callback, body)
    assert assert_valid_refusal(response, "approval_failed")["error_text"] == TRY_AGAIN_TEXT


def test_kustoms_bodies_in_these_tests_match_its_spec():
    render = make_render("cart-1", 1)
    validate_against("order", kustom_order(render), spec=CALLBACKS_SPEC, direction="response")
    validate_against(
        "shipping_service_request",
        update_request(render),
        spec=CALLBACKS_SPEC,
        direction="response",
    )


# -- validation: approve and reject --------------------------------------------------------


def test_an_order_equal_to_the_cart_is_approved(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    response = post(client, "validate", kustom_order(render))
    assert response.status_code == 200
    assert response.get_json() == {}


def test_unknown_fields_in_kustoms_body_are_allowed(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    order = kustom_order(
        render, brand_new_field={"x": 1}, gui={"options": ["minimal_confirmation"]}
    )
    order["order_lines"][0]["product_identifiers"] = {"brand": "Acme"}
    assert post(client, "validate", order).status_code == 200


def test_an_unknown_cart_is_rejected(client):
    response = post(client, "validate", kustom_order(make_render("cart-9", 1)), cart_id="cart-9")
    assert assert_valid_refusal(response, "approval_failed")


def test_kustoms_amount_differing_from_the_render_is_rejected(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    order = kustom_order(render)
    order["order_amount"] -= 4900
    order["order_lines"] = order["order_lines"][:1]  # shipping line gone
    response = post(client, "validate", order)
    body = assert_valid_refusal(response, "approval_failed")
    assert "changed" in body["error_text"]


def test_kustoms_order_from_an_older_render_is_rejected(client, post_render):
    post_render(make_render("cart-1", 1))
    post_render(make_render("cart-1", 2, quantity=3))  # no Kustom order yet: no sync
    response = post(client, "validate", kustom_order(make_render("cart-1", 1)))
    assert_valid_refusal(response, "approval_failed")


def test_a_sync_in_flight_is_rejected_then_approved_once_synced(app, client, post_render):
    first, second = make_render("cart-1", 1), make_render("cart-1", 2, quantity=3)
    with_order(app, first)
    post_render(second)
    assert status(client)["syncing"] is True
    # Kustom's order still the old one, or already the new one: refused while syncing.
    for render in (first, second):
        assert_valid_refusal(post(client, "validate", kustom_order(render)), "approval_failed")
    # The sync lands (what the sync job records after pushing the new payload).
    store = store_of(app)
    step = store.begin_sync("cart-1", "job-1")
    assert step.action == "push"
    store.finish_sync("cart-1", "job-1", step.hash or "", "o-1")
    assert status(client)["syncing"] is False
    assert post(client, "validate", kustom_order(second)).status_code == 200


def test_another_carts_order_is_rejected(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    order = kustom_order(render, merchant_reference1="cart-2")
    assert_valid_refusal(post(client, "validate", order), "approval_failed")


def test_another_currency_is_rejected(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    order = kustom_order(render, purchase_currency="NOK")
    assert_valid_refusal(post(client, "validate", order), "approval_failed")


def test_a_cart_that_cannot_be_paid_is_rejected(client, post_render):
    render = make_render("cart-1", 1)
    order = kustom_order(render)
    render["cartTotal"] = "550.00"
    post_render(render)
    assert_valid_refusal(post(client, "validate", order), "approval_failed")


def test_a_completed_cart_is_rejected(client, post_render, fake_redis):
    render = make_render("cart-1", 1)
    post_render(render)
    fake_redis.hset("kustom:cart:cart-1", "state", "completed")
    assert_valid_refusal(post(client, "validate", kustom_order(render)), "approval_failed")


# -- validation: merchant rules -------------------------------------------------------------


def test_rules_see_the_reference_hook_input(settings, fake_redis, task_queue):
    app = rule_app(settings, fake_redis, task_queue, f"{__name__}:seen_rule")
    client = app.test_client()
    render = make_render("cart-1", 1)
    ingest_render(store_of(app), load_render(render))
    SEEN.clear()
    assert post(client, "validate", kustom_order(render)).status_code == 200
    expected = validation.build_hook_input(load_render(render))
    assert [expected] == SEEN
    assert SEEN[0]["hook"] == "OnKustomValidation"


def test_a_rules_validation_error_is_forwarded(settings, fake_redis, task_queue):
    app = rule_app(settings, fake_redis, task_queue, f"{__name__}:big_spender_rule")
    client = app.test_client()
    small, big = make_render("cart-1", 1), make_render("cart-2", 1, quantity=5)
    for render in (small, big):
        ingest_render(store_of(app), load_render(render))
    assert post(client, "validate", kustom_order(small)).status_code == 200
    response = post(client, "validate", kustom_order(big), cart_id="cart-2")
    body = assert_valid_refusal(response, "approval_failed")
    assert body["error_text"] == "Orders above 1000 need a phone call."


def test_the_reference_examples_switched_on_by_name(settings, fake_redis, task_queue, monkeypatch):
    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "100")
    monkeypatch.setenv("KUSTOM_ALLOWED_CHANNELS", "retail-se,retail-no")
    app = rule_app(
        settings,
        fake_redis,
        task_queue,
        "kustom_app.rules:stock_available",
        "kustom_app.rules:minimum_order_total",
        "kustom_app.rules:allowed_channels",
    )
    client = app.test_client()
    render = make_render("cart-1", 1)
    ingest_render(store_of(app), load_render(render))
    assert post(client, "validate", kustom_order(render)).status_code == 200

    short = make_render("cart-2", 1, quantity=3)
    short["lines"][0]["reservedQuantity"] = 1
    ingest_render(store_of(app), load_render(short))
    body = assert_valid_refusal(
        post(client, "validate", kustom_order(short), cart_id="cart-2"), "approval_failed"
    )
    assert body["error_text"] == "The following items are no longer available: TSHIRT-RED-M"

    elsewhere = make_render("cart-3", 1)
    elsewhere["channelKey"] = "retail-dk"
    ingest_render(store_of(app), load_render(elsewhere))
    body = assert_valid_refusal(
        post(client, "validate", kustom_order(elsewhere), cart_id="cart-3"),
        "unsupported_shipping_address",
    )
    assert body["error_text"] == "We don't ship to this destination yet."

    monkeypatch.setenv("KUSTOM_MIN_ORDER_TOTAL", "1000")
    body = assert_valid_refusal(post(client, "validate", kustom_order(render)), "approval_failed")
    assert body["error_text"] == "Minimum order total is 1000 SEK."


def test_a_rule_that_raises_rejects_approval_failed(settings, fake_redis, task_queue, caplog):
    app = rule_app(settings, fake_redis, task_queue, f"{__name__}:raising_rule")
    render = make_render("cart-1", 1)
    ingest_render(store_of(app), load_render(render))
    with caplog.at_level(logging.INFO):
        response = post(app.test_client(), "validate", kustom_order(render))
    body = assert_valid_refusal(response, "approval_failed")
    assert "exploded" not in body["error_text"]
    assert f"rule_failed rule={__name__}:raising_rule error=RuntimeError" in caplog.text


def test_a_slow_rule_rejects_within_budget(settings, fake_redis, task_queue):
    app = rule_app(settings, fake_redis, task_queue, f"{__name__}:slow_rule")
    render = make_render("cart-1", 1)
    ingest_render(store_of(app), load_render(render))
    SLOW_RULE_RELEASE.clear()
    started = time.monotonic()
    try:
        response = post(app.test_client(), "validate", kustom_order(render))
    finally:
        SLOW_RULE_RELEASE.set()
    elapsed = time.monotonic() - started
    assert_valid_refusal(response, "approval_failed")
    assert validation.RULE_BUDGET <= elapsed < validation.RULE_BUDGET + 0.5


def test_a_rule_code_kustom_does_not_know_is_sent_as_approval_failed(
    settings, fake_redis, task_queue, caplog
):
    app = rule_app(settings, fake_redis, task_queue, f"{__name__}:bad_code_rule")
    render = make_render("cart-1", 1)
    ingest_render(store_of(app), load_render(render))
    with caplog.at_level(logging.ERROR):
        response = post(app.test_client(), "validate", kustom_order(render))
    assert assert_valid_refusal(response, "approval_failed")["error_text"] == "Sold out"
    assert f"rule_bug rule={__name__}:bad_code_rule" in caplog.text


def test_a_bad_rule_spec_stops_the_app_at_start(settings, fake_redis, task_queue):
    with pytest.raises(ConfigurationError, match="no_such_rule"):
        rule_app(settings, fake_redis, task_queue, f"{__name__}:no_such_rule")
    with pytest.raises(ConfigurationError, match="module:function"):
        rule_app(settings, fake_redis, task_queue, "just_a_module")


def test_rules_from_the_entry_point_group_run(settings, fake_redis, task_queue, monkeypatch):
    import importlib.metadata

    found = [
        importlib.metadata.EntryPoint(
            "shop-big-spender", f"{__name__}:big_spender_rule", validation.ENTRY_POINT_GROUP
        )
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: found)
    validation.process_rules.cache_clear()
    try:
        app = make_app(settings, fake_redis, task_queue)
    finally:
        validation.process_rules.cache_clear()
    big = make_render("cart-1", 1, quantity=5)
    ingest_render(store_of(app), load_render(big))
    body = assert_valid_refusal(
        post(app.test_client(), "validate", kustom_order(big)), "approval_failed"
    )
    assert body["error_text"] == "Orders above 1000 need a phone call."


# -- validation: the two settings, as an operator sets them --------------------------------


def test_rules_and_303_mode_are_taken_from_the_environment(fake_redis, task_queue):
    from webhooks.app import create_app

    env = {
        "REDIS_URL": "redis://unused:6379/0",
        "KUSTOM_USERNAME": "merchant",
        "KUSTOM_PASSWORD": "secret-password",
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "KUSTOM_VALIDATION_REJECT": "303",
        "KUSTOM_VALIDATION_RULES": (
            " tests.webhooks.test_kustom_callbacks:big_spender_rule ,"
            "kustom_app.rules:stock_available,"
        ),
    }
    settings = Settings.from_env(env)
    assert settings.validation_reject == 303
    assert settings.validation_rules == (
        "tests.webhooks.test_kustom_callbacks:big_spender_rule",
        "kustom_app.rules:stock_available",
    )
    app = create_app(
        {"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": task_queue, "TESTING": True}
    )
    client = app.test_client()
    small, big = make_render("cart-1", 1), make_render("cart-2", 1, quantity=5)
    for render in (small, big):
        ingest_render(store_of(app), load_render(render))
    assert post(client, "validate", kustom_order(small)).status_code == 200
    response = post(client, "validate", kustom_order(big), cart_id="cart-2")  # 1299.00
    assert response.status_code == 303
    assert response.headers["Location"].endswith("kustom_error=approval_failed")


@pytest.mark.parametrize("value", ["500", "302", "200", "abc", "303.0"])
def test_a_validation_reject_mode_other_than_400_or_303_refuses_to_start(value):
    env = {"REDIS_URL": "redis://unused:6379/0", "KUSTOM_VALIDATION_REJECT": value}
    with pytest.raises(ConfigurationError, match="KUSTOM_VALIDATION_REJECT"):
        Settings.from_env(env)


def test_an_unknown_rule_name_refuses_to_start(fake_redis, task_queue):
    from webhooks.app import create_app

    env = {
        "REDIS_URL": "redis://unused:6379/0",
        "KUSTOM_VALIDATION_RULES": "kustom_app.rules:no_such_rule",
    }
    settings = Settings.from_env(env)
    with pytest.raises(ConfigurationError, match="no_such_rule"):
        create_app({"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": task_queue})


# -- validation: 303 mode -------------------------------------------------------------------


@pytest.fixture
def redirect_client(settings, fake_redis, task_queue):
    return make_app(settings, fake_redis, task_queue, validation_reject=303).test_client()


@pytest.mark.parametrize(
    ("checkout", "location"),
    [
        (CHECKOUT_URL, CHECKOUT_URL + "?kustom_error=approval_failed"),
        (
            "https://shop.test/checkout?step=pay&lang=sv#kassa",
            "https://shop.test/checkout?step=pay&lang=sv&kustom_error=approval_failed#kassa",
        ),
        (
            "https://shop.test/checkout?kustom_error=address_error&cart={checkout.order.id}",
            # Braces are not URI characters: the Location header carries them escaped.
            "https://shop.test/checkout?cart=%7Bcheckout.order.id%7D&kustom_error=approval_failed",
        ),
        ("https://shop.test/checkout?", "https://shop.test/checkout?kustom_error=approval_failed"),
    ],
)
def test_303_mode_redirects_to_the_checkout_with_the_code(
    redirect_client, post_render, checkout, location
):
    render = make_render("cart-1", 1)
    post_render(render)
    order = kustom_order(render, order_amount=1)
    order["merchant_urls"]["checkout"] = checkout
    response = post(redirect_client, "validate", order)
    assert response.status_code == 303
    assert response.headers["Location"] == location


def test_303_mode_still_approves_with_200(redirect_client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    assert post(redirect_client, "validate", kustom_order(render)).status_code == 200


def test_303_mode_without_a_checkout_url_falls_back_to_400(redirect_client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    for urls in (
        None,
        {"checkout": "javascript:alert(1)"},
        {"checkout": "https://[::1/checkout"},
        {"terms": "https://shop.test/t"},
    ):
        order = kustom_order(render, order_amount=1, merchant_urls=urls)
        assert_valid_refusal(post(redirect_client, "validate", order), "approval_failed")


def test_303_mode_rejects_an_unknown_cart_by_redirect(redirect_client):
    response = post(
        redirect_client, "validate", kustom_order(make_render("cart-9", 1)), cart_id="cart-9"
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("?kustom_error=approval_failed")


# -- validation: with a commerce backend ----------------------------------------------------


def test_validation_fetches_the_cart_from_the_backend_signed(
    commerce_app, commerce_client, backend
):
    render = make_render("cart-1", 1)
    ingest_render(store_of(commerce_app), load_render(render))
    backend.get(f"{COMMERCE}/carts/cart-1", json=render)
    assert post(commerce_client, "validate", kustom_order(render)).status_code == 200
    fetch = backend.calls[0].request
    verify_signature(COMMERCE_SECRET, fetch.body or b"", fetch.headers["X-Kustom-App-Signature"])


def test_a_newer_render_at_the_backend_is_stored_synced_and_rejects(
    commerce_app, commerce_client, backend, task_queue
):
    first, second = make_render("cart-1", 1), make_render("cart-1", 2, quantity=3)
    with_order(commerce_app, first)
    backend.get(f"{COMMERCE}/carts/cart-1", json=second)
    response = post(commerce_client, "validate", kustom_order(first))
    assert_valid_refusal(response, "approval_failed")
    new_hash = payload_hash(payload_of(second))
    assert status(commerce_client)["pendingHash"] == new_hash
    assert task_queue.syncs == []  # queued once the answer is out (after the response)
    response.close()
    assert [(cart, h) for cart, h, _ in task_queue.syncs] == [("cart-1", new_hash)]


def test_a_newer_renders_sync_is_queued_by_the_render_script_when_it_can(
    settings, fake_redis, backend
):
    """With the broker in the state Redis, the job is queued by the same atomic call that
    stores the render: nothing is left to queue once Kustom has its answer."""
    from tests.conftest import RecordingQueue

    queue = RecordingQueue(script_queue="kustom.sync")
    app = make_app(settings, fake_redis, queue, commerce_api_url=COMMERCE)
    first, second = make_render("cart-1", 1), make_render("cart-1", 2, quantity=3)
    with_order(app, first)
    backend.get(f"{COMMERCE}/carts/cart-1", json=second)
    assert_valid_refusal(
        post(app.test_client(), "validate", kustom_order(first)), "approval_failed"
    )
    assert queue.syncs == []
    (message,) = [json.loads(m) for m in fake_redis.lrange("kustom.sync", 0, -1)]
    assert (message["cart"], message["hash"]) == ("cart-1", payload_hash(payload_of(second)))


class BrokenBroker:
    """A separate broker that is down: publishing fails after a while."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.attempts = 0

    def sync_job(self, cart_id: str, payload_hash: str) -> None:
        return None

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        self.attempts += 1
        time.sleep(self.delay)
        raise ConnectionError("broker down")


def test_a_broker_that_is_down_neither_changes_nor_delays_kustoms_answer(
    settings, fake_redis, backend, caplog
):
    broker = BrokenBroker(delay=1.0)
    app = make_app(settings, fake_redis, broker, commerce_api_url=COMMERCE)
    first, second = make_render("cart-1", 1), make_render("cart-1", 2, quantity=3)
    with_order(app, first)
    backend.get(f"{COMMERCE}/carts/cart-1", json=second)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="webhooks.kustom_callbacks"):
        response = app.test_client().post(
            f"/kustom/validate?{query()}", json=kustom_order(first), buffered=False
        )
        answered = time.monotonic() - started
        assert_valid_refusal(response, "approval_failed")  # a sync in flight: not yet
        response.close()  # the server is done with the request: now the job is queued
    assert answered < 0.5 and broker.attempts == 1
    assert "kustom.validation.sync_not_queued cart=cart-1" in caplog.text
    # The cart is left on the syncing index, so the sweeper queues the job later.
    assert fake_redis.zscore(store_of(app).syncing_key, "cart-1") is not None


def test_an_older_render_at_the_backend_does_not_replace_the_stored_one(
    commerce_app, commerce_client, backend
):
    newer = make_render("cart-1", 5)
    ingest_render(store_of(commerce_app), load_render(newer))
    backend.get(f"{COMMERCE}/carts/cart-1", json=make_render("cart-1", 4, quantity=9))
    assert post(commerce_client, "validate", kustom_order(newer)).status_code == 200
    assert status(commerce_client)["pendingHash"] == payload_hash(payload_of(newer))


def test_a_cart_the_backend_no_longer_knows_is_rejected(commerce_app, commerce_client, backend):
    render = make_render("cart-1", 1)
    ingest_render(store_of(commerce_app), load_render(render))
    backend.get(f"{COMMERCE}/carts/cart-1", status=404, json={"error": {"code": "not_found"}})
    assert_valid_refusal(post(commerce_client, "validate", kustom_order(render)), "approval_failed")


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "json": {"error": "down"}},
        {"status": 429, "json": {}},
        {"status": 400, "json": {"error": {"code": "bad"}}},
        {"status": 200, "json": {"cartId": "cart-1", "version": "x"}},
        {"status": 200, "json": make_render("cart-2", 9)},
        {"status": 200, "body": "<html>"},
        {"body": requests.ConnectionError("refused")},
    ],
    ids=["503", "429", "400", "invalid", "other-cart", "html", "unreachable"],
)
def test_a_failing_backend_falls_back_to_the_stored_render(
    commerce_app, commerce_client, backend, answer
):
    render = make_render("cart-1", 1)
    ingest_render(store_of(commerce_app), load_render(render))
    backend.get(f"{COMMERCE}/carts/cart-1", **answer)
    assert post(commerce_client, "validate", kustom_order(render)).status_code == 200


class SlowBackend:
    """A commerce backend that takes ``delay`` seconds to answer each request."""

    def __init__(self, render: dict[str, Any], delay: float) -> None:
        self.render, self.delay = render, delay
        self.release = threading.Event()
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.requests += 1
        self.release.wait(self.delay)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(self.render).encode()]


def test_a_slow_backend_still_gets_an_answer_within_3s_from_the_stored_render(
    settings, fake_redis, task_queue, caplog
):
    render = make_render("cart-1", 1)
    slow = SlowBackend(make_render("cart-1", 2, quantity=7), delay=2.5)
    with ServerThread(slow) as server:
        app = make_app(settings, fake_redis, task_queue, commerce_api_url=server.url)
        ingest_render(store_of(app), load_render(render))
        started = time.monotonic()
        try:
            with caplog.at_level(logging.INFO):
                response = post(app.test_client(), "validate", kustom_order(render))
            elapsed = time.monotonic() - started
        finally:
            slow.release.set()
    assert response.status_code == 200  # decided on the stored render (v1)
    assert slow.requests == 1
    assert elapsed < 2.0  # the backend got its 1.5 s, the answer is well inside Kustom's 3 s
    assert "commerce_slow cart=cart-1" in caplog.text
    assert "source=stored" in caplog.text


@pytest.mark.parametrize("callback", CALLBACKS[1:])
def test_an_update_callback_with_a_slow_backend_is_refused_within_3s_changing_nothing(
    settings, fake_redis, task_queue, caplog, callback
):
    render = make_render("cart-1", 1)
    slow = SlowBackend(make_render("cart-1", 2, quantity=7), delay=10)
    with ServerThread(slow) as server:
        app = make_app(settings, fake_redis, task_queue, commerce_api_url=server.url)
        with_order(app, render)
        before = snapshot(fake_redis)
        started = time.monotonic()
        try:
            with caplog.at_level(logging.WARNING):
                response = post(app.test_client(), callback, update_request(render, "express"))
            elapsed = time.monotonic() - started
        finally:
            slow.release.set()
    assert_valid_refusal(response, "approval_failed")
    assert slow.requests == 1
    assert elapsed < 3.0  # Kustom's budget, with the backend still not answering
    assert "kustom.callback.backend_slow" in caplog.text
    assert snapshot(fake_redis) == before


def test_the_answer_comes_by_the_deadline_whatever_hangs(app, client, post_render, monkeypatch):
    render = make_render("cart-1", 1)
    post_render(render)
    release = threading.Event()
    store = store_of(app)
    monkeypatch.setattr(store, "load", lambda cart_id: release.wait(10))
    started = time.monotonic()
    try:
        response = post(client, "validate", kustom_order(render))
    finally:
        release.set()
    elapsed = time.monotonic() - started
    assert_valid_refusal(response, "approval_failed")
    assert validation.ANSWER_DEADLINE <= elapsed < 3.0


# -- update callbacks without a commerce backend --------------------------------------------


@pytest.mark.parametrize("callback", ["address-update", "country-change"])
def test_address_and_country_answer_the_current_amounts_without_a_backend(
    client, post_render, callback
):
    render = make_render("cart-1", 1)
    post_render(render)
    response = post(client, callback, update_request(render))
    assert response.status_code == 200
    body = response.get_json()
    assert_valid_answer(body)
    payload = payload_of(render)
    assert body == {
        "order_amount": 54900,
        "order_tax_amount": 10980,
        "order_lines": payload["order_lines"],
        "shipping_options": payload["shipping_options"],
        "purchase_currency": "SEK",
    }
    current = status(client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload)


@pytest.mark.parametrize("callback", ["address-update", "country-change", "shipping-option-update"])
def test_an_update_callback_settles_a_sync_in_flight(app, client, post_render, callback):
    first, second = make_render("cart-1", 1), make_render("cart-1", 2, quantity=3)
    with_order(app, first)
    post_render(second)
    assert status(client)["syncing"] is True
    response = post(client, callback, update_request(first))
    assert response.status_code == 200
    current = status(client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(second))
    assert current["syncing"] is False


def test_shipping_option_is_chosen_from_the_render_without_a_backend(app, client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    response = post(client, "shipping-option-update", update_request(render, "express"))
    assert response.status_code == 200
    body = response.get_json()
    assert_valid_answer(body)
    assert (body["order_amount"], body["order_tax_amount"]) == (59900, 11980)
    shipping = body["order_lines"][-1]
    assert (shipping["type"], shipping["reference"], shipping["total_amount"]) == (
        "shipping_fee",
        "express",
        9900,
    )
    assert [(o["id"], o["preselected"]) for o in body["shipping_options"]] == [
        ("postnord", False),
        ("express", True),
    ]
    state = store_of(app).load("cart-1")
    assert state.version == 2
    assert state.render["shipping"]["id"] == "express"
    assert state.render["cartTotal"] == "599.00"
    current = status(client)
    expected = {k: v for k, v in body.items()}
    answered_payload = build_order_payload(load_render(state.render))
    assert {k: answered_payload[k] for k in expected} == expected
    assert current["pendingHash"] == current["syncHash"] == payload_hash(answered_payload)

    # Kustom now holds the answered order: the validation callback approves it.
    order = kustom_order(render, **{k: answered_payload[k] for k in expected})
    assert post(client, "validate", order).status_code == 200


def test_choosing_the_selected_option_again_changes_nothing(app, client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    response = post(client, "shipping-option-update", update_request(render, "postnord"))
    assert response.status_code == 200
    assert response.get_json()["order_amount"] == 54900
    assert store_of(app).load("cart-1").version == 1


def test_an_unknown_shipping_option_is_refused(client, post_render, fake_redis):
    render = make_render("cart-1", 1)
    post_render(render)
    body = update_request(render)
    body["selected_shipping_option"] = {**body["selected_shipping_option"], "id": "teleport"}
    before = snapshot(fake_redis)
    response = post(client, "shipping-option-update", body)
    text = assert_valid_refusal(response, "approval_failed")["error_text"]
    assert text == "The selected shipping option is not available."
    assert snapshot(fake_redis) == before


def test_a_shipping_option_update_without_an_option_is_400(client, post_render):
    render = make_render("cart-1", 1)
    post_render(render)
    body = update_request(render)
    del body["selected_shipping_option"]
    response = post(client, "shipping-option-update", body)
    # Optional in Kustom's schema: a choice we cannot apply, not a malformed body.
    text = assert_valid_refusal(response, "approval_failed")["error_text"]
    assert text == "The selected shipping option is not available."


@pytest.mark.parametrize("option_id", ["", "x" * 300], ids=["empty", "300-chars"])
def test_an_option_id_of_any_length_is_read_and_refused_as_not_offered(
    client, post_render, fake_redis, option_id
):
    render = make_render("cart-1", 1)
    post_render(render)
    body = update_request(render)
    body["selected_shipping_option"] = {**body["selected_shipping_option"], "id": option_id}
    before = snapshot(fake_redis)
    response = post(client, "shipping-option-update", body)
    text = assert_valid_refusal(response, "approval_failed")["error_text"]
    assert text == "The selected shipping option is not available."
    assert snapshot(fake_redis) == before


@pytest.mark.parametrize("callback", ["address-update", "country-change", "shipping-option-update"])
def test_update_callbacks_for_an_unknown_cart_are_refused(client, callback):
    response = post(client, callback, update_request(make_render("cart-9", 1)), cart_id="cart-9")
    assert_valid_refusal(response, "approval_failed")


@pytest.mark.parametrize("callback", ["address-update", "country-change", "shipping-option-update"])
def test_update_callbacks_for_a_completed_cart_are_refused(
    client, post_render, fake_redis, callback
):
    render = make_render("cart-1", 1)
    post_render(render)
    fake_redis.hset("kustom:cart:cart-1", "state", "completed")
    assert_valid_refusal(
        post(client, callback, update_request(render, "express")), "approval_failed"
    )


@pytest.mark.parametrize("callback", ["address-update", "shipping-option-update"])
def test_an_unpayable_render_is_refused(client, post_render, fake_redis, callback):
    render = make_render("cart-1", 1)
    render["cartTotal"] = "1.00"
    post_render(render)
    before = snapshot(fake_redis)
    response = post(client, callback, update_request(make_render("cart-1", 1), "express"))
    assert_valid_refusal(response, "approval_failed")
    assert snapshot(fake_redis) == before


def test_select_shipping_option_for_a_tax_excluded_cart():
    render = load_render(json.loads((FIXTURES / "renders" / "usd_tax_excluded.json").read_text()))
    selected = select_shipping_option(render, "ups-2day")
    assert selected["version"] == render["version"] + 1
    assert (str(selected["cartTotal"]), str(selected["cartTaxTotal"])) == ("119.69", "9.76")
    payload = build_order_payload(selected)
    assert payload["order_amount"] == 11969 and payload["order_tax_amount"] == 976
    assert payload["order_lines"][-1]["type"] == "sales_tax"
    assert render["shipping"]["id"] == "ups-ground"  # the original is untouched
    assert dump_render(load_render(dump_render(selected))) == dump_render(selected)


def test_select_shipping_option_without_a_previous_selection():
    raw = make_render("cart-1", 1)
    raw.pop("shipping")
    raw.update(cartTotal="500.00", cartTaxTotal="100.00")
    selected = select_shipping_option(load_render(raw), "express")
    payload = build_order_payload(selected)
    assert (payload["order_amount"], payload["order_tax_amount"]) == (59900, 11980)
    with pytest.raises(UnknownShippingOption):
        select_shipping_option(load_render(raw), "teleport")


# -- update callbacks with a commerce backend -----------------------------------------------


def test_address_update_goes_to_the_backend_and_answers_its_render(
    commerce_app, commerce_client, backend
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    # Shipping to the new address costs more: the backend selects express.
    repriced = copy.deepcopy(render)
    repriced["version"] = 2
    selected = load_render(repriced)
    repriced = dump_render(select_shipping_option(selected, "express"))
    repriced["version"] = 2
    backend.post(f"{COMMERCE}/carts/cart-1/address", json=repriced)
    response = post(commerce_client, "address-update", update_request(render))
    assert response.status_code == 200
    body = response.get_json()
    assert_valid_answer(body)
    assert body["order_amount"] == 59900

    sent = backend.calls[0].request
    verify_signature(COMMERCE_SECRET, sent.body, sent.headers["X-Kustom-App-Signature"])
    assert json.loads(sent.body) == {
        "shippingAddress": SHIPPING_ADDRESS,
        "billingAddress": BILLING_ADDRESS,
    }
    current = status(commerce_client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(repriced))
    assert store_of(commerce_app).load("cart-1").version == 2


def test_country_change_goes_to_the_backends_address_endpoint(
    commerce_app, commerce_client, backend
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    changed = make_render("cart-1", 2)
    backend.post(f"{COMMERCE}/carts/cart-1/address", json=changed)
    body = update_request(render)
    body["billing_address"] = {**BILLING_ADDRESS, "country": "NO"}
    del body["shipping_address"]
    response = post(commerce_client, "country-change", body)
    assert response.status_code == 200
    assert_valid_answer(response.get_json())
    assert json.loads(backend.calls[0].request.body) == {
        "shippingAddress": None,
        "billingAddress": {**BILLING_ADDRESS, "country": "NO"},
    }
    current = status(commerce_client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(changed))


def test_shipping_option_update_goes_to_the_backend(commerce_app, commerce_client, backend):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    chosen = dump_render(select_shipping_option(load_render(render), "express"))
    backend.post(f"{COMMERCE}/carts/cart-1/shipping-option", json=chosen)
    response = post(commerce_client, "shipping-option-update", update_request(render, "express"))
    assert response.status_code == 200
    body = response.get_json()
    assert_valid_answer(body)
    assert body["order_amount"] == 59900
    assert json.loads(backend.calls[0].request.body) == {"shippingOptionId": "express"}
    current = status(commerce_client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(chosen))


@pytest.mark.parametrize(
    ("code", "message", "text"),
    [
        (
            "unsupported_shipping_address",
            "We don't ship to Svalbard.",
            "We don't ship to Svalbard.",
        ),
        ("address_error", "Postal code must be 5 digits.", "Postal code must be 5 digits."),
        ("address_error", None, "Please check the address."),
    ],
)
def test_a_backend_422_becomes_kustoms_error(
    commerce_app, commerce_client, backend, fake_redis, code, message, text
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    error: dict[str, Any] = {"code": code}
    if message is not None:
        error["message"] = message
    backend.post(f"{COMMERCE}/carts/cart-1/address", status=422, json={"error": error})
    before = snapshot(fake_redis)
    response = post(commerce_client, "address-update", update_request(render))
    assert assert_valid_refusal(response, code)["error_text"] == text
    assert snapshot(fake_redis) == before


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "json": {}},
        {"status": 404, "json": {"error": {"code": "not_found"}}},
        {"status": 422, "json": {"error": {"code": "something_else", "message": "internal"}}},
        {"status": 200, "json": {"cartId": "cart-1"}},
        {"status": 200, "json": make_render("cart-2", 2)},
        {"body": requests.ConnectionError("refused")},
    ],
    ids=["503", "404", "422-other", "invalid", "other-cart", "unreachable"],
)
def test_any_other_backend_failure_refuses_approval_failed(
    commerce_app, commerce_client, backend, fake_redis, answer
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    backend.post(f"{COMMERCE}/carts/cart-1/shipping-option", **answer)
    before = snapshot(fake_redis)
    response = post(commerce_client, "shipping-option-update", update_request(render, "express"))
    body = assert_valid_refusal(response, "approval_failed")
    assert "internal" not in body["error_text"]
    assert snapshot(fake_redis) == before


def test_an_unpayable_render_from_the_backend_is_refused(
    commerce_app, commerce_client, backend, fake_redis
):
    render = make_render("cart-1", 1)
    with_order(commerce_app, render)
    broken = make_render("cart-1", 2)
    broken["cartTaxTotal"] = "1.00"
    backend.post(f"{COMMERCE}/carts/cart-1/address", json=broken)
    before = snapshot(fake_redis)
    assert_valid_refusal(
        post(commerce_client, "address-update", update_request(render)), "approval_failed"
    )
    assert snapshot(fake_redis) == before


def test_a_backend_render_older_than_the_stored_one_answers_the_newest(
    commerce_app, commerce_client, backend
):
    newest = make_render("cart-1", 5, quantity=3)
    with_order(commerce_app, make_render("cart-1", 4))
    ingest_render(store_of(commerce_app), load_render(newest))
    backend.post(f"{COMMERCE}/carts/cart-1/address", json=make_render("cart-1", 3))
    response = post(commerce_client, "address-update", update_request(newest))
    assert response.status_code == 200
    assert response.get_json()["order_amount"] == payload_of(newest)["order_amount"]
    current = status(commerce_client)
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(newest))


def test_update_callbacks_with_a_backend_work_for_a_cart_we_have_not_stored(
    commerce_client, backend
):
    render = make_render("cart-5", 1)
    backend.post(f"{COMMERCE}/carts/cart-5/address", json=render)
    response = post(commerce_client, "address-update", update_request(render), cart_id="cart-5")
    assert response.status_code == 200
    current = status(commerce_client, "cart-5")
    assert current["pendingHash"] == current["syncHash"] == payload_hash(payload_of(render))


# -- anything Kustom may send is read (property tests over its OpenAPI description) ---------

KUSTOM_ERROR_TYPES = {"address_error", "unsupported_shipping_address", "approval_failed"}


def assert_read_not_refused_as_malformed(response: Any, caplog: Any) -> None:
    """200, or a refusal for a reason of the cart (never "we could not read your body")."""
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        body = assert_valid_refusal(response, response.get_json().get("error_type"))
        assert body["error_type"] in KUSTOM_ERROR_TYPES
        assert body["error_text"] not in (UNREADABLE_TEXT, TRY_AGAIN_TEXT), body
    logged = caplog.text
    assert "kustom.callback.unreadable" not in logged and "kustom.callback.failed" not in logged
    assert "kustom.validation.failed" not in logged
    caplog.clear()


def with_option_id(body: dict[str, Any], option_id: str | None) -> dict[str, Any]:
    """``body`` choosing one of the cart's options (or keeping the generated one)."""
    if option_id is not None and isinstance(body.get("selected_shipping_option"), dict):
        body = {**body, "selected_shipping_option": {**body["selected_shipping_option"]}}
        body["selected_shipping_option"]["id"] = option_id
    return body


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def kustoms_bodies(
    schema_name: str, *specs: str
) -> st.SearchStrategy[tuple[dict[str, Any], str | None]]:
    """(body, the description it is valid under, or None): bodies as each description has
    them, and the same with optional fields null."""
    return st.one_of(
        *(bodies(schema_name, spec).map(lambda body, spec=spec: (body, spec)) for spec in specs),
        *(
            bodies(schema_name, spec, null_optionals=True).map(lambda body: (body, None))
            for spec in specs
        ),
    )


@pytest.mark.parametrize("callback", ["shipping-option-update", "address-update", "country-change"])
@PROPERTY_SETTINGS
@given(
    generated=kustoms_bodies("shipping_service_request", CALLBACKS_SPEC),
    option_id=st.sampled_from([None, "postnord", "express"]),
)
def test_any_update_body_valid_under_kustoms_schema_is_read(
    client, post_render, caplog, callback, generated, option_id
):
    body, spec = generated
    body = with_option_id(body, option_id)
    if spec:
        validate_against("shipping_service_request", body, spec=spec, direction="response")
    post_render(make_render("cart-1", 1))  # the same cart each time (a repeat is ignored)
    with caplog.at_level(logging.INFO):
        response = post(client, callback, body)
    assert_read_not_refused_as_malformed(response, caplog)


@PROPERTY_SETTINGS
@given(generated=kustoms_bodies("order", CALLBACKS_SPEC, "kustom-checkout-api.yml"))
def test_any_validation_body_valid_under_kustoms_schema_is_read(
    client, post_render, caplog, generated
):
    # The validation callback posts the order as Kustom's checkout API reads it back.
    body, spec = generated
    if spec:
        validate_against("order", body, spec=spec, direction="response")
    post_render(make_render("cart-1", 1))
    with caplog.at_level(logging.INFO):
        response = post(client, "validate", body)
    assert_read_not_refused_as_malformed(response, caplog)
