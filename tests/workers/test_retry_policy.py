"""What each task retries, waits out and gives up on, and what its dead letter then says
(run eagerly, on fakeredis, with Kustom and the commerce backend failing on demand).

Operators and the sweeper read the dead letters' fields (``{prefix}:deadletter``) and the
log line; these pin them field by field, in order, for every task.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from celery.exceptions import Retry

from kustom_app.commerce import CommerceRejected, CommerceUnavailable
from kustom_app.completion import CartUnknown
from kustom_app.kustom import KustomRejected, KustomUnavailable
from kustom_app.ordermanagement import CancelDeferred, OperationBusy
from kustom_app.services import Services
from kustom_app.settings import Settings
from kustom_app.sync import SyncBusy
from workers import ordermanagement, retry, tasks

MAX_RETRIES = 3
RETRY_MAX_SECONDS = 5.0


@pytest.fixture
def services(fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> Services:
    services = Services(
        Settings(
            max_retries=MAX_RETRIES,
            retry_base_seconds=0.01,
            retry_max_seconds=RETRY_MAX_SECONDS,
            commerce_api_url="https://commerce.test",
        )
    )
    services.__dict__["redis"] = fake_redis
    for module in (tasks, ordermanagement, retry):
        monkeypatch.setattr(module, "process_services", lambda: services)
    return services


def letters(services: Services, task_name: str) -> list[dict[str, Any]]:
    """The dead letters, newest first, without the fields every letter has."""
    found = []
    for raw in services.redis.lrange("kustom:deadletter", 0, -1):
        letter = json.loads(raw)
        assert letter.pop("task") == task_name
        assert letter.pop("taskId") and letter.pop("at")
        found.append(letter)
    return found


def retries_of(task: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str | None]]:
    """Each retry the task asks for: its countdown and the error it reports (not run)."""
    asked: list[tuple[float, str | None]] = []

    def record(*args: Any, countdown: float = 0.0, exc: Any = None, **kwargs: Any) -> Retry:
        asked.append((countdown, type(exc).__name__ if exc is not None else None))
        return Retry()

    monkeypatch.setattr(task, "retry", record)
    return asked


def failing(error: Exception) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


def kustom_rejected(code: str = "BAD_VALUE") -> KustomRejected:
    return KustomRejected(
        "Kustom said no", operation="op", status=400, error_code=code, correlation_id="corr-1"
    )


def kustom_down() -> KustomUnavailable:
    return KustomUnavailable("Kustom is down", operation="op", status=503, correlation_id="c-2")


def fail_sync(error: Exception) -> Any:
    return lambda services, monkeypatch: monkeypatch.setattr(tasks, "sync_cart", failing(error))


def fail_completion(error: Exception) -> Any:
    return lambda services, monkeypatch: monkeypatch.setattr(
        services.completion, "complete", failing(error)
    )


def fail_acknowledgement(*, references: Exception | None, ack: Exception | None) -> Any:
    """A completed cart whose Kustom calls fail as given (None: the call succeeds)."""

    def setup(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        state = SimpleNamespace(
            cart_state="completed", completion_order_id="order-3", order_number="1003"
        )
        monkeypatch.setattr(services.store, "load", lambda cart_id: state)
        monkeypatch.setattr(services.store, "record_acknowledged", lambda *a: None)
        for call, error in (("update_merchant_references", references), ("acknowledge_order", ack)):
            monkeypatch.setattr(services.kustom, call, failing(error) if error else _answer)

    return setup


def fail_fraud_forward(error: Exception) -> Any:
    def setup(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        order = {"merchant_reference1": "cart-4"}
        monkeypatch.setattr(services.kustom, "get_om_order", lambda *a, **k: order)
        monkeypatch.setattr(services.commerce, "post", failing(error))

    return setup


def fail_payments(**calls: Exception) -> Any:
    """Payment operations whose ``execute``/``deliver_result`` fail as given."""
    fake = SimpleNamespace(**{call: failing(error) for call, error in calls.items()})
    return lambda services, monkeypatch: monkeypatch.setattr(
        ordermanagement, "payment_operations", lambda: fake
    )


def _answer(*args: Any, **kwargs: Any) -> None:
    return None


SYNC, CART = tasks.sync_kustom_order, ("cart-1", "h1", None)
COMPLETE, ORDER = tasks.complete_kustom_order, ("cart-2", "order-2", "sweeper")
ACK, FRAUD = tasks.acknowledge_kustom_order, tasks.forward_fraud_decision
CAPTURE, REFUND = ordermanagement.capture_kustom_order, ordermanagement.refund_kustom_order
CANCEL, DELIVER = ordermanagement.cancel_kustom_order, ordermanagement.deliver_payment_result
BUSY_LIMIT = ordermanagement.BUSY_RETRY_LIMIT
REFUSED = CommerceRejected(
    "refused", operation="payment_result", status=422, body={"error": {"code": "unknown"}}
)
BACKEND_DOWN = CommerceUnavailable("backend down", operation="create_order", status=502)
DEFERRED = CancelDeferred(["cap-1", "cap-2"])

FAILS = None  # the task fails (with its error), rather than returning

# The task, its arguments, how it fails, its retries so far; what it returns; its dead
# letter, field by field in order.
GIVEN_UP = {
    "sync rejected": (
        SYNC, CART, fail_sync(kustom_rejected()), 0, "rejected",
        {"error": "KustomRejected: Kustom said no", "cart": "cart-1",
         "kustomErrorCode": "BAD_VALUE", "correlationId": "corr-1"},
    ),
    "sync after the last retry in an outage": (
        SYNC, CART, fail_sync(kustom_down()), MAX_RETRIES, FAILS,
        {"error": "KustomUnavailable: Kustom is down", "cart": "cart-1"},
    ),
    "completion refused": (
        COMPLETE, ORDER, fail_completion(CartUnknown("no such cart")), 0, "refused",
        {"error": "CartUnknown: no such cart", "cart": "cart-2", "order": "order-2"},
    ),
    "completion after the last retry in a backend outage": (
        COMPLETE, ORDER, fail_completion(BACKEND_DOWN), MAX_RETRIES, FAILS,
        {"error": "CommerceUnavailable: backend down", "cart": "cart-2", "order": "order-2"},
    ),
    "merchant reference refused, acknowledged anyway": (
        ACK, ("cart-3", "order-3"),
        fail_acknowledgement(references=kustom_rejected("READ_ONLY"), ack=None), 0,
        "acknowledged",
        {"error": "KustomRejected: Kustom said no", "cart": "cart-3", "order": "order-3",
         "kustomErrorCode": "READ_ONLY"},
    ),
    "acknowledgement refused": (
        ACK, ("cart-3", "order-3"), fail_acknowledgement(references=None, ack=kustom_rejected()),
        0, "rejected",
        {"error": "KustomRejected: Kustom said no", "cart": "cart-3", "order": "order-3",
         "kustomErrorCode": "BAD_VALUE"},
    ),
    "fraud decision refused": (
        FRAUD, ("cart-4", "order-4", "FRAUD_RISK_STOPPED"), fail_fraud_forward(REFUSED), 0,
        "rejected",
        {"error": "CommerceRejected: refused", "cart": "cart-4", "order": "order-4",
         "decision": "FRAUD_RISK_STOPPED"},
    ),
    "capture after the last retry in an outage": (
        CAPTURE, ("cap-1",), fail_payments(execute=kustom_down()), MAX_RETRIES, FAILS,
        {"error": "KustomUnavailable: Kustom is down", "kind": "capture", "id": "cap-1",
         "status": 503, "correlationId": "c-2"},
    ),
    "cancel after the last retry waiting for captures": (
        CANCEL, ("cart-5",), fail_payments(execute=DEFERRED), MAX_RETRIES, FAILS,
        {"error": "CancelDeferred: waiting for cap-1, cap-2", "kind": "cancel", "id": "cart-5",
         "waitingFor": ["cap-1", "cap-2"]},
    ),
    "refund whose twin never lets go": (
        REFUND, ("ref-1",), fail_payments(execute=OperationBusy(2_000)), BUSY_LIMIT, FAILS,
        {"error": "OperationBusy: operation busy for 2000 ms", "kind": "refund", "id": "ref-1"},
    ),
    "payment result refused": (
        DELIVER, ("capture", "cap-3"), fail_payments(deliver_result=REFUSED), 0, "refused",
        {"error": "CommerceRejected: refused", "kind": "capture", "id": "cap-3", "status": 422,
         "code": "unknown"},
    ),
    "payment result after the last retry in a backend outage": (
        DELIVER, ("refund", "ref-2"), fail_payments(deliver_result=BACKEND_DOWN), MAX_RETRIES,
        FAILS,
        {"error": "CommerceUnavailable: backend down", "kind": "refund", "id": "ref-2",
         "status": 502},
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "args", "fail", "retries", "result", "expected"),
    GIVEN_UP.values(),
    ids=GIVEN_UP.keys(),
)
def test_a_task_that_gives_up_leaves_a_dead_letter_with_its_fields(
    services, monkeypatch, task, args, fail, retries, result, expected
):
    fail(services, monkeypatch)
    outcome = task.apply(args=args, retries=retries)
    if result is FAILS:
        assert outcome.failed()
    else:
        assert outcome.get() == result
    (letter,) = letters(services, task.name)
    assert list(letter.items()) == list(expected.items())


# The task, its arguments, how it fails, its retries so far; the countdown's range and the
# error the retry reports (an outage is one; a lease a live job holds is none).
RETRIED = {
    "sync during an outage": (
        SYNC, CART, fail_sync(kustom_down()), 0, (0.0, RETRY_MAX_SECONDS), "KustomUnavailable",
    ),
    "sync waiting for a lease": (SYNC, CART, fail_sync(SyncBusy(1_000)), 0, (1.0, 1.5), None),
    "cancel waiting for captures": (
        CANCEL, ("cart-5",), fail_payments(execute=DEFERRED), 0, (0.0, RETRY_MAX_SECONDS),
        "CancelDeferred",
    ),
    "refund waiting for its twin": (
        REFUND, ("ref-1",), fail_payments(execute=OperationBusy(2_000)), BUSY_LIMIT - 1,
        (2.0, 2.5), None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", RETRIED.values(), ids=RETRIED.keys())
def test_a_retry_comes_back_later_and_leaves_no_dead_letter(services, monkeypatch, case):
    task, args, fail, retries, (soonest, latest), reported = case
    fail(services, monkeypatch)
    asked = retries_of(task, monkeypatch)
    assert task.apply(args=args, retries=retries).state == "RETRY"
    ((countdown, error),) = asked
    assert soonest < countdown <= latest and error == reported
    assert letters(services, task.name) == []


def test_a_dead_letter_is_logged_with_its_fields(services, monkeypatch, caplog):
    fail_payments(deliver_result=REFUSED)(services, monkeypatch)
    with caplog.at_level(logging.ERROR):
        result = DELIVER.apply(args=("capture", "cap-3"))
    context = {"kind": "capture", "id": "cap-3", "status": 422, "code": "unknown"}
    (record,) = [r for r in caplog.records if r.getMessage().startswith("kustom.task.dead_letter")]
    assert record.name == "workers.tasks"
    assert record.getMessage() == (
        f"kustom.task.dead_letter task=deliverPaymentResult id={result.id} "
        f"context={json.dumps(context, separators=(',', ':'))}"
    )
