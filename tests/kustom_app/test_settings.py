"""Settings from the environment: thresholds parsed, and unsafe combinations refused at start."""

from __future__ import annotations

import fakeredis
import pytest

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
            "CELERY_VISIBILITY_TIMEOUT": "50",
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
    assert settings.visibility_timeout == 50 and settings.retry_max_seconds == 2.0
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


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "1.5"])
def test_a_visibility_timeout_that_is_not_a_positive_integer_refuses_to_start(raw):
    with pytest.raises(ConfigurationError, match=r"^CELERY_VISIBILITY_TIMEOUT must be"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": raw})


@pytest.mark.parametrize(
    "name",
    [
        "KUSTOM_READ_TIMEOUT",
        "COMMERCE_READ_TIMEOUT",
        "RECONCILE_INTERVAL_SECONDS",
        "TASK_RETRY_BASE_SECONDS",
    ],
)
@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "-inf"])
def test_a_timeout_or_interval_that_is_not_a_positive_number_refuses_to_start(name, raw):
    with pytest.raises(
        ConfigurationError, match=rf"^{name} must be a positive number of seconds, got '{raw}'"
    ):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("raw", ["-1", "-0.5", "nan", "inf"])
def test_a_confirm_wait_that_is_negative_or_not_finite_refuses_to_start(raw):
    with pytest.raises(
        ConfigurationError,
        match=rf"^CONFIRM_WAIT_SECONDS must be a non-negative number of seconds, got '{raw}'",
    ):
        Settings.from_env({"CONFIRM_WAIT_SECONDS": raw})


@pytest.mark.parametrize(
    ("name", "raw", "rule"),
    [
        ("SYNC_STALE_SECONDS", "0", "positive whole number"),
        ("SYNC_STALE_SECONDS", "-60", "positive whole number"),
        ("TASK_MAX_RETRIES", "-3", "non-negative whole number"),
        ("RECONCILE_BATCH", "0", "positive whole number"),
        ("RECONCILE_BATCH", "-200", "positive whole number"),
        ("EVENTS_MAX_STREAMS", "0", "positive whole number"),
        ("EVENTS_MAX_STREAMS", "-1", "positive whole number"),
        ("WEB_THREADS", "0", "positive whole number"),
        ("WEB_CONCURRENCY", "0", "positive whole number"),
        ("CELERY_VISIBILITY_TIMEOUT", "-900", "positive whole number"),
        ("PORT", "0", "whole number from 1 to 65535"),
        ("PORT", "70000", "whole number from 1 to 65535"),
        ("FLOWER_PORT", "-5555", "whole number from 1 to 65535"),
    ],
)
def test_a_count_outside_its_range_refuses_to_start(name, raw, rule):
    with pytest.raises(ConfigurationError, match=rf"^{name} must be a {rule}, got '{raw}'"):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    "name",
    [
        "SYNC_STALE_SECONDS",
        "TASK_MAX_RETRIES",
        "RECONCILE_BATCH",
        "EVENTS_MAX_STREAMS",
        "WEB_THREADS",
        "WEB_CONCURRENCY",
        "KUSTOM_VALIDATION_REJECT",
        "PORT",
        "FLOWER_PORT",
    ],
)
@pytest.mark.parametrize("raw", ["many", "1.5", "nan"])
def test_a_count_that_is_not_a_whole_number_refuses_to_start(name, raw):
    with pytest.raises(ConfigurationError, match=rf"^{name} must be a whole number, got '{raw}'"):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    "name",
    [
        "KUSTOM_READ_TIMEOUT",
        "COMMERCE_READ_TIMEOUT",
        "RECONCILE_INTERVAL_SECONDS",
        "TASK_RETRY_BASE_SECONDS",
        "CONFIRM_WAIT_SECONDS",
    ],
)
def test_a_duration_that_is_not_a_number_refuses_to_start(name):
    with pytest.raises(ConfigurationError, match=rf"^{name} must be a number, got 'soon'"):
        Settings.from_env({name: "soon"})


def test_edge_values_are_accepted():
    settings = Settings.from_env(
        {
            "CONFIRM_WAIT_SECONDS": "0",  # don't wait for a concurrent completion
            "TASK_MAX_RETRIES": "0",  # no retries: the first failure is dead-lettered
            "KUSTOM_READ_TIMEOUT": "0.5",
            "COMMERCE_READ_TIMEOUT": "1e-3",
            "RECONCILE_INTERVAL_SECONDS": "0.25",
            "TASK_RETRY_BASE_SECONDS": "0.05",
            "SYNC_STALE_SECONDS": "1",
            "RECONCILE_BATCH": "1",
            "EVENTS_MAX_STREAMS": "1",
            "WEB_THREADS": "1",
            "WEB_CONCURRENCY": "1",
            "CELERY_VISIBILITY_TIMEOUT": "900",
            "PORT": "65535",
            "FLOWER_PORT": "1",
        }
    )
    assert settings.confirm_wait_seconds == 0.0 and settings.max_retries == 0
    assert (settings.kustom_read_timeout, settings.commerce_read_timeout) == (0.5, 0.001)
    assert (settings.reconcile_interval_seconds, settings.retry_base_seconds) == (0.25, 0.05)
    assert (settings.sync_stale_seconds, settings.reconcile_batch) == (1, 1)
    assert settings.events_max_streams == 1
    assert settings.public_base_url == "http://localhost:65535"


def test_an_empty_value_means_unset():
    names = [
        "PORT",
        "FLOWER_PORT",
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "EVENTS_MAX_STREAMS",
        "CELERY_VISIBILITY_TIMEOUT",
        "KUSTOM_VALIDATION_REJECT",
        "KUSTOM_READ_TIMEOUT",
        "COMMERCE_READ_TIMEOUT",
        "RECONCILE_INTERVAL_SECONDS",
        "SYNC_STALE_SECONDS",
        "TASK_RETRY_BASE_SECONDS",
        "TASK_RETRY_MAX_SECONDS",
        "TASK_MAX_RETRIES",
        "RECONCILE_BATCH",
        "COMPLETION_LEASE_SECONDS",
        "SYNC_LEASE_SECONDS",
        "PAYMENT_LEASE_SECONDS",
        "PAYMENT_REQUEUE_AFTER_SECONDS",
        "TASK_TIME_LIMIT_SECONDS",
        "TASK_SOFT_TIME_LIMIT_SECONDS",
        "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS",
        "RECONCILE_OPEN_ORDER_AFTER_SECONDS",
        "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS",
        "CONFIRM_WAIT_SECONDS",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "KUSTOM_API_URL",
        "KUSTOM_USERNAME",
        "KUSTOM_PASSWORD",
        "PUBLIC_BASE_URL",
        "COMMERCE_API_URL",
        "COMMERCE_WEBHOOK_SECRET",
        "CALLBACK_SECRET",
        "KUSTOM_VALIDATION_RULES",
        "CORS_ALLOWED_ORIGINS",
        "APP_ENV",
        "KUSTOM_KEY_PREFIX",
    ]
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings()


# Each holds a task's message unacknowledged (a countdown, a lease a retry waits out, a run)
# for up to its value: at or above the visibility timeout, Redis hands the message to a
# second worker while the first still holds it. A retry's countdown is followed by its run.
@pytest.mark.parametrize(
    ("changed", "shown"),
    [
        (
            {"TASK_RETRY_MAX_SECONDS": "5"},
            "TASK_RETRY_MAX_SECONDS + TASK_TIME_LIMIT_SECONDS (a retry's longest countdown, "
            "then its run) is 30 s",
        ),
        (
            {"TASK_TIME_LIMIT_SECONDS": "26.5"},
            "TASK_RETRY_MAX_SECONDS + TASK_TIME_LIMIT_SECONDS (a retry's longest countdown, "
            "then its run) is 30.5 s",
        ),
        (
            {"SYNC_LEASE_SECONDS": "4.5"},
            "SYNC_LEASE_SECONDS + 0.5 s + TASK_TIME_LIMIT_SECONDS (a busy sync job's "
            "countdown, then its run) is 30 s",
        ),
        ({"COMPLETION_LEASE_SECONDS": "31"}, "COMPLETION_LEASE_SECONDS is 31 s"),
        ({"CONFIRM_WAIT_SECONDS": "30"}, "CONFIRM_WAIT_SECONDS is 30 s"),
        ({"PAYMENT_LEASE_SECONDS": "45"}, "PAYMENT_LEASE_SECONDS is 45 s"),
    ],
)
def test_anything_not_below_the_visibility_timeout_refuses_to_start(changed, shown):
    safe = {
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "TASK_RETRY_MAX_SECONDS": "4",  # + the 25 s run = 29 s
        "SYNC_LEASE_SECONDS": "4",  # + 0.5 s jitter + the 25 s run = 29.5 s
        "COMPLETION_LEASE_SECONDS": "10",
        "CONFIRM_WAIT_SECONDS": "1",
        "PAYMENT_LEASE_SECONDS": "10",
        "TASK_TIME_LIMIT_SECONDS": "25",
        "TASK_SOFT_TIME_LIMIT_SECONDS": "15",
    }
    assert Settings.from_env(safe).visibility_timeout == 30
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({**safe, **changed})
    message = str(refused.value)
    assert message.startswith(shown)
    assert "must stay below CELERY_VISIBILITY_TIMEOUT (30 s)" in message


def test_the_defaults_need_a_visibility_timeout_above_a_retry_and_its_run():
    """300 s retry cap + 120 s run = 420 s: 420 refuses, 421 starts (and 900 by default)."""
    with pytest.raises(ConfigurationError, match=r"^TASK_RETRY_MAX_SECONDS .* is 420 s"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": "420"})
    assert Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": "421"}).visibility_timeout == 421
    with pytest.raises(ConfigurationError, match=r"^SYNC_LEASE_SECONDS .* is 165.5 s"):
        Settings.from_env({"CELERY_VISIBILITY_TIMEOUT": "165", "TASK_RETRY_MAX_SECONDS": "10"})


def test_settings_built_in_code_are_held_to_the_same_rules():
    with pytest.raises(ConfigurationError, match="SYNC_LEASE_SECONDS"):
        Settings(visibility_timeout=60, retry_max_seconds=5, task_time_limit_seconds=30,
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

    operations = services.payment_operations
    assert (operations.lease_ms, operations.stuck_queued_ms) == (25_000, 15_000)


@pytest.mark.parametrize(
    ("raw", "on"), [("on", True), ("off", False), ("OFF", False), (" On ", True), ("", True)]
)
def test_one_setting_switches_the_fast_paths(raw, on):
    assert Settings.from_env({}).fast_paths is True
    assert Settings.from_env({"KUSTOM_FAST_PATHS": raw}).fast_paths is on


@pytest.mark.parametrize("raw", ["no", "false", "0", "onn"])
def test_a_fast_paths_value_other_than_on_or_off_refuses_to_start(raw):
    with pytest.raises(
        ConfigurationError, match=rf"^KUSTOM_FAST_PATHS must be on or off, got '{raw}'"
    ):
        Settings.from_env({"KUSTOM_FAST_PATHS": raw})


def test_worker_metrics_and_flower_settings():
    settings = Settings.from_env({})
    assert (settings.worker_metrics_port, settings.worker_metrics_host) == (9540, "0.0.0.0")  # noqa: S104
    assert settings.flower_basic_auth is None
    assert Settings.from_env({"FLOWER_BASIC_AUTH": "a:b,c:d"}).flower_basic_auth == "a:b,c:d"
    assert "a:b" not in repr(Settings.from_env({"FLOWER_BASIC_AUTH": "a:b"}))


@pytest.mark.parametrize("raw", ["operator", "operator:", ":secret", "a:b,c"])
def test_a_flower_basic_auth_that_is_not_user_password_refuses_to_start(raw):
    with pytest.raises(ConfigurationError, match="FLOWER_BASIC_AUTH") as refused:
        Settings.from_env({"FLOWER_BASIC_AUTH": raw})
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("raw", ["0", "65535", "nine"])
def test_a_worker_metrics_port_without_room_for_beats_refuses_to_start(raw):
    with pytest.raises(ConfigurationError, match="WORKER_METRICS_PORT"):
        Settings.from_env({"WORKER_METRICS_PORT": raw})
