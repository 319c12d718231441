"""Issue 13, "a sync whose answer never came", end to end.

Kustom's order updates time out on the service's side (read timeout 0.5 s) but take effect
at Kustom later (the double sleeps 1.5 s, within the 3 s request lifetime this stack is
told Kustom has), while every cart gets a burst of renders: late updates land out of order,
over newer ones. Once the faults stop, every cart must end with Kustom holding the payload
of its highest version, and the service must say so only then.

This module runs its own web (gunicorn, as the Procfile does) and worker on its own Redis
database, so that the short timeouts are theirs alone; it shares the session's
redis-server and the Kustom and commerce doubles (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn
from harness.redis_server import free_port
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET, make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

CARTS = 10
READ_TIMEOUT = 0.5  # the service gives up on Kustom after this
UPDATE_DELAY = 1.5  # the double then still applies the update, this long after it came
LIFETIME = 3.0  # what the service is told Kustom's request lifetime is (> UPDATE_DELAY)
STATE_DB = 7  # this module's Redis database: state and broker
URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


@dataclass
class Stack:
    url: str
    worker: CeleryWorker


@pytest.fixture(scope="module")
def stack(
    redis_server, kustom_double, commerce_double, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    redis_url = redis_server.url_for(STATE_DB)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "KUSTOM_API_URL": kustom_double[0].url,
        "KUSTOM_USERNAME": "playground",
        "KUSTOM_PASSWORD": "playground",
        "KUSTOM_READ_TIMEOUT": str(READ_TIMEOUT),
        "KUSTOM_REQUEST_LIFETIME_SECONDS": str(LIFETIME),
        "COMMERCE_API_URL": commerce_double[0].url,
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "TASK_RETRY_BASE_SECONDS": "0.2",
        "TASK_RETRY_MAX_SECONDS": "2",
        "CELERY_VISIBILITY_TIMEOUT": "60",  # above a lease's 8.5 s + the 25 s run
        "SYNC_LEASE_SECONDS": "8",
        "PAYMENT_LEASE_SECONDS": "20",
        "COMPLETION_LEASE_SECONDS": "3",
        "TASK_TIME_LIMIT_SECONDS": "25",
        "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
        "SYNC_STALE_SECONDS": "2",
        "RECONCILE_INTERVAL_SECONDS": "3600",
    }
    log = Path(tmp_path_factory.mktemp("unknown-outcome")) / "gunicorn.log"
    web = Gunicorn(env, app_spec="webhooks.app:create_app()", port=port, log_path=log)
    worker = CeleryWorker(env, name="unknown-outcome", concurrency=2)
    try:
        web.start()
        worker.start(timeout=60)
        yield Stack(web.url, worker)
    finally:
        worker.stop()
        web.stop()


def post_render(http: requests.Session, stack: Stack, render: dict[str, Any]) -> None:
    body = json.dumps(render).encode()
    response = http.post(
        f"{stack.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert response.status_code == 202, response.text


def status(http: requests.Session, stack: Stack, cart_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = http.get(f"{stack.url}/carts/{cart_id}/kustom/status").json()
    return answer


def render_of(cart_id: str, version: int) -> dict[str, Any]:
    """Version ``version`` of the cart holds ``version`` T-shirts: every version differs."""
    return make_render(cart_id, version, quantity=version)


def test_late_updates_under_timeouts_end_with_kustom_holding_the_highest_version(
    http, stack, kustom
):
    started = time.monotonic()
    carts = [f"cart-late-{i}-{time.time_ns()}" for i in range(CARTS)]
    orders: dict[str, str] = {}
    for cart_id in carts:
        post_render(http, stack, render_of(cart_id, 1))
        created = http.post(f"{stack.url}/carts/{cart_id}/kustom", json=URLS)
        assert created.status_code == 200, created.text
        orders[cart_id] = created.json()["kustomOrderId"]

    def updates_logged(before: float | None = None) -> dict[str, int]:
        counts = dict.fromkeys(carts, 0)
        for cart_id, order_id in orders.items():
            for call in kustom.calls("update_order", order_id=order_id):
                if before is None or call["at"] < before:
                    counts[cart_id] += 1
        return counts

    # Every update from now on is answered too late for the service, and applied anyway.
    fault_count = 5000
    kustom.add_faults("update_order", delay_seconds=UPDATE_DELAY, count=fault_count)
    version = 1
    deadline = time.monotonic() + 25
    while True:
        version += 1
        for cart_id in carts:
            post_render(http, stack, render_of(cart_id, version))
        if version >= 4 and all(updates_logged().values()):
            break  # each cart has had an update land after its client gave up
        assert time.monotonic() < deadline, f"carts without a late update: {updates_logged()}"
        time.sleep(0.3)  # the pace of the burst

    # Kustom recovers; the last render of the burst comes right after.
    with kustom.lock:
        delayed = fault_count - len(kustom.pending_faults().get("update_order", []))
        kustom.clear_faults()
        recovered_at = time.time()
    final = version + 1
    for cart_id in carts:
        post_render(http, stack, render_of(cart_id, final))

    # Every delayed update has taken effect at Kustom (so a stale one would show)...
    wait_until(
        lambda: (
            time.time() > recovered_at + UPDATE_DELAY
            and sum(updates_logged(before=recovered_at).values()) >= delayed
        ),
        timeout=20,
    )
    # ...and the service says every cart is in sync.
    wait_until(
        lambda: all((s := status(http, stack, c))["pendingHash"] == s["syncHash"] for c in carts),
        timeout=40,
        interval=0.2,
    )

    stale = {}
    for cart_id in carts:
        expected = build_order_payload(load_render(render_of(cart_id, final)))
        current = status(http, stack, cart_id)
        assert current["syncing"] is False
        assert current["pendingHash"] == current["syncHash"] == payload_hash(expected)
        order = kustom.stored_order(orders[cart_id])["checkout"]
        held = {k: order[k] for k in ("order_lines", "order_amount", "order_tax_amount")}
        if held != {k: expected[k] for k in held}:
            stale[cart_id] = order["order_lines"][0]["quantity"]
    assert not stale, (
        f"Kustom holds an older cart than version {final} (T-shirts held: {stale}) while the "
        "service reports them in sync"
    )
    assert delayed >= CARTS
    assert time.monotonic() - started < 60
