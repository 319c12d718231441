"""Retry delays: exponential with jitter, capped (Settings keeps the cap below the
broker's visibility timeout: tests/kustom_app/test_settings.py)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

import workers.retry as retry


@pytest.fixture
def configured(settings, monkeypatch):
    def configure(**changes):
        services = SimpleNamespace(settings=replace(settings, **changes))
        monkeypatch.setattr(retry, "process_services", lambda: services)

    return configure


def test_delays_double_with_jitter_up_to_the_cap(configured):
    configured(retry_base_seconds=1.0, retry_max_seconds=300.0, visibility_timeout=900)
    for retries in range(15):
        ceiling = min(300.0, 2.0**retries)
        delays = [retry.backoff_seconds(retries) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), retries
        assert max(delays) - min(delays) > 0  # jittered: retries of many tasks spread out


@pytest.mark.parametrize("retries", [10, 30, 200, 5000])
def test_a_long_outage_never_schedules_a_retry_past_its_cap(configured, retries):
    configured(retry_base_seconds=2.0, retry_max_seconds=60.0, visibility_timeout=900)
    assert all(retry.backoff_seconds(retries) <= 60.0 for _ in range(200))
