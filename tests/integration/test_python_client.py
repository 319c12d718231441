"""kustom_app_client against the running service: the WSGI app on a real HTTP server, a
real redis-server and a real Celery worker (tests/integration/conftest.py), the Kustom and
commerce doubles.

A backend team's first afternoon: post a render and see it in the status endpoint; pay and
capture; find out a wrong secret is `invalid_signature`; and trust that a retry after a 503
(the answer lost on the way, or refused by a proxy) is still one event.
"""

from __future__ import annotations

import io
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from kustom_app_client import KustomAppClient, KustomAppRejected

from kustom_app.kustom import idempotency_key
from kustom_app.signing import verify_signature
from playground.server import ServerThread
from tests.conftest import COMMERCE_SECRET, make_render
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


class FlakyFront:
    """A proxy in front of the service that spoils the first ``failures`` POSTs to ``path``.

    ``lose_answer``: the service handles the request, but its answer is replaced by a 503
    (a load balancer timing out) — the ambiguous case a retry must survive. Otherwise the
    503 comes without the service seeing the request. Every attempt's body and signature
    header are recorded.
    """

    def __init__(self, app: Any, path: str, failures: int, *, lose_answer: bool) -> None:
        self.app, self.path, self.failures, self.lose_answer = app, path, failures, lose_answer
        self.attempts: list[tuple[bytes, str]] = []
        self.reached_service = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] != self.path or environ["REQUEST_METHOD"] != "POST":
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            self.attempts.append((body, environ.get("HTTP_X_COMMERCE_SIGNATURE", "")))
            spoil = len(self.attempts) <= self.failures
            if self.lose_answer or not spoil:
                self.reached_service += 1
        if not spoil:
            return self.app(environ, start_response)
        if self.lose_answer:
            answer = self.app(environ, lambda *a, **k: None)
            b"".join(answer)  # the service finishes its work
            getattr(answer, "close", lambda: None)()
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [b'{"error":{"code":"upstream_timeout","message":"proxy","details":{}}}']


@pytest.fixture
def client(web):
    with KustomAppClient(web.url, COMMERCE_SECRET, backoff_seconds=0.05) as c:
        yield c


def new_cart() -> str:
    return f"cart-pyclient-{uuid.uuid4().hex[:10]}"


def paid_cart(client: KustomAppClient, http, web, kustom) -> tuple[str, str]:
    """A cart rendered through the client, checked out and paid at the Kustom double."""
    cart = new_cart()
    client.send_cart_render(make_render(cart, 1))
    response = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS, timeout=30)
    assert response.status_code == 200, response.text
    order = response.json()["kustomOrderId"]
    kustom.complete_order(order)
    confirmed = http.post(f"{web.url}/carts/{cart}/kustom/confirm", timeout=30)
    assert confirmed.status_code == 200, confirmed.text
    return cart, order


def capture_results(commerce, capture_id: str) -> list[dict[str, Any]]:
    with commerce.lock:
        return [dict(r) for r in commerce.results["captures"] if r.get("captureId") == capture_id]


def test_a_render_is_accepted_and_shows_in_the_status(client, worker):
    cart = new_cart()
    accepted = client.send_cart_render(make_render(cart, 3))

    assert accepted["cartId"] == cart and accepted["pendingHash"]
    status = client.cart_status(cart)
    assert status["cartId"] == cart
    assert status["pendingHash"] == accepted["pendingHash"]
    assert status["kustomOrderId"] is None  # no checkout yet


def test_capture_of_a_paid_cart_is_queued_and_reported(client, http, web, worker, kustom, commerce):
    cart, order = paid_cart(client, http, web, kustom)
    capture_id = f"cap-{uuid.uuid4().hex[:10]}"

    accepted = client.capture_payment(
        capture_id=capture_id, cart_id=cart, amount=Decimal("549.00"), currency_code="SEK"
    )

    assert accepted == {"captureId": capture_id, "status": "queued"}
    result = wait_until(lambda: capture_results(commerce, capture_id), timeout=30)[0]
    assert result["status"] == "captured"
    assert [c["captured_amount"] for c in kustom.stored_order(order)["captures"]] == [54900]


def test_a_wrong_secret_raises_invalid_signature_and_stores_nothing(web):
    cart = new_cart()
    with KustomAppClient(web.url, "not-the-shared-secret") as wrong:
        with pytest.raises(KustomAppRejected) as caught:
            wrong.send_cart_render(make_render(cart, 1))
        assert caught.value.status == 401
        assert caught.value.code == "invalid_signature"
        assert caught.value.attempts == 1
        with pytest.raises(KustomAppRejected) as unknown:
            wrong.cart_status(cart)
    assert unknown.value.status == 404  # the render was not stored


def test_a_render_retried_after_a_503_is_the_same_render(web, worker):
    front = FlakyFront(web.app, "/commerce/cart-mutation", 1, lose_answer=False)
    cart = new_cart()
    render = make_render(cart, 5)
    with (
        ServerThread(front, name="flaky-front") as proxy,
        KustomAppClient(proxy.url, COMMERCE_SECRET, backoff_seconds=0.05) as client,
    ):
        accepted = client.send_cart_render(render)
        status = client.cart_status(cart)

    assert len(front.attempts) == 2 and front.reached_service == 1
    assert front.attempts[0][0] == front.attempts[1][0]  # same bytes: the same version
    for body, header in front.attempts:
        verify_signature(COMMERCE_SECRET, body, header)
    assert status["pendingHash"] == accepted["pendingHash"]


def test_a_capture_whose_answer_was_lost_is_one_capture(http, web, worker, kustom, commerce):
    with KustomAppClient(web.url, COMMERCE_SECRET) as direct:
        cart, order = paid_cart(direct, http, web, kustom)
    front = FlakyFront(web.app, "/commerce/payment-capture", 2, lose_answer=True)
    capture_id = f"cap-{uuid.uuid4().hex[:10]}"
    with (
        ServerThread(front, name="lossy-front") as proxy,
        KustomAppClient(proxy.url, COMMERCE_SECRET, backoff_seconds=0.05) as client,
    ):
        accepted = client.capture_payment(
            capture_id=capture_id, cart_id=cart, amount="200.00", currency_code="SEK"
        )

    assert accepted["captureId"] == capture_id
    assert len(front.attempts) == 3 and front.reached_service == 3  # three deliveries
    assert len({body for body, _ in front.attempts}) == 1
    wait_until(lambda: capture_results(commerce, capture_id), timeout=30)
    captures = kustom.stored_order(order)["captures"]
    assert [(c["reference"], c["captured_amount"]) for c in captures] == [(capture_id, 20000)]
    keys = {c["idempotency_key"] for c in kustom.calls("capture", order_id=order)}
    assert keys == {idempotency_key("capture", capture_id)}
    assert len(capture_results(commerce, capture_id)) == 1
