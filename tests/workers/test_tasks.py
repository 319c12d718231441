"""Tasks that give up after their last retry leave a dead letter (run eagerly, on fakeredis).

The real-worker check, a task driven through all its retries by a real broker, is in
tests/integration/test_reconcile.py.
"""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest

from kustom_app.completion import CompletionOutcome
from kustom_app.services import Services
from kustom_app.settings import Settings
from kustom_app.sync import SyncBusy
from workers import retry, tasks
from workers.tasks import SYNC_BUSY_RETRY_LIMIT, complete_kustom_order, sync_kustom_order

MAX_RETRIES = 3


@pytest.fixture
def services(fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> Services:
    services = Services(Settings(max_retries=MAX_RETRIES, retry_base_seconds=0.01))
    services.__dict__["redis"] = fake_redis
    monkeypatch.setattr(tasks, "process_services", lambda: services)
    monkeypatch.setattr(retry, "process_services", lambda: services)
    return services


def dead_letters(services: Services) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in services.redis.lrange("kustom:deadletter", 0, -1)]


def test_a_sync_job_that_never_gets_the_lease_gives_up_into_a_dead_letter(services, monkeypatch):
    attempts: list[str] = []

    def always_busy(store: Any, kustom: Any, cart_id: str, **_: Any) -> Any:
        attempts.append(cart_id)
        raise SyncBusy(2_000)

    monkeypatch.setattr(tasks, "sync_cart", always_busy)
    # One retry before the last: eagerly, Celery runs the retry at once.
    result = sync_kustom_order.apply(args=("cart-1", "h1", None), retries=SYNC_BUSY_RETRY_LIMIT - 1)
    assert result.failed() and isinstance(result.result, SyncBusy)
    assert attempts == ["cart-1", "cart-1"]
    (letter,) = dead_letters(services)
    assert letter["task"] == "syncKustomOrder"
    assert (letter["cart"], letter["hash"]) == ("cart-1", "h1")
    assert letter["error"] == "SyncBusy: sync lease held for another 2000 ms"
    assert letter["taskId"] == result.id


def test_a_completion_still_incomplete_after_its_last_retry_leaves_a_dead_letter(
    services, monkeypatch
):
    def incomplete(cart_id: str, order_id: str, **_: Any) -> CompletionOutcome:
        return CompletionOutcome("incomplete", order_id)

    monkeypatch.setattr(services.completion, "complete", incomplete)
    result = complete_kustom_order.apply(
        args=("cart-2", "order-2", "sweeper"), retries=MAX_RETRIES - 1
    )
    assert result.successful() and result.result == "incomplete"
    (letter,) = dead_letters(services)
    assert letter["task"] == "completeKustomOrder"
    assert (letter["cart"], letter["order"], letter["path"]) == ("cart-2", "order-2", "sweeper")
    assert (
        letter["error"] == f"RetriesExhausted: order still incomplete after {MAX_RETRIES} retries"
    )


def test_a_completion_still_in_progress_after_its_last_retry_leaves_a_dead_letter(
    services, monkeypatch
):
    def busy(cart_id: str, order_id: str, **_: Any) -> CompletionOutcome:
        return CompletionOutcome("in_progress", order_id, retry_after_ms=500)

    monkeypatch.setattr(services.completion, "complete", busy)
    result = complete_kustom_order.apply(args=("cart-3", "order-3"), retries=MAX_RETRIES)
    assert result.result == "in_progress"
    (letter,) = dead_letters(services)
    assert (
        letter["error"] == f"RetriesExhausted: order still in_progress after {MAX_RETRIES} retries"
    )


def test_a_task_failing_on_an_error_it_does_not_handle_leaves_a_dead_letter(services, monkeypatch):
    def broken(store: Any, kustom: Any, cart_id: str, **_: Any) -> Any:
        raise RuntimeError("a bug, or Redis going away mid-task")

    monkeypatch.setattr(tasks, "sync_cart", broken)
    result = sync_kustom_order.apply(args=("cart-3", "h3", {"order_lines": []}))
    assert result.failed()
    (letter,) = dead_letters(services)
    assert letter["task"] == "syncKustomOrder" and letter["taskId"] == result.id
    assert letter["error"] == "RuntimeError: a bug, or Redis going away mid-task"
    assert letter["args"] == ["cart-3", "h3"]  # ids only: no payload


def test_a_dead_letter_that_cannot_be_written_is_logged(services, monkeypatch, caplog):
    def broken(store: Any, kustom: Any, cart_id: str, **_: Any) -> Any:
        raise ConnectionError("redis down")

    def no_redis(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis down")

    monkeypatch.setattr(tasks, "sync_cart", broken)
    monkeypatch.setattr(services.redis, "pipeline", no_redis)
    with caplog.at_level("ERROR", logger="workers.tasks"):
        assert sync_kustom_order.apply(args=("cart-4",)).failed()
    assert "kustom.task.dead_letter_lost task=syncKustomOrder" in caplog.text
