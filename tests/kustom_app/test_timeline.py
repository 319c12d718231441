"""The per-cart timeline (kustom_app/timeline.py) as the domain writes it, on fakeredis."""

from __future__ import annotations

import json
import time

import pytest
import redis

from harness.redis_server import free_port
from harness.waiting import wait_until
from kustom_app.callbacks import CallbackRefused, update_shipping_option
from kustom_app.render import load_render
from kustom_app.state import CartStore
from kustom_app.sync import ingest_render
from kustom_app.timeline import CartTimeline
from kustom_app.validation import OrderValidator
from tests.conftest import make_render
from tests.domain import cart_store

CART = "cart-1"


@pytest.fixture
def store(fake_redis) -> CartStore:
    return cart_store(fake_redis, key_prefix="t", cart_ttl_seconds=3600)


def events(store: CartStore, cart_id: str = CART) -> list[str]:
    return [e["event"] for e in store.timeline.entries(cart_id)]


def record(store: CartStore, version: int, h: str, now: int = 1_000):
    return store.record_render(CART, version, {"v": version}, h, {"h": h}, now=now)


def test_a_render_that_changes_the_pending_hash_is_one_entry_of_the_same_script(store):
    record(store, 1, "h1", now=1_000)
    record(store, 2, "h1", now=1_100)  # same payload: nothing new to tell
    record(store, 1, "h0", now=1_200)  # stale: ignored, and not on the timeline
    store.record_order(CART, "order-1", "h1", {"h": "h1"}, now=1_300)
    record(store, 3, "h3", now=1_400)  # needs a sync: the caller queues it

    assert store.timeline.entries(CART) == [
        {"at": 1_000, "event": "render", "version": 1, "hash": "h1"},
        {"at": 1_400, "event": "render", "version": 3, "hash": "h3", "queued": True},
    ]
    key = store.timeline.key(CART)
    assert key == "t:timeline:cart-1"
    assert 3500 < store.redis.ttl(key) <= 3600, "expires with the cart"


def test_the_timeline_keeps_the_newest_entries_only(fake_redis):
    timeline = CartTimeline(fake_redis, prefix="t", ttl_seconds=60, limit=5)
    for n in range(12):
        timeline.record(CART, "sync.pushed", at=n, hash=f"h{n}")
    assert [e["hash"] for e in timeline.entries(CART)] == ["h7", "h8", "h9", "h10", "h11"]


def test_the_render_script_bounds_the_timeline_too(store):
    for version in range(1, store.timeline.limit + 6):
        record(store, version, f"h{version}", now=version)
    entries = store.timeline.entries(CART)
    assert len(entries) == store.timeline.limit
    assert entries[-1]["version"] == store.timeline.limit + 5
    assert entries[0]["version"] == 6


def test_a_timeline_write_that_fails_never_fails_the_step(caplog):
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    timeline = CartTimeline(down, prefix="t", ttl_seconds=60)
    timeline.record(CART, "acknowledged", at=1, order="o-1")  # no exception
    assert "kustom.timeline.not_recorded cart=cart-1 event=acknowledged" in caplog.text


def test_an_update_callback_puts_its_answer_or_its_refusal_on_the_timeline(store):
    render = make_render(CART, 1)
    ingest_render(store, load_render(render))
    options = load_render(render)["shippingOptions"] or []
    if not options:
        pytest.skip("the contract's example render offers no shipping options")

    answer = update_shipping_option(store, None, CART, options[-1]["id"])
    with pytest.raises(CallbackRefused):
        update_shipping_option(store, None, CART, "no-such-option")

    entries = store.timeline.entries(CART)
    applied, refused = entries[-2], entries[-1]
    assert applied["event"] == "callback.shipping_option_update"
    assert (applied["version"], applied["hash"]) == (answer.version, answer.payload_hash)
    assert refused["event"] == "callback.shipping_option_update.refused"
    assert (refused["code"], refused["reason"]) == ("approval_failed", "unknown_shipping_option")


def test_the_validation_verdict_reaches_the_timeline_off_the_answers_path(store):
    ingest_render(store, load_render(make_render(CART, 1)))
    outcome = OrderValidator().validate(CART, {"order_id": "o-1"}, store, None)
    assert outcome.rejection is not None  # the order is not the cart's: integrity refuses
    wait_until(lambda: "validation.rejected" in events(store))
    entry = store.timeline.entries(CART)[-1]
    assert entry["order"] == "o-1" and entry["rule"] == outcome.rejection.rule
    assert entry["code"] == outcome.rejection.code


def test_a_dead_letter_of_a_cart_goes_on_its_timeline_with_no_error_text(store):
    entry = {"task": "syncKustomOrder", "taskId": "t-1", "at": int(time.time()),
             "error": "KustomRejected: Kustom rejected update_order with 400 BAD_VALUE",
             "cart": CART}  # fmt: skip
    store.dead_letters.record(json.dumps(entry), keep=10, cart_id=CART)
    (noted,) = store.timeline.entries(CART)
    assert noted["event"] == "deadletter"
    assert (noted["task"], noted["id"], noted["error"]) == (
        "syncKustomOrder",
        "t-1",
        "KustomRejected",
    )
    assert store.dead_letters.find("t-1").entry == entry
