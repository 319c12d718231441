"""The Celery app carries the settings "Celery settings" in docs/operations.md documents."""

from __future__ import annotations

from kustom_app.settings import Settings
from workers.celery_app import ORDERS_QUEUE, SYNC_QUEUE, make_celery
from workers.tasks import complete_kustom_order, sync_kustom_order


def test_the_app_is_configured_as_documented():
    conf = make_celery(Settings()).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1
    assert conf.result_expires == 3600
    assert conf.task_ignore_result is True
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (120, 100)
    assert conf.task_send_sent_event is False
    assert conf.task_default_queue == ORDERS_QUEUE
    assert conf.task_routes == {"syncKustomOrder": {"queue": SYNC_QUEUE}}
    schedule = conf.beat_schedule["reconcile-kustom-orders"]
    assert (schedule["task"], schedule["schedule"]) == ("reconcileKustomOrders", 60.0)


def test_the_visibility_timeout_and_time_limits_follow_the_settings():
    settings = Settings.from_env(
        {
            "CELERY_VISIBILITY_TIMEOUT": "60",
            "TASK_RETRY_MAX_SECONDS": "2",
            "SYNC_LEASE_SECONDS": "20",
            "PAYMENT_LEASE_SECONDS": "20",
            "COMPLETION_LEASE_SECONDS": "20",
            "TASK_TIME_LIMIT_SECONDS": "25",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
        }
    )
    conf = make_celery(settings).conf
    assert conf.broker_transport_options["visibility_timeout"] == 60
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (25, 20)
    assert conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]


def test_the_tasks_are_acknowledged_late_and_redelivered_when_their_worker_is_lost():
    for task in (sync_kustom_order, complete_kustom_order):
        assert task.acks_late is True and task.reject_on_worker_lost is True


def test_flower_gets_kombus_own_redis_transport_and_the_others_the_fast_one():
    from workers.celery_app import configuration
    from workers.fastpath_broker import TRANSPORT

    settings = Settings.from_env({})
    assert configuration(settings)["broker_transport"] == TRANSPORT
    assert configuration(settings, flower=True)["broker_transport"] is None


def test_the_process_kind_comes_from_celerys_command_line_only():
    from workers.processes import process_kind

    assert process_kind(["celery", "-A", "workers.celery_app", "worker", "-Q", "q"]) == "worker"
    assert process_kind(["/venv/bin/celery", "-A", "workers.celery_app", "beat"]) == "beat"
    assert process_kind(["/lib/celery/__main__.py", "-A", "x", "flower"]) == "flower"
    assert process_kind(["celery", "-A", "workers.celery_app", "inspect", "ping"]) is None
    assert process_kind(["/venv/bin/pytest", "-k", "flower"]) is None
