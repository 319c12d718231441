"""A worker SIGKILLed mid-job: the job it held runs again within about a minute.

Without workers/broker.py's consumer registry the message waits in kombu's unacked hash
for the visibility timeout (900 s by default, which this stack keeps), and only beat's
sweeper, if it runs, would heal the cart sooner. This stack runs no beat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import make_render
from tests.integration.conftest import wait_until
from tests.integration.test_ordermanagement import PaymentsStack

pytestmark = pytest.mark.integration

DEFAULT_SYNC_LEASE = "45"  # kustom_app/settings.py: SYNC_LEASE_SECONDS


@pytest.fixture
def stack(service_env) -> Iterator[PaymentsStack]:
    stack = PaymentsStack(service_env, "worker-death")
    stack.env.update(
        CELERY_VISIBILITY_TIMEOUT="900",
        SYNC_LEASE_SECONDS=DEFAULT_SYNC_LEASE,
        TASK_TIME_LIMIT_SECONDS="25",
        TASK_SOFT_TIME_LIMIT_SECONDS="20",
    )
    try:
        stack.start_worker()
        yield stack
    finally:
        stack.close()


def test_a_sync_held_by_a_sigkilled_worker_is_pushed_within_about_a_minute(stack, kustom):
    cart, order = stack.open_cart(kustom)
    (worker,) = stack.workers
    kustom.update_delay_seconds = 4.0  # Kustom holds the update: the worker is inside it
    try:
        assert stack.post_signed("/commerce/cart-mutation", make_render(cart, 2, 5)).ok
        wait_until(lambda: stack.redis.hlen("unacked") >= 1, timeout=15)  # delivered
        time.sleep(1.5)  # and inside Kustom's call
        worker.kill()
        stack.workers.remove(worker)
        killed_at = time.monotonic()
    finally:
        kustom.update_delay_seconds = 0.0
    assert stack.redis.hlen("unacked") == 1, "the dead worker's message waits, unacknowledged"

    stack.start_worker("-after")

    def synced() -> bool:
        state = stack.services.store.load(cart)
        return state is not None and not state.syncing

    wait_until(synced, timeout=75, interval=0.25)
    took = time.monotonic() - killed_at
    lines = kustom.stored_order(order)["checkout"]["order_lines"]
    assert lines[0]["quantity"] == 5, "Kustom's order has the render the dead worker held"
    assert took < 75, f"synced {took:.0f} s after the SIGKILL"
    log = stack.workers[-1].log_path.read_text(errors="replace")
    assert "kustom.broker.restored_from_dead_consumer" in log
