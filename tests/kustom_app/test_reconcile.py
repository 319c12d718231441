"""The sweeper: each index healed once per run, nothing re-queued twice, bounded."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
import responses

from kustom_app.ordermanagement import PaymentStore, prepare_capture
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.reconcile import (
    DEADLETTER_ERROR_CHARS,
    MINUTE_MS,
    ReconcilePolicy,
    Reconciler,
    retry_window_ms,
)
from kustom_app.render import load_render
from kustom_app.settings import Settings
from kustom_app.state import CartStore, now_ms, open_orders_key
from tests.conftest import make_render
from tests.domain import cart_store, kustom_client, reconcile_policy

KUSTOM = "https://kustom.test"
POLICY = reconcile_policy(
    batch=10,
    stale_sync_ms=MINUTE_MS,
    unacked_after_ms=5 * MINUTE_MS,
    open_order_check_ms=10 * MINUTE_MS,
    payment_stale_ms=30 * MINUTE_MS,
    result_stale_ms=30 * MINUTE_MS,
    requeue_spacing_ms=30 * MINUTE_MS,
)
HOUR = 60 * MINUTE_MS


class RecordingEnqueuer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        self.calls.append(("sync", cart_id))

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        self.calls.append(("complete", cart_id, order_id, path))

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        self.calls.append(("acknowledge", cart_id, order_id))

    def payment(self, kind: str, op_id: str) -> None:
        self.calls.append(("payment", kind, op_id))

    def deliver(self, kind: str, op_id: str) -> None:
        self.calls.append(("deliver", kind, op_id))


@pytest.fixture
def enqueued():
    return RecordingEnqueuer()


@pytest.fixture
def sweeper(store, payments, enqueued):
    return Reconciler(store, payments, kustom_client(KUSTOM), enqueued, POLICY)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def open_cart(store: CartStore, cart_id: str, order_id: str, *, at: int) -> dict[str, Any]:
    render = make_render(cart_id, 1)
    payload = build_order_payload(load_render(render))
    store.record_render(cart_id, 1, render, payload_hash(payload), payload, now=at)
    store.record_order(cart_id, order_id, payload_hash(payload), payload, now=at)
    return payload


def left_syncing(store: CartStore, cart_id: str, *, at: int) -> None:
    open_cart(store, cart_id, f"order-{cart_id}", at=at)
    render = make_render(cart_id, 2, quantity=3)
    payload = build_order_payload(load_render(render))
    outcome = store.record_render(cart_id, 2, render, payload_hash(payload), payload, now=at)
    assert outcome.syncing


def completed(store: CartStore, cart_id: str, order_id: str, *, at: int) -> None:
    open_cart(store, cart_id, order_id, at=at)
    store.claim_completion(cart_id, "t", order_id, "push", now=at)
    store.finish_completion(cart_id, order_id, "SO-1", "push", now=at)


def test_a_cart_left_syncing_is_resynced_once(store, sweeper, enqueued):
    now = now_ms()
    left_syncing(store, "cart-a", at=now - 2 * MINUTE_MS)
    left_syncing(store, "cart-fresh", at=now)

    first = sweeper.run(now=now)
    assert (first.stale_syncs, first.resynced) == (1, 1)
    assert enqueued.calls == [("sync", "cart-a")]
    second = sweeper.run(now=now + MINUTE_MS // 2)
    assert second.resynced == 0 and second.fixed == 0, "spaced: the queued job may be slow"
    later = sweeper.run(now=now + 31 * MINUTE_MS)
    assert later.resynced == 2, "after the spacing both (now stale) carts are queued again"


def test_a_synced_or_completed_cart_leaves_the_syncing_index(store, sweeper, enqueued):
    now = now_ms()
    left_syncing(store, "cart-a", at=now - 2 * MINUTE_MS)
    store.claim_completion("cart-a", "t", "order-cart-a", "push", now=now)
    report = sweeper.run(now=now)
    assert (report.resynced, report.forgotten) == (0, 1)
    assert store.stale_syncing(0, 10, now=now) == []


def test_an_expired_completion_claim_is_resumed_by_the_sweeper_path(store, sweeper, enqueued):
    now = now_ms()
    open_cart(store, "cart-a", "order-a", at=now - HOUR)
    store.claim_completion("cart-a", "dead", "order-a", "push", lease_ms=1000, now=now - 5000)
    open_cart(store, "cart-b", "order-b", at=now - HOUR)
    store.claim_completion("cart-b", "alive", "order-b", "confirm", lease_ms=60_000, now=now)

    report = sweeper.run(now=now)
    assert (report.expired_claims, report.completions_resumed) == (1, 1)
    assert enqueued.calls == [("complete", "cart-a", "order-a", "sweeper")]
    assert sweeper.run(now=now).completions_resumed == 0


def test_an_unacknowledged_order_is_acknowledged_and_then_forgotten(store, sweeper, enqueued):
    now = now_ms()
    completed(store, "cart-old", "order-old", at=now - 10 * MINUTE_MS)
    completed(store, "cart-new", "order-new", at=now - MINUTE_MS)

    report = sweeper.run(now=now)
    assert (report.unacked, report.acks_requeued) == (1, 1)
    assert ("acknowledge", "cart-old", "order-old") in enqueued.calls
    assert not any(c[0] == "acknowledge" and c[1] == "cart-new" for c in enqueued.calls)

    store.record_acknowledged("cart-old", "order-old")
    assert sweeper.run(now=now + HOUR).unacked == 1, "only cart-new is still waiting"


def test_an_open_order_is_checked_with_backoff_and_completed_when_kustom_has_it(
    store, sweeper, enqueued, http
):
    now = now_ms()
    open_cart(store, "cart-a", "order-a", at=now)  # recording the order indexes it
    om = f"{KUSTOM}/ordermanagement/v1/orders/order-a"
    http.get(om, status=404, json={"error_code": "NO_SUCH_ORDER"})

    assert sweeper.run(now=now).open_orders_checked == 0, "too early to ask"
    at = now + 11 * MINUTE_MS
    report = sweeper.run(now=at)
    assert (report.open_orders_checked, report.missed_pushes) == (1, 0)
    due = store.redis.zscore(open_orders_key("kustom"), "cart-a")
    assert due == at + 11 * MINUTE_MS, "next check after about the order's age"
    assert sweeper.run(now=at + MINUTE_MS).open_orders_checked == 0

    http.replace(responses.GET, om, json={"order_id": "order-a", "status": "AUTHORIZED"})
    later = sweeper.run(now=due)
    assert (later.open_orders_checked, later.missed_pushes) == (1, 1)
    assert enqueued.calls[-1] == ("complete", "cart-a", "order-a", "sweeper")


def test_open_orders_skip_recent_pushes_and_forget_completed_carts(store, sweeper, enqueued, http):
    now = now_ms()
    completed(store, "cart-done", "order-done", at=now - HOUR)
    open_cart(store, "cart-pushed", "order-pushed", at=now - HOUR)
    store.record_callback_seen("cart-pushed", "last_push_at", str(now - MINUTE_MS))
    key = open_orders_key("kustom")
    store.redis.zadd(key, {"cart-done": now - HOUR, "cart-pushed": now - HOUR, "gone": 0})

    report = sweeper.run(now=now)
    assert report.open_orders_checked == 0 and len(http.calls) == 0
    assert store.redis.zrange(key, 0, -1) == [b"cart-pushed"]
    assert store.redis.zscore(key, "cart-pushed") == now + 9 * MINUTE_MS


def test_kustom_down_stops_the_open_order_checks_for_this_run(store, sweeper, http):
    now = now_ms()
    for cart in ("cart-a", "cart-b"):
        open_cart(store, cart, f"order-{cart}", at=now - HOUR)
        store.redis.zadd(open_orders_key("kustom"), {cart: now - 1})
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/order-cart-a", status=503)
    http.get(f"{KUSTOM}/ordermanagement/v1/orders/order-cart-b", status=503)
    report = sweeper.run(now=now)
    assert (report.open_orders_checked, report.kustom_errors) == (1, 1)
    assert len(http.calls) == 1


def test_stale_payments_are_requeued_and_undelivered_results_resent(
    store, payments, sweeper, enqueued
):
    now = now_ms()
    completed(store, "cart-1", "order-1", at=now - HOUR)
    event = {"captureId": "cap-1", "cartId": "cart-1", "amount": Decimal(1), "currencyCode": "SEK"}
    payments.claim(prepare_capture(event), "order-1", requeue_failed=False, now=now - HOUR)
    event2 = {**event, "captureId": "cap-2"}
    payments.claim(prepare_capture(event2), "order-1", requeue_failed=False, now=now - HOUR)
    payments.finish("capture", "cap-2", "captured", kustom_id="kc-2", now=now - HOUR)

    report = sweeper.run(now=now)
    assert (report.payments_requeued, report.results_resent) == (1, 1)
    assert ("payment", "capture", "cap-1") in enqueued.calls
    assert ("deliver", "capture", "cap-2") in enqueued.calls
    assert sweeper.run(now=now + MINUTE_MS).fixed == 0

    payments.settle_result("capture", "cap-2", "delivered")
    assert sweeper.run(now=now + HOUR).results_resent == 0


def test_deadletters_are_counted_and_shown_in_the_run_log(store, sweeper, caplog):
    for task in ("captureKustomOrder", "captureKustomOrder", "syncKustomOrder"):
        store.redis.lpush("kustom:deadletter", json.dumps({"task": task, "error": "x"}))
    with caplog.at_level(logging.INFO, logger="kustom_app.reconcile"):
        report = sweeper.run()
    assert report.deadletters == 3
    line = next(r.getMessage() for r in caplog.records if "kustom.reconcile.run" in r.getMessage())
    assert "deadletters=3" in line
    assert "captureKustomOrder:2" in line and "syncKustomOrder:1" in line
    last = json.loads(store.redis.get("kustom:reconcile:last"))
    assert last["deadletters"] == 3 and last["deadletterTasks"]["syncKustomOrder"] == 1


def test_the_run_log_shows_the_newest_dead_letters_errors_bounded(store, sweeper, caplog):
    for n in range(5):
        error = f"KustomUnavailable: Kustom answered 503 (try {n}) " + "x" * 500
        entry = {"task": "syncKustomOrder", "at": n, "cart": f"cart-{n}", "error": error}
        store.redis.lpush("kustom:deadletter", json.dumps(entry))
    store.redis.lpush("kustom:deadletter", "not json")
    with caplog.at_level(logging.INFO, logger="kustom_app.reconcile"):
        report = sweeper.run()
    assert report.deadletters == 6
    assert [e["cart"] for e in report.deadletter_latest] == ["cart-4", "cart-3"], "newest first"
    for entry in report.deadletter_latest:
        assert entry["error"].startswith("KustomUnavailable: Kustom answered 503 (try ")
        assert len(entry["error"]) == DEADLETTER_ERROR_CHARS
    line = next(r.getMessage() for r in caplog.records if "kustom.reconcile.run" in r.getMessage())
    shown = json.loads(line.split(" deadletter_latest=", 1)[1])
    assert shown == report.deadletter_latest
    assert len(line) < 2000
    last = json.loads(store.redis.get("kustom:reconcile:last"))
    assert last["deadletterLatest"] == report.deadletter_latest


def test_the_sweeper_honours_non_default_thresholds_from_the_environment(
    fake_redis, enqueued, http
):
    settings = Settings.from_env(
        {
            "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS": "60",
            "RECONCILE_OPEN_ORDER_AFTER_SECONDS": "120",
        }
    )
    store = cart_store(
        fake_redis, reconcile_open_order_after_seconds=settings.reconcile_open_order_after_seconds
    )
    payments = PaymentStore(fake_redis, prefix="kustom", ttl_seconds=3600)
    sweeper = Reconciler(
        store, payments, kustom_client(KUSTOM), enqueued,
        ReconcilePolicy.from_settings(settings),
    )  # fmt: skip
    now = now_ms()
    completed(store, "cart-done", "order-done", at=now - 90_000)  # 1.5 min: 5 would wait
    open_cart(store, "cart-open", "order-open", at=now - 3 * MINUTE_MS)  # 3 min: 10 would wait
    http.get(
        f"{KUSTOM}/ordermanagement/v1/orders/order-open",
        json={"order_id": "order-open", "status": "AUTHORIZED"},
    )

    report = sweeper.run(now=now)
    assert (report.acks_requeued, report.open_orders_checked, report.missed_pushes) == (1, 1, 1)
    assert ("acknowledge", "cart-done", "order-done") in enqueued.calls
    assert ("complete", "cart-open", "order-open", "sweeper") in enqueued.calls
    due = store.redis.zscore(open_orders_key("kustom"), "cart-open")
    assert due == now + 2 * MINUTE_MS, "checked again after the configured 2 min"

    default = Reconciler(
        cart_store(fakeredis.FakeRedis(), key_prefix="d"), payments, kustom_client(KUSTOM),
        RecordingEnqueuer(), ReconcilePolicy.from_settings(Settings()),
    )  # fmt: skip
    completed(default.store, "cart-done", "order-done", at=now - 90_000)
    open_cart(default.store, "cart-open", "order-open", at=now - 3 * MINUTE_MS)
    assert default.run(now=now).fixed == 0, "with the defaults both are still too young"


def test_a_run_is_bounded_by_the_batch_and_nothing_starves(store, sweeper, enqueued):
    now = now_ms()
    for i in range(15):
        left_syncing(store, f"cart-{i:02}", at=now - HOUR)
    assert sweeper.run(now=now).resynced == 10
    assert sweeper.run(now=now).resynced == 5, "the next run reads past the spaced ten"
    assert sorted(c[1] for c in enqueued.calls) == [f"cart-{i:02}" for i in range(15)]
    assert sweeper.run(now=now).resynced == 0


def test_overlapping_runs_are_skipped(store, sweeper):
    lock = store.redis.lock("kustom:lock:reconcile", timeout=10)
    assert lock.acquire(blocking=False)
    assert sweeper.run() is None
    lock.release()
    assert sweeper.run() is not None


def test_policy_from_settings_waits_for_a_task_chain_to_give_up():
    settings = Settings(retry_base_seconds=1.0, retry_max_seconds=300.0, max_retries=12)
    assert retry_window_ms(settings) == (1 + 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 300 * 3) * 1000
    policy = ReconcilePolicy.from_settings(settings)
    assert policy.payment_stale_ms == policy.requeue_spacing_ms == retry_window_ms(settings)
    assert policy.stale_sync_ms == settings.sync_stale_seconds * 1000
    assert policy.batch == settings.reconcile_batch
    assert policy.unacked_after_ms == 5 * MINUTE_MS
    assert (policy.open_order_check_ms, policy.open_order_max_interval_ms) == (
        10 * MINUTE_MS,
        4 * HOUR,
    )
    assert policy.open_order_budget_seconds == 50.0, "half the soft time limit, at most 60 s"

    tuned = ReconcilePolicy.from_settings(
        Settings(
            reconcile_unacknowledged_after_seconds=30,
            reconcile_open_order_after_seconds=90,
            reconcile_open_order_max_interval_seconds=1800,
            task_time_limit_seconds=200,
            task_soft_time_limit_seconds=180,
        )
    )
    assert (tuned.unacked_after_ms, tuned.open_order_check_ms) == (30_000, 90_000)
    assert tuned.open_order_max_interval_ms == 30 * MINUTE_MS
    assert tuned.open_order_budget_seconds == 60.0


def test_a_cart_with_an_open_mismatch_waits_for_an_operator(store, sweeper, enqueued, http, caplog):
    now = now_ms()
    open_cart(store, "cart-a", "order-a", at=now - HOUR)
    store.record_mismatch("cart-a", "order-a", ["the order amount 100 differs"])
    om = f"{KUSTOM}/ordermanagement/v1/orders/order-a"
    http.get(om, json={"order_id": "order-a", "status": "AUTHORIZED"})

    with caplog.at_level(logging.INFO, logger="kustom_app.reconcile"):
        report = sweeper.run(now=now)
    assert (report.mismatch_open, report.open_orders_checked, report.missed_pushes) == (1, 0, 0)
    assert enqueued.calls == [] and len(http.calls) == 0, "no completion, no second alert"
    assert "mismatch_open=1" in caplog.records[-1].getMessage()
    assert store.redis.zscore(open_orders_key("kustom"), "cart-a") == now + 10 * MINUTE_MS

    store.clear_mismatch("cart-a")  # `flask kustom resolve cart-a --retry`
    later = sweeper.run(now=now + 10 * MINUTE_MS)
    assert (later.mismatch_open, later.missed_pushes) == (0, 1)
    assert enqueued.calls == [("complete", "cart-a", "order-a", "sweeper")]
