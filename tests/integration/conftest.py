"""Integration fixtures: a real redis-server, a real Celery worker, Kustom over HTTP.

The web app runs in this process behind a threaded HTTP server and enqueues through the
real Celery app to the real Redis broker; the worker subprocess talks to the Kustom double
over loopback HTTP.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from kustom_app.services import reset_process_services
from kustom_app.settings import Settings
from playground.kustom import create_app as create_kustom_double
from playground.server import ServerThread
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET
from tests.support.redis_server import RedisServer
from tests.support.worker import CeleryWorker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture(scope="session")
def kustom_double() -> Iterator[tuple[ServerThread, Any]]:
    app = create_kustom_double()
    with ServerThread(app, name="kustom-double") as server:
        yield server, app.extensions["kustom_double"]


@pytest.fixture(scope="session")
def service_env(redis_server: RedisServer, kustom_double) -> dict[str, str]:
    server, _ = kustom_double
    return {
        "REDIS_URL": redis_server.url,
        "KUSTOM_API_URL": server.url,
        "KUSTOM_USERNAME": "playground",
        "KUSTOM_PASSWORD": "playground",
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "TASK_RETRY_BASE_SECONDS": "0.2",
        "TASK_RETRY_MAX_SECONDS": "2",
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "SYNC_STALE_SECONDS": "2",
        "RECONCILE_INTERVAL_SECONDS": "3600",
    }


@pytest.fixture(scope="session")
def celery_in_process(service_env: dict[str, str]) -> Any:
    """Point this process's Celery app (used by the web layer to enqueue) at the real Redis."""
    os.environ.update(service_env)
    reset_process_services()
    from workers.celery_app import app as celery_app

    celery_app.conf.broker_url = service_env["REDIS_URL"]
    celery_app.conf.broker_transport_options = {"visibility_timeout": 30}
    return celery_app


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str]) -> Iterator[CeleryWorker]:
    with CeleryWorker(service_env, name="itest", concurrency=2) as w:
        yield w
    reset_process_services()


@pytest.fixture(scope="session")
def web(service_env: dict[str, str], celery_in_process) -> Iterator[ServerThread]:
    from webhooks.app import create_app

    app = create_app({"SETTINGS": Settings.from_env(service_env)})
    with ServerThread(app, name="kustom-app-web") as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
