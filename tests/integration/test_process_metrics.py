"""Issue 15: metrics from every process on every host.

Each test runs its own processes as the Procfile starts them (gunicorn's web line, and
``python -m workers`` for the worker and beat) on its own Redis database, sharing the
session's redis-server and doubles. None of them inherits a PROMETHEUS_MULTIPROC_DIR: the
processes of one "host" find the default directory under their own TMPDIR, as a host
with the variable unset would (that is where the worker's counters were lost: Flower's
plugin, loaded by the ``celery`` command, imported prometheus_client before the service set
the directory).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn
from harness.procfile import ProcfileProcess, procfile_command
from harness.redis_server import free_port
from kustom_app.settings import Settings
from tests.conftest import make_render
from tests.integration import test_checkout_and_sync as cart_flow
from tests.integration.conftest import wait_until
from tests.integration.test_metrics import samples_of, value
from workers.celery_app import make_celery

pytestmark = pytest.mark.integration

ONE_HOST_DB = 10  # web and worker on one host
WORKER_ONLY_DB = 11  # a worker-only node, and beat


def host_env(service_env, redis_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    """A host's environment: the session's doubles, its own Redis database and TMPDIR, and
    no metrics directory inherited from this test process."""
    return {
        **service_env,
        "REDIS_URL": redis_url,
        "TMPDIR": str(tmp),
        "WORKER_METRICS_PORT": str(free_port_pair()),
        **extra,
    }


def free_port_pair() -> int:
    """A free port whose next port is free too: the worker's and beat's."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


INHERITED = ("PROMETHEUS_MULTIPROC_DIR", "KUSTOM_METRICS_PROCESS_DIR")


def on_host(process):
    """``process`` (a harness process, not started) without the metrics directory this test
    process's environment holds: unset, not empty (prometheus_client takes an empty
    variable for multiprocess mode too)."""
    for name in INHERITED:
        process.env.pop(name, None)
    return process


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    return samples_of(response.text)


def metrics_url(env: dict[str, str], offset: int = 0) -> str:
    return f"http://127.0.0.1:{int(env['WORKER_METRICS_PORT']) + offset}"


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


@pytest.fixture
def fresh_db(redis_server) -> Iterator[tuple[str, redis.Redis]]:
    def use(db: int) -> tuple[str, redis.Redis]:
        url = redis_server.url_for(db)
        client = redis.Redis.from_url(url)
        client.flushdb()
        clients.append(client)
        return url, client

    clients: list[redis.Redis] = []
    yield use  # type: ignore[misc]
    for client in clients:
        client.flushdb()


def test_a_real_sync_counts_on_the_workers_port_and_on_the_webs_of_its_host(
    http, service_env, fresh_db, kustom, commerce, tmp_path
):
    redis_url, _ = fresh_db(ONE_HOST_DB)
    port = free_port()
    env = host_env(
        service_env,
        redis_url,
        tmp_path,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
    )
    web = on_host(Gunicorn(env, port=port, log_path=tmp_path / "gunicorn.log"))
    with web, on_host(CeleryWorker(env, name="one-host", concurrency=2)):
        worker_url = metrics_url(env)
        wait_until(lambda: answers(worker_url), timeout=30)
        before_worker, before_web = scrape(worker_url), scrape(web.url)

        orders = [sync_a_cart(http, web, commerce) for _ in range(4)]
        pushes = sum(len(cart_flow.order_updates(kustom, order)) for order in orders)
        assert pushes >= 4  # real pushes to Kustom's double, by this worker's children

        def moved(url: str, before) -> float:
            return value(scrape(url), "kustom_sync_pushes_total") - value(
                before, "kustom_sync_pushes_total"
            )

        # The worker's own /metrics: what its pool children counted, summed.
        wait_until(lambda: moved(worker_url, before_worker) == pushes, timeout=15)
        after_worker = scrape(worker_url)
        assert value(after_worker, "kustom_sync_lag_seconds_count") - value(
            before_worker, "kustom_sync_lag_seconds_count"
        ) >= len(orders)
        updates = value(
            after_worker, "kustom_api_calls_total", operation="update_order", outcome="2xx"
        )
        assert updates == pushes
        # The web's /metrics on the same host: its own requests and the worker's counters.
        wait_until(lambda: moved(web.url, before_web) == pushes, timeout=15)
        after_web = scrape(web.url)
        assert value(after_web, "kustom_cart_events_total", outcome="enqueued") >= 1
        assert ("kustom_queue_depth", (("queue", "kustom.sync"),)) in after_web
        # The worker's port does not count the web's requests.
        assert value(after_worker, "kustom_cart_events_total", outcome="enqueued") == 0

        health = requests.get(f"{worker_url}/healthz", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})

    metrics_dir = tmp_path / f"kustom-app-metrics-{os.getuid()}"
    kinds = sorted(p.name.split("-")[0] for p in metrics_dir.iterdir())
    assert kinds == ["web", "worker"]  # one directory each, in the host's default place


def sync_a_cart(http, web, commerce) -> str:
    """A cart checked out, then changed: one sync job pushes the change. Its order id."""
    cart = cart_flow.new_cart()
    commerce.put_cart(make_render(cart, 1))
    cart_flow.post_render(http, web, make_render(cart, 1))
    order_id = cart_flow.checkout(http, web, cart)["kustomOrderId"]
    cart_flow.post_render(http, web, make_render(cart, 2, quantity=3))
    wait_until(lambda: not cart_flow.status(http, web, cart)["syncing"], timeout=30)
    return order_id


def test_a_worker_only_node_serves_its_counters_and_queue_depths(
    service_env, fresh_db, kustom, tmp_path
):
    """No web anywhere: the jobs reach the broker from a Celery client, the worker consumes
    kustom.orders only, so kustom.sync's job stays queued."""
    redis_url, client = fresh_db(WORKER_ONLY_DB)
    env = host_env(service_env, redis_url, tmp_path)
    producer = make_celery(Settings.from_env(env))
    unknown_order = str(uuid.uuid4())
    producer.send_task(
        "syncKustomOrder", args=["cart-never-synced", "hash", {}], queue="kustom.sync"
    )
    with on_host(CeleryWorker(env, name="worker-only", concurrency=2, queues="kustom.orders")):
        url = metrics_url(env)
        wait_until(lambda: answers(url), timeout=30)
        producer.send_task(
            "completeKustomOrder",
            args=[f"cart-{uuid.uuid4().hex[:8]}", unknown_order, "push"],
            queue="kustom.orders",
        )
        # Kustom's double does not know the order: the task gives up (a dead letter).
        samples = wait_until(
            lambda: (
                (s := scrape(url))
                and value(s, "kustom_dead_letters_total", task="completeKustomOrder") == 1
                and s
            ),
            timeout=30,
        )
        assert value(samples, "kustom_queue_depth", queue="kustom.sync") == 1
        assert value(samples, "kustom_queue_depth", queue="kustom.orders") == 0
        assert value(samples, "kustom_dead_letter_entries") == 1  # the Redis gauges too
        assert client.llen("kustom.sync") == 1
        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200


def test_beat_serves_metrics_and_health_on_the_next_port(service_env, fresh_db, tmp_path):
    redis_url, _ = fresh_db(WORKER_ONLY_DB)
    env = {
        **os.environ,
        **host_env(service_env, redis_url, tmp_path),
        "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    for name in INHERITED:
        env.pop(name, None)
    url = metrics_url(env, offset=1)
    beat = ProcfileProcess("beat", env, tmp_path / "beat.log").start(lambda: answers(url))
    try:
        health = requests.get(f"{url}/healthz", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        response = requests.get(f"{url}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert not answers(metrics_url(env))  # the worker's port is not beat's
    finally:
        beat.stop()


def test_the_procfiles_celery_processes_start_with_the_metrics_directory_set():
    for name in ("worker", "beat", "flower"):
        assert procfile_command(name).startswith("python -m workers -A workers.celery_app ")
