"""POST /carts/<id>/kustom and GET .../status, with Kustom faked by `responses`."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from kustom_app.signing import callback_token, verify_signature
from kustom_app.state import CartStore
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET, make_render, signed_headers
from tests.domain import cart_store
from tests.openapi_schema import validate_against
from tests.webhooks.nested_json import HUGE_NESTED_BODIES, NESTED_BODIES

KUSTOM = "https://kustom.test"
URLS = {
    "termsUrl": "https://shop.test/terms",
    "checkoutUrl": "https://shop.test/checkout",
    "confirmationUrl": "https://shop.test/confirmation?cart=cart-1",
}


def kustom_order(order_id: str, body: dict | None = None) -> dict:
    return {
        **(body or {}),
        "order_id": order_id,
        "status": "checkout_incomplete",
        "html_snippet": f"<div id='klarna-checkout-container'>{order_id}</div>",
    }


@pytest.fixture
def kustom():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def create_calls(kustom) -> list:
    return [
        c for c in kustom.calls if c.request.method == "POST" and c.request.url.endswith("/orders")
    ]


def checkout(client, cart_id="cart-1", body=None):
    return client.post(f"/carts/{cart_id}/kustom", json=URLS if body is None else body)


def test_first_call_creates_one_order_then_returns_it(client, post_render, kustom):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    kustom.get(f"{KUSTOM}/checkout/v3/orders/o-1", json=kustom_order("o-1"))
    first = checkout(client)
    second = checkout(client)
    assert first.status_code == second.status_code == 200
    assert first.get_json() == {
        "kustomOrderId": "o-1",
        "htmlSnippet": "<div id='klarna-checkout-container'>o-1</div>",
        "syncing": False,
    }
    assert second.get_json()["kustomOrderId"] == "o-1"
    assert len(create_calls(kustom)) == 1


def test_create_body_is_a_valid_kustom_order_with_tokenised_callbacks(client, post_render, kustom):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    checkout(client)
    sent = json.loads(create_calls(kustom)[0].request.body)
    validate_against("order", sent)
    assert sent["merchant_reference1"] == "cart-1"
    assert (sent["order_amount"], sent["order_tax_amount"]) == (54900, 10980)
    urls = sent["merchant_urls"]
    assert urls["terms"] == URLS["termsUrl"] and urls["confirmation"] == URLS["confirmationUrl"]
    for name in (
        "push",
        "validation",
        "notification",
        "address_update",
        "country_change",
        "shipping_option_update",
    ):
        query = parse_qs(urlsplit(urls[name]).query)
        assert urls[name].startswith("https://shop-kustom.test/kustom/")
        assert query["cart"] == ["cart-1"]
        assert query["token"] == [callback_token(CALLBACK_SECRET, "cart-1")]
    assert "order_id={checkout.order.id}" in urls["push"]


@pytest.mark.parametrize("status", [404, 403, 500, 503])
def test_unusable_order_is_recreated(client, post_render, kustom, status):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    checkout(client)
    kustom.replace(
        responses.POST, f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-2"), status=201
    )
    kustom.get(f"{KUSTOM}/checkout/v3/orders/o-1", status=status, body=b"")
    response = checkout(client)
    assert response.get_json()["kustomOrderId"] == "o-2"
    assert client.get("/carts/cart-1/kustom/status").get_json()["kustomOrderId"] == "o-2"


def test_order_older_than_48h_is_recreated_without_asking_kustom(
    client, post_render, kustom, fake_redis
):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    checkout(client)
    key = "kustom:cart:cart-1"
    old = int(fake_redis.hget(key, "order_created_at")) - 48 * 3600 * 1000 - 1
    fake_redis.hset(key, mapping={"order_created_at": old, "order_updated_at": old})
    kustom.replace(
        responses.POST, f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-2"), status=201
    )
    assert checkout(client).get_json()["kustomOrderId"] == "o-2"
    assert not [c for c in kustom.calls if c.request.method == "GET"]


def test_kustom_down_is_502_and_no_order_recorded(client, post_render, kustom):
    post_render(make_render("cart-1", 1))
    kustom.post(
        f"{KUSTOM}/checkout/v3/orders", status=503, json={"error_code": "SERVICE_UNAVAILABLE"}
    )
    response = checkout(client)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "kustom_unavailable"
    assert client.get("/carts/cart-1/kustom/status").get_json()["kustomOrderId"] is None


def test_kustom_rejection_is_502_with_kustom_error_code(client, post_render, kustom):
    post_render(make_render("cart-1", 1))
    kustom.post(
        f"{KUSTOM}/checkout/v3/orders",
        status=400,
        json={
            "error_code": "BAD_VALUE",
            "error_messages": ["Bad value: locale"],
            "correlation_id": "c-9",
        },
    )
    error = checkout(client).get_json()["error"]
    assert error["code"] == "kustom_unavailable"
    assert error["details"]["kustomErrorCode"] == "BAD_VALUE"
    assert error["details"]["correlationId"] == "c-9"


def test_unknown_cart_is_404(client, kustom):
    response = checkout(client, "cart-nobody")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "cart_not_found"
    assert not kustom.calls


def unpayable_render(version: int) -> dict:
    """cart-1 with a line whose total is 1.00 off."""
    render = make_render("cart-1", version)
    render["lines"][0]["salesTotal"] = "499.00"
    return render


def assert_not_payable_naming_the_line(response) -> None:
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "cart_not_payable"
    assert "l1" in error["message"] or "TSHIRT-RED-M" in error["message"]


def test_unpayable_cart_is_422_naming_the_problem(client, post_render, kustom):
    post_render(unpayable_render(1))
    assert_not_payable_naming_the_line(checkout(client))
    assert not kustom.calls


def test_empty_cart_is_422(client, post_render, kustom):
    render = make_render("cart-1", 1)
    render.update(lines=[], cartTotal="49.00", cartTaxTotal="9.80")
    post_render(render)
    assert checkout(client).get_json()["error"]["code"] == "cart_not_payable"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {**URLS, "termsUrl": "/relative"},
        {**URLS, "checkoutUrl": "ftp://shop.test/x"},
        {**URLS, "confirmationUrl": 5},
        {**URLS, "extra": "field"},
    ],
)
def test_bad_storefront_urls_are_400(client, post_render, kustom, body):
    post_render(make_render("cart-1", 1))
    response = checkout(client, body=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert not kustom.calls


def test_without_credentials_checkout_is_503(settings, fake_redis, task_queue):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, kustom_username=None, kustom_password=None),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    response = app.test_client().post("/carts/cart-1/kustom", json=URLS)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "kustom_not_configured"


def test_cart_is_fetched_from_commerce_when_no_render_was_received(
    settings, fake_redis, task_queue, kustom
):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, commerce_api_url="https://commerce.test"),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    kustom.get("https://commerce.test/carts/cart-9", json=make_render("cart-9", 3))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-9"), status=201)
    response = app.test_client().post("/carts/cart-9/kustom", json=URLS)
    assert response.status_code == 200
    fetch = kustom.calls[0].request
    verify_signature(COMMERCE_SECRET, fetch.body or b"", fetch.headers["X-Kustom-App-Signature"])
    assert cart_store(fake_redis).load("cart-9").version == 3


def test_commerce_404_is_cart_not_found(settings, fake_redis, task_queue, kustom):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, commerce_api_url="https://commerce.test"),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    kustom.get(
        "https://commerce.test/carts/cart-9", status=404, json={"error": {"code": "not_found"}}
    )
    response = app.test_client().post("/carts/cart-9/kustom", json=URLS)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "cart_not_found"


@pytest.mark.parametrize("depth", [50_000, 900])
def test_a_deeply_nested_cart_from_the_backend_is_502_not_500(
    settings, fake_redis, task_queue, kustom, depth
):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, commerce_api_url="https://commerce.test"),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    render = json.dumps(make_render("cart-9", 3))
    nested = render[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    kustom.get("https://commerce.test/carts/cart-9", body=nested)
    response = app.test_client().post("/carts/cart-9/kustom", json=URLS)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "commerce_unavailable"
    assert cart_store(fake_redis).load("cart-9") is None


def test_status_shape_and_unknown_cart(client, post_render):
    assert client.get("/carts/nobody/kustom/status").status_code == 404
    post_render(make_render("cart-1", 1))
    status = client.get("/carts/cart-1/kustom/status").get_json()
    assert set(status) == {
        "cartId",
        "kustomOrderId",
        "pendingHash",
        "syncHash",
        "syncing",
        "cartState",
    }
    assert status["cartState"] == "open" and status["syncing"] is False


def test_render_after_order_creation_enqueues_a_sync(client, post_render, kustom, task_queue):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    checkout(client)
    body = post_render(make_render("cart-1", 2, quantity=3)).get_json()
    assert body["syncing"] is True
    assert [s[0] for s in task_queue.syncs] == ["cart-1"]
    assert task_queue.syncs[0][1] == body["pendingHash"]
    validate_against("order", task_queue.syncs[0][2])


def test_cors_only_for_allowed_origins(settings, fake_redis, task_queue):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, cors_allowed_origins=("https://shop.test",)),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    c = app.test_client()
    ok = c.options("/carts/cart-1/kustom", headers={"Origin": "https://shop.test"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.test"
    other = c.options("/carts/cart-1/kustom", headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cart_that_became_unpayable_after_its_order_was_created_is_422(
    client, post_render, kustom, fake_redis
):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    assert checkout(client).status_code == 200
    calls_before = len(kustom.calls)
    post_render(unpayable_render(2))
    assert_not_payable_naming_the_line(checkout(client))
    assert len(kustom.calls) == calls_before  # Kustom is not asked, no order is created
    state = cart_store(fake_redis).load("cart-1")
    assert state.order_id == "o-1" and state.order_usable  # the order is kept for the fix


def test_completed_cart_is_409_and_kustom_is_not_asked(client, post_render, kustom, fake_redis):
    post_render(make_render("cart-1", 1))
    store = cart_store(fake_redis)
    assert store.claim_completion("cart-1", "t", "o-1", "confirm").action == "claimed"
    store.finish_completion("cart-1", "o-1", "SO-1", "confirm")
    response = checkout(client)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "cart_completed"
    assert not kustom.calls


@pytest.mark.parametrize("failure", ["503", "connection"])
def test_commerce_backend_down_is_502_commerce_unavailable(
    settings, fake_redis, task_queue, kustom, failure
):
    from requests import ConnectionError as RequestsConnectionError

    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, commerce_api_url="https://commerce.test"),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    if failure == "503":
        kustom.get("https://commerce.test/carts/cart-9", status=503, body="down")
    else:
        kustom.get("https://commerce.test/carts/cart-9", body=RequestsConnectionError("refused"))
    response = app.test_client().post("/carts/cart-9/kustom", json=URLS)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "commerce_unavailable"
    assert cart_store(fake_redis).load("cart-9") is None
    assert not [c for c in kustom.calls if "kustom.test" in c.request.url]


def test_checkout_waiting_too_long_for_a_concurrent_creation_is_503_checkout_busy(
    client, post_render, kustom, fake_redis, monkeypatch
):
    post_render(make_render("cart-1", 1))
    store = cart_store(fake_redis)
    held = store.creation_lock("cart-1")
    assert held.acquire()  # another call is creating the cart's order right now
    original = CartStore.creation_lock
    monkeypatch.setattr(
        CartStore,
        "creation_lock",
        lambda self, cart_id: original(self, cart_id, blocking_timeout=0.05),
    )
    response = checkout(client)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "checkout_busy"
    assert not kustom.calls
    held.release()
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    assert checkout(client).status_code == 200  # once the other call is done


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', *NESTED_BODIES.values()],
    ids=["broken", "array", "string", *NESTED_BODIES],
)
def test_checkout_body_that_is_not_a_json_object_is_400(
    client, post_render, kustom, fake_redis, body
):
    post_render(make_render("cart-1", 1))
    before = snapshot(fake_redis)
    response = client.post(
        "/carts/cart-1/kustom", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert not kustom.calls
    assert snapshot(fake_redis) == before


@pytest.mark.parametrize("body", HUGE_NESTED_BODIES.values(), ids=HUGE_NESTED_BODIES)
def test_a_50000_deep_checkout_body_is_refused_by_its_size(client, post_render, kustom, body):
    post_render(make_render("cart-1", 1))
    response = client.post(
        "/carts/cart-1/kustom", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert not kustom.calls


@pytest.mark.parametrize(
    "body",
    [*NESTED_BODIES.values(), *HUGE_NESTED_BODIES.values()],
    ids=[*NESTED_BODIES, *HUGE_NESTED_BODIES],
)
def test_confirm_ignores_its_body_however_deep(client, post_render, fake_redis, body):
    # The SDK's confirm call has no body: whatever one carries is never parsed.
    post_render(make_render("cart-1", 1))
    before = snapshot(fake_redis)
    response = client.post(
        "/carts/cart-1/kustom/confirm", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "kustom_order_not_found"
    assert snapshot(fake_redis) == before


def snapshot(redis) -> dict:
    """Every key and its serialized value: equal snapshots, nothing changed."""
    return {key: redis.dump(key) for key in redis.scan_iter()}


@pytest.mark.parametrize("cart_id", ["a" * 256, "-leading-dash", "bad%20id", "sp ace", "x;y"])
def test_cart_ids_with_forbidden_characters_are_400_on_checkout_and_status(client, kustom, cart_id):
    for response in (
        client.post(f"/carts/{cart_id}/kustom", json=URLS),
        client.get(f"/carts/{cart_id}/kustom/status"),
    ):
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_cart_id"
    assert not kustom.calls


def test_readyz_is_200_while_redis_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("public_base_url", "kustom_api_url", "server_callbacks"),
    [
        ("https://shop-kustom.test", "https://api.playground.kustom.co", True),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8100", True),  # the local playground
        ("http://shop-kustom.test", "https://api.playground.kustom.co", False),
        ("http://shop-kustom.test", "https://api.kustom.co", False),
    ],
)
def test_server_callbacks_are_left_out_only_behind_http_against_real_kustom(
    settings,
    fake_redis,
    task_queue,
    kustom,
    caplog,
    public_base_url,
    kustom_api_url,
    server_callbacks,
):
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": replace(
                settings, public_base_url=public_base_url, kustom_api_url=kustom_api_url
            ),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
        }
    )
    client = app.test_client()
    body = json.dumps(make_render("cart-1", 1)).encode()
    client.post("/commerce/cart-mutation", data=body, headers=signed_headers(body, COMMERCE_SECRET))
    kustom.post(f"{kustom_api_url}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    with caplog.at_level("WARNING", logger="kustom_app.checkout"):
        assert checkout(client).status_code == 200
    urls = json.loads(create_calls(kustom)[0].request.body)["merchant_urls"]
    server = {"validation", "address_update", "country_change", "shipping_option_update"}
    assert {"push", "notification", "terms", "checkout", "confirmation"} <= set(urls)
    assert (server <= set(urls)) is server_callbacks
    assert not (server & set(urls)) or server_callbacks
    warned = [r for r in caplog.records if "server_callbacks_off" in r.getMessage()]
    assert bool(warned) is not server_callbacks


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout("slow"), requests.exceptions.ConnectionError("refused")],
    ids=["timeout", "connection"],
)
def test_kustom_not_answering_about_the_order_is_502_and_keeps_the_order(
    client, post_render, kustom, fake_redis, failure
):
    post_render(make_render("cart-1", 1))
    kustom.post(f"{KUSTOM}/checkout/v3/orders", json=kustom_order("o-1"), status=201)
    assert checkout(client).status_code == 200
    kustom.get(f"{KUSTOM}/checkout/v3/orders/o-1", body=failure)
    response = checkout(client)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "kustom_unavailable"
    assert len(create_calls(kustom)) == 1  # no second order
    state = cart_store(fake_redis).load("cart-1")
    assert state.order_id == "o-1" and state.order_usable
