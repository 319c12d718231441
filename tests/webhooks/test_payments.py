"""POST /commerce/payment-capture, /payment-refund, /order-cancel: signed, checked, once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kustom_app.ordermanagement import PaymentStore
from tests.conftest import make_render, signed_headers
from tests.kustom_app.test_ordermanagement import CART, ORDER, complete_cart
from tests.webhooks.nested_json import HUGE_NESTED_BODIES, NESTED_BODIES


@pytest.fixture
def store(app):
    return app.extensions["kustom"].store


@pytest.fixture
def completed(store):
    complete_cart(store)


@pytest.fixture
def send(client):
    def post(path: str, body: Any, *, raw: bytes | None = None, headers=None):
        data = raw if raw is not None else json.dumps(body).encode()
        return client.post(f"/commerce/{path}", data=data, headers=headers or signed_headers(data))

    return post


def capture(capture_id: str = "cap-1", **changes: Any) -> dict[str, Any]:
    return {
        "captureId": capture_id,
        "cartId": CART,
        "amount": "549.00",
        "currencyCode": "SEK",
        **changes,
    }


def payment_keys(fake_redis) -> list[bytes]:
    return sorted(
        fake_redis.keys("kustom:capture:*")
        + fake_redis.keys("kustom:refund:*")
        + fake_redis.keys("kustom:cancel:*")
        + fake_redis.keys("kustom:payments:*")
    )


def test_capture_is_queued_once_however_often_it_is_sent(completed, send, task_queue, fake_redis):
    answers = [send("payment-capture", capture()) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert {json.dumps(a.get_json(), sort_keys=True) for a in answers} == {
        json.dumps({"captureId": "cap-1", "status": "queued"}, sort_keys=True)
    }
    assert task_queue.captures == ["cap-1"]
    record = PaymentStore(fake_redis, prefix="kustom", ttl_seconds=1).load("capture", "cap-1")
    assert (record.order_id, record.amount) == (ORDER, 54900)


def test_a_repeated_event_answers_the_status_it_has(completed, send, fake_redis):
    send("payment-capture", capture())
    payments = PaymentStore(fake_redis, prefix="kustom", ttl_seconds=60)
    payments.finish("capture", "cap-1", "captured", kustom_id="kc-1")
    again = send("payment-capture", capture())
    assert again.status_code == 202
    assert again.get_json() == {"captureId": "cap-1", "status": "captured"}


def test_the_same_id_for_another_amount_is_409(completed, send, task_queue):
    send("payment-capture", capture())
    other = send("payment-capture", capture(amount="1.00"))
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_conflict"
    assert task_queue.captures == ["cap-1"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"X-Commerce-Signature": "t=1,v1=deadbeef", "Content-Type": "application/json"},
    ],
)
@pytest.mark.parametrize("path", ["payment-capture", "payment-refund", "order-cancel"])
def test_unsigned_events_are_401_and_store_nothing(
    completed, send, fake_redis, task_queue, headers, path
):
    response = send(path, capture(), headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert payment_keys(fake_redis) == []
    assert task_queue.captures == task_queue.refunds == task_queue.cancels == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**capture(), "amount": "-1"}, "validation_error"),
        ({**capture(), "amount": "0"}, "validation_error"),
        ({**capture(), "amount": True}, "validation_error"),
        ({**capture(), "amount": "549.001"}, "amount_not_representable"),
        ({**capture(), "currencyCode": "KRONA"}, "validation_error"),
        ({**capture(), "captureId": "has space"}, "validation_error"),
        ({**capture(), "captureId": "x" * 256}, "validation_error"),
        ({k: v for k, v in capture().items() if k != "cartId"}, "validation_error"),
        ({**capture(), "lines": "all"}, "validation_error"),
        ({**capture(), "description": "d" * 256}, "validation_error"),
        (
            {**capture(), "lines": [{"name": "x", "quantity": 1, "unit_price": 1,
                                     "total_amount": 1}]},
            "lines_do_not_match_amount",
        ),
        ({**capture(), "shippingInfo": [{"carrier": "DHL"}]}, "invalid_shipping_info"),
        ([capture()], "invalid_json"),
    ],
)  # fmt: skip
def test_bad_capture_events_are_400_and_store_nothing(completed, send, fake_redis, body, code):
    response = send("payment-capture", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert payment_keys(fake_redis) == []


def malformed_events() -> list[Any]:
    """(path, body) of every payment event with each malformed body that fits its limit
    (the 50,000-deep ones only fit the events that take large bodies)."""
    bodies = {"broken": b'{"captureId": ', **NESTED_BODIES}
    cases = [
        pytest.param(path, raw, id=f"{path}-{name}")
        for path in ("payment-capture", "payment-refund", "order-cancel")
        for name, raw in bodies.items()
    ]
    return cases + [
        pytest.param(path, raw, id=f"{path}-{name}")
        for path in ("payment-capture", "payment-refund")
        for name, raw in HUGE_NESTED_BODIES.items()
    ]


@pytest.mark.parametrize(("path", "raw"), malformed_events())
def test_malformed_json_is_400(completed, send, fake_redis, task_queue, path, raw):
    before = {key: fake_redis.dump(key) for key in fake_redis.scan_iter()}
    response = send(path, None, raw=raw)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert payment_keys(fake_redis) == []
    assert {key: fake_redis.dump(key) for key in fake_redis.scan_iter()} == before
    assert task_queue.captures == task_queue.refunds == task_queue.cancels == []


def test_unknown_cart_is_404_and_uncompleted_cart_409(send, store, post_render, fake_redis):
    unknown = send("payment-capture", capture())
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "cart_not_found"
    post_render(make_render(CART, 1))
    open_cart = send("payment-capture", capture())
    assert open_cart.status_code == 409
    assert open_cart.get_json()["error"]["code"] == "cart_not_completed"
    assert payment_keys(fake_redis) == []


def test_refund_is_queued_and_answers_its_id(completed, send, task_queue):
    body = {"refundId": "ref-1", "cartId": CART, "amount": 100, "currencyCode": "sek"}
    response = send("payment-refund", body)
    assert response.status_code == 202
    assert response.get_json() == {"refundId": "ref-1", "status": "queued"}
    assert send("payment-refund", body).status_code == 202
    assert task_queue.refunds == ["ref-1"]


def test_refund_without_its_id_is_400(completed, send, task_queue):
    response = send("payment-refund", capture())
    assert response.status_code == 400
    assert "refundId" in response.get_json()["error"]["details"]["fields"]
    assert task_queue.refunds == []


def test_cancel_is_queued_once_per_cart(completed, send, task_queue):
    first = send("order-cancel", {"cartId": CART})
    assert first.status_code == 202
    assert first.get_json() == {"cartId": CART, "status": "queued"}
    assert send("order-cancel", {"cartId": CART}).status_code == 202
    assert task_queue.cancels == [CART]
    assert send("order-cancel", {}).status_code == 400
