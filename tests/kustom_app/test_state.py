"""The Lua state transitions, on fakeredis (Lua through lupa)."""

from __future__ import annotations

import pytest

from kustom_app.state import JOB_PAYLOAD_MARKER, QUEUED_STALE_MS, CartStore
from tests.domain import cart_store

CART = "cart-1"


@pytest.fixture
def store(fake_redis) -> CartStore:
    return cart_store(fake_redis, key_prefix="t", cart_ttl_seconds=3600)


def render(version: int) -> dict:
    return {"cartId": CART, "version": version}


def record(store: CartStore, version: int, h: str, now: int = 1_000):
    return store.record_render(CART, version, render(version), h, {"h": h}, now=now)


def with_order(store: CartStore, h: str = "h1") -> None:
    record(store, 1, h)
    assert store.record_order(CART, "order-1", h, {"h": h}, now=1_000) is False


def test_render_without_order_is_in_sync_and_queues_nothing(store):
    outcome = record(store, 1, "h1")
    assert outcome.accepted and not outcome.enqueue
    assert (outcome.pending_hash, outcome.sync_hash) == ("h1", "h1")
    assert not store.load(CART).syncing


def test_new_hash_with_order_sets_pending_and_queues_one_job(store):
    with_order(store)
    first = record(store, 2, "h2")
    second = record(store, 3, "h3")
    assert first.enqueue and first.syncing
    assert not second.enqueue, "a job is already queued; it will push the newest payload"
    state = store.load(CART)
    assert (state.pending_hash, state.sync_hash, state.version) == ("h3", "h1", 3)
    assert store.stale_syncing(0, 10, now=10_000) == [CART]


def job(version: int) -> tuple[str, str]:
    return ("t-queue", f"message for version {version}: {JOB_PAYLOAD_MARKER}")


def test_with_a_message_the_script_queues_the_job_itself_once(store, fake_redis):
    with_order(store)
    first = store.record_render(CART, 2, render(2), "h2", {"h": "h2"}, now=1_100, job=job(2))
    second = store.record_render(CART, 3, render(3), "h3", {"h": "h3"}, now=1_200, job=job(3))
    same = store.record_render(CART, 4, render(4), "h1", {"h": "h1"}, now=1_300, job=job(4))
    stale = store.record_render(CART, 1, render(1), "h9", {"h": "h9"}, now=1_400, job=job(1))
    assert first.enqueued and not first.enqueue, "queued by the script, not by the caller"
    assert not (second.enqueued or second.enqueue), "coalesced into the queued job"
    assert not (same.enqueued or stale.enqueued)
    # The script puts the pending payload's JSON text, escaped, where the marker was.
    assert fake_redis.lrange("t-queue", 0, -1) == [b'message for version 2: {\\"h\\":\\"h2\\"}']


def test_a_queued_mark_older_than_the_stale_limit_queues_again(store, fake_redis):
    with_order(store)
    store.record_render(CART, 2, render(2), "h2", {"h": "h2"}, now=1_100, job=job(2))
    later = 1_100 + QUEUED_STALE_MS + 1  # the first job was lost (a broker flush, say)
    again = store.record_render(CART, 3, render(3), "h3", {"h": "h3"}, now=later, job=job(3))
    assert again.enqueued
    assert fake_redis.llen("t-queue") == 2


def test_without_an_order_nothing_is_queued_even_with_a_message(store, fake_redis):
    outcome = store.record_render(CART, 1, render(1), "h1", {"h": "h1"}, now=1_000, job=job(1))
    assert not (outcome.enqueued or outcome.enqueue)
    assert fake_redis.llen("t-queue") == 0


def test_older_version_is_ignored(store):
    with_order(store)
    record(store, 5, "h5")
    outcome = record(store, 4, "h4")
    assert not outcome.accepted
    state = store.load(CART)
    assert (state.version, state.pending_hash) == (5, "h5")


def test_render_identical_to_synced_queues_nothing(store):
    with_order(store)
    outcome = record(store, 2, "h1")
    assert not outcome.enqueue and not outcome.syncing


def test_job_pushes_newest_pending_and_records_sync(store):
    with_order(store)
    record(store, 2, "h2")
    record(store, 3, "h3")
    step = store.begin_sync(CART, "tok", now=2_000)
    assert (step.action, step.hash, step.payload, step.order_id) == (
        "push",
        "h3",
        {"h": "h3"},
        "order-1",
    )
    done = store.finish_sync(CART, "tok", "h3", "order-1", now=2_100)
    assert done.action == "done"
    state = store.load(CART)
    assert (state.pending_hash, state.sync_hash) == ("h3", "h3") and not state.syncing
    assert store.stale_syncing(0, 10, now=10_000) == []


def test_change_during_push_makes_the_holder_push_again(store):
    with_order(store)
    record(store, 2, "h2")
    step = store.begin_sync(CART, "tok", now=2_000)
    assert step.hash == "h2"
    record(store, 3, "h3", now=2_050)  # arrives while h2 is in flight
    again = store.finish_sync(CART, "tok", "h2", "order-1", now=2_100)
    assert (again.action, again.hash, again.payload) == ("again", "h3", {"h": "h3"})
    assert store.load(CART).sync_hash == "h2", "sync records what Kustom has now"
    assert store.finish_sync(CART, "tok", "h3", "order-1", now=2_200).action == "done"


def test_revert_to_synced_payload_during_push_is_pushed_back(store):
    with_order(store, "h1")
    record(store, 2, "h2")
    step = store.begin_sync(CART, "tok", now=2_000)
    assert step.hash == "h2"
    outcome = record(store, 3, "h1", now=2_050)  # back to what Kustom had before the push
    # Syncing, with a job queued: were the holder dead, its push of h2 may have landed
    # unrecorded (test_sync.py: ..._while_a_lease_is_held_is_still_pushed).
    assert outcome.syncing and outcome.enqueue
    again = store.finish_sync(CART, "tok", "h2", "order-1", now=2_100)
    assert (again.action, again.hash) == ("again", "h1"), "Kustom now has h2; h1 must follow"
    done = store.finish_sync(CART, "tok", "h1", "order-1", now=2_200)
    assert done.action == "done"
    assert store.begin_sync(CART, "queued-job", now=2_300).action == "in_sync"  # no call


def test_second_job_is_told_busy_while_lease_is_held(store):
    with_order(store)
    record(store, 2, "h2")
    assert store.begin_sync(CART, "a", now=2_000, lease_ms=5_000).action == "push"
    busy = store.begin_sync(CART, "b", now=3_000, lease_ms=5_000)
    assert busy.action == "busy" and busy.retry_after_ms == 4_000
    # the holder died: once its lease is over another job takes over
    assert store.begin_sync(CART, "b", now=8_000, lease_ms=5_000).action == "push"
    assert store.finish_sync(CART, "a", "h2", "order-1", now=8_100).action == "lost"


def test_in_sync_job_does_nothing(store):
    with_order(store)
    assert store.begin_sync(CART, "tok", now=2_000).action == "in_sync"


def test_unusable_order_stops_syncing_until_checkout(store):
    with_order(store)
    record(store, 2, "h2")
    step = store.begin_sync(CART, "tok", now=2_000)
    store.release_sync(CART, "tok", step.order_id, "unusable")
    state = store.load(CART)
    assert not state.order_usable and not state.syncing
    assert store.begin_sync(CART, "tok", now=2_100).action == "no_order"
    # the next checkout creates a new order from the pending payload
    assert store.record_order(CART, "order-2", "h2", {"h": "h2"}, now=3_000) is False
    state = store.load(CART)
    assert state.order_id == "order-2" and state.order_usable and not state.syncing


def test_order_created_from_older_render_asks_for_a_sync(store):
    record(store, 1, "h1")
    record(store, 2, "h2")  # no order yet: in sync trivially
    needs_sync = store.record_order(CART, "order-1", "h1", {"h": "h1"}, now=3_000)
    assert needs_sync
    state = store.load(CART)
    assert (state.pending_hash, state.sync_hash) == ("h2", "h1")


def test_keys_are_prefixed_and_expire(store, fake_redis):
    with_order(store)
    record(store, 2, "h2")
    for key in fake_redis.keys("*"):
        assert key.startswith(b"t:")
        assert 0 < fake_redis.ttl(key) <= 3600


def test_events_are_published_on_hash_changes(store, fake_redis):
    pubsub = fake_redis.pubsub()
    pubsub.subscribe(store.events_channel(CART))
    pubsub.get_message(timeout=0.1)
    with_order(store)
    record(store, 2, "h2")
    messages = []
    while (m := pubsub.get_message(timeout=0.1)) is not None:
        messages.append(m["data"])
    assert messages and all(m == CART.encode() for m in messages)


def test_unpayable_pending_is_never_pushed(store):
    with_order(store)
    outcome = store.record_render(CART, 2, render(2), "unpayable-x", None, now=2_000)
    assert outcome.syncing and not outcome.enqueue
    assert store.begin_sync(CART, "tok", now=2_100).action == "unpayable"
    assert record(store, 3, "h3", now=2_200).enqueue, "a payable render is synced again"


def test_render_applied_by_kustom_is_pending_and_synced(store):
    with_order(store)
    record(store, 2, "h2")
    assert store.record_applied_render(CART, 3, render(3), "h3", {"h": "h3"}, now=2_000)
    state = store.load(CART)
    assert (state.pending_hash, state.sync_hash, state.version) == ("h3", "h3", 3)
    assert store.stale_syncing(0, 10, now=10_000) == []
    assert not store.record_applied_render(CART, 2, render(2), "h2", {"h": "h2"}, now=2_100)
    assert store.load(CART).pending_hash == "h3"


def test_carts_a_job_cannot_sync_leave_the_syncing_index(store):
    with_order(store)
    store.record_render(CART, 2, render(2), "unpayable-x", None, now=2_000)
    assert store.stale_syncing(0, 10, now=10_000) == [CART]
    assert store.begin_sync(CART, "tok", now=2_100).action == "unpayable"
    assert store.stale_syncing(0, 10, now=10_000) == []


def test_holder_stops_when_the_cart_turns_unpayable_mid_push(store):
    with_order(store)
    record(store, 2, "h2")
    assert store.begin_sync(CART, "tok", now=2_000).action == "push"
    store.record_render(CART, 3, render(3), "unpayable-x", None, now=2_050)
    step = store.finish_sync(CART, "tok", "h2", "order-1", {"h": "h2"}, now=2_100)
    assert step.action == "unpayable"
    assert store.begin_sync(CART, "other", now=2_200).action == "unpayable", "lease released"


def test_completion_keys_expire_too(store, fake_redis):
    with_order(store)
    assert store.claim_completion(CART, "tok", "order-1", "push").action == "claimed"
    store.record_mismatch(CART, "order-1", ["the order amount differs"])
    keys = fake_redis.keys("*")
    assert store.claims_key.encode() in keys
    for key in keys:
        assert 0 < fake_redis.ttl(key) <= 3600, key
    store.finish_completion(CART, "order-1", "SO-1", "push")
    for key in fake_redis.keys("*"):  # the order record lives longer (captures, refunds)
        assert fake_redis.ttl(key) > 0, key
