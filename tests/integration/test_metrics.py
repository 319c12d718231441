"""Issue 7: after a scenario, /metrics on the web process shows what web and worker did."""

from __future__ import annotations

import json
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kustom_app.signing import callback_token
from tests.conftest import CALLBACK_SECRET, make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    """A /metrics page's samples by (name, sorted labels)."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(http, web) -> dict[tuple[str, tuple], float]:
    response = http.get(f"{web.url}/metrics")
    assert response.status_code == 200
    return samples_of(response.text)


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_a_checkout_sync_and_completion(
    http, web, worker, kustom_double, commerce_double
):
    kustom, commerce = kustom_double[1], commerce_double[1]
    before = scrape(http, web)
    cart = f"cart-{uuid.uuid4().hex[:12]}"

    def post(render):
        body = json.dumps(render).encode()
        return http.post(
            f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
        )

    post(make_render(cart, 1))
    order = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).json()["kustomOrderId"]
    post(make_render(cart, 3, quantity=3))
    post(make_render(cart, 2, quantity=2))  # older: ignored
    wait_until(lambda: not http.get(f"{web.url}/carts/{cart}/kustom/status").json()["syncing"])
    commerce.put_cart(make_render(cart, 3, quantity=3))
    token = {"cart": cart, "token": callback_token(CALLBACK_SECRET, cart)}
    kustom_order = kustom.stored_order(order)["checkout"]
    approved = http.post(f"{web.url}/kustom/validate", params=token, json=kustom_order)
    assert approved.status_code == 200
    tampered = {**kustom_order, "order_amount": kustom_order["order_amount"] + 100}
    assert http.post(f"{web.url}/kustom/validate", params=token, json=tampered).status_code == 400
    # a push for an order Kustom does not know: the task gives up (dead letter)
    http.post(f"{web.url}/kustom/push", params={**token, "order_id": str(uuid.uuid4())})
    kustom.complete_order(order)
    assert http.post(f"{web.url}/carts/{cart}/kustom/confirm").status_code == 200
    wait_until(lambda: kustom.stored_order(order)["acknowledged"])

    after = wait_until(
        lambda: (
            (s := scrape(http, web))
            and value(s, "kustom_api_calls_total", operation="acknowledge", outcome="2xx")
            > value(before, "kustom_api_calls_total", operation="acknowledge", outcome="2xx")
            # the unknown order's push is its own task: wait for its dead letter too
            and value(s, "kustom_dead_letters_total", task="completeKustomOrder")
            > value(before, "kustom_dead_letters_total", task="completeKustomOrder")
            and s
        )
    )

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("kustom_cart_events_total", outcome="unchanged") >= 1  # before any order
    assert delta("kustom_cart_events_total", outcome="enqueued") >= 1
    assert delta("kustom_cart_events_total", outcome="stale") >= 1
    assert delta("kustom_sync_pushes_total") >= 1  # counted in the worker process
    assert delta("kustom_sync_lag_seconds_count") >= 1
    assert delta("kustom_api_calls_total", operation="create_order", outcome="2xx") >= 1
    assert delta("kustom_api_calls_total", operation="update_order", outcome="2xx") >= 1
    assert delta("kustom_completions_total", path="confirm") >= 1
    assert (
        delta(
            "kustom_http_requests_total",
            endpoint="/carts/<cart_id>/kustom/confirm",
            method="POST",
            status="200",
        )
        >= 1
    )
    assert (
        delta("kustom_http_request_duration_seconds_count", endpoint="/commerce/cart-mutation") >= 3
    )
    assert delta("kustom_validation_outcomes_total", outcome="approved", code="") >= 1
    assert (
        delta("kustom_validation_outcomes_total", outcome="rejected", code="approval_failed") >= 1
    )
    assert delta("kustom_dead_letters_total", task="completeKustomOrder") >= 1
    assert ("kustom_carts_syncing", ()) in after
