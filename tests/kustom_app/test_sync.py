"""sync_cart against a scripted Kustom client: ordering, bursts, errors."""

from __future__ import annotations

import copy
import json
import threading
import time

import pytest
import requests
import responses

from kustom_app.kustom import KustomOutcomeUnknown, KustomRejected, KustomUnavailable
from kustom_app.order_match import order_has_payload
from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from kustom_app.state import UNVERIFIED_PREFIX, now_ms
from kustom_app.sync import (
    SyncBusy,
    SyncOutcomeUnknown,
    SyncUncertain,
    prepare_render,
    sync_cart,
)
from tests.conftest import make_render
from tests.domain import REQUEST_LIFETIME_MS, cart_store, kustom_client

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
    s = cart_store(fake_redis)
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
    result = sync_cart(store, kustom, CART, request_lifetime_ms=REQUEST_LIFETIME_MS)
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
    sync_cart(store, FakeKustom(), CART, request_lifetime_ms=REQUEST_LIFETIME_MS)
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
    sync_cart(store, kustom, CART, request_lifetime_ms=REQUEST_LIFETIME_MS)
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
    sync_cart(store, kustom, CART, burst_gap_ms=100, request_lifetime_ms=REQUEST_LIFETIME_MS)
    thread.join()
    assert [p["v"] for p in kustom.pushes] == [29]


def test_a_render_back_to_the_synced_payload_while_a_lease_is_held_is_still_pushed(store):
    """A job took the lease and pushed version 2, then died (SIGKILL, or Redis went away)
    before it could record that: Kustom has 2. The cart goes back to what was last recorded
    as synced (1): the service must not take that as in sync. (Seen on a real Redis
    SIGKILL: the cart reported in sync, Kustom holding the unrecorded push.)"""
    render(store, 2)
    assert store.begin_sync(CART, "dead-job", lease_ms=1).action == "push"
    # ... its push of version 2 lands at Kustom; the job never comes back.
    outcome = store.record_render(CART, 3, {"v": 1}, "h1", {"v": 1})
    assert outcome.syncing, "Kustom may hold version 2"
    state = store.load(CART)
    assert state.status()["syncing"] is True and state.pending_hash == "h1"
    time.sleep(0.01)  # the dead job's 1 ms lease runs out
    kustom = FakeKustom()
    result = sync_cart(store, kustom, CART, burst_gap_ms=0, request_lifetime_ms=REQUEST_LIFETIME_MS)
    assert kustom.pushes == [{"v": 1}] and result.outcome == "synced"
    assert store.load(CART).sync_hash == "h1" and not store.load(CART).syncing


def test_a_render_back_to_the_synced_payload_without_a_lease_calls_kustom_not_at_all(store):
    render(store, 2)
    outcome = store.record_render(CART, 3, {"v": 1}, "h1", {"v": 1})
    assert not outcome.syncing and store.load(CART).sync_hash == "h1"


def test_busy_lease_raises_for_a_later_retry(store):
    render(store, 2)
    store.begin_sync(CART, "holder")
    with pytest.raises(SyncBusy):
        sync_cart(store, FakeKustom(), CART, request_lifetime_ms=REQUEST_LIFETIME_MS)


def test_outage_releases_the_lease_and_raises(store):
    render(store, 2)
    with pytest.raises(KustomUnavailable):
        sync_cart(
            store,
            FakeKustom(error=KustomUnavailable("down", operation="update_order")),
            CART,
            request_lifetime_ms=REQUEST_LIFETIME_MS,
        )
    assert store.begin_sync(CART, "next").action == "push", "lease given back"


def test_404_marks_the_order_for_recreation(store):
    render(store, 2)
    gone = KustomRejected("gone", operation="update_order", status=404)
    assert (
        sync_cart(
            store, FakeKustom(error=gone), CART, request_lifetime_ms=REQUEST_LIFETIME_MS
        ).outcome
        == "unusable"
    )
    state = store.load(CART)
    assert not state.order_usable and not state.syncing


def test_read_only_order_stops_syncing(store):
    render(store, 2)
    read_only = KustomRejected(
        "ro", operation="update_order", status=403, error_code="READ_ONLY_ORDER"
    )
    assert (
        sync_cart(
            store, FakeKustom(error=read_only), CART, request_lifetime_ms=REQUEST_LIFETIME_MS
        ).outcome
        == "read_only"
    )
    assert store.load(CART).kustom_read_only


def test_after_read_only_no_render_queues_a_job_and_a_late_job_asks_kustom_nothing(
    store, fake_redis
):
    render(store, 2)
    read_only = KustomRejected(
        "ro", operation="update_order", status=403, error_code="READ_ONLY_ORDER"
    )
    sync_cart(store, FakeKustom(error=read_only), CART, request_lifetime_ms=REQUEST_LIFETIME_MS)
    outcome = store.record_render(CART, 3, {"v": 3}, "h3", {"v": 3})
    assert not outcome.enqueue and not outcome.enqueued  # the order can no longer change
    assert fake_redis.zscore(store.syncing_key, CART) is None  # nor a sweeper re-queue
    state = store.load(CART)
    assert state.syncing  # honest: Kustom's paid order does not match the cart now
    kustom = FakeKustom()
    assert (
        sync_cart(store, kustom, CART, request_lifetime_ms=REQUEST_LIFETIME_MS).outcome
        == "read_only"
    )
    assert kustom.pushes == []


def test_a_stale_render_leaves_the_cart_hash_untouched(store, fake_redis):
    render(store, 5)
    before = fake_redis.hgetall(store.cart_key(CART))
    outcome = store.record_render(CART, 4, {"v": 4}, "h4", {"v": 4})
    assert not outcome.accepted
    assert fake_redis.hgetall(store.cart_key(CART)) == before


# -- updates whose answer never came --------------------------------------------------------
#
# Against the real Kustom client (responses) and real payloads: a read timeout, a dropped
# connection or a gateway's 504 may still land at Kustom later, over anything pushed since.

KUSTOM = "https://kustom.test"
ORDER = "order-u"
ORDER_URL = f"{KUSTOM}/checkout/v3/orders/{ORDER}"
LIFETIME_MS = 30_000


class Clock:
    """Epoch milliseconds that move only when told (the sync and the store read them)."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("kustom_app.state.now_ms", clock)
    monkeypatch.setattr("kustom_app.sync.now_ms", clock)
    return clock


@pytest.fixture
def kustom_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client():
    return kustom_client(KUSTOM, "merchant", "secret", kustom_read_timeout=0.5)


def prepared(version: int):
    """The real payload of the contract cart with ``version`` T-shirts."""
    return prepare_render(load_render(make_render(UCART, version, quantity=version)))


UCART = "cart-u"


def record(ustore, version: int):
    p = prepared(version)
    return ustore.record_render(UCART, version, p.render_json, p.hash, p.payload_json)


@pytest.fixture
def ustore(fake_redis, clock):
    s = cart_store(fake_redis)
    first = prepared(1)
    s.record_render(UCART, 1, first.render_json, first.hash, first.payload_json)
    s.record_order(UCART, ORDER, first.hash, first.payload)
    return s


def as_kustom_order(version: int) -> dict:
    """Kustom's order as read back holding the payload of ``version`` (plus its own fields)."""
    payload = prepared(version).payload
    lines = [{**line, "product_identifiers": {}} for line in payload["order_lines"]]
    return {
        **payload,
        "order_lines": list(reversed(lines)),
        "order_id": ORDER,
        "status": "checkout_incomplete",
        "html_snippet": "<div></div>",
        "locale": payload["locale"].lower(),
    }


def sync(ustore, client, **kwargs):
    return sync_cart(
        ustore, client, UCART, burst_gap_ms=0, request_lifetime_ms=LIFETIME_MS, **kwargs
    )


def no_answer(kustom_api):
    kustom_api.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))


def answered(kustom_api):
    kustom_api.post(ORDER_URL, json={"order_id": ORDER})


def read_back(kustom_api, version: int):
    kustom_api.get(ORDER_URL, json=as_kustom_order(version))


def calls(kustom_api) -> list[tuple[str, int | None]]:
    """(method, quantity of the pushed T-shirt line) of every Kustom call, in order."""
    out = []
    for call in kustom_api.calls:
        body = json.loads(call.request.body) if call.request.body else None
        out.append((call.request.method, body["order_lines"][0]["quantity"] if body else None))
    return out


def uncertain_until(fake_redis) -> int | None:
    raw = fake_redis.hget("kustom:cart:" + UCART, "sync_uncertain_until")
    return int(raw) if raw else None


def test_an_update_without_an_answer_marks_nothing_synced_and_keeps_the_cart(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown) as raised:
        sync(ustore, client)
    assert raised.value.retry_after_ms == LIFETIME_MS
    state = ustore.load(UCART)
    assert state.pending_hash == prepared(2).hash
    assert state.syncing and state.sync_hash == UNVERIFIED_PREFIX + prepared(2).hash
    assert state.status()["syncing"] is True  # the storefront keeps the iframe suspended
    assert fake_redis.zscore(ustore.syncing_key, UCART) is not None  # the sweeper sees it
    assert uncertain_until(fake_redis) == clock.ms + LIFETIME_MS
    # The lease went back, but no job may push until the window is over.
    assert ustore.begin_sync(UCART, "other").action == "uncertain"


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.exceptions.ReadTimeout("read")},
        {"body": requests.exceptions.ConnectionError("Connection aborted.")},
        {"status": 504, "body": ""},
        {"status": 502, "body": "<html>bad gateway</html>"},
        {"status": 500, "body": "<html>proxy error</html>"},
        {"status": 504, "json": {"error_code": "TIMEOUT", "correlation_id": "c"}},
    ],
    ids=["read-timeout", "dropped", "504", "502", "500-not-kustoms", "504-kustoms"],
)
def test_what_counts_as_an_unknown_outcome(ustore, client, kustom_api, fake_redis, answer):
    record(ustore, 2)
    kustom_api.post(ORDER_URL, **answer)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    assert ustore.load(UCART).sync_hash.startswith(UNVERIFIED_PREFIX)


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.exceptions.ConnectTimeout("connect")},
        {"status": 503, "json": {"error_code": "SERVICE_UNAVAILABLE", "correlation_id": "c"}},
        {"status": 500, "json": {"error_code": "INTERNAL_ERROR", "correlation_id": "c"}},
        {"status": 429, "body": ""},
    ],
    ids=["never-connected", "503-kustoms", "500-kustoms", "429"],
)
def test_kustoms_own_error_answers_are_plain_outages(
    ustore, client, kustom_api, fake_redis, answer
):
    record(ustore, 2)
    kustom_api.post(ORDER_URL, **answer)
    with pytest.raises(KustomUnavailable) as raised:
        sync(ustore, client)
    assert not isinstance(raised.value, KustomOutcomeUnknown)
    state = ustore.load(UCART)
    assert state.sync_hash == prepared(1).hash  # what Kustom had, still known
    assert uncertain_until(fake_redis) is None
    assert ustore.begin_sync(UCART, "next").action == "push"  # the next try pushes at once


def test_a_job_during_the_window_waits_without_calling_kustom(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(10_000)
    outcome = record(ustore, 3)
    assert outcome.syncing and not outcome.enqueue  # the waiting job counts as queued
    with pytest.raises(SyncUncertain) as raised:
        sync(ustore, client)
    assert raised.value.retry_after_ms == LIFETIME_MS - 10_000
    assert isinstance(raised.value, SyncBusy)  # retried like a busy lease
    assert calls(kustom_api) == [("POST", 2)]
    assert fake_redis.zscore(ustore.syncing_key, UCART) is not None


def test_a_render_equal_to_the_last_synced_one_is_not_taken_as_in_sync_meanwhile(
    ustore, client, kustom_api, clock
):
    """Kustom may hold version 2 by now: going back to version 1's cart needs a sync."""
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    back = prepared(1)
    outcome = ustore.record_render(UCART, 3, back.render_json, back.hash, back.payload_json)
    assert outcome.syncing and outcome.pending_hash == prepared(1).hash


def test_after_the_window_an_order_equal_to_the_newest_payload_is_synced_without_a_push(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(LIFETIME_MS)
    read_back(kustom_api, 2)  # the update landed at Kustom after all
    result = sync(ustore, client)
    assert (result.outcome, result.pushes) == ("verified", 0)
    assert calls(kustom_api) == [("POST", 2), ("GET", None)]
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == prepared(2).hash and not state.syncing
    assert state.sync_payload == prepared(2).payload
    assert uncertain_until(fake_redis) is None
    assert fake_redis.zscore(ustore.syncing_key, UCART) is None


def test_after_the_window_a_different_order_gets_the_newest_payload_pushed(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    record(ustore, 3)  # came while version 2's update was in the air
    clock.advance(LIFETIME_MS)
    read_back(kustom_api, 2)  # version 2 landed late
    answered(kustom_api)
    result = sync(ustore, client)
    assert (result.outcome, result.pushes) == ("synced", 1)
    assert calls(kustom_api) == [("POST", 2), ("GET", None), ("POST", 3)]
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == prepared(3).hash
    assert uncertain_until(fake_redis) is None


def test_an_answered_push_after_the_window_settles_it_for_good(
    ustore, client, kustom_api, fake_redis, clock
):
    """Once settled, a normal sync is a single push again: no read, no waiting."""
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(LIFETIME_MS)
    read_back(kustom_api, 1)  # it never landed
    answered(kustom_api)
    assert sync(ustore, client).outcome == "synced"
    record(ustore, 4)
    assert sync(ustore, client).outcome == "synced"
    assert calls(kustom_api) == [("POST", 2), ("GET", None), ("POST", 2), ("POST", 4)]


def test_a_second_update_without_an_answer_opens_a_new_window(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    record(ustore, 3)
    clock.advance(LIFETIME_MS + 5)
    read_back(kustom_api, 1)
    with pytest.raises(SyncOutcomeUnknown) as raised:
        sync(ustore, client)  # pushes version 3: no answer again
    assert raised.value.retry_after_ms == LIFETIME_MS
    assert uncertain_until(fake_redis) == clock.ms + LIFETIME_MS
    state = ustore.load(UCART)
    assert state.syncing and state.sync_hash == UNVERIFIED_PREFIX + prepared(3).hash
    with pytest.raises(SyncUncertain):
        sync(ustore, client)
    assert calls(kustom_api) == [("POST", 2), ("GET", None), ("POST", 3)]


def test_a_read_back_that_fails_is_an_ordinary_outage_and_keeps_the_window_settled_state(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(LIFETIME_MS)
    kustom_api.get(ORDER_URL, body=requests.exceptions.ReadTimeout("read"))
    with pytest.raises(KustomUnavailable) as raised:
        sync(ustore, client)
    assert not isinstance(raised.value, SyncOutcomeUnknown)
    assert ustore.load(UCART).syncing
    assert ustore.begin_sync(UCART, "next").action == "verify"  # the next job reads again


def test_an_order_gone_when_read_back_is_marked_for_recreation(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(LIFETIME_MS)
    kustom_api.get(ORDER_URL, status=404, body="")
    assert sync(ustore, client).outcome == "unusable"
    state = ustore.load(UCART)
    assert not state.order_usable and not state.syncing
    assert uncertain_until(fake_redis) is None


def test_a_callback_answer_during_the_window_is_pending_only(
    ustore, client, kustom_api, fake_redis, clock
):
    """Kustom applies our callback answer now, but the update in the air may land after it:
    the answer is not what Kustom has until a job has read the order back."""
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    answer = prepared(5)
    assert ustore.record_applied_render(UCART, 5, answer.render_json, answer.hash, answer.payload)
    state = ustore.load(UCART)
    assert state.pending_hash == answer.hash and state.syncing
    assert fake_redis.zscore(ustore.syncing_key, UCART) is not None
    clock.advance(LIFETIME_MS)
    read_back(kustom_api, 5)  # Kustom applied the answer, nothing landed after it
    assert sync(ustore, client).outcome == "verified"
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == answer.hash


def test_a_callback_answer_after_the_window_is_what_kustom_has(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    clock.advance(LIFETIME_MS)
    answer = prepared(5)
    ustore.record_applied_render(UCART, 5, answer.render_json, answer.hash, answer.payload)
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == answer.hash and not state.syncing
    assert uncertain_until(fake_redis) is None
    assert sync(ustore, client).outcome == "in_sync"
    assert calls(kustom_api) == [("POST", 2)]


def test_a_new_kustom_order_owes_nothing_to_an_update_of_the_old_one(
    ustore, client, kustom_api, fake_redis, clock
):
    record(ustore, 2)
    no_answer(kustom_api)
    with pytest.raises(SyncOutcomeUnknown):
        sync(ustore, client)
    ustore.record_order(UCART, "order-new", prepared(2).hash, prepared(2).payload)
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == prepared(2).hash
    assert uncertain_until(fake_redis) is None


def test_a_normal_sync_never_reads_the_order_back(ustore, client, kustom_api):
    record(ustore, 2)
    answered(kustom_api)
    assert sync(ustore, client).outcome == "synced"
    assert calls(kustom_api) == [("POST", 2)]


def test_the_read_back_compares_what_was_sent():
    payload = prepared(2).payload
    assert order_has_payload(as_kustom_order(2), payload)
    assert not order_has_payload(as_kustom_order(3), payload)
    renamed = as_kustom_order(2)
    renamed["order_lines"] = [{**line, "name": "Old name"} for line in renamed["order_lines"]]
    assert not order_has_payload(renamed, payload), "a stale name is a stale order"
    fewer = as_kustom_order(2)
    fewer["order_lines"] = fewer["order_lines"][:1]
    assert not order_has_payload(fewer, payload)
    other_options = as_kustom_order(2)
    other_options["shipping_options"] = other_options["shipping_options"][:1]
    assert not order_has_payload(other_options, payload)
    assert not order_has_payload(
        {k: v for k, v in as_kustom_order(2).items() if k != "locale"}, payload
    )


def test_the_read_back_accepts_the_shipping_line_kustom_added_itself():
    render = load_render(make_render(UCART, 2))
    payload = build_order_payload(render, kustom_adds_shipping=True)
    option = next(o for o in payload["shipping_options"] if o["preselected"])
    order = {**copy.deepcopy(payload), "order_amount": payload["order_amount"] + option["price"]}
    order["order_tax_amount"] += option["tax_amount"]
    order["order_lines"].append(
        {"type": "shipping_fee", "reference": option["id"], "name": option["name"],
         "quantity": 1, "unit_price": option["price"], "tax_rate": option["tax_rate"],
         "total_amount": option["price"], "total_tax_amount": option["tax_amount"]}
    )  # fmt: skip
    assert order_has_payload(order, payload)
    order["order_lines"].append(dict(order["order_lines"][-1]))  # shipping twice
    assert not order_has_payload(order, payload)


def test_a_push_sent_before_another_jobs_window_ends_is_not_taken_as_what_kustom_has(
    ustore, fake_redis, clock
):
    """Two jobs pushing at once only happens after a lost lease; even then, an answered push
    sent while another update may still land says nothing about what Kustom ends with."""
    record(ustore, 2)
    step = ustore.begin_sync(UCART, "slow")
    sent_at = clock.ms
    ustore.record_unknown_outcome(UCART, "other", ORDER, "h-other", clock.ms + LIFETIME_MS)
    clock.advance(1_000)
    after = ustore.finish_sync(UCART, "slow", step.hash, ORDER, step.payload, sent_at=sent_at)
    assert after.action == "uncertain" and after.retry_after_ms == LIFETIME_MS - 1_000
    state = ustore.load(UCART)
    assert state.syncing and state.sync_hash == UNVERIFIED_PREFIX + "h-other"
    assert fake_redis.hget(ustore.cart_key(UCART), "sync_lock") is None  # lease given back


def test_an_unknown_outcome_for_an_order_the_cart_has_left_marks_nothing(ustore, fake_redis):
    record(ustore, 2)
    ustore.begin_sync(UCART, "job")
    ustore.record_order(UCART, "order-new", prepared(2).hash, prepared(2).payload)
    assert ustore.record_unknown_outcome(UCART, "job", ORDER, "h2", now_ms() + 1) is None
    state = ustore.load(UCART)
    assert not state.syncing and uncertain_until(fake_redis) is None


def test_a_push_landing_after_its_lease_ran_out_keeps_the_cart_syncing_until_read_back(
    ustore, client, kustom_api, fake_redis, clock
):
    """Job A read version 2, then stalled past its lease (Redis restarting); job B took the
    lease and synced version 3; then A's push of version 2 landed on top of it at Kustom.
    (Seen on a real Redis SIGKILL: the cart reported in sync, Kustom one render behind.)"""
    record(ustore, 2)
    pushed: list[int] = []

    def a_stalls_and_b_syncs(request):
        quantity = json.loads(request.body)["order_lines"][0]["quantity"]
        if quantity == 2 and not pushed:  # A's push, on its way while A's lease runs out
            clock.advance(60_000)
            record(ustore, 3)
            assert sync(ustore, client).outcome == "synced"  # job B
        pushed.append(quantity)
        return (200, {}, json.dumps({"order_id": ORDER}))

    kustom_api.add_callback("POST", ORDER_URL, callback=a_stalls_and_b_syncs)
    with pytest.raises(SyncUncertain) as raised:
        sync(ustore, client)  # job A
    assert pushed == [3, 2], "Kustom ends with A's version 2"
    assert raised.value.retry_after_ms == 0
    state = ustore.load(UCART)
    assert state.syncing and state.sync_hash == UNVERIFIED_PREFIX + prepared(2).hash
    assert fake_redis.zscore(ustore.syncing_key, UCART) is not None  # the sweeper sees it

    read_back(kustom_api, 2)  # A's retry reads the order back: version 2, not the newest
    result = sync(ustore, client)
    assert (result.outcome, result.pushes) == ("synced", 1)
    assert pushed == [3, 2, 3]
    state = ustore.load(UCART)
    assert state.pending_hash == state.sync_hash == prepared(3).hash and not state.syncing
