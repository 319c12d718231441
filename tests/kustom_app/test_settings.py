"""Settings from the environment: thresholds parsed, and unsafe combinations refused at start."""

from __future__ import annotations

import fakeredis
import pytest

from kustom_app.ordermanagement import build_payment_operations
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from kustom_app.services import Services
from kustom_app.settings import ConfigurationError, Settings
from tests.conftest import make_render


def test_the_defaults_are_accepted_and_documented_values():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.visibility_timeout == 900
    assert (settings.sync_lease_seconds, settings.payment_lease_seconds) == (45.0, 60.0)
    assert settings.payment_requeue_after_seconds == 60.0
    assert (settings.task_time_limit_seconds, settings.task_soft_time_limit_seconds) == (120, 100)
    assert settings.reconcile_unacknowledged_after_seconds == 300.0
    assert settings.reconcile_open_order_after_seconds == 600.0
    assert settings.reconcile_open_order_max_interval_seconds == 4 * 3600.0


def test_thresholds_and_limits_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "CELERY_VISIBILITY_TIMEOUT": "30",
            "TASK_RETRY_MAX_SECONDS": "2",
            "SYNC_LEASE_SECONDS": "20",
            "PAYMENT_LEASE_SECONDS": "25.5",
            "PAYMENT_REQUEUE_AFTER_SECONDS": "15",
            "COMPLETION_LEASE_SECONDS": "3",
            "TASK_TIME_LIMIT_SECONDS": "25",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
            "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS": "90",
            "RECONCILE_OPEN_ORDER_AFTER_SECONDS": "0.5",
            "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS": "3600",
        }
    )
    assert settings.visibility_timeout == 30 and settings.retry_max_seconds == 2.0
    assert (settings.sync_lease_seconds, settings.payment_lease_seconds) == (20.0, 25.5)
    assert settings.payment_requeue_after_seconds == 15.0
    assert (settings.task_time_limit_seconds, settings.task_soft_time_limit_seconds) == (25, 20)
    assert settings.reconcile_unacknowledged_after_seconds == 90.0
    assert settings.reconcile_open_order_after_seconds == 0.5
    assert settings.reconcile_open_order_max_interval_seconds == 3600.0


@pytest.mark.parametrize(
    "name",
    [
        "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS",
        "RECONCILE_OPEN_ORDER_AFTER_SECONDS",
        "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS",
        "SYNC_LEASE_SECONDS",
        "PAYMENT_LEASE_SECONDS",
        "PAYMENT_REQUEUE_AFTER_SECONDS",
        "COMPLETION_LEASE_SECONDS",
        "TASK_RETRY_MAX_SECONDS",
        "TASK_TIME_LIMIT_SECONDS",
        "TASK_SOFT_TIME_LIMIT_SECONDS",
    ],
)
@pytest.mark.parametrize("raw", ["0", "-5", "nan", "inf", "ten"])
def test_a_duration_that_is_not_a_positive_number_refuses_to_start(name, raw):
    with pytest.raises(ConfigurationError, match=rf"^{name} must be a (positive )?number"):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_a_visibility_timeout_that_is_not_a_positive_integer_refuses_to_start(raw):
    with pytest.raises(ConfigurationError, match=r"^CELERY_VISIBILITY_TIMEOUT must be"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": raw})


# Each holds a task's message unacknowledged (a countdown, a lease a retry waits out, a run)
# for up to its value: at or above the visibility timeout, Redis hands the message to a
# second worker while the first still holds it.
@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "TASK_RETRY_MAX_SECONDS",
            "30",
            "TASK_RETRY_MAX_SECONDS (the longest retry delay) is 30 s",
        ),
        ("SYNC_LEASE_SECONDS", "29.5", "SYNC_LEASE_SECONDS + 0.5 s (a busy sync job's countdown)"),
        ("COMPLETION_LEASE_SECONDS", "31", "COMPLETION_LEASE_SECONDS is 31 s"),
        ("CONFIRM_WAIT_SECONDS", "30", "CONFIRM_WAIT_SECONDS is 30 s"),
        ("PAYMENT_LEASE_SECONDS", "45", "PAYMENT_LEASE_SECONDS is 45 s"),
        ("TASK_TIME_LIMIT_SECONDS", "30", "TASK_TIME_LIMIT_SECONDS (a task's longest run) is 30 s"),
    ],
)
def test_anything_not_below_the_visibility_timeout_refuses_to_start(name, value, shown):
    safe = {
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "TASK_RETRY_MAX_SECONDS": "10",
        "SYNC_LEASE_SECONDS": "10",
        "COMPLETION_LEASE_SECONDS": "10",
        "CONFIRM_WAIT_SECONDS": "1",
        "PAYMENT_LEASE_SECONDS": "10",
        "TASK_TIME_LIMIT_SECONDS": "25",
        "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
    }
    assert Settings.from_env(safe).visibility_timeout == 30
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({**safe, name: value})
    message = str(refused.value)
    assert message.startswith(shown)
    assert "must stay below CELERY_VISIBILITY_TIMEOUT (30 s)" in message


def test_the_default_limits_need_a_visibility_timeout_above_them():
    """A visibility timeout lowered alone refuses: the defaults (120 s run) do not fit."""
    with pytest.raises(ConfigurationError, match=r"^TASK_RETRY_MAX_SECONDS .* is 300 s"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": "100"})
    with pytest.raises(ConfigurationError, match=r"^TASK_TIME_LIMIT_SECONDS .* is 120 s"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": "100", "TASK_RETRY_MAX_SECONDS": "60"})


def test_settings_built_in_code_are_held_to_the_same_rules():
    with pytest.raises(ConfigurationError, match="SYNC_LEASE_SECONDS"):
        Settings(visibility_timeout=40, retry_max_seconds=5, task_time_limit_seconds=30,
                 task_soft_time_limit_seconds=20)  # fmt: skip


def test_a_soft_time_limit_not_below_the_hard_one_refuses_to_start():
    with pytest.raises(
        ConfigurationError,
        match=r"^TASK_SOFT_TIME_LIMIT_SECONDS \(120\) must stay below TASK_TIME_LIMIT_SECONDS",
    ):
        Settings.from_env({"TASK_SOFT_TIME_LIMIT_SECONDS": "120"})


def test_an_open_order_backoff_cap_below_the_first_check_refuses_to_start():
    with pytest.raises(
        ConfigurationError,
        match=r"^RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS \(300\) must not be below "
        r"RECONCILE_OPEN_ORDER_AFTER_SECONDS \(600\)",
    ):
        Settings.from_env({"RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS": "300"})


def test_the_leases_and_the_first_open_order_check_reach_the_store_and_the_operations(
    fake_redis: fakeredis.FakeRedis,
):
    services = Services(
        Settings.from_env(
            {
                "SYNC_LEASE_SECONDS": "20",
                "PAYMENT_LEASE_SECONDS": "25",
                "PAYMENT_REQUEUE_AFTER_SECONDS": "15",
                "RECONCILE_OPEN_ORDER_AFTER_SECONDS": "120",
            }
        )
    )
    services.__dict__["redis"] = fake_redis
    store = services.store
    payload = build_order_payload(load_render(make_render("cart-1", 1)))
    store.record_render(
        "cart-1", 1, make_render("cart-1", 1), payload_hash(payload), payload, now=0
    )
    store.record_order("cart-1", "order-1", payload_hash(payload), payload, now=1_000)
    assert fake_redis.zscore("kustom:open_orders", "cart-1") == 1_000 + 120_000

    newer = build_order_payload(load_render(make_render("cart-1", 2, quantity=3)))
    render = make_render("cart-1", 2, quantity=3)
    store.record_render("cart-1", 2, render, payload_hash(newer), newer, now=2_000)
    assert store.begin_sync("cart-1", "job-a", now=3_000).action == "push"
    busy = store.begin_sync("cart-1", "job-b", now=3_000)
    assert (busy.action, busy.retry_after_ms) == ("busy", 20_000)

    operations = build_payment_operations(services)
    assert (operations.lease_ms, operations.stuck_queued_ms) == (25_000, 15_000)
