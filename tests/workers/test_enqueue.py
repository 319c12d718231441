"""The one enqueue port (`kustom_app.jobs.Jobs`): each job goes to its contract task with
ids as its arguments, and Flower shows ids only; the web's stand-in has the same methods."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from celery import Task

from kustom_app.jobs import Jobs
from tests.conftest import RecordingQueue
from workers.enqueue import CeleryJobs
from workers.tasks import acknowledge_kustom_order


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], str]]:
    """What would go to the broker: task name, arguments, and what Flower shows of them."""
    sent: list[tuple[str, tuple[Any, ...], str]] = []

    def apply_async(task: Task, args: tuple[Any, ...], argsrepr: str, **_: Any) -> None:
        sent.append((task.name, args, argsrepr))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return sent


def test_every_job_goes_to_its_task_and_flower_shows_ids_only(published):
    jobs = CeleryJobs()
    jobs.sync("cart-1", "h1", {"order_lines": [{"name": "T-shirt"}]})
    jobs.complete("cart-1", "order-1", "sweeper")
    jobs.acknowledge("cart-1", "order-1")
    jobs.fraud_decision("cart-1", "order-1", "FRAUD_RISK_ACCEPTED")
    jobs.capture("cap-1")
    jobs.refund("ref-1")
    jobs.cancel("cart-1")
    jobs.payment("refund", "ref-2")
    jobs.deliver("capture", "cap-1")
    assert published == [
        (
            "syncKustomOrder",
            ("cart-1", "h1", {"order_lines": [{"name": "T-shirt"}]}),
            "(cart='cart-1', hash='h1')",
        ),
        (
            "completeKustomOrder",
            ("cart-1", "order-1", "sweeper"),
            "(cart='cart-1', order='order-1', path='sweeper')",
        ),
        ("acknowledgeKustomOrder", ("cart-1", "order-1"), "(cart='cart-1', order='order-1')"),
        (
            "forwardFraudDecision",
            ("cart-1", "order-1", "FRAUD_RISK_ACCEPTED"),
            "(cart='cart-1', order='order-1', decision='FRAUD_RISK_ACCEPTED')",
        ),
        ("captureKustomOrder", ("cap-1",), "(capture='cap-1')"),
        ("refundKustomOrder", ("ref-1",), "(refund='ref-1')"),
        ("cancelKustomOrder", ("cart-1",), "(cancel='cart-1')"),
        ("refundKustomOrder", ("ref-2",), "(refund='ref-2')"),
        ("deliverPaymentResult", ("capture", "cap-1"), "(kind='capture', id='cap-1')"),
    ]


def test_without_the_state_redis_sync_jobs_are_not_queued_by_the_script():
    assert CeleryJobs().sync_job("cart-1", "h1") is None


def test_a_job_with_the_wrong_arguments_is_refused_before_it_is_sent():
    # The declared retry policy wraps the task: Celery still checks against its signature.
    with pytest.raises(TypeError):
        acknowledge_kustom_order.apply_async(args=("cart-1",))


def methods(cls: type) -> dict[str, list[tuple[str, Any]]]:
    return {
        name: [(p.name, p.kind) for p in inspect.signature(member).parameters.values()]
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("implementation", [CeleryJobs, RecordingQueue])
def test_each_implementation_has_exactly_the_ports_methods(implementation):
    assert methods(implementation) == methods(Jobs)
