"""sync_cart against a scripted Kustom client: ordering, bursts, errors."""

from __future__ import annotations

import threading
import time

import pytest

from kustom_app.kustom import KustomRejected, KustomUnavailable
from kustom_app.state import CartStore, now_ms
from kustom_app.sync import SyncBusy, sync_cart

CART = "cart-s"


class FakeKustom:
    """Records pushes; optionally lets the test change the cart during a push."""

    def __init__(self, during_push=None, error=None):
        self.pushes: list[dict] = []
        self.during_push = during_push
        self.error = error

    def update_order(self, order_id, payload, **ctx):
        if self.error:
            raise self.error
        self.pushes.append(payload)
        if self.during_push:
            self.during_push(len(self.pushes))
        return payload


@pytest.fixture
def store(fake_redis):
    s = CartStore(fake_redis)
    s.record_render(CART, 1, {"v": 1}, "h1", {"v": 1}, now=now_ms() - 60_000)
    s.record_order(CART, "order-1", "h1", {"v": 1})
    return s


def render(store, v):
    store.record_render(CART, v, {"v": v}, f"h{v}", {"v": v})


def test_single_render_is_pushed_once_without_waiting(store, monkeypatch):
    render(store, 2)
    sleeps: list[float] = []
    monkeypatch.setattr("kustom_app.sync.time.sleep", sleeps.append)
    kustom = FakeKustom()
    result = sync_cart(store, kustom, CART)
    assert sleeps == [], "an isolated render is not debounced"
    assert kustom.pushes == [{"v": 2}] and result.outcome == "synced"


def test_an_isolated_render_costs_the_job_two_script_calls(store, fake_redis, monkeypatch):
    """Taking the lease also tells the job whether a burst is arriving: no extra read."""
    render(store, 2)
    calls: list[str] = []
    original = fake_redis.execute_command

    def counted(*args, **kwargs):
        calls.append(str(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(fake_redis, "execute_command", counted)
    sync_cart(store, FakeKustom(), CART)
    # begin_sync and finish_sync (each loaded once on first use), and no burst check read.
    assert [c for c in calls if c != "SCRIPT LOAD"] == ["EVALSHA"] * (
        2 + calls.count("SCRIPT LOAD")
    )


def test_burst_during_a_push_costs_one_more_push_with_the_newest_payload(store):
    render(store, 2)

    def burst(push_number):
        if push_number == 1:  # renders keep coming for a while after the first push

            def keep_rendering():
                for v in range(3, 40):
                    render(store, v)
                    time.sleep(0.002)

            thread = threading.Thread(target=keep_rendering)
            thread.start()
            time.sleep(0.01)  # the first push "takes" 10 ms; the burst goes on after it

    kustom = FakeKustom(during_push=burst)
    sync_cart(store, kustom, CART)
    assert [p["v"] for p in kustom.pushes] == [2, 39]
    state = store.load(CART)
    assert state.pending_hash == state.sync_hash == "h39"


def test_burst_arriving_before_the_first_push_costs_one_push(store):
    def keep_rendering():
        for v in range(2, 30):
            render(store, v)
            time.sleep(0.003)

    thread = threading.Thread(target=keep_rendering)
    thread.start()
    time.sleep(0.01)  # the job starts while the burst is arriving
    kustom = FakeKustom()
    # A wider gap than production's 25 ms: a loaded test machine may stretch a 3 ms sleep.
    sync_cart(store, kustom, CART, burst_gap_ms=100)
    thread.join()
    assert [p["v"] for p in kustom.pushes] == [29]


def test_busy_lease_raises_for_a_later_retry(store):
    render(store, 2)
    store.begin_sync(CART, "holder")
    with pytest.raises(SyncBusy):
        sync_cart(store, FakeKustom(), CART)


def test_outage_releases_the_lease_and_raises(store):
    render(store, 2)
    with pytest.raises(KustomUnavailable):
        sync_cart(
            store, FakeKustom(error=KustomUnavailable("down", operation="update_order")), CART
        )
    assert store.begin_sync(CART, "next").action == "push", "lease given back"


def test_404_marks_the_order_for_recreation(store):
    render(store, 2)
    gone = KustomRejected("gone", operation="update_order", status=404)
    assert sync_cart(store, FakeKustom(error=gone), CART).outcome == "unusable"
    state = store.load(CART)
    assert not state.order_usable and not state.syncing


def test_read_only_order_stops_syncing(store):
    render(store, 2)
    read_only = KustomRejected(
        "ro", operation="update_order", status=403, error_code="READ_ONLY_ORDER"
    )
    assert sync_cart(store, FakeKustom(error=read_only), CART).outcome == "read_only"
    assert store.load(CART).kustom_read_only


def test_after_read_only_no_render_queues_a_job_and_a_late_job_asks_kustom_nothing(
    store, fake_redis
):
    render(store, 2)
    read_only = KustomRejected(
        "ro", operation="update_order", status=403, error_code="READ_ONLY_ORDER"
    )
    sync_cart(store, FakeKustom(error=read_only), CART)
    outcome = store.record_render(CART, 3, {"v": 3}, "h3", {"v": 3})
    assert not outcome.enqueue and not outcome.enqueued  # the order can no longer change
    assert fake_redis.zscore(store.syncing_key, CART) is None  # nor a sweeper re-queue
    state = store.load(CART)
    assert state.syncing  # honest: Kustom's paid order does not match the cart now
    kustom = FakeKustom()
    assert sync_cart(store, kustom, CART).outcome == "read_only"
    assert kustom.pushes == []


def test_a_stale_render_leaves_the_cart_hash_untouched(store, fake_redis):
    render(store, 5)
    before = fake_redis.hgetall(store.cart_key(CART))
    outcome = store.record_render(CART, 4, {"v": 4}, "h4", {"v": 4})
    assert not outcome.accepted
    assert fake_redis.hgetall(store.cart_key(CART)) == before
