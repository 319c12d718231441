"""Issue 5 end to end: the sweeper heals what was interrupted, and a second run does nothing.

Each test runs a private stack (see `tests.integration.test_ordermanagement.PaymentsStack`):
its own redis-server, worker and web app, so the sweeper only ever sees this test's carts.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kustom_app.reconcile import MINUTE_MS
from kustom_app.state import now_ms, open_orders_key
from tests.conftest import make_render
from tests.domain import reconcile_policy
from tests.integration.conftest import wait_until
from tests.integration.test_ordermanagement import PaymentsStack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(service_env) -> Iterator[PaymentsStack]:
    stack = PaymentsStack(service_env, "sweeper")
    try:
        stack.start_worker()
        yield stack
    finally:
        stack.close()


def purge_broker(stack: PaymentsStack) -> int:
    """Drop every queued task message, as a lost broker or a botched deploy would."""
    keys = [k for q in ("kustom.sync", "kustom.orders") for k in stack.redis.scan_iter(f"{q}*")]
    return int(stack.redis.delete(*keys)) if keys else 0


def last_run(stack: PaymentsStack) -> dict[str, Any] | None:
    raw = stack.redis.get("kustom:reconcile:last")
    return json.loads(raw) if raw else None


def run_sweeper_task(stack: PaymentsStack) -> dict[str, Any]:
    """Send reconcileKustomOrders to the stack's worker and wait for its report."""
    before = (last_run(stack) or {}).get("at")
    stack.celery.send_task("reconcileKustomOrders")
    return wait_until(lambda: (r := last_run(stack)) and r["at"] != before and r, timeout=15)


def acknowledged(kustom, order_id: str) -> bool:
    return bool(kustom.stored_order(order_id)["acknowledged"])


def cart_state(stack: PaymentsStack, cart: str) -> str:
    return stack.services.store.load(cart).cart_state


def test_one_sweeper_run_heals_four_interruptions_and_a_second_changes_nothing(
    stack, kustom, commerce
):
    (worker,) = stack.workers
    worker.stop()  # everything below happens while no worker runs
    store = stack.services.store

    # 1. A cart left syncing: its sync job was queued, then lost with the broker.
    syncing, syncing_order = stack.open_cart(kustom)
    assert stack.post_signed("/commerce/cart-mutation", make_render(syncing, 2, 3)).ok
    # 2. A completion claim whose holder died before reaching the commerce backend.
    claimed, claimed_order = stack.open_cart(kustom)
    kustom.complete_order(claimed_order)
    assert store.claim_completion(claimed, "dead", claimed_order, "push", lease_ms=1).action == (
        "claimed"
    )
    # 3. A completed cart whose acknowledgement task was lost.
    unacked, unacked_order = stack.paid_cart(kustom)
    # 4. A paid order whose push never arrived (a firewall) and no confirmation either.
    silent, silent_order = stack.open_cart(kustom)
    kustom.complete_order(silent_order)

    assert purge_broker(stack) >= 2  # the sync and the acknowledgement
    # Time passes: the sync is stale, the ack overdue, the silent order worth a look.
    stack.redis.zadd(store.syncing_key, {syncing: now_ms() - 60_000}, xx=True)
    stack.redis.zadd(store.unacked_key, {unacked: now_ms() - 3_600_000}, xx=True)
    stack.redis.zadd(open_orders_key("kustom"), {silent: now_ms() - 1}, xx=True)
    stack.start_worker("-back")
    time.sleep(0.5)
    assert store.load(syncing).syncing and cart_state(stack, claimed) == "completing"
    assert not acknowledged(kustom, unacked_order) and cart_state(stack, silent) == "open"

    first = run_sweeper_task(stack)
    assert (
        first["resynced"],
        first["completions_resumed"],
        first["acks_requeued"],
        first["missed_pushes"],
    ) == (1, 1, 1, 1)

    wait_until(lambda: not store.load(syncing).syncing)
    lines = kustom.stored_order(syncing_order)["checkout"]["order_lines"]
    assert lines[0]["quantity"] == 3, "Kustom's order has the newest render"
    for cart, order in ((claimed, claimed_order), (silent, silent_order)):
        wait_until(lambda cart=cart: cart_state(stack, cart) == "completed")
        wait_until(lambda order=order: acknowledged(kustom, order))
        shop_orders = commerce.orders_for(cart)
        assert len(shop_orders) == 1
        assert shop_orders[0]["idempotencyKey"] == f"kustom-complete-{order}"
    wait_until(lambda: acknowledged(kustom, unacked_order))
    assert store.load(claimed).fields["completed_by"] == "sweeper"
    assert store.load(silent).fields["completed_by"] == "sweeper"

    calls_before = len(kustom.calls())
    commerce_calls_before = len(commerce.calls)
    second = run_sweeper_task(stack)
    assert second["fixed"] == 0
    fixes = ("resynced", "completions_resumed", "acks_requeued", "missed_pushes",
             "payments_requeued", "results_resent")  # fmt: skip
    assert {name: second[name] for name in fixes} == dict.fromkeys(fixes, 0)
    time.sleep(0.5)
    assert len(kustom.calls()) == calls_before, "the second run asked Kustom nothing"
    assert len(commerce.calls) == commerce_calls_before
    for cart in (syncing, claimed, unacked, silent):
        assert len(commerce.orders_for(cart)) == (0 if cart == syncing else 1)


def test_redis_restart_during_a_burst_leaves_one_shop_order_per_paid_kustom_order(
    stack, kustom, commerce
):
    started: list[str] = []
    counter_lock = threading.Lock()
    paid_some = threading.Event()

    def shop(index: int) -> tuple[str, str] | None:
        try:
            cart, order = stack.open_cart(kustom, quantity=1 + index % 3)
        except Exception:  # the checkout met the outage: the shopper never saw a snippet
            return None
        kustom.complete_order(order, push=True)  # the push may meet the outage too
        with counter_lock:
            started.append(cart)
            if len(started) == 5:
                paid_some.set()
        with contextlib.suppress(Exception):  # the browser gave up: push or sweeper finish
            stack.http.post(f"{stack.web.url}/carts/{cart}/kustom/confirm", timeout=10)
        return cart, order

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(shop, i) for i in range(18)]
        assert paid_some.wait(20)
        stack.redis_server.restart()  # mid-burst; AOF on: what was written survives
        opened = [f.result() for f in futures]
    paid = [pair for pair in opened if pair is not None]
    assert len(paid) >= 6, "most shoppers got through"

    sweeper = stack.fresh_services().reconciler(
        stack.queue,
        reconcile_policy(
            batch=200,
            stale_sync_ms=0,
            unacked_after_ms=0,
            payment_stale_ms=0,
            result_stale_ms=0,
            requeue_spacing_ms=0,
        ),
    )
    store = stack.fresh_services().store

    def unhealed() -> list[tuple[str, str]]:
        return [
            (cart, order)
            for cart, order in paid
            if (state := store.load(cart)) is None
            or state.cart_state != "completed"
            or not acknowledged(kustom, order)
        ]

    deadline = time.monotonic() + 40
    runs = restarted = 0
    while unhealed():
        restarted += stack.supervise()
        assert time.monotonic() < deadline, (
            f"not healed by reconciliation: {unhealed()} "
            f"(workers restarted: {restarted})\n{stack.workers[-1].log_tail(60)}"
        )
        # Each run looks as if 15 minutes more had passed, so every index is due.
        runs += 1
        sweeper.run(now=now_ms() + runs * 15 * MINUTE_MS)
        time.sleep(1.0)

    for cart, order in paid:
        shop_orders = commerce.orders_for(cart)
        assert len(shop_orders) == 1, f"{cart}: {len(shop_orders)} shop orders"
        assert shop_orders[0]["idempotencyKey"] == f"kustom-complete-{order}"
        assert store.load(cart).order_number == shop_orders[0]["orderNumber"]


def test_a_task_out_of_retries_is_dead_lettered_and_shown_by_the_sweeper(service_env, kustom):
    """A real worker drives syncKustomOrder through all its retries against a Kustom that
    answers 503 to every update: the dead letter, with its error, is in Redis and in the
    next reconcileKustomOrders run's log."""
    retries = 2
    stack = PaymentsStack(
        {
            **service_env,
            "TASK_MAX_RETRIES": str(retries),
            "TASK_RETRY_BASE_SECONDS": "0.05",
            "TASK_RETRY_MAX_SECONDS": "0.2",
        },
        "deadletter",
    )
    try:
        worker = stack.start_worker()
        cart, order = stack.open_cart(kustom)
        kustom.add_faults("update_order", [503] * 50)
        assert stack.post_signed("/commerce/cart-mutation", make_render(cart, 2, 3)).ok

        raw = wait_until(lambda: stack.redis.lrange("kustom:deadletter", 0, -1), timeout=30)
        (letter,) = [json.loads(entry) for entry in raw]
        assert (letter["task"], letter["cart"]) == ("syncKustomOrder", cart)
        assert letter["error"] == "KustomUnavailable: Kustom answered 503 to update_order"
        updates = kustom.calls("update_order", order_id=order)
        assert [call["status"] for call in updates] == [503] * (1 + retries), "then it gave up"
        assert stack.services.store.load(cart).syncing

        kustom.clear_faults()
        report = run_sweeper_task(stack)
        assert report["deadletters"] == 1
        assert report["deadletterTasks"] == {"syncKustomOrder": 1}
        (shown,) = report["deadletterLatest"]
        assert (shown["task"], shown["cart"], shown["error"]) == (
            "syncKustomOrder",
            cart,
            letter["error"],
        )
        run_line = wait_until(
            lambda: next(
                (
                    line
                    for line in worker.log_path.read_text(errors="replace").splitlines()
                    if "kustom.reconcile.run" in line
                ),
                None,
            ),
            timeout=5,
        )
        assert "deadletters=1" in run_line
        assert "Kustom answered 503 to update_order" in run_line.split("deadletter_latest=")[1]
    finally:
        stack.close()
