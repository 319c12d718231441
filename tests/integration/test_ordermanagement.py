"""Issue 5 end to end: captures, refunds, cancels — once each, through outages and SIGKILL.

This module runs its own stack (`PaymentsStack`): a private redis-server, its own Celery
worker and its own web app, sharing only the Kustom and commerce doubles with the session.
Tasks sent here never reach the session worker and the session worker cannot steal them,
so a worker can be SIGKILLed, and a visibility timeout of a few seconds used, without
touching any other test.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from celery import Celery

from harness.celery_worker import CeleryWorker
from harness.redis_server import RedisServer
from kustom_app.kustom import idempotency_key
from kustom_app.services import Services
from kustom_app.settings import Settings
from playground.server import ServerThread
from tests.conftest import make_render, signed_headers
from tests.integration.conftest import LateApp, wait_until
from workers.celery_app import app as main_app
from workers.celery_app import make_celery

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}
VISIBILITY_TIMEOUT = 9  # seconds: a SIGKILLed worker's message comes back quickly
# What must stay below it (Settings refuses to start otherwise), sized to these tests: the
# slowest call here is a capture Kustom holds for 2 s. A retry's countdown counts with its
# run: a busy sync's 3.5 s, or the session's 2 s retry cap, plus the 4.5 s time limit.
BELOW_VISIBILITY = {
    "SYNC_LEASE_SECONDS": "3",
    "PAYMENT_LEASE_SECONDS": "4",
    "TASK_TIME_LIMIT_SECONDS": "4.5",
    "TASK_SOFT_TIME_LIMIT_SECONDS": "4",
}


class SendQueue:
    """The `kustom_app.jobs.Jobs` of the web app and the sweeper, through a private Celery app.

    Sends by task name, exactly as workers.enqueue routes them.
    """

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def _send(self, name: str, *args: Any) -> None:
        self.celery.send_task(name, args=args)

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        self._send("syncKustomOrder", cart_id, payload_hash, payload)

    def sync_job(self, cart_id: str, payload_hash: str) -> None:
        return None  # a private Celery app: jobs go through `sync`

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        self._send("completeKustomOrder", cart_id, order_id, path)

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        self._send("acknowledgeKustomOrder", cart_id, order_id)

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        self._send("forwardFraudDecision", cart_id, order_id, event_type)

    def capture(self, capture_id: str) -> None:
        self._send("captureKustomOrder", capture_id)

    def refund(self, refund_id: str) -> None:
        self._send("refundKustomOrder", refund_id)

    def cancel(self, cart_id: str) -> None:
        self._send("cancelKustomOrder", cart_id)

    def payment(self, kind: str, op_id: str) -> None:
        self._send(f"{kind}KustomOrder", op_id)

    def deliver(self, kind: str, op_id: str) -> None:
        self._send("deliverPaymentResult", kind, op_id)


class PaymentsStack:
    """Private Redis (AOF) + worker + web app on the shared doubles."""

    def __init__(self, service_env: dict[str, str], name: str) -> None:
        self.name = name
        self.redis_server = RedisServer(appendonly=True).start()
        self.late = LateApp()
        self.web = ServerThread(self.late, name=f"{name}-web").start()
        self.env = {
            **service_env,
            "REDIS_URL": self.redis_server.url,
            "CELERY_BROKER_URL": self.redis_server.url,
            "PUBLIC_BASE_URL": self.web.url,
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            **BELOW_VISIBILITY,
        }
        self.settings = Settings.from_env(self.env)
        self.celery = make_celery(self.settings)
        main_app.set_current()  # the private app only sends; the process keeps its own
        self.queue = SendQueue(self.celery)
        from webhooks.app import create_app

        self.late.app = create_app({"SETTINGS": self.settings, "TASK_QUEUE": self.queue})
        self.services = self.late.app.extensions["kustom"]
        self.workers: list[CeleryWorker] = []
        self.http = requests.Session()

    @property
    def redis(self) -> redis.Redis:
        return self.services.redis

    def start_worker(self, suffix: str = "") -> CeleryWorker:
        worker = CeleryWorker(self.env, name=f"{self.name}{suffix}", concurrency=2).start()
        self.workers.append(worker)
        return worker

    def supervise(self) -> int:
        """Restart workers that exited, as the process supervisor does in production.

        A Celery worker can die when Redis restarts under it: kombu may fail while closing
        the broken broker connection ("Unrecoverable error: AttributeError ... hostname")
        and the worker exits. docker-compose's ``restart: unless-stopped`` brings it back.
        """
        dead = [w for w in self.workers if w.process is None or w.process.poll() is not None]
        for worker in dead:
            self.workers.remove(worker)
            worker.stop()
            self.start_worker(f"-restarted-{len(self.workers)}-{time.monotonic_ns()}")
        return len(dead)

    def fresh_services(self) -> Services:
        """Services of a process started now (e.g. the sweeper's), on this stack's Redis."""
        return Services(self.settings)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.http.close()
        self.web.stop()
        self.celery.close()
        self.redis_server.close()

    # Driving it ------------------------------------------------------------------------

    def post_signed(self, path: str, body: Any) -> requests.Response:
        raw = json.dumps(body).encode()
        return self.http.post(f"{self.web.url}{path}", data=raw, headers=signed_headers(raw))

    def open_cart(self, kustom: Any, *, quantity: int = 2) -> tuple[str, str]:
        """A cart with a Kustom order (not paid yet)."""
        cart = f"cart-{uuid.uuid4().hex[:12]}"
        assert self.post_signed("/commerce/cart-mutation", make_render(cart, 1, quantity)).ok
        response = self.http.post(f"{self.web.url}/carts/{cart}/kustom", json=URLS)
        assert response.status_code == 200, response.text
        return cart, response.json()["kustomOrderId"]

    def paid_cart(self, kustom: Any, *, quantity: int = 2) -> tuple[str, str]:
        """A cart the shopper paid for, completed through the confirm path."""
        cart, order = self.open_cart(kustom, quantity=quantity)
        kustom.complete_order(order)
        response = self.http.post(f"{self.web.url}/carts/{cart}/kustom/confirm")
        assert response.status_code == 200, response.text
        return cart, order


@pytest.fixture(scope="module")
def stack(service_env) -> Iterator[PaymentsStack]:
    stack = PaymentsStack(service_env, "payments")
    try:
        stack.start_worker()
        yield stack
    finally:
        stack.close()


def captures_at_kustom(kustom, order_id: str) -> list[dict[str, Any]]:
    return kustom.stored_order(order_id)["captures"]


def results_for(commerce, kind: str, op_id: str) -> list[dict[str, Any]]:
    key = "captureId" if kind == "captures" else "refundId"
    with commerce.lock:
        return [dict(r) for r in commerce.results[kind] if r.get(key) == op_id]


def wait_result(commerce, kind: str, op_id: str, timeout: float = 20.0) -> dict[str, Any]:
    return wait_until(lambda: results_for(commerce, kind, op_id), timeout=timeout)[0]


def capture_event(cart: str, amount: str, capture_id: str | None = None) -> dict[str, Any]:
    return {
        "captureId": capture_id or f"cap-{uuid.uuid4().hex[:10]}",
        "cartId": cart,
        "amount": amount,
        "currencyCode": "SEK",
    }


def test_capture_through_two_503s_is_one_capture_with_one_key(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    kustom.add_faults("capture", [503, 503])
    event = capture_event(cart, "549.00")
    response = stack.post_signed("/commerce/payment-capture", event)
    assert response.status_code == 202
    assert response.json() == {"captureId": event["captureId"], "status": "queued"}

    result = wait_result(commerce, "captures", event["captureId"])
    captures = captures_at_kustom(kustom, order)
    assert len(captures) == 1 and captures[0]["reference"] == event["captureId"]
    assert captures[0]["captured_amount"] == 54900
    calls = kustom.calls("capture", order_id=order)
    assert [c["status"] for c in calls] == [503, 503, 201]
    assert {c["idempotency_key"] for c in calls} == {idempotency_key("capture", event["captureId"])}
    assert result == {
        "captureId": event["captureId"],
        "status": "captured",
        "kustomCaptureId": captures[0]["capture_id"],
        "error": None,
    }
    time.sleep(0.3)
    assert len(results_for(commerce, "captures", event["captureId"])) == 1


def test_the_same_capture_event_three_times_is_one_capture(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    event = capture_event(cart, "100.00")
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(lambda _: stack.post_signed("/commerce/payment-capture", event), range(3))
        )
    assert [a.status_code for a in answers] == [202, 202, 202]
    wait_result(commerce, "captures", event["captureId"])
    again = stack.post_signed("/commerce/payment-capture", event)
    assert again.json() == {"captureId": event["captureId"], "status": "captured"}
    assert len(captures_at_kustom(kustom, order)) == 1
    assert len(kustom.calls("capture", order_id=order)) == 1
    assert len(results_for(commerce, "captures", event["captureId"])) == 1


def test_worker_sigkilled_mid_capture_is_redelivered_and_captures_once(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    (worker,) = stack.workers  # the only consumer of this stack's queues
    kustom.add_faults("capture", delay_seconds=2.0)  # holds the request inside Kustom
    event = capture_event(cart, "200.00")
    assert stack.post_signed("/commerce/payment-capture", event).status_code == 202
    wait_until(lambda: "capture" not in kustom.pending_faults(), timeout=10)  # mid-request
    worker.kill()
    stack.workers.remove(worker)
    assert results_for(commerce, "captures", event["captureId"]) == []
    record = stack.redis.hgetall(f"kustom:capture:{event['captureId']}")
    assert record[b"status"] == b"queued" and record[b"runs"] == b"1"

    # A new worker restores the unacknowledged message once the visibility timeout is
    # over (kombu scans for them when a worker starts) and runs the capture again, with
    # the same idempotency key.
    unacked = stack.redis.zrange("unacked_index", 0, -1, withscores=True)
    assert unacked, "the killed worker's message waits, unacknowledged, in the broker"
    delivered_at = max(score for _, score in unacked)
    time.sleep(max(0.0, delivered_at + VISIBILITY_TIMEOUT + 0.5 - time.time()))
    stack.start_worker("-after-kill")
    result = wait_result(commerce, "captures", event["captureId"], timeout=30)
    captures = captures_at_kustom(kustom, order)
    assert len(captures) == 1, captures
    assert result["status"] == "captured"
    assert result["kustomCaptureId"] == captures[0]["capture_id"]
    assert {c["idempotency_key"] for c in kustom.calls("capture", order_id=order)} == {
        idempotency_key("capture", event["captureId"])
    }
    record = stack.redis.hgetall(f"kustom:capture:{event['captureId']}")
    assert int(record[b"runs"]) == 2, "the redelivered task ran the capture a second time"


def test_over_capture_is_refused_without_asking_kustom(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    first = capture_event(cart, "500.00")
    stack.post_signed("/commerce/payment-capture", first)
    assert wait_result(commerce, "captures", first["captureId"])["status"] == "captured"

    too_much = capture_event(cart, "50.00")  # 49.00 is left of 549.00
    stack.post_signed("/commerce/payment-capture", too_much)
    result = wait_result(commerce, "captures", too_much["captureId"])
    assert result["status"] == "failed" and result["kustomCaptureId"] is None
    assert result["error"]["code"] == "capture_exceeds_authorization"
    assert "49.00 SEK" in result["error"]["message"]
    assert len(kustom.calls("capture", order_id=order)) == 1, "the refused one never left"
    assert kustom.stored_order(order)["order_management"]["captured_amount"] == 50000


def test_refund_after_capture_and_over_refund_refused(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    capture = capture_event(cart, "300.00")
    stack.post_signed("/commerce/payment-capture", capture)
    wait_result(commerce, "captures", capture["captureId"])

    refund = {"refundId": f"ref-{uuid.uuid4().hex[:8]}", "cartId": cart, "amount": "120.50",
              "currencyCode": "SEK", "description": "Returned one"}  # fmt: skip
    answer = stack.post_signed("/commerce/payment-refund", refund)
    assert answer.status_code == 202
    assert answer.json() == {"refundId": refund["refundId"], "status": "queued"}
    result = wait_result(commerce, "refunds", refund["refundId"])
    refunds = kustom.stored_order(order)["refunds"]
    assert len(refunds) == 1 and refunds[0]["refunded_amount"] == 12050
    assert result == {
        "refundId": refund["refundId"],
        "status": "refunded",
        "kustomRefundId": refunds[0]["refund_id"],
        "error": None,
    }
    calls = kustom.calls("refund", order_id=order)
    assert [c["idempotency_key"] for c in calls] == [idempotency_key("refund", refund["refundId"])]

    too_much = {**refund, "refundId": f"ref-{uuid.uuid4().hex[:8]}", "amount": "200.00"}
    stack.post_signed("/commerce/payment-refund", too_much)
    failed = wait_result(commerce, "refunds", too_much["refundId"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "refund_exceeds_captured"
    assert len(kustom.calls("refund", order_id=order)) == 1


def test_cancel_without_captures_cancels_and_after_a_capture_releases(stack, kustom, commerce):
    untouched, untouched_order = stack.paid_cart(kustom)
    answer = stack.post_signed("/commerce/order-cancel", {"cartId": untouched})
    assert answer.status_code == 202
    assert answer.json() == {"cartId": untouched, "status": "queued"}

    partly, partly_order = stack.paid_cart(kustom)
    capture = capture_event(partly, "100.00")
    stack.post_signed("/commerce/payment-capture", capture)
    stack.post_signed("/commerce/order-cancel", {"cartId": partly})  # waits for the capture

    wait_until(lambda: kustom.stored_order(untouched_order)["om_status"] == "CANCELLED")
    wait_until(
        lambda: (
            kustom.stored_order(partly_order)["order_management"]["remaining_authorized_amount"]
            == 0
        )
    )
    assert kustom.stored_order(partly_order)["order_management"]["captured_amount"] == 10000
    assert len(kustom.calls("cancel", order_id=untouched_order)) == 1
    assert kustom.calls("release", order_id=untouched_order) == []
    assert kustom.calls("cancel", order_id=partly_order) == []
    assert len(kustom.calls("release", order_id=partly_order)) == 1
    again = stack.post_signed("/commerce/order-cancel", {"cartId": untouched})
    assert again.json() == {"cartId": untouched, "status": "cancelled"}
    assert stack.post_signed("/commerce/order-cancel", {"cartId": partly}).json()["status"] == (
        "released"
    )


def test_commerce_result_endpoint_down_then_up_gets_the_result_once(stack, kustom, commerce):
    cart, order = stack.paid_cart(kustom)
    event = capture_event(cart, "10.00")
    # Only this capture's result: the double is shared with other tests' deliveries.
    commerce.fail_next("capture_result", [503, 503, 503], only_for=event["captureId"])
    stack.post_signed("/commerce/payment-capture", event)
    result = wait_result(commerce, "captures", event["captureId"], timeout=30)
    assert result["status"] == "captured"
    attempts = [
        c
        for c in commerce.calls_for("capture_result")
        if (c["json"] or {}).get("captureId") == event["captureId"]
    ]
    assert [c["status"] for c in attempts] == [503, 503, 503, 200]
    assert len(captures_at_kustom(kustom, order)) == 1
    key = f"kustom:capture:{event['captureId']}"
    wait_until(lambda: stack.redis.hget(key, "result_delivered") == b"1")
    assert not stack.redis.zscore("kustom:payments:undelivered", f"capture:{event['captureId']}")
