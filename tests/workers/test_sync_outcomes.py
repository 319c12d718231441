"""syncKustomOrder and an update whose answer never came (eagerly, on fakeredis, with the
real Kustom client against `responses`): retried like an outage, never before the update
can no longer land, and kept as a dead letter after the last retry like every give-up."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
import requests
import responses
from celery.exceptions import Retry

from kustom_app.render import load_render
from kustom_app.services import Services
from kustom_app.settings import Settings
from kustom_app.sync import prepare_render
from tests.conftest import make_render
from workers import retry, tasks
from workers.tasks import sync_kustom_order

CART, ORDER = "cart-w", "order-w"
ORDER_URL = f"https://kustom.test/checkout/v3/orders/{ORDER}"
MAX_RETRIES = 3


@pytest.fixture
def services(fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> Services:
    services = Services(
        Settings(
            kustom_api_url="https://kustom.test",
            kustom_username="merchant",
            kustom_password="secret",
            kustom_request_lifetime_seconds=12.0,
            sync_lease_seconds=20.0,
            max_retries=MAX_RETRIES,
            retry_base_seconds=0.01,
        )
    )
    services.__dict__["redis"] = fake_redis
    monkeypatch.setattr(tasks, "process_services", lambda: services)
    monkeypatch.setattr(retry, "process_services", lambda: services)
    store = services.store
    for version in (1, 2):
        p = prepare_render(load_render(make_render(CART, version, quantity=version)))
        store.record_render(CART, version, p.render_json, p.hash, p.payload_json)
        if version == 1:
            store.record_order(CART, ORDER, p.hash, p.payload)
    return services


@pytest.fixture
def countdowns(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The countdown of every retry the task asks for (the retry itself is not run)."""
    asked: list[float] = []

    def retry(*args: Any, countdown: float = 0.0, **kwargs: Any) -> Retry:
        asked.append(countdown)
        return Retry()

    monkeypatch.setattr(sync_kustom_order, "retry", retry)
    return asked


@pytest.fixture
def kustom_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_an_update_without_an_answer_is_retried_once_it_can_no_longer_land(
    services, kustom_api, countdowns
):
    kustom_api.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read"))
    result = sync_kustom_order.apply(args=(CART, None, None))
    assert result.state == "RETRY"
    (countdown,) = countdowns
    assert 12.0 < countdown <= 12.5  # the request lifetime, plus jitter; not the backoff
    assert services.store.load(CART).syncing


def test_a_job_arriving_meanwhile_comes_back_when_the_window_ends(services, kustom_api, countdowns):
    kustom_api.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read"))
    sync_kustom_order.apply(args=(CART, None, None))
    sync_kustom_order.apply(args=(CART, None, None))
    assert len(kustom_api.calls) == 1, "the second job does not call Kustom"
    assert 11.0 < countdowns[1] <= 12.5


def test_a_window_longer_than_a_lease_is_waited_out_in_steps(
    services, kustom_api, countdowns, monkeypatch
):
    """Each countdown stays within what Settings checked against the visibility timeout."""
    from dataclasses import replace

    monkeypatch.setattr(
        services, "settings", replace(services.settings, kustom_request_lifetime_seconds=60.0)
    )
    kustom_api.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read"))
    sync_kustom_order.apply(args=(CART, None, None))
    assert 20.0 < countdowns[0] <= 20.5


def test_after_the_last_retry_an_unknown_outcome_is_a_dead_letter_and_the_cart_waits(
    services, kustom_api
):
    kustom_api.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read"))
    result = sync_kustom_order.apply(args=(CART, None, None), retries=MAX_RETRIES)
    assert result.failed()
    (raw,) = services.redis.lrange("kustom:deadletter", 0, -1)
    letter = json.loads(raw)
    assert letter["task"] == "syncKustomOrder"
    assert (letter["cart"], letter["outcome"]) == (CART, "unknown")
    assert letter["error"].startswith("KustomOutcomeUnknown: ")
    # Still syncing and on the index: the sweeper queues it again later.
    assert services.store.load(CART).syncing
    assert services.redis.zscore(services.store.syncing_key, CART) is not None
