"""Captures, refunds and cancels: once each, refused up front when they cannot fit.

Kustom and the commerce backend are faked at HTTP level (responses), Redis with fakeredis.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
import responses
from responses import matchers

from kustom_app.commerce import CommerceRejected, CommerceUnavailable
from kustom_app.kustom import KustomUnavailable, idempotency_key
from kustom_app.ordermanagement import (
    CancelDeferred,
    OperationBusy,
    PaymentEventError,
    kustom_order_lines,
    kustom_shipping_info,
    prepare_cancel,
    prepare_capture,
    prepare_refund,
)
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from kustom_app.state import CartStore
from tests.conftest import FIXTURES, make_render
from tests.domain import commerce_client, kustom_client, payment_operations
from tests.openapi_schema import validate_against

KUSTOM = "https://kustom.test"
COMMERCE = "https://commerce.test"
CART, ORDER = "cart-1", "order-1"
OM_URL = f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}"
OM_SPEC = "kustom-order-management-api.yml"


def complete_cart(store: CartStore, cart_id: str = CART, order_id: str = ORDER) -> None:
    render = make_render(cart_id, 1)
    payload = build_order_payload(load_render(render))
    store.record_render(cart_id, 1, render, payload_hash(payload), payload)
    store.record_order(cart_id, order_id, payload_hash(payload), payload)
    assert store.claim_completion(cart_id, "t", order_id, "confirm").action == "claimed"
    store.finish_completion(cart_id, order_id, "SO-1", "confirm")


@pytest.fixture
def ops(store, payments):
    complete_cart(store)
    return payment_operations(
        store, payments, kustom_client(KUSTOM), commerce_client(COMMERCE, "secret")
    )


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def om_order(**changes: Any) -> dict[str, Any]:
    order = {
        "order_id": ORDER,
        "status": "AUTHORIZED",
        "purchase_currency": "SEK",
        "order_amount": 54900,
        "captured_amount": 0,
        "refunded_amount": 0,
        "remaining_authorized_amount": 54900,
        "captures": [],
        "refunds": [],
    }
    order.update(changes)
    return order


def capture_event(capture_id: str = "cap-1", amount: Any = "549.00", **extra: Any):
    return {
        "captureId": capture_id,
        "cartId": CART,
        "amount": Decimal(str(amount)),
        "currencyCode": "SEK",
        **extra,
    }


def refund_event(refund_id: str = "ref-1", amount: Any = "100.00", **extra: Any):
    return {
        "refundId": refund_id,
        "cartId": CART,
        "amount": Decimal(str(amount)),
        "currencyCode": "SEK",
        **extra,
    }


def kustom_posts(http, suffix: str) -> list[Any]:
    return [c for c in http.calls if c.request.method == "POST" and c.request.url.endswith(suffix)]


def created(location_id: str, header: str = "Capture-Id") -> dict[str, Any]:
    return {"status": 201, "headers": {header: location_id}}


# Accepting events ---------------------------------------------------------------------------


def test_the_same_event_three_times_is_one_operation(ops, payments):
    request = prepare_capture(capture_event())
    answers = [ops.accept(request) for _ in range(3)]
    assert [a.enqueue for a in answers] == [True, False, False]
    assert {a.status for a in answers} == {"queued"}
    record = payments.load("capture", "cap-1")
    assert (record.order_id, record.amount, record.currency) == (ORDER, 54900, "SEK")


def test_a_repeat_requeues_an_operation_whose_task_never_started(ops, payments):
    request = prepare_capture(capture_event())
    ops.accept(request)
    key = payments.record_key("capture", "cap-1")
    payments.redis.hset(key, "queued_at", 0)  # queued long ago, the task lost
    assert ops.accept(request).enqueue
    payments.begin("capture", "cap-1", "task", lease_ms=1000)
    assert not ops.accept(request).enqueue, "started: its task (or the sweeper) finishes it"


def test_a_reused_id_with_other_money_is_a_conflict(ops):
    ops.accept(prepare_capture(capture_event(amount="100.00")))
    with pytest.raises(PaymentEventError) as refused:
        ops.accept(prepare_capture(capture_event(amount="200.00")))
    assert (refused.value.status, refused.value.code) == (409, "idempotency_conflict")


def test_unknown_cart_is_404_and_open_cart_is_409_and_nothing_is_stored(ops, store, payments):
    event = capture_event()
    event["cartId"] = "cart-unknown"
    with pytest.raises(PaymentEventError) as unknown:
        ops.accept(prepare_capture(event))
    assert (unknown.value.status, unknown.value.code) == (404, "cart_not_found")

    render = make_render("cart-open", 1)
    payload = build_order_payload(load_render(render))
    store.record_render("cart-open", 1, render, payload_hash(payload), payload)
    event["cartId"] = "cart-open"
    with pytest.raises(PaymentEventError) as open_cart:
        ops.accept(prepare_capture(event))
    assert (open_cart.value.status, open_cart.value.code) == (409, "cart_not_completed")
    assert payments.load("capture", "cap-1") is None
    assert not payments.redis.exists(payments.pending_key)


# Captures -----------------------------------------------------------------------------------


def test_capture_through_two_503s_is_one_capture_with_one_key(ops, payments, http):
    ops.accept(prepare_capture(capture_event(description="Shipped")))
    http.get(OM_URL, json=om_order())
    captures = f"{OM_URL}/captures"
    http.post(captures, status=503, json={"error_code": "SERVICE_UNAVAILABLE"})
    http.post(captures, status=503, json={"error_code": "SERVICE_UNAVAILABLE"})
    http.post(captures, **created("kc-1"))

    for _ in range(2):
        with pytest.raises(KustomUnavailable):
            ops.execute("capture", "cap-1", token="task-1")
    outcome = ops.execute("capture", "cap-1", token="task-1")

    assert (outcome.status, outcome.newly_finished, outcome.deliver) == ("captured", True, True)
    posts = kustom_posts(http, "/captures")
    assert len(posts) == 3
    keys = {c.request.headers["Klarna-Idempotency-Key"] for c in posts}
    assert keys == {idempotency_key("capture", "cap-1")}
    body = json.loads(posts[-1].request.body)
    assert body == {"captured_amount": 54900, "reference": "cap-1", "description": "Shipped"}
    validate_against("CaptureObject", body, OM_SPEC)
    record = payments.load("capture", "cap-1")
    assert (record.status, record.kustom_id, record.result_delivered) == ("captured", "kc-1", False)

    again = ops.execute("capture", "cap-1", token="task-2")
    assert (again.status, again.newly_finished) == ("captured", False)
    assert len(kustom_posts(http, "/captures")) == 3, "an outcome is final: no new request"


def test_over_capture_is_refused_without_asking_kustom(ops, payments, http):
    ops.accept(prepare_capture(capture_event(amount="300.00")))
    http.get(OM_URL, json=om_order(captured_amount=30000, remaining_authorized_amount=24900))
    outcome = ops.execute("capture", "cap-1", token="t")
    assert outcome.status == "failed" and outcome.deliver
    assert kustom_posts(http, "/captures") == []
    error = payments.load("capture", "cap-1").error
    assert error["code"] == "capture_exceeds_authorization"
    assert "300.00 SEK" in error["message"] and "249.00 SEK" in error["message"]


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (om_order(purchase_currency="EUR"), "currency_mismatch"),
        (om_order(status="CANCELLED", remaining_authorized_amount=0), "order_not_capturable"),
    ],
)
def test_capture_on_a_wrong_or_closed_order_fails_up_front(ops, payments, http, order, code):
    ops.accept(prepare_capture(capture_event()))
    http.get(OM_URL, json=order)
    assert ops.execute("capture", "cap-1", token="t").status == "failed"
    assert payments.load("capture", "cap-1").error["code"] == code
    assert kustom_posts(http, "/captures") == []


def test_a_capture_that_landed_before_a_crash_is_recognised_by_its_reference(ops, payments, http):
    ops.accept(prepare_capture(capture_event(amount="100.00")))
    landed = {"capture_id": "kc-9", "reference": "cap-1", "captured_amount": 10000}
    http.get(OM_URL, json=om_order(captured_amount=10000, captures=[landed]))
    outcome = ops.execute("capture", "cap-1", token="redelivered")
    assert outcome.status == "captured"
    assert payments.load("capture", "cap-1").kustom_id == "kc-9"
    assert kustom_posts(http, "/captures") == []


def test_kustom_refusal_becomes_a_failed_result_with_its_code(ops, payments, http):
    ops.accept(prepare_capture(capture_event()))
    http.get(OM_URL, json=om_order())
    http.post(
        f"{OM_URL}/captures",
        status=403,
        json={
            "error_code": "CAPTURE_NOT_ALLOWED",
            "error_messages": ["fraud_status is PENDING"],
            "correlation_id": "corr-1",
        },
    )
    assert ops.execute("capture", "cap-1", token="t").status == "failed"
    error = payments.load("capture", "cap-1").error
    assert error["code"] == "CAPTURE_NOT_ALLOWED"
    assert error["message"] == "fraud_status is PENDING"
    assert error["correlationId"] == "corr-1"


def test_unknown_kustom_order_fails_the_capture(ops, payments, http):
    ops.accept(prepare_capture(capture_event()))
    http.get(OM_URL, status=404, json={"error_code": "NO_SUCH_ORDER"})
    assert ops.execute("capture", "cap-1", token="t").status == "failed"
    assert payments.load("capture", "cap-1").error["code"] == "order_not_found"


def test_a_live_lease_makes_a_twin_wait_and_the_holder_may_retake_it(ops, payments):
    ops.accept(prepare_capture(capture_event()))
    assert payments.begin("capture", "cap-1", "holder", lease_ms=60_000)[0] == "run"
    with pytest.raises(OperationBusy) as busy:
        ops.execute("capture", "cap-1", token="twin")
    assert 0 < busy.value.retry_after_ms <= 60_000
    assert payments.begin("capture", "cap-1", "holder", lease_ms=60_000)[0] == "run"


def test_capture_lines_and_shipping_info_reach_kustom_in_its_shape(ops, http):
    lines = [
        {
            "lineId": "l1",
            "productNumber": "TSHIRT-RED-M",
            "description": "Red T-Shirt",
            "quantity": 2,
            "unitPrice": "250.00",
            "salesTotal": "500.00",
            "taxRate": "0.25",
            "taxTotal": "100.00",
        },
        {
            "type": "shipping_fee",
            "name": "PostNord",
            "quantity": 1,
            "unit_price": 4900,
            "total_amount": 4900,
            "tax_rate": 2500,
            "total_tax_amount": 980,
        },
    ]
    shipping = [{"shippingCompany": "PostNord", "trackingNumber": "PN123"}]
    ops.accept(prepare_capture(capture_event(lines=lines, shippingInfo=shipping)))
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/captures", **created("kc-1"))
    ops.execute("capture", "cap-1", token="t")
    body = json.loads(kustom_posts(http, "/captures")[0].request.body)
    assert body["order_lines"][0] == {
        "type": "physical",
        "reference": "TSHIRT-RED-M",
        "name": "Red T-Shirt",
        "quantity": 2,
        "quantity_unit": "pcs",
        "unit_price": 25000,
        "tax_rate": 2500,
        "total_amount": 50000,
        "total_discount_amount": 0,
        "total_tax_amount": 10000,
    }
    assert body["order_lines"][1]["total_amount"] == 4900
    assert body["shipping_info"] == [{"shipping_company": "PostNord", "tracking_number": "PN123"}]
    # The spec's order_line `type` enum is one pipe-joined string (a publishing quirk);
    # everything else is checked.
    checked = copy.deepcopy(body)
    for line in checked["order_lines"]:
        line.pop("type")
    validate_against("CaptureObject", checked, OM_SPEC)


def test_a_capture_of_a_partly_discounted_order_keeps_each_line_type_and_sign():
    # The cart had a discounted T-shirt line, a coupon line and a gift card paying part.
    lines = [
        {"lineId": "l1", "productNumber": "TSHIRT-RED-M", "description": "Red T-Shirt",
         "quantity": 2, "unitPrice": "250.00", "discountTotal": "50.00", "salesTotal": "450.00",
         "taxRate": "0.25", "taxTotal": "90.00"},
        {"lineId": "c1", "productNumber": "SPRING10", "type": "discount",
         "description": "Spring coupon", "quantity": 1, "unitPrice": "-45.00",
         "salesTotal": "-45.00", "taxRate": "0.25", "taxTotal": "-9.00"},
        {"lineId": "g1", "productNumber": "GIFTCARD", "type": "gift_card", "quantity": 1,
         "unitPrice": "-100.00", "salesTotal": "-100.00", "taxRate": "0", "taxTotal": "0"},
    ]  # fmt: skip
    request = prepare_capture(capture_event(amount="305.00", lines=lines))
    assert request.amount == 30500
    sent = request.kustom_body["order_lines"]
    assert [(line["type"], line["total_amount"]) for line in sent] == [
        ("physical", 45000), ("discount", -4500), ("gift_card", -10000)
    ]  # fmt: skip
    assert sent[0]["total_discount_amount"] == 5000
    assert sent[1]["unit_price"] == -4500 and sent[1]["total_tax_amount"] == -900


def test_a_refund_of_a_discounted_line_refunds_what_was_paid_for_it():
    line = {
        "lineId": "l1", "productNumber": "TSHIRT-RED-M", "quantity": 1, "unitPrice": "250.00",
        "discountTotal": "25.00", "salesTotal": "225.00", "taxRate": "0.25", "taxTotal": "45.00",
    }  # fmt: skip
    request = prepare_refund(refund_event(amount="225.00", lines=[line]))
    (sent,) = request.kustom_body["order_lines"]
    assert (sent["unit_price"], sent["total_discount_amount"], sent["total_amount"]) == (
        25000, 2500, 22500
    )  # fmt: skip
    with pytest.raises(PaymentEventError) as refused:  # the list price is not what was paid
        prepare_refund(refund_event(amount="250.00", lines=[line]))
    assert refused.value.code == "lines_do_not_match_amount"


@pytest.mark.parametrize(
    ("snapshot", "amount_field"),
    [("om-capture-se", "captured_amount"), ("om-capture-us", "captured_amount"),
     ("om-refund-se", "refunded_amount"), ("om-refund-us", "refunded_amount")],
)  # fmt: skip
def test_order_lines_krokedil_sent_to_kustoms_playground_pass_through_unchanged(
    snapshot: str, amount_field: str
):
    recorded = json.loads((FIXTURES / "krokedil" / f"{snapshot}.json").read_text())["body"]
    amount = recorded[amount_field]
    lines = recorded["order_lines"]
    assert kustom_order_lines(copy.deepcopy(lines), "SEK", amount) == [
        {"total_discount_amount": 0, "tax_rate": 0, "total_tax_amount": 0, **line} for line in lines
    ]


def kline(**changes: Any) -> dict[str, Any]:
    return {"name": "x", "quantity": 1, "unit_price": 100, "total_amount": 100, **changes}


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([kline()], "lines_do_not_match_amount"),
        ([kline(quantity=2)], "invalid_lines"),
        ([kline(unit_price=Decimal("1.5"))], "invalid_lines"),
        ([kline(x=1)], "invalid_lines"),
        ([kline(type="voucher")], "invalid_lines"),
        (
            [{"lineId": "l", "productNumber": "p", "quantity": 1, "unitPrice": "1.001",
              "salesTotal": "1.001", "taxRate": "0", "taxTotal": "0"}],
            "amount_not_representable",
        ),
        ([{"lineId": "l"}], "invalid_lines"),
        (["not an object"], "invalid_lines"),
    ],
)  # fmt: skip
def test_lines_that_do_not_add_up_are_refused(lines, code):
    with pytest.raises(PaymentEventError) as refused:
        kustom_order_lines(lines, "SEK", 54900 if code != "lines_do_not_match_amount" else 200)
    assert (refused.value.status, refused.value.code) == (400, code)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("0", "SEK", "invalid_amount"),
        ("549.001", "SEK", "amount_not_representable"),
        ("1.5", "JPY", "amount_not_representable"),
        ("2000000.01", "SEK", "invalid_amount"),
    ],
)
def test_amounts_kustom_cannot_take_are_refused(amount, currency, code):
    event = capture_event(amount=amount)
    event["currencyCode"] = currency
    with pytest.raises(PaymentEventError) as refused:
        prepare_capture(event)
    assert refused.value.code == code


def test_minor_units_follow_the_currency_exponent():
    for amount, currency, minor in (
        ("549", "JPY", 549),
        ("1.234", "KWD", 1234),
        ("5.5", "SEK", 550),
    ):
        event = capture_event(amount=amount)
        event["currencyCode"] = currency
        assert prepare_capture(event).amount == minor


def test_unknown_shipping_info_field_is_refused():
    with pytest.raises(PaymentEventError):
        kustom_shipping_info([{"carrier": "DHL"}])


# Refunds ------------------------------------------------------------------------------------


def test_refund_is_bounded_by_what_is_captured_and_not_refunded(ops, payments, http):
    ops.accept(prepare_refund(refund_event("ref-big", amount="300.00")))
    ops.accept(prepare_refund(refund_event("ref-ok", amount="100.00")))
    http.get(OM_URL, json=om_order(captured_amount=54900, refunded_amount=30000))
    http.post(f"{OM_URL}/refunds", **created("kr-1", "Refund-Id"))

    assert ops.execute("refund", "ref-big", token="t").status == "failed"
    assert payments.load("refund", "ref-big").error["code"] == "refund_exceeds_captured"
    assert ops.execute("refund", "ref-ok", token="t").status == "refunded"
    posts = kustom_posts(http, "/refunds")
    assert len(posts) == 1
    assert posts[0].request.headers["Klarna-Idempotency-Key"] == idempotency_key("refund", "ref-ok")
    body = json.loads(posts[0].request.body)
    assert body == {"refunded_amount": 10000, "reference": "ref-ok"}
    validate_against("RefundObject", body, OM_SPEC)
    assert payments.load("refund", "ref-ok").result_body() == {
        "refundId": "ref-ok",
        "status": "refunded",
        "kustomRefundId": "kr-1",
        "error": None,
    }


def test_a_refund_on_an_order_in_another_currency_fails_up_front(ops, payments, http):
    ops.accept(prepare_refund(refund_event()))
    http.get(OM_URL, json=om_order(purchase_currency="EUR", captured_amount=54900))
    assert ops.execute("refund", "ref-1", token="t").status == "failed"
    assert payments.load("refund", "ref-1").error["code"] == "currency_mismatch"
    assert kustom_posts(http, "/refunds") == []


def test_a_refund_that_landed_before_a_crash_is_recognised_by_its_reference(ops, payments, http):
    ops.accept(prepare_refund(refund_event(amount="100.00")))
    landed = {"refund_id": "kr-9", "reference": "ref-1", "refunded_amount": 10000}
    http.get(OM_URL, json=om_order(captured_amount=54900, refunded_amount=10000, refunds=[landed]))
    outcome = ops.execute("refund", "ref-1", token="redelivered")
    assert outcome.status == "refunded"
    assert payments.load("refund", "ref-1").kustom_id == "kr-9"
    assert kustom_posts(http, "/refunds") == []


def test_kustom_refusing_a_refund_becomes_a_failed_result_with_its_code(ops, payments, http):
    ops.accept(prepare_refund(refund_event()))
    http.get(OM_URL, json=om_order(captured_amount=54900))
    http.post(
        f"{OM_URL}/refunds",
        status=403,
        json={
            "error_code": "REFUND_NOT_ALLOWED",
            "error_messages": ["order is not captured"],
            "correlation_id": "corr-2",
        },
    )
    assert ops.execute("refund", "ref-1", token="t").status == "failed"
    error = payments.load("refund", "ref-1").error
    assert (error["code"], error["message"], error["correlationId"]) == (
        "REFUND_NOT_ALLOWED", "order is not captured", "corr-2"
    )  # fmt: skip
    assert payments.load("refund", "ref-1").result_body()["status"] == "failed"


def test_refund_carries_no_shipping_info():
    request = prepare_refund(refund_event(shippingInfo=[{"shippingCompany": "DHL"}]))
    assert "shipping_info" not in request.kustom_body


# Cancels ------------------------------------------------------------------------------------


def test_cancel_with_nothing_captured_cancels(ops, payments, http):
    ops.accept(prepare_cancel(CART))
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/cancel", status=204)
    outcome = ops.execute("cancel", CART, token="t")
    assert (outcome.status, outcome.deliver) == ("cancelled", False)
    assert len(kustom_posts(http, "/cancel")) == 1
    assert kustom_posts(http, "/release-remaining-authorization") == []
    assert payments.load("cancel", CART).result_delivered, "cancels have no result endpoint"


def test_cancel_after_a_partial_capture_releases_the_rest(ops, http):
    ops.accept(prepare_cancel(CART))
    http.get(OM_URL, json=om_order(captured_amount=20000, remaining_authorized_amount=34900))
    http.post(f"{OM_URL}/release-remaining-authorization", status=204)
    assert ops.execute("cancel", CART, token="t").status == "released"
    assert kustom_posts(http, "/cancel") == []
    release = kustom_posts(http, "/release-remaining-authorization")
    assert release[0].request.headers["Klarna-Idempotency-Key"] == idempotency_key(
        "release", f"{ORDER}:1"
    )


def test_cancel_waits_for_queued_captures_of_the_cart(ops, http):
    ops.accept(prepare_capture(capture_event(amount="100.00")))
    ops.accept(prepare_cancel(CART))
    with pytest.raises(CancelDeferred) as deferred:
        ops.execute("cancel", CART, token="t")
    assert deferred.value.waiting_for == ["capture:cap-1"]
    assert len(http.calls) == 0


def test_a_failed_cancel_can_be_asked_for_again_with_a_new_key(ops, payments, http):
    assert ops.accept(prepare_cancel(CART)).enqueue
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/cancel", status=403, json={"error_code": "CANCEL_NOT_ALLOWED"})
    assert ops.execute("cancel", CART, token="t").status == "failed"
    again = ops.accept(prepare_cancel(CART))
    assert (again.enqueue, again.status) == (True, "queued")
    http.replace(responses.POST, f"{OM_URL}/cancel", status=204)
    assert ops.execute("cancel", CART, token="t2").status == "cancelled"
    keys = [c.request.headers["Klarna-Idempotency-Key"] for c in kustom_posts(http, "/cancel")]
    assert keys == [
        idempotency_key("cancel", f"{ORDER}:1"),
        idempotency_key("cancel", f"{ORDER}:2"),
    ]


# Results ------------------------------------------------------------------------------------


def test_result_is_resent_while_the_backend_is_down_then_delivered_once(ops, payments, http):
    ops.accept(prepare_capture(capture_event()))
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/captures", **created("kc-1"))
    ops.execute("capture", "cap-1", token="t")
    assert payments.due_undelivered(0, 10) == ["capture:cap-1"]

    result_url = f"{COMMERCE}/captures/cap-1/result"
    http.post(result_url, status=503)
    with pytest.raises(CommerceUnavailable):
        ops.deliver_result("capture", "cap-1")
    assert not payments.load("capture", "cap-1").result_delivered

    http.replace(
        responses.POST,
        result_url,
        json={"status": "recorded"},
        match=[
            matchers.json_params_matcher(
                {
                    "captureId": "cap-1",
                    "status": "captured",
                    "kustomCaptureId": "kc-1",
                    "error": None,
                }
            )
        ],
    )
    assert ops.deliver_result("capture", "cap-1") == "delivered"
    assert ops.deliver_result("capture", "cap-1") == "already_delivered"
    assert len(kustom_posts(http, "/captures/cap-1/result")) == 2
    assert payments.load("capture", "cap-1").result_delivered
    assert payments.due_undelivered(0, 10) == []


def test_result_refused_by_the_backend_is_not_resent(ops, payments, http):
    ops.accept(prepare_capture(capture_event()))
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/captures", **created("kc-1"))
    ops.execute("capture", "cap-1", token="t")
    http.post(f"{COMMERCE}/captures/cap-1/result", status=422, json={"error": {"code": "bad"}})
    with pytest.raises(CommerceRejected):
        ops.deliver_result("capture", "cap-1")
    assert payments.due_undelivered(0, 10) == []
    assert json.loads(payments.load("capture", "cap-1").fields["delivery_error"])["code"] == "bad"


def test_every_payment_key_has_a_ttl(ops, payments, fake_redis, http):
    ops.accept(prepare_capture(capture_event()))
    ops.accept(prepare_capture(capture_event("cap-2", amount="1.00")))
    http.get(OM_URL, json=om_order())
    http.post(f"{OM_URL}/captures", **created("kc-1"))
    ops.execute("capture", "cap-1", token="t")
    keys = fake_redis.keys("kustom:capture:*") + fake_redis.keys("kustom:payments:*")
    assert len(keys) == 5  # two captures, pending, undelivered, the cart's set
    for key in keys:
        assert 0 < fake_redis.ttl(key) <= 3600, key
