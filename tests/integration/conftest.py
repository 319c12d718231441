"""Integration fixtures: a real redis-server, a real Celery worker, Kustom over HTTP.

The web app runs in this process behind a threaded HTTP server and enqueues through the
real Celery app to the real Redis broker; the worker subprocess talks to the Kustom double
over loopback HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from harness.celery_worker import CeleryWorker
from harness.redis_server import RedisServer
from harness.waiting import wait_until  # noqa: F401  (used by the test modules)
from kustom_app.services import reset_process_services
from kustom_app.settings import Settings
from playground.commerce import create_app as create_commerce_double
from playground.kustom import create_app as create_kustom_double
from playground.server import ServerThread
from tests.api_conformance import check_response
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET

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


@pytest.fixture
def kustom(kustom_double):
    """The Kustom double's state, with no faults left over from an earlier test."""
    state = kustom_double[1]
    state.clear_faults()
    yield state
    state.clear_faults()


@pytest.fixture(scope="session")
def commerce_double() -> Iterator[tuple[ServerThread, Any]]:
    app = create_commerce_double(secret=COMMERCE_SECRET)
    with ServerThread(app, name="commerce-double") as server:
        yield server, app.extensions["commerce_double"]


@pytest.fixture
def commerce(commerce_double):
    """The commerce double's state."""
    return commerce_double[1]


class LateApp:
    """A WSGI app filled in after the server is bound, so it can know its own URL."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def web_server() -> Iterator[tuple[ServerThread, LateApp]]:
    late = LateApp()
    with ServerThread(late, name="kustom-app-web") as server:
        yield server, late


@pytest.fixture(scope="session")
def service_env(
    redis_server: RedisServer, kustom_double, commerce_double, web_server
) -> dict[str, str]:
    server, _ = kustom_double
    return {
        "COMMERCE_API_URL": commerce_double[0].url,
        "PUBLIC_BASE_URL": web_server[0].url,
        "COMPLETION_LEASE_SECONDS": "3",
        "CONFIRM_WAIT_SECONDS": "1",
        "REDIS_URL": redis_server.url,
        "KUSTOM_API_URL": server.url,
        "KUSTOM_USERNAME": "playground",
        "KUSTOM_PASSWORD": "playground",
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "TASK_RETRY_BASE_SECONDS": "0.2",
        "TASK_RETRY_MAX_SECONDS": "2",
        # Everything that holds a task's message must stay below the visibility timeout
        # (Settings refuses to start otherwise): leases, and a retry's countdown (up to
        # 2 s, or a busy sync's 20.5 s) plus its run (the 25 s time limit).
        "CELERY_VISIBILITY_TIMEOUT": "60",
        "SYNC_LEASE_SECONDS": "20",
        "PAYMENT_LEASE_SECONDS": "20",
        "TASK_TIME_LIMIT_SECONDS": "25",
        "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
        "SYNC_STALE_SECONDS": "2",
        "RECONCILE_INTERVAL_SECONDS": "3600",
        # The workers' and beat's own /metrics (workers/metrics_server.py): loopback only.
        "WORKER_METRICS_HOST": "127.0.0.1",
    }


@pytest.fixture(scope="session")
def celery_in_process(service_env: dict[str, str]) -> Any:
    """Point this process's Celery app (used by the web layer to enqueue) at the real Redis."""
    os.environ.update(service_env)
    reset_process_services()
    from workers.celery_app import app as celery_app

    celery_app.conf.broker_url = service_env["REDIS_URL"]
    celery_app.conf.broker_transport_options = {
        "visibility_timeout": int(service_env["CELERY_VISIBILITY_TIMEOUT"])
    }
    return celery_app


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str]) -> Iterator[CeleryWorker]:
    with CeleryWorker(service_env, name="itest", concurrency=2) as w:
        yield w
    reset_process_services()


@pytest.fixture(scope="session")
def web(service_env: dict[str, str], celery_in_process, web_server) -> ServerThread:
    from webhooks.app import create_app

    server, late = web_server
    late.app = create_app({"SETTINGS": Settings.from_env(service_env)})
    return server


@pytest.fixture
def http(web_server) -> Iterator[requests.Session]:
    """A session whose every answer from the web app is held to its OpenAPI document."""
    with requests.Session() as session:
        session.hooks["response"].append(answers_as_documented(web_server[0].url))
        yield session


def answers_as_documented(base_url: str) -> Any:
    def check(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if not response.url.startswith(base_url + "/"):
            return  # a double's answer
        streamed = response.headers.get("Content-Type", "").startswith("text/event-stream")
        check_response(
            response.request.method or "GET",
            urlsplit(response.url).path,
            response.status_code,
            response.headers.get("Content-Type", ""),
            None if streamed else response.content,
            response.headers,
        )

    return check
