"""The local playgrounds agree with the service's payload builder and Kustom's arithmetic.

* Every render the demo shop posts (signed) builds with `build_order_payload` and passes the
  Kustom double's own checks (`validate_order`), from many cart states.
* The double accepts the payloads built from the render fixtures in tests/fixtures/renders/
  and refuses the same payloads with one amount off by a minor unit.
* The iframe's shopper actions: shipping choice through the merchant's callback, Pay through
  the validation callback, a rejected validation, and a stale view.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request

from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from kustom_app.signing import sign_payload, verify_signature
from playground.catalogue import PRODUCTS, SHIPPING_CHOICES, ShopCart, render_cart, vat_included
from playground.commerce import create_app as create_commerce
from playground.commerce_state import CommerceDoubleState
from playground.kustom import KustomDoubleState, KustomError, validate_order
from playground.server import ServerThread
from tests.conftest import COMMERCE_SECRET

RENDERS = Path(__file__).resolve().parents[1] / "fixtures" / "renders"
MERCHANT_URLS = {
    "terms": "https://shop.example/terms",
    "checkout": "https://shop.example/checkout",
    "confirmation": "https://shop.example/confirmation?order={checkout.order.id}",
    "push": "https://kustom-app.example/kustom/push?order_id={checkout.order.id}",
}


def kustom_order(
    render: dict[str, Any], *, kustom_adds_shipping: bool = False, **merchant_urls: str
) -> dict[str, Any]:
    """What kustom-app sends Kustom for this render (JSON round trip: money as strings):
    with its shipping_option_update callback, or without it (Kustom adds the shipping)."""
    loaded = load_render(json.loads(json.dumps(render, default=str)))
    urls = {**MERCHANT_URLS, **merchant_urls}
    if not kustom_adds_shipping:
        urls.setdefault(
            "shipping_option_update", "https://kustom-app.example/kustom/shipping-option-update"
        )
    payload = build_order_payload(loaded, kustom_adds_shipping=kustom_adds_shipping)
    return {**payload, "merchant_urls": urls}


def assert_payable(render: dict[str, Any]) -> dict[str, Any]:
    order = kustom_order(render)
    assert validate_order(order) == [], (render, order)
    assert order["order_amount"] == int(Decimal(render["cartTotal"]) * 100)
    assert order["order_tax_amount"] == int(Decimal(render["cartTaxTotal"]) * 100)
    return order


# ------------------------------------------------------------------------------ the shop


class FakeService:
    """Stands in for kustom-app's /commerce/cart-mutation: verifies and keeps every render."""

    def __init__(self) -> None:
        self.renders: list[dict[str, Any]] = []
        self.app = Flask("fake-service")

        @self.app.post("/commerce/cart-mutation")
        def cart_mutation() -> Any:
            raw = request.get_data()
            verify_signature(COMMERCE_SECRET, raw, request.headers.get("X-Commerce-Signature"))
            render = json.loads(raw)
            self.renders.append(render)
            return jsonify({"cartId": render["cartId"]}), 202


@pytest.fixture
def service() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService()
    with ServerThread(fake.app, name="fake-service") as server:
        yield fake, server.url


@pytest.fixture
def shop(service: tuple[FakeService, str]) -> Flask:
    return create_commerce(secret=COMMERCE_SECRET, service_url=service[1])


def test_every_render_the_shop_posts_is_signed_versioned_and_payable(
    shop: Flask, service: tuple[FakeService, str]
) -> None:
    fake, _ = service
    browser = shop.test_client()
    assert browser.get("/").status_code == 200
    for product in ("TSHIRT-RED-M", "TSHIRT-BLUE-L", "HOODIE-GRY-L", "TSHIRT-RED-M"):
        assert browser.post("/cart/add", data={"product": product}).status_code == 303
    browser.post("/cart/quantity", data={"product": "HOODIE-GRY-L", "quantity": "3"})
    browser.post("/cart/shipping", data={"shipping": "express"})
    answer = browser.post(
        "/shop/api/cart/lines", json={"productNumber": "SOCKS-3PK", "quantity": 1}
    )
    assert answer.status_code == 404  # not in the cart: nothing posted
    answer = browser.post("/shop/api/cart/items", json={"productNumber": "SOCKS-3PK"})
    assert answer.status_code == 200 and (answer.json or {})["published"]["status"] == 202
    browser.post("/shop/api/cart/lines", json={"productNumber": "TSHIRT-BLUE-L", "quantity": 0})
    browser.post("/cart/quantity", data={"product": "CAP-GRN", "quantity": "2"})  # not in cart

    renders = fake.renders
    assert [r["version"] for r in renders] == list(range(1, len(renders) + 1))
    assert len(renders) == 8
    assert len({r["cartId"] for r in renders}) == 1
    for render in renders:
        assert_payable(render)
    last = renders[-1]
    assert {line["productNumber"]: line["quantity"] for line in last["lines"]} == {
        "TSHIRT-RED-M": 2,
        "HOODIE-GRY-L": 3,
        "SOCKS-3PK": 1,
    }
    assert last["shipping"]["id"] == "express"
    assert last["cartTotal"] == "2345.00"  # 500 + 1647 + 99 + 99 express
    assert last["cartTaxTotal"] == "469.00"
    # The service reads the same cart back (CONTRACT section 5 GET /carts/<id>).
    path = f"/carts/{last['cartId']}"
    read = browser.get(path, headers={"X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, b"")})
    assert read.status_code == 200 and read.json == last
    assert browser.get(path).status_code == 401  # unsigned


@pytest.mark.parametrize(
    "quantities, shipping",
    [
        ({}, "postnord"),
        ({"TSHIRT-RED-M": 1}, "postnord"),
        ({"TSHIRT-BLUE-L": 3, "SOCKS-3PK": 7}, "express"),
        ({p.number: 99 for p in PRODUCTS}, "express"),
        ({"TSHIRT-BLACK-S": 1, "CAP-GRN": 2, "HOODIE-GRY-L": 1}, "postnord"),
    ],
)
def test_cart_states_render_consistently(quantities: dict[str, int], shipping: str) -> None:
    render = render_cart(ShopCart("shop-test", 4, dict(quantities), shipping))
    if not quantities:
        assert render["cartTotal"] == "0.00" and "shipping" not in render
        return
    order = assert_payable(render)
    assert [o["id"] for o in order["shipping_options"]] == [c.id for c in SHIPPING_CHOICES]
    assert [o["preselected"] for o in order["shipping_options"]] == [
        c.id == shipping for c in SHIPPING_CHOICES
    ]
    for line in render["lines"]:
        assert Decimal(line["taxTotal"]) == vat_included(Decimal(line["salesTotal"]))


def test_section5_calls_reprice_shop_carts_without_posting(
    shop: Flask, service: tuple[FakeService, str]
) -> None:
    fake, _ = service
    browser = shop.test_client()
    browser.post("/cart/add", data={"product": "TSHIRT-RED-M"})
    cart_id = fake.renders[-1]["cartId"]
    posted = len(fake.renders)

    def signed(path: str, body: dict[str, Any]) -> Any:
        raw = json.dumps(body).encode()
        return browser.post(
            path,
            data=raw,
            headers={
                "Content-Type": "application/json",
                "X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, raw),
            },
        )

    answer = signed(f"/carts/{cart_id}/shipping-option", {"shippingOptionId": "express"})
    assert answer.status_code == 200
    assert answer.json["shipping"]["id"] == "express" and answer.json["version"] == 2
    assert_payable(answer.json)
    address = signed(f"/carts/{cart_id}/address", {"shippingAddress": {"country": "SE"}})
    assert address.status_code == 200 and address.json["version"] == 3
    unknown = signed(f"/carts/{cart_id}/shipping-option", {"shippingOptionId": "drone"})
    assert unknown.status_code == 422
    assert unknown.json["error"]["code"] == "approval_failed"
    assert len(fake.renders) == posted  # the service has these renders from the answers


def test_completed_cart_is_listed_and_replaced(shop: Flask) -> None:
    state: CommerceDoubleState = shop.extensions["commerce_double"]
    browser = shop.test_client()
    browser.post("/cart/add", data={"product": "CAP-GRN"})
    cart_id = next(iter(state.shop_carts))
    raw = json.dumps({"kustomOrderId": "k-1", "orderAmount": 19800}).encode()
    done = browser.post(
        f"/carts/{cart_id}/complete",
        data=raw,
        headers={
            "Idempotency-Key": "kustom-complete-k-1",
            "X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, raw),
        },
    )
    assert done.status_code == 201
    number = (done.json or {})["orderNumber"]
    page = browser.get("/orders").get_data(as_text=True)
    assert number in page and "Green Cap" in page and "198.00 kr" in page
    browser.get("/cart")  # a paid cart is not reused
    assert len(state.shop_carts) == 2
    assert (
        browser.post("/shop/api/cart/items", json={"productNumber": "CAP-GRN"}).status_code == 200
    )
    assert state.orders_for(cart_id)[0]["cart"]["lines"][0]["productNumber"] == "CAP-GRN"


# ------------------------------------------------------------------------------ fixtures


@pytest.mark.parametrize("name", sorted(p.name for p in RENDERS.glob("*.json")))
def test_kustom_double_accepts_the_fixture_renders(name: str) -> None:
    render = json.loads((RENDERS / name).read_text())
    order = kustom_order(render)
    assert validate_order(order) == []
    created = KustomDoubleState().create_order(copy.deepcopy(order))
    assert created["order_amount"] == order["order_amount"]
    assert created["order_lines"] == order["order_lines"]


@pytest.mark.parametrize("name", sorted(p.name for p in RENDERS.glob("*.json")))
def test_kustom_double_refuses_the_fixtures_one_minor_unit_off(name: str) -> None:
    order = kustom_order(json.loads((RENDERS / name).read_text()))
    state = KustomDoubleState()
    for path, field in (("order_amount", "order_amount"), ("line", "order_lines[0].total_amount")):
        broken = copy.deepcopy(order)
        if path == "line":
            broken["order_lines"][0]["total_amount"] += 1
        else:
            broken["order_amount"] += 1
        with pytest.raises(KustomError) as refused:
            state.create_order(broken)
        assert refused.value.error_code == "BAD_VALUE"
        assert f"Bad value: {field}" in refused.value.error_messages


# ------------------------------------------------------------------------------ the iframe


class Merchant:
    """The merchant's callbacks as the double calls them (what kustom-app would answer)."""

    def __init__(self) -> None:
        self.app = Flask("merchant")
        self.reject_validation: dict[str, str] | None = None
        self.validations: list[dict[str, Any]] = []
        self.pushes: list[str] = []

        @self.app.post("/shipping")
        def shipping() -> Any:
            body = request.get_json()
            option = body["selected_shipping_option"]
            render = render_cart(
                ShopCart("shop-x", 2, {"TSHIRT-RED-M": 2}, option["id"])  # repriced
            )
            payload = build_order_payload(load_render(render))
            fields = ("order_amount", "order_tax_amount", "order_lines", "shipping_options")
            return jsonify({name: payload[name] for name in fields})

        @self.app.post("/validate")
        def validate() -> Any:
            self.validations.append(request.get_json())
            if self.reject_validation:
                return jsonify(self.reject_validation), 400
            return "", 200

        @self.app.post("/push")
        def push() -> Any:
            self.pushes.append(request.args["order_id"])
            return "", 200


@pytest.fixture
def merchant() -> Iterator[tuple[Merchant, str]]:
    fake = Merchant()
    with ServerThread(fake.app, name="merchant") as server:
        yield fake, server.url


def _iframe_order(state: KustomDoubleState, url: str, *, callbacks: bool = True) -> str:
    render = render_cart(ShopCart("shop-x", 1, {"TSHIRT-RED-M": 2}, "postnord"))
    urls = {"push": f"{url}/push?order_id={{checkout.order.id}}"}
    if callbacks:
        urls |= {"validation": f"{url}/validate", "shipping_option_update": f"{url}/shipping"}
    order_id: str = state.create_order(kustom_order(render, **urls))["order_id"]
    return order_id


ADDRESS = {
    "given_name": "Testperson-se",
    "family_name": "Approved",
    "email": "youremail@email.com",
    "street_address": "Stårgatan 1",
    "postal_code": "12345",
    "city": "Ankeborg",
}


def test_shipping_choice_goes_through_the_merchant_and_pay_completes(
    merchant: tuple[Merchant, str],
) -> None:
    fake, url = merchant
    state = KustomDoubleState(push_delay_seconds=0.2)
    order_id = _iframe_order(state, url)
    view = state.shopper_view(order_id)
    assert view["order_amount"] == 54900 and view["selected_shipping_option"] == "postnord"

    chosen = state.shopper_select_shipping(order_id, "express")
    assert "error" not in chosen
    assert chosen["order_amount"] == 59900 and chosen["selected_shipping_option"] == "express"
    assert chosen["revision"] == view["revision"] + 1
    [call] = state.callbacks("shipping_option_update")
    assert call["status"] == 200 and call["json"]["selected_shipping_option"]["id"] == "express"
    assert validate_order(state.read_order(order_id)) == []

    paid = state.shopper_pay(order_id, ADDRESS, revision=chosen["revision"])
    assert paid == {
        "redirect": f"https://shop.example/confirmation?order={order_id}",
        "order_id": order_id,
    }
    assert fake.validations[0]["order_amount"] == 59900
    assert fake.validations[0]["billing_address"]["email"] == ADDRESS["email"]
    stored = state.stored_order(order_id)
    assert stored is not None and stored["status"] == "checkout_complete"
    assert stored["order_management"]["order_amount"] == 59900
    assert state.callbacks("push") == []  # not yet: the push comes after the delay
    state.wait_for_callbacks("push", 1, timeout=5)
    assert fake.pushes == [order_id]
    again = state.shopper_pay(order_id, ADDRESS)  # a second click: same place, no second order
    assert again["redirect"] == paid["redirect"]


def test_rejected_validation_shows_the_merchants_text(merchant: tuple[Merchant, str]) -> None:
    fake, url = merchant
    fake.reject_validation = {"error_type": "address_error", "error_text": "We need a street."}
    state = KustomDoubleState()
    order_id = _iframe_order(state, url)
    answer = state.shopper_pay(order_id, ADDRESS)
    assert answer == {"error": "We need a street.", "rejected": True}
    assert state.read_order(order_id)["status"] == "checkout_incomplete"
    missing = state.shopper_pay(order_id, {**ADDRESS, "email": " "})
    assert missing["error"] == "Please fill in: email"


def test_pay_refuses_a_view_older_than_the_order(merchant: tuple[Merchant, str]) -> None:
    _, url = merchant
    state = KustomDoubleState()
    order_id = _iframe_order(state, url)
    seen = state.shopper_view(order_id)["revision"]
    changed = kustom_order(render_cart(ShopCart("shop-x", 2, {"TSHIRT-RED-M": 3}, "postnord")))
    del changed["merchant_urls"]
    state.update_order(order_id, changed)  # kustom-app synced a cart change meanwhile
    answer = state.shopper_pay(order_id, ADDRESS, revision=seen)
    assert answer["reload"] is True and "updated" in answer["error"]
    assert state.read_order(order_id)["status"] == "checkout_incomplete"


def test_without_a_shipping_callback_the_double_reprices_itself() -> None:
    """Without shipping_option_update Kustom adds the selected option's line itself
    (docs.kustom.co checkout/use-cases/shipping), so the merchant sends no shipping line."""
    render = render_cart(ShopCart("shop-x", 1, {"TSHIRT-RED-M": 2}, "postnord"))
    order = kustom_order(
        render,
        kustom_adds_shipping=True,
        push="http://127.0.0.1:9/push?order_id={checkout.order.id}",
    )
    assert [line["type"] for line in order["order_lines"]] == ["physical"]
    assert order["order_amount"] == 50000  # the builder leaves PostNord to Kustom
    state = KustomDoubleState()
    order_id = state.create_order(order)["order_id"]
    assert state.read_order(order_id)["order_amount"] == 54900  # Kustom added PostNord
    chosen = state.shopper_select_shipping(order_id, "express")
    assert chosen["order_amount"] == 59900 and chosen["order_tax_amount"] == 11980
    assert validate_order(state.read_order(order_id)) == []


def test_iframe_page_and_its_calls_over_http(merchant: tuple[Merchant, str]) -> None:
    from playground.kustom import create_app as create_kustom

    _, url = merchant
    app = create_kustom(push_delay_seconds=0.0)
    state: KustomDoubleState = app.extensions["kustom_double"]
    order_id = _iframe_order(state, url)
    with ServerThread(app) as server:
        base = f"{server.url}/playground/checkout/{order_id}"
        page = requests.get(base, timeout=5)
        assert page.status_code == 200 and "Red T-Shirt, M" in page.text
        embedded = page.text.split('id="kco-initial">', 1)[1].split("</script>", 1)[0]
        assert "<" not in embedded and json.loads(embedded)["order_id"] == order_id
        data = requests.get(f"{base}/data", timeout=5).json()
        assert data["order_id"] == order_id and data["currency_exponent"] == 2
        bad = requests.post(f"{base}/shipping-option", json={"id": "drone"}, timeout=5)
        assert bad.status_code == 400 and "not offered" in bad.json()["error"]
        paid = requests.post(f"{base}/pay", json={"address": ADDRESS}, timeout=5).json()
        assert paid["redirect"].endswith(order_id)
        assert requests.get(f"{server.url}/playground/checkout/nope", timeout=5).status_code == 404
