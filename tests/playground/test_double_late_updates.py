"""The Kustom double can apply an order update after its client gave up, overtaken by a
later update: what a Kustom outage does to a merchant whose read timed out (the sync's
unknown outcomes, tests/integration/test_sync_unknown_outcome.py, depend on it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from harness.waiting import wait_until
from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from playground.kustom import create_app
from playground.server import ServerThread
from tests.conftest import make_render

AUTH = ("playground", "playground")
MERCHANT_URLS = {
    "terms": "https://merchant.example/terms",
    "checkout": "https://merchant.example/checkout",
    "confirmation": "https://merchant.example/confirmation",
    "push": "https://merchant.example/push?order_id={checkout.order.id}",
}


def payload(quantity: int) -> dict[str, Any]:
    return build_order_payload(load_render(make_render("cart-late", 1, quantity=quantity)))


def quantity_at_kustom(url: str, order_id: str) -> int:
    order = requests.get(f"{url}/checkout/v3/orders/{order_id}", auth=AUTH, timeout=5).json()
    quantity: int = order["order_lines"][0]["quantity"]
    return quantity


@pytest.fixture
def double() -> Iterator[tuple[str, Any]]:
    app = create_app()
    with ServerThread(app, name="late-kustom") as server:
        yield server.url, app.extensions["kustom_double"]


def test_a_delayed_update_lands_after_its_client_gave_up_and_after_a_newer_one(double):
    url, state = double
    created = requests.post(
        f"{url}/checkout/v3/orders",
        json={**payload(1), "merchant_urls": MERCHANT_URLS},
        auth=AUTH,
        timeout=5,
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    update_url = f"{url}/checkout/v3/orders/{order_id}"
    faults = requests.post(
        f"{url}/_double/faults",
        json={"operation": "update_order", "delay_seconds": 1.5, "count": 1},
        timeout=5,
    )
    assert faults.status_code == 200

    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(update_url, json=payload(2), auth=AUTH, timeout=(2, 0.3))
    # The client gave up; a newer update overtakes the one still in the air.
    newer = requests.post(update_url, json=payload(3), auth=AUTH, timeout=5)
    assert newer.status_code == 200
    assert quantity_at_kustom(url, order_id) == 3
    assert time.monotonic() - started < 1.5, "the newer update did not wait for the older"

    # Then the older update takes effect after all, over the newer one.
    wait_until(lambda: quantity_at_kustom(url, order_id) == 2, timeout=10)
    updates = state.calls("update_order", order_id=order_id)
    assert [(c["json"]["order_lines"][0]["quantity"], c["status"]) for c in updates] == [
        (3, 200),
        (2, 200),
    ]  # logged as they finished
